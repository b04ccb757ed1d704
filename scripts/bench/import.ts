/**
 * Import cost of the package: the time and heap that `import` of a module adds to a fresh node process, for the
 * package root against `import "effect"` alone (the goal: at most 1.2x both), and for the backend subpaths, which
 * load their clients (ioredis; etcd3 with gRPC and protobufjs). Each target is imported in its own fresh process,
 * rounds interleaved so that a noisy moment hits every target alike; medians are printed.
 *
 * The package is imported as built (`dist/lib`, `npm run build:lib`, run here first), the way an application loads
 * it from node_modules; effect, ioredis and etcd3 resolve from this checkout's node_modules.
 *
 *   node scripts/run.mjs scripts/bench/import.ts          env: BENCH_IMPORT_ROUNDS (default 15)
 *
 * @since 0.1.0
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { envNumber, fmt, machine, median, root, table } from "./common.js"

interface Target {
  readonly id: string
  /** What the application writes. */
  readonly label: string
  /** What the child imports (a URL for the package's own files, a bare name otherwise). */
  readonly specifiers: ReadonlyArray<string>
}

const lib = (file: string) => pathToFileURL(path.join(root, "dist", "lib", file)).href

const targets: ReadonlyArray<Target> = [
  { id: "effect", label: `import "effect"`, specifiers: ["effect"] },
  { id: "root", label: `import "effect-job-scheduler"`, specifiers: [lib("index.js")] },
  {
    id: "root+effect",
    label: `import "effect" + "effect-job-scheduler"`,
    specifiers: ["effect", lib("index.js")]
  },
  {
    id: "redis",
    label: `+ "effect-job-scheduler/JobStore/Redis"`,
    specifiers: [lib("index.js"), lib("JobStore/Redis.js")]
  },
  {
    id: "etcd",
    label: `+ "effect-job-scheduler/LeaderElection/Etcd"`,
    specifiers: [lib("index.js"), lib("LeaderElection/Etcd.js")]
  },
  {
    id: "everything",
    label: "root + every backend (what the root loaded before 0.1.0's split)",
    specifiers: [lib("index.js"), lib("JobStore/Redis.js"), lib("JobLockModel/Redis.js"), lib("LeaderElection/Etcd.js")]
  }
]

/**
 * The child: heap after two full GCs before and after the imports, and the imports' wall time. Run as an ES module
 * from the checkout so that bare names resolve from its node_modules.
 */
const child = (specifiers: ReadonlyArray<string>) => `
const gc = () => { globalThis.gc(); globalThis.gc() }
gc()
const heapBefore = process.memoryUsage().heapUsed
const start = performance.now()
for (const specifier of ${JSON.stringify(specifiers)}) await import(specifier)
const ms = performance.now() - start
gc()
console.log(JSON.stringify({ ms, heap: process.memoryUsage().heapUsed - heapBefore }))
`

const measure = (target: Target): { ms: number; heap: number } => {
  const result = spawnSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", child(target.specifiers)], {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000
  })
  if (result.status !== 0) throw new Error(`${target.id}: exit ${result.status}\n${result.stderr}`)
  return JSON.parse(result.stdout.trim().split("\n").at(-1)!)
}

const main = async () => {
  execFileSync(process.execPath, [path.join(root, "scripts", "build-lib.mjs")], { stdio: "inherit" })
  const rounds = envNumber("BENCH_IMPORT_ROUNDS", 15)
  const samples = new Map(targets.map((t) => [t.id, [] as Array<{ ms: number; heap: number }>]))
  for (let round = 0; round < rounds; round++) {
    for (const target of targets) samples.get(target.id)!.push(measure(target))
  }
  const stats = new Map(
    targets.map((t) => {
      const xs = samples.get(t.id)!
      return [t.id, { ms: median(xs.map((x) => x.ms)), heap: median(xs.map((x) => x.heap)) }] as const
    })
  )
  const base = stats.get("effect")!
  const rows = targets.map((t) => {
    const s = stats.get(t.id)!
    return [
      t.label,
      fmt(s.ms),
      `${fmt(s.ms / base.ms, 2)}x`,
      fmt(s.heap / 2 ** 20, 2),
      `${fmt(s.heap / base.heap, 2)}x`
    ]
  })
  const root_ = stats.get("root")!
  const verdict = (value: number) => (value <= 1.2 ? "met" : "NOT met")
  process.stdout.write(
    `## 6. Import cost (${rounds} fresh processes per row, medians)\n${await machine()}\n\n` +
      table(["import", "ms", "x effect", "heap MiB", "x effect"], rows) +
      `\n\nGoal: the package root costs at most 1.2x \`import "effect"\` in time (${fmt(root_.ms / base.ms, 2)}x: ${
        verdict(root_.ms / base.ms)
      }) and heap (${fmt(root_.heap / base.heap, 2)}x: ${verdict(root_.heap / base.heap)}).\n`
  )
}

await main()
