import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Layer, Logger, TestClock } from "effect"
import { MAX_FIRE_BATCH } from "../src/internal/scheduler/planner.js"
import * as Job from "../src/Job.js"
import * as JobStore from "../src/JobStore.js"
import * as LeaderElection from "../src/LeaderElection.js"
import { RunContext } from "../src/Run.js"
import * as Scheduler from "../src/Scheduler.js"

// More fires due at one instant than one batch takes: they are begun in batches, oldest first; every one runs once,
// none early, none twice.

const layers = Layer.mergeAll(
  JobStore.layerMemory,
  LeaderElection.layerSingleNode("node-a"),
  Logger.replace(Logger.defaultLogger, Logger.none)
)

/** Real time, for the loop's yields to the event loop between full batches (the TestClock does not move). */
const realWait = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

describe("Scheduler under more due fires than one batch", () => {
  it.scoped(
    "every job due at an instant runs once for it, never early, never twice, over several batches",
    () =>
      Effect.gen(function*() {
        const n = MAX_FIRE_BATCH + 600
        const t0 = Date.UTC(2026, 4, 1)
        yield* TestClock.setTime(t0)
        const runs = new Map<string, number>()
        let early = 0
        const jobs = Array.from({ length: n }, (_, i) =>
          Job.unsafeMake({
            name: `job-${i}`,
            cron: "* * * * * *",
            handler: Effect.flatMap(RunContext, (run) =>
              Effect.flatMap(Clock.currentTimeMillis, (now) =>
                Effect.sync(() => {
                  if (now < run.fireTime.getTime()) early++
                  const key = `${i}@${run.fireTime.getTime()}`
                  runs.set(key, (runs.get(key) ?? 0) + 1)
                })))
          }))
        yield* Scheduler.make(jobs, { shutdownGrace: 0 })
        yield* TestClock.adjust(0)
        for (let second = 1; second <= 2; second++) {
          yield* TestClock.adjust("1 second")
          for (let waited = 0; waited < 60_000 && runs.size < second * n; waited += 20) {
            yield* realWait(20)
          }
        }
        expect(early).toBe(0)
        expect(runs.size).toBe(2 * n)
        for (const count of runs.values()) {
          expect(count).toBe(1)
        }
        for (let i = 0; i < n; i += 997) {
          expect(runs.get(`${i}@${t0 + 1000}`)).toBe(1)
          expect(runs.get(`${i}@${t0 + 2000}`)).toBe(1)
        }
      }).pipe(Effect.provide(layers)),
    120_000
  )
})
