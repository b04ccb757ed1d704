/**
 * Idle cost: N registered hourly jobs that do not fire during the run, each scheduler in a fresh child process.
 *
 *   node --expose-gc scripts/run.mjs scripts/bench/idle.ts
 *   env: BENCH_IDLE_N=10000,100000, BENCH_IDLE_SECONDS=5, BENCH_ONLY=ours,croner (contender ids; BENCH_IDLE_ONLY, when
 *        set, instead of BENCH_ONLY for this script), BENCH_VERBOSE=1
 *
 * Per child: full GC, heap and RSS; register N jobs on `0 M * * * *` (hourly, at the minute M half an hour away from
 * now, so no job fires during the run; toad-scheduler's SimpleIntervalJob: every hour) and wait until every job is
 * planned (setup time); 1 s to settle; full GC, heap and RSS again (per job = growth / N); then the process CPU over
 * BENCH_IDLE_SECONDS with nothing due (timers, polling and GC of an idle scheduler).
 *
 * A peer whose heap per job at the smaller size projects to more than 2 GiB at a larger size is not run at it.
 *
 * @since 0.1.0
 */
import {
  calibrateClock,
  envFilter,
  envNumber,
  envNumbers,
  fmt,
  fullGc,
  machine,
  now,
  ratio,
  report,
  runChild,
  selfCommand,
  sleep,
  table
} from "./common.js"
import { contender, contenders } from "./contenders.js"

/** Above this projected heap a size is skipped for a contender (the machine is shared; node's limit is ~4 GiB). */
const PROJECTED_LIMIT_BYTES = 2 * 2 ** 30

/**
 * @since 0.1.0
 */
export interface IdleResult {
  readonly id: string
  readonly n: number
  readonly expr: string
  readonly setupMs: number
  readonly heapPerJob: number
  readonly rssPerJob: number
  readonly heapMB: number
  readonly idleCpuMsPerS: number
  readonly fires: number
}

const child = async (id: string, n: number, idleSeconds: number) => {
  calibrateClock()
  const minute = (new Date().getUTCMinutes() + 30) % 60
  const expr = `0 ${minute} * * * *`
  let fires = 0
  fullGc()
  const before = process.memoryUsage()
  const setupStart = now()
  await contender(id).start({ n, expr, timezone: undefined, intervalMs: 3_600_000, fired: () => fires++ })
  const setupMs = now() - setupStart
  await sleep(1000)
  fullGc()
  const after = process.memoryUsage()
  const cpu0 = process.cpuUsage()
  await sleep(idleSeconds * 1000)
  const cpu = process.cpuUsage(cpu0)
  report(
    {
      id,
      n,
      expr,
      setupMs,
      heapPerJob: (after.heapUsed - before.heapUsed) / n,
      rssPerJob: (after.rss - before.rss) / n,
      heapMB: after.heapUsed / 2 ** 20,
      idleCpuMsPerS: (cpu.user + cpu.system) / 1000 / idleSeconds,
      fires
    } satisfies IdleResult
  )
  process.exit(0)
}

const parent = async () => {
  const sizes = envNumbers("BENCH_IDLE_N", [10000, 100000]).filter((n) => n > 0)
  const idleSeconds = envNumber("BENCH_IDLE_SECONDS", 5)
  const keep = envFilter(process.env.BENCH_IDLE_ONLY !== undefined ? "BENCH_IDLE_ONLY" : "BENCH_ONLY")
  console.log(`## 2. Idle cost: N hourly jobs registered, none due; CPU over ${idleSeconds} s idle`)
  console.log(`${await machine()}; one fresh process per (scheduler, N)`)
  const heapPerJobAt = new Map<string, { n: number; bytes: number }>()
  for (const n of sizes) {
    const rows: Array<ReadonlyArray<string>> = []
    const results: Array<IdleResult> = []
    const failures = new Map<string, string>()
    const ids = contenders.filter((c) => keep(c.id)).map((c) => c.id)
    for (const id of ids) {
      const smaller = heapPerJobAt.get(id)
      if (smaller !== undefined && smaller.bytes * n > PROJECTED_LIMIT_BYTES) {
        failures.set(
          id,
          `not run: ${fmt((smaller.bytes * n) / 2 ** 30, 1)} GiB projected from ${
            fmt(smaller.bytes, 0)
          } bytes/job at ` +
            `N=${smaller.n.toLocaleString("en-US")}`
        )
        continue
      }
      process.stderr.write(`idle: ${id} N=${n} ...\n`)
      const outcome = await runChild<IdleResult>(
        [...selfCommand(import.meta.url, ["--expose-gc"]), "child", id, String(n), String(idleSeconds)],
        {},
        // Start-up, setup of up to 100,000 jobs (tens of seconds for the slowest), settle, idle, margin.
        (idleSeconds + 150) * 1000
      )
      if (outcome._tag === "Failed") failures.set(id, `failed: ${outcome.reason}`)
      else {
        results.push(outcome.value)
        heapPerJobAt.set(id, { n, bytes: outcome.value.heapPerJob })
      }
    }
    const peers = results.filter((r) => contender(r.id).peer)
    const bestHeap = peers.length === 0 ? undefined : Math.min(...peers.map((r) => r.heapPerJob))
    for (const id of ids) {
      const r = results.find((x) => x.id === id)
      const name = contender(id).name
      if (r === undefined) {
        rows.push([name, failures.get(id) ?? "-", "", "", "", "", "", "", ""])
        continue
      }
      rows.push([
        name,
        fmt(r.setupMs, 0),
        fmt((r.setupMs * 1000) / n, 1),
        fmt(r.heapPerJob, 0),
        fmt(r.rssPerJob, 0),
        fmt(r.idleCpuMsPerS, 2),
        ratio(r.heapPerJob, bestHeap),
        String(r.fires),
        contender(id).peer
          ? ""
          : [
            n >= 100000 ? (r.setupMs <= 1000 ? "setup <= 1 s: met" : "setup <= 1 s: NOT met") : undefined,
            bestHeap === undefined
              ? undefined
              : r.heapPerJob <= bestHeap
              ? "heap <= best peer: met"
              : "heap <= best peer: NOT met",
            r.fires === 0 ? undefined : "fired while idle"
          ].filter((x) => x !== undefined).join("; ")
      ])
    }
    console.log("")
    console.log(
      `### N = ${n.toLocaleString("en-US")} idle jobs (goals for ours: 100,000 jobs planned in <= 1 s; ` +
        `heap per job <= the best peer's in this run)`
    )
    console.log(table(
      [
        "scheduler",
        "setup ms",
        "setup us/job",
        "heap bytes/job",
        "RSS bytes/job",
        "idle CPU ms/s",
        "heap/job vs best peer",
        "fires",
        "goals"
      ],
      rows
    ))
  }
  console.log("")
  console.log(
    "setup = registering every job until all are planned. heap/RSS per job = growth after a full GC / N. idle CPU =" +
      " process CPU (user + system) per second of wall time with nothing due."
  )
}

if (process.argv[2] === "child") {
  await child(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]))
} else {
  await parent()
}
