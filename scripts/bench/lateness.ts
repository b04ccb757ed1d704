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
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import { performance } from "node:perf_hooks"
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
  /** The longest time a job went without a run start in the window (window edges included), ms. */
  readonly maxGapMs: number
  /** Runs whose fire time is older than one started before them (oldest fire first is broken), in the window. */
  readonly outOfOrder: number
  /** Fire batches (distinct fire seconds) seen after setup. */
  readonly batches: number
  /** What the contender counted itself (Redis: pipelines, commands), over the fires after setup. */
  readonly stats: Record<string, number> | undefined
}

/**
 * @since 0.1.0
 */
export interface FloorResult {
  readonly n: number
  /** Median over 10 rounds of the time from the loop's start until the last of N bare fibers ran, ms. */
  readonly lastStartMs: number
  readonly maxMs: number
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
  // Per job: the wall time of its last run start in the window (window start before its first), and the longest
  // gap between two; and the newest fire time started so far, to count runs started out of fire-time order.
  const lastStart = new Float64Array(n)
  let maxGap = 0
  let newestStarted = -Infinity
  let outOfOrder = 0
  const seconds0 = new Set<number>()
  const fired = (job: number, fireTime: number) => {
    const at = now()
    fires++
    seconds0.add(fireTime)
    if (fireTime < windowStart || fireTime >= windowEnd) return
    if (Date.now() < fireTime) early++
    if (fireTime < newestStarted - 1000) outOfOrder++
    if (fireTime > newestStarted) newestStarted = fireTime
    if (at <= windowEnd) {
      const gap = at - lastStart[job]!
      if (gap > maxGap) maxGap = gap
      lastStart[job] = at
    }
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
  const stats = await contender(id).start({ n, expr: "* * * * * *", timezone: undefined, intervalMs: 1000, fired })
  const setupMs = now() - setupStart
  progress("set up")

  // The window is placed when this code actually runs again: an overloaded scheduler delays this process's own
  // timers too, and a window placed in advance would then lie in the past. Fires count by their fire time, so a
  // late timer here only moves the window; CPU is taken from the end of setup to the end, over all fires since.
  const cpu0 = process.cpuUsage()
  const fires0 = fires
  const wall0 = now()
  await sleep(WARMUP_MS)
  seconds0.clear()
  windowStart = Math.ceil(Date.now() / 1000) * 1000
  windowEnd = windowStart + seconds * 1000
  lastStart.fill(windowStart)
  const stats0 = stats?.read()
  progress("window placed")
  await sleep(windowEnd - Date.now())
  progress("window ends")
  await sleep(windowEnd + TAIL_MS - Date.now())
  progress("tail ends")
  const cpu = process.cpuUsage(cpu0)
  const windowFires = fires - fires0
  const wallMs = now() - wall0
  const stats1 = stats?.read()
  const batches = seconds0.size
  for (let job = 0; job < n; job++) maxGap = Math.max(maxGap, windowEnd - lastStart[job]!)

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
      rssAfterMB: memory.rss / MB,
      maxGapMs: maxGap,
      outOfOrder,
      batches,
      stats: stats0 === undefined || stats1 === undefined
        ? undefined
        : Object.fromEntries(Object.keys(stats1).map((key) => [key, stats1[key]! - (stats0[key] ?? 0)]))
    } satisfies LatenessResult
  )
  process.exit(0)
}

/**
 * The floor of a fiber per run, in its own process like the schedulers: N bare fibers forked in one synchronous loop
 * (`Runtime.runFork` of a one-line `Effect.sync`), time from the loop's start until the last one ran; median of 10
 * rounds after 2 of warm-up.
 */
const floorChild = async (n: number) => {
  const lastStarts: Array<number> = []
  for (let round = 0; round < 12; round++) {
    let done = 0
    let last = 0
    await new Promise<void>((resolve) => {
      const t0 = performance.now()
      for (let i = 0; i < n; i++) {
        Runtime.runFork(Runtime.defaultRuntime)(Effect.sync(() => {
          if (++done === n) {
            last = performance.now() - t0
            resolve()
          }
        }))
      }
    })
    if (round >= 2) lastStarts.push(last)
    await sleep(50)
  }
  lastStarts.sort((a, b) => a - b)
  report(
    {
      n,
      lastStartMs: lastStarts[Math.floor(lastStarts.length / 2)]!,
      maxMs: lastStarts[lastStarts.length - 1]!
    } satisfies FloorResult
  )
  process.exit(0)
}

/** One throughput goal, as the bench judges it: what, the figure, and the verdict. */
interface Goal {
  readonly goal: string
  readonly figure: string
  readonly met: boolean | undefined
}

const verdict = (met: boolean | undefined) => (met === undefined ? "not measured" : met ? "met" : "NOT met")

/** Round trips per fire batch of the Redis store: pipelines plus commands sent alone, per distinct fire second. */
const redisFigures = (r: LatenessResult) => {
  const stats = r.stats
  if (stats === undefined || r.batches === 0) return undefined
  const pipelines = (stats.pipelines ?? 0) / r.batches
  const single = (stats.singleCommands ?? 0) / r.batches
  return {
    pipelines,
    roundTrips: pipelines + single,
    commandsPerFire: ((stats.pipelinedCommands ?? 0) + (stats.singleCommands ?? 0)) / Math.max(1, r.ran)
  }
}

/** The throughput goals that the lateness runs measure. */
const goalsOf = (
  results: ReadonlyMap<number, ReadonlyArray<LatenessResult>>,
  floors: ReadonlyMap<number, FloorResult>
): Array<Goal> => {
  const find = (n: number, id: string) => results.get(n)?.find((r) => r.id === id)
  const clean = (r: LatenessResult) => r.missed === 0 && r.double === 0 && r.early === 0
  const goals: Array<Goal> = []
  const json = find(10000, "ours-json")
  goals.push({
    goal: "CPU per fire at 10,000 jobs/s, memory lock, JSON logs at info discarded: <= 25 us",
    figure: json === undefined ? "-" : `${fmt(json.cpuUsPerFire, 1)} us`,
    met: json === undefined ? undefined : json.cpuUsPerFire <= 25 && clean(json)
  })
  const redis = find(10000, "ours-redis")
  goals.push({
    goal: "CPU per fire at 10,000 jobs/s, Redis store: <= 40 us",
    figure: redis === undefined ? "-" : `${fmt(redis.cpuUsPerFire, 1)} us`,
    met: redis === undefined ? undefined : redis.cpuUsPerFire <= 40 && clean(redis)
  })
  const oursAt1k = find(1000, "ours-lock")
  const peers1k = (results.get(1000) ?? []).filter((r) => contender(r.id).peer && r.missed === 0 && r.double === 0)
  const best1k = peers1k.length === 0 ? undefined : peers1k.reduce((a, b) => (b.p99 < a.p99 ? b : a))
  goals.push({
    goal: "p99 lateness at 1,000 jobs/s (memory lock) <= the best peer's p99 in the same run",
    figure: oursAt1k === undefined || best1k === undefined
      ? "-"
      : `${fmt(oursAt1k.p99, 2)} ms vs ${contender(best1k.id).name} ${fmt(best1k.p99, 2)} ms`,
    met: oursAt1k === undefined || best1k === undefined ? undefined : oursAt1k.p99 <= best1k.p99 && clean(oursAt1k)
  })
  const oursAt10k = find(10000, "ours-lock")
  const floor10k = floors.get(10000)
  goals.push({
    goal: "p99 lateness at 10,000 jobs/s (memory lock) <= 2x the bare-fiber floor in the same run",
    figure: oursAt10k === undefined || floor10k === undefined
      ? "-"
      : `${fmt(oursAt10k.p99, 2)} ms vs floor ${fmt(floor10k.lastStartMs, 2)} ms (${
        ratio(oursAt10k.p99, floor10k.lastStartMs)
      })`,
    met: oursAt10k === undefined || floor10k === undefined
      ? undefined
      : oursAt10k.p99 <= 2 * floor10k.lastStartMs && clean(oursAt10k)
  })
  const ours = [...results.values()].flat().filter((r) => !contender(r.id).peer)
  goals.push({
    goal: "never an early or double fire (every run of ours)",
    figure: `${ours.reduce((a, r) => a + r.early, 0)} early, ${ours.reduce((a, r) => a + r.double, 0)} double`,
    met: ours.length === 0 ? undefined : ours.every((r) => r.early === 0 && r.double === 0)
  })
  const overload = find(100000, "ours-lock") ?? find(100000, "ours")
  goals.push({
    goal: "overload, 100,000 jobs/s, memory store: >= 40,000 runs start per second",
    figure: overload === undefined ? "-" : `${fmt(overload.firesPerSecond, 0)} runs/s (${overload.id})`,
    met: overload === undefined ? undefined : overload.firesPerSecond >= 40000
  })
  goals.push({
    goal: "overload: every job runs at least once every 5 s (longest gap of any job in the window)",
    figure: overload === undefined
      ? "-"
      : `${fmt(overload.maxGapMs / 1000, 2)} s, ${overload.outOfOrder} runs out of fire-time order`,
    met: overload === undefined ? undefined : overload.maxGapMs <= 5000
  })
  goals.push({
    goal: "overload: heap growth <= 300 MB over the window",
    figure: overload === undefined ? "-" : `${fmt(overload.heapAfterMB - overload.heapBeforeMB, 1)} MB`,
    met: overload === undefined ? undefined : overload.heapAfterMB - overload.heapBeforeMB <= 300
  })
  const figures = redis === undefined ? undefined : redisFigures(redis)
  goals.push({
    goal: "Redis at 10,000 jobs/s: 0 missed, p99 next to the memory store's, pipelines and round trips per batch",
    figure: redis === undefined
      ? "-"
      : `${redis.missed} missed, p99 ${fmt(redis.p99, 2)} ms (memory ${fmt(json?.p99, 2)} ms); ` +
        (figures === undefined
          ? "no counts"
          : `${fmt(figures.pipelines, 1)} pipelines, ${fmt(figures.roundTrips, 1)} round trips per batch, ${
            fmt(figures.commandsPerFire, 2)
          } commands per fire`),
    met: redis === undefined ? undefined : redis.missed === 0 && redis.double === 0 && redis.early === 0
  })
  return goals
}

/** Prints the goals table. */
const printGoals = (goals: ReadonlyArray<Goal>): void => {
  console.log(table(["throughput goal", "figure", "verdict"], goals.map((g) => [g.goal, g.figure, verdict(g.met)])))
}

const parent = async () => {
  const seconds = envNumber("BENCH_SECONDS", 20)
  const sizes = envNumbers("BENCH_N", [1000, 10000])
  const oursOnly = envNumbers("BENCH_N_OURS", [100000])
  const keep = envFilter("BENCH_ONLY")
  const keepLarge = envFilter("BENCH_N_OURS_IDS")
  console.log(`## 1. Fire lateness: N jobs every second (\`* * * * * *\`), ${seconds} s window per run`)
  console.log(`${await machine()}; one fresh process per (scheduler, N); times in ms`)
  const all = new Map<number, Array<LatenessResult>>()
  const floors = new Map<number, FloorResult>()
  const plan: Array<{ n: number; ids: ReadonlyArray<string> }> = [
    ...sizes.filter((n) => n > 0).map((n) => ({ n, ids: contenders.filter((c) => keep(c.id)).map((c) => c.id) })),
    ...oursOnly.filter((n) => n > 0).map((n) => ({
      n,
      ids: contenders.filter((c) => !c.peer && keep(c.id) && keepLarge(c.id)).map((c) => c.id)
    }))
  ]
  for (const { ids, n } of plan) {
    if (ids.length === 0) continue
    let floor: FloorResult | undefined
    if (n <= 10000) {
      process.stderr.write(`lateness: bare-fiber floor N=${n} ...\n`)
      const outcome = await runChild<FloorResult>(
        [...selfCommand(import.meta.url, []), "floor", String(n)],
        {},
        120_000
      )
      if (outcome._tag === "Ok") {
        floor = outcome.value
        floors.set(n, floor)
      }
    }
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
    all.set(n, [...(all.get(n) ?? []), ...ok])
    const peers = ok.filter((r) => contender(r.id).peer && r.missed === 0 && r.double === 0)
    const bestP99 = peers.length === 0 ? undefined : Math.min(...peers.map((r) => r.p99))
    const rows = results.map(({ id, outcome }) => {
      const name = contender(id).name
      if (outcome._tag === "Failed") return [name, `failed: ${outcome.reason}`, "", "", "", "", "", "", "", "", "", ""]
      const r = outcome.value
      const redis = redisFigures(r)
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
        fmt(r.maxGapMs / 1000, 2),
        redis === undefined ? "" : `${fmt(redis.pipelines, 1)} / ${fmt(redis.roundTrips, 1)}`
      ]
    })
    console.log("")
    console.log(
      `### N = ${n.toLocaleString("en-US")} jobs/s` +
        (floor === undefined
          ? ""
          : `; bare-fiber floor: ${n.toLocaleString("en-US")} fibers forked at once have all run after ${
            fmt(floor.lastStartMs, 2)
          } ms (median of 10, max ${fmt(floor.maxMs, 2)})`)
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
        "longest gap s",
        "pipelines / round trips per batch"
      ],
      rows
    ))
  }
  console.log("")
  console.log(
    "best peer = lowest p99 among peers with 0 missed and 0 double. heap growth = heap used after a full GC at the end" +
      " minus before registering. runs/s = handlers started per second of wall time after setup (N when keeping up)." +
      " toad SimpleIntervalJob: lateness against its grid (added + k s). longest gap = the longest time any job went" +
      " without a run start in the window. pipelines / round trips per batch (Redis): per distinct fire second."
  )
  console.log("")
  console.log(`### Throughput goals, ${await machine()}`)
  printGoals(goalsOf(all, floors))
}

if (process.argv[2] === "floor") {
  await floorChild(Number(process.argv[3]))
} else if (process.argv[2] === "child") {
  await child(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]))
} else {
  await parent()
}
