/**
 * Fire lateness: N jobs firing every second (`* * * * * *`), each scheduler in a fresh child process.
 *
 *   node --expose-gc scripts/run.mjs scripts/bench/lateness.ts
 *   env: BENCH_SECONDS=20 (measured window), BENCH_N=1000,10000, BENCH_N_OURS=100000 (extra sizes for ours only; 0 = none),
 *        BENCH_N_OURS_IDS=ours,ours-lock (which of ours run at those sizes), BENCH_ONLY=ours,croner (contender ids),
 *        BENCH_VERBOSE=1 (child stderr)
 *
 * Per child: register N jobs, wait 1.5 s (JIT warm-up, first fires), then observe a window of BENCH_SECONDS whole
 * seconds, and 1 s more for fires of the window's last second that come late. In the window every job must fire
 * once per second: expected = N x seconds. A (job, fire second) that never ran is missed; one that ran twice is a
 * double; a run that started before its fire time (by `Date.now()`) is early. Lateness = start (wall clock, read
 * with microsecond resolution) - fire time. CPU per fire = process CPU (user + system) / fires, and runs/s = fires /
 * wall time, both from the end of setup to the end. Heap after = heap used after a forced full GC at the end, while the scheduler still runs.
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

/** Time between setup and the window: JIT warm-up and the first fires stay out of the figures. */
const WARMUP_MS = 1500
/** Time after the window during which late fires of its last seconds are still counted. */
const TAIL_MS = 1000

/**
 * @since 0.1.0
 */
export interface LatenessResult {
  readonly id: string
  readonly n: number
  readonly seconds: number
  readonly setupMs: number
  readonly expected: number
  readonly ran: number
  readonly missed: number
  readonly double: number
  readonly early: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly cpuUsPerFire: number
  readonly firesPerSecond: number
  readonly heapBeforeMB: number
  readonly heapAfterMB: number
  readonly rssAfterMB: number
}

const MB = 2 ** 20

const child = async (id: string, n: number, seconds: number) => {
  calibrateClock()
  const counts = new Uint8Array(n * seconds)
  // Room for every expected fire and some doubles; fires beyond it still count, their lateness is not kept.
  const lateness = new Float64Array(Math.ceil(n * seconds * 1.05) + 16)
  let kept = 0
  let early = 0
  let fires = 0
  let windowStart = Infinity
  let windowEnd = Infinity
  const fired = (job: number, fireTime: number) => {
    const at = now()
    fires++
    if (fireTime < windowStart || fireTime >= windowEnd) return
    if (Date.now() < fireTime) early++
    const slot = job * seconds + Math.floor((fireTime - windowStart) / 1000)
    if (counts[slot]! < 255) counts[slot]!++
    if (kept < lateness.length) lateness[kept++] = at - fireTime
  }

  // Phases on stderr (shown with BENCH_VERBOSE=1): where an overloaded child spends its time.
  const t0 = Date.now()
  const progress = (what: string) =>
    process.stderr.write(`  [${id} N=${n}] +${((Date.now() - t0) / 1000).toFixed(1)} s ${what}, ${fires} fires\n`)
  fullGc()
  const heapBefore = process.memoryUsage().heapUsed
  const setupStart = now()
  await contender(id).start({ n, expr: "* * * * * *", timezone: undefined, intervalMs: 1000, fired })
  const setupMs = now() - setupStart
  progress("set up")

  // The window is placed when this code actually runs again: an overloaded scheduler delays this process's own
  // timers too, and a window placed in advance would then lie in the past. Fires count by their fire time, so a
  // late timer here only moves the window; CPU is taken from the end of setup to the end, over all fires since.
  const cpu0 = process.cpuUsage()
  const fires0 = fires
  const wall0 = now()
  await sleep(WARMUP_MS)
  windowStart = Math.ceil(Date.now() / 1000) * 1000
  windowEnd = windowStart + seconds * 1000
  progress("window placed")
  await sleep(windowEnd - Date.now())
  progress("window ends")
  await sleep(windowEnd + TAIL_MS - Date.now())
  progress("tail ends")
  const cpu = process.cpuUsage(cpu0)
  const windowFires = fires - fires0
  const wallMs = now() - wall0

  fullGc()
  const memory = process.memoryUsage()
  let missed = 0
  let ran = 0
  let double = 0
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!
    if (c === 0) missed++
    else {
      ran++
      double += c - 1
    }
  }
  const sorted = lateness.subarray(0, kept).sort()
  const at = (
    p: number
  ) => (kept === 0 ? NaN : sorted[Math.min(kept - 1, Math.max(0, Math.ceil((p / 100) * kept) - 1))]!)
  report(
    {
      id,
      n,
      seconds,
      setupMs,
      expected: counts.length,
      ran,
      missed,
      double,
      early,
      p50: at(50),
      p99: at(99),
      max: kept === 0 ? NaN : sorted[kept - 1]!,
      cpuUsPerFire: windowFires === 0 ? NaN : (cpu.user + cpu.system) / windowFires,
      firesPerSecond: (windowFires * 1000) / wallMs,
      heapBeforeMB: heapBefore / MB,
      heapAfterMB: memory.heapUsed / MB,
      rssAfterMB: memory.rss / MB
    } satisfies LatenessResult
  )
  process.exit(0)
}

/** The goal per size; sizes without a goal print none. */
const goals: Record<number, number> = { 1000: 5, 10000: 10 }

const parent = async () => {
  const seconds = envNumber("BENCH_SECONDS", 20)
  const sizes = envNumbers("BENCH_N", [1000, 10000])
  const oursOnly = envNumbers("BENCH_N_OURS", [100000])
  const keep = envFilter("BENCH_ONLY")
  const keepLarge = envFilter("BENCH_N_OURS_IDS")
  console.log(`## 1. Fire lateness: N jobs every second (\`* * * * * *\`), ${seconds} s window per run`)
  console.log(`${await machine()}; one fresh process per (scheduler, N); times in ms`)
  const plan: Array<{ n: number; ids: ReadonlyArray<string> }> = [
    ...sizes.filter((n) => n > 0).map((n) => ({ n, ids: contenders.filter((c) => keep(c.id)).map((c) => c.id) })),
    ...oursOnly.filter((n) => n > 0).map((n) => ({
      n,
      ids: contenders.filter((c) => !c.peer && keep(c.id) && keepLarge(c.id)).map((c) => c.id)
    }))
  ]
  for (const { ids, n } of plan) {
    if (ids.length === 0) continue
    const results: Array<{ id: string; outcome: Awaited<ReturnType<typeof runChild<LatenessResult>>> }> = []
    for (const id of ids) {
      process.stderr.write(`lateness: ${id} N=${n} ...\n`)
      const outcome = await runChild<LatenessResult>(
        [...selfCommand(import.meta.url, ["--expose-gc"]), "child", id, String(n), String(seconds)],
        {},
        // Start-up, setup (100,000 jobs: up to a minute here), warm-up, window, tail, and a generous margin for an
        // overloaded scheduler, whose process runs this child's own timers late.
        (3 * seconds + 240) * 1000
      )
      results.push({ id, outcome })
    }
    const ok = results.flatMap((r) => (r.outcome._tag === "Ok" ? [r.outcome.value] : []))
    const peers = ok.filter((r) => contender(r.id).peer && r.missed === 0 && r.double === 0)
    const bestP99 = peers.length === 0 ? undefined : Math.min(...peers.map((r) => r.p99))
    const goal = goals[n]
    const rows = results.map(({ id, outcome }) => {
      const name = contender(id).name
      if (outcome._tag === "Failed") return [name, `failed: ${outcome.reason}`, "", "", "", "", "", "", "", "", "", ""]
      const r = outcome.value
      const meets = goal === undefined
        ? "-"
        : r.p99 <= goal && r.missed === 0 && r.double === 0 && r.early === 0
        ? "yes"
        : "no"
      return [
        name,
        fmt(r.p50, 2),
        fmt(r.p99, 2),
        fmt(r.max, 1),
        `${r.missed}/${r.expected}`,
        String(r.double),
        String(r.early),
        fmt(r.cpuUsPerFire, 1),
        fmt(r.firesPerSecond, 0),
        `${fmt(r.heapAfterMB - r.heapBeforeMB, 1)}`,
        ratio(r.p99, bestP99),
        contender(id).peer ? "" : meets
      ]
    })
    console.log("")
    console.log(
      `### N = ${n.toLocaleString("en-US")} jobs/s` +
        (goal === undefined ? "" : ` (goal for ours: p99 <= ${goal} ms, 0 missed, 0 double, 0 early)`)
    )
    console.log(table(
      [
        "scheduler",
        "p50",
        "p99",
        "max",
        "missed/expected",
        "double",
        "early",
        "CPU us/fire",
        "runs/s",
        "heap growth MB",
        "p99 vs best peer",
        "goal met"
      ],
      rows
    ))
  }
  console.log("")
  console.log(
    "best peer = lowest p99 among peers with 0 missed and 0 double. heap growth = heap used after a full GC at the end" +
      " minus before registering. runs/s = handlers started per second of wall time after setup (N when keeping up)." +
      " toad SimpleIntervalJob: lateness against its grid (added + k s)."
  )
}

if (process.argv[2] === "child") {
  await child(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]))
} else {
  await parent()
}
