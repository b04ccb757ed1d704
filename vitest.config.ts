import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration tests start real redis-server / etcd processes; give them room on a 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two test files at a time. vitest's default on 2 cores is one (cores - 1), which runs the suite serially: most
    // files wait on real servers and timers, not on the CPU, so a second one halves the wall time. Every timing
    // bound in the suite is meant to hold on a loaded machine (it passed with other heavy work beside it).
    maxWorkers: 2,
    minWorkers: 1
  }
})
