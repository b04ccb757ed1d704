/**
 * Every benchmark, one after the other (the machine has 2 cores: never two at once), in fresh processes. Prints all
 * tables and keeps a copy in .tmp/bench/results-<time>.md.
 *
 *   node scripts/run.mjs scripts/bench/all.ts          (npm run bench; about 10 minutes on 2 cores)
 *   env: BENCH_STEPS=lateness,idle,cron,import,redis,leadership (a subset), and each step's own variables
 *        (BENCH_SECONDS, BENCH_N, BENCH_N_OURS, BENCH_IDLE_N, BENCH_IDLE_SECONDS, BENCH_ONLY, BENCH_CRON_MS,
 *        BENCH_CRON_ROUNDS, BENCH_REDIS_ITERATIONS, RUNS, PROCESS_RUNS, TTL)
 *
 * @since 0.1.0
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { envFilter, machine, root } from "./common.js"

interface Step {
  readonly id: string
  readonly script: string
  /** Node flags: the lateness and idle children force full GCs before reading the heap. */
  readonly flags: ReadonlyArray<string>
  /** Defaults that keep the whole run near 10 minutes; a variable set by the caller wins. */
  readonly env?: Record<string, string>
}

const steps: ReadonlyArray<Step> = [
  // 15 runs of (start-up + setup + 1.5 s warm-up + window + 1 s tail): 8 s windows instead of the script's 20 s,
  // and 100,000 jobs/s (the overload goals) for ours with the memory lock only.
  {
    id: "lateness",
    script: "scripts/bench/lateness.ts",
    flags: ["--expose-gc"],
    env: { BENCH_SECONDS: "8", BENCH_N_OURS_IDS: "ours-lock" }
  },
  // Idle: ours with the lock is left out (a lock costs nothing until a run), and 3 s of idle CPU instead of 5.
  {
    id: "idle",
    script: "scripts/bench/idle.ts",
    flags: ["--expose-gc"],
    env: { BENCH_IDLE_ONLY: "ours,croner,node-cron,toad-cron,toad-interval,effect-fiber", BENCH_IDLE_SECONDS: "3" }
  },
  { id: "cron", script: "scripts/bench/cron.ts", flags: [], env: { BENCH_CRON_MS: "100" } },
  // 10 rounds of six fresh processes, ~1 minute.
  { id: "import", script: "scripts/bench/import.ts", flags: [], env: { BENCH_IMPORT_ROUNDS: "10" } },
  { id: "redis", script: "scripts/bench/redis.ts", flags: [] },
  // leadership.ts defaults to 5 in-process and 3 process runs per scenario (3.5 min here); 3 and 2 take under 2.
  { id: "leadership", script: "scripts/bench/leadership-report.ts", flags: [], env: { RUNS: "3", PROCESS_RUNS: "2" } }
]

const main = async () => {
  const keep = envFilter("BENCH_STEPS")
  const outDir = path.join(root, ".tmp", "bench")
  fs.mkdirSync(outDir, { recursive: true })
  const outFile = path.join(outDir, `results-${new Date().toISOString().replace(/[:.]/g, "-")}.md`)
  const out = fs.createWriteStream(outFile)
  const print = (text: string) => {
    process.stdout.write(text)
    out.write(text)
  }
  const started = Date.now()
  print(`# effect-job-scheduler benchmarks, ${new Date().toISOString()}\n${await machine()}\n`)
  const failed: Array<string> = []
  for (const step of steps.filter((s) => keep(s.id))) {
    const stepStart = Date.now()
    process.stderr.write(`\n=== ${step.id}\n`)
    print("\n")
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [...step.flags, path.join(root, "scripts", "run.mjs"), step.script], {
        cwd: root,
        env: { ...step.env, ...process.env },
        stdio: ["ignore", "pipe", "inherit"]
      })
      child.stdout.setEncoding("utf8").on("data", print)
      child.on("exit", resolve)
    })
    if (code !== 0) failed.push(`${step.id} (exit ${code})`)
    process.stderr.write(`=== ${step.id}: ${((Date.now() - stepStart) / 1000).toFixed(0)} s\n`)
  }
  print(
    `\nTotal ${((Date.now() - started) / 60000).toFixed(1)} min.${
      failed.length > 0 ? ` Failed: ${failed.join(", ")}.` : ""
    }\n`
  )
  await new Promise((resolve) => out.end(resolve))
  process.stderr.write(`results: ${path.relative(root, outFile)}\n`)
  if (failed.length > 0) process.exitCode = 1
}

await main()
