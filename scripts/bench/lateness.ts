/**
 * Fire lateness: N jobs firing every second (`* * * * * *`), each scheduler in a fresh child process.
 *
 *   node --expose-gc scripts/run.mjs scripts/bench/lateness.ts
 *   env: BENCH_SECONDS=20 (measured window), BENCH_N=1000,10000, BENCH_N_OURS=100000 (extra sizes for ours only; 0 = none),
 *        BENCH_N_OURS_IDS=ours,ours-lock (which of ours run at those sizes), BENCH_ONLY=ours,croner (contender ids),
 *        BENCH_VERBOSE=1 (child stderr), BENCH_WARMUP_MS=4000 (time between setup and the window)
 *
 * Per child: register N jobs, wait 4 s (JIT warm-up, first fires), then observe a window of BENCH_SECONDS whole
 * seconds, and 1 s more for fires of the window's last second that come late. In the window every job must fire
 * once per second: expected = N x seconds. A (job, fire second) that never ran is missed; one that ran twice is a
 * double; a run that started before its fire time (by `Date.now()`) is early. Lateness = start (wall clock, read
 * with microsecond resolution) - fire time. CPU per fire = process CPU (user + system) / fires, and runs/s = fires /
 * wall time, both from the end of setup to the end. Heap after = heap used after a forced full GC at the end, while the scheduler still runs.
 *
 * Limits, each in a child of its own and shown beside the goal it bounds: the bare-fiber floor before each size up
 * to 10,000 (time until N fibers forked at once have run, and CPU per fiber); at 10,000, the CPU of a JSON line
 * (when ours-json runs there) and of a Redis script call from ioredis (when ours-redis runs there).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import type { Redis as IORedis } from "ioredis"
import { randomUUID } from "node:crypto"
import { performance } from "node:perf_hooks"
import { BatchArgs } from "../../src/internal/jobStoreScripts.js"
import * as Redis from "../../src/Redis.js"
import { findExecutable, startRedis } from "../../test/harness/redis.js"
import {
  calibrateClock,
  type ChildOutcome,
  envFilter,
  envNumber,
  envNumbers,
  fmt,
  fullGc,
  machine,
  median,
  now,
  percentile,
  ratio,
  report,
  runChild,
  selfCommand,
  sleep,
  table
} from "./common.js"
import { contender, contenders } from "./contenders.js"

/**
 * Time between setup and the window: JIT warm-up and the first fires stay out of the figures. 4 s: at 1,000 jobs/s
 * our run path had run only a few thousand times after 1.5 s, and the window's first second was then its slowest (its
 * latest start 77-97 ms after the fire time, later seconds 10-25 ms), which made one run's p99.
 */
const WARMUP_MS = envNumber("BENCH_WARMUP_MS", 4000)
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
  /**
   * Per fire second of the window: how late its first run started (the timer's wake, before any of the batch's
   * work), and the spread from its first to its last run start (the batch's own work); median and max over the
   * window's seconds, ms.
   */
  readonly wakeP50: number
  readonly wakeMax: number
  readonly spreadP50: number
  readonly spreadMax: number
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
  /** Process CPU (user + system) per bare fiber over the 10 measured rounds, us. */
  readonly cpuUsPerFiber: number
}

/**
 * @since 0.1.0
 */
export interface JsonFloorResult {
  readonly lines: number
  /** Process CPU per line built and serialised, us. */
  readonly cpuUsPerLine: number
  /** Characters per line (the sink's count). */
  readonly chars: number
}

/**
 * @since 0.1.0
 */
export interface RedisFloorResult {
  /** One pipeline of `calls` EVALSHA of a `return 1` script, one key and three arguments each. */
  readonly calls: number
  readonly cpuUsPerCall: number
  /** Median over the measured rounds, from `exec()` until every reply is in, ms. */
  readonly roundTripMs: number
  /**
   * One pipeline of `batchCalls` EVALSHA of a script that returns the length of its last argument, each with
   * `itemsPerCall` items of 4 fields packed into that argument as the Redis store packs its rows.
   */
  readonly batchCalls: number
  readonly itemsPerCall: number
  readonly cpuUsPerItem: number
  readonly batchRoundTripMs: number
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
  // Per fire second of the window: the lateness of its first and its last run start.
  const firstLate = new Float64Array(seconds).fill(Infinity)
  const lastLate = new Float64Array(seconds).fill(-Infinity)
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
    const second = Math.floor((fireTime - windowStart) / 1000)
    const slot = job * seconds + second
    if (counts[slot]! < 255) counts[slot]!++
    const late = at - fireTime
    if (late < firstLate[second]!) firstLate[second] = late
    if (late > lastLate[second]!) lastLate[second] = late
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
  const wakes: Array<number> = []
  const spreads: Array<number> = []
  for (let second = 0; second < seconds; second++) {
    if (firstLate[second] === Infinity) continue
    wakes.push(firstLate[second]!)
    spreads.push(lastLate[second]! - firstLate[second]!)
  }
  const largest = (xs: Array<number>) => xs.length === 0 ? NaN : Math.max(...xs)
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
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: kept === 0 ? NaN : sorted[kept - 1]!,
      cpuUsPerFire: windowFires === 0 ? NaN : (cpu.user + cpu.system) / windowFires,
      firesPerSecond: (windowFires * 1000) / wallMs,
      heapBeforeMB: heapBefore / MB,
      heapAfterMB: memory.heapUsed / MB,
      rssAfterMB: memory.rss / MB,
      maxGapMs: maxGap,
      outOfOrder,
      batches,
      wakeP50: median(wakes),
      wakeMax: largest(wakes),
      spreadP50: median(spreads),
      spreadMax: largest(spreads),
      stats: stats0 === undefined || stats1 === undefined
        ? undefined
        : Object.fromEntries(Object.keys(stats1).map((key) => [key, stats1[key]! - (stats0[key] ?? 0)]))
    } satisfies LatenessResult
  )
  process.exit(0)
}

/** Process CPU (user + system) since `since`, us. */
const cpuSince = (since: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since)
  return used.user + used.system
}

/**
 * The floor of a fiber per run, in its own process like the schedulers: N bare fibers forked in one synchronous loop
 * (`Runtime.runFork` of a one-line `Effect.sync`), time from the loop's start until the last one ran; median of 10
 * rounds after 2 of warm-up. CPU per fiber: process CPU from each measured round's start until its last fiber ran,
 * summed over the rounds, per fiber.
 */
const floorChild = async (n: number) => {
  const lastStarts: Array<number> = []
  let cpuUs = 0
  for (let round = 0; round < 12; round++) {
    let done = 0
    let last = 0
    let roundCpuUs = 0
    await new Promise<void>((resolve) => {
      const cpu0 = process.cpuUsage()
      const t0 = performance.now()
      for (let i = 0; i < n; i++) {
        Runtime.runFork(Runtime.defaultRuntime)(Effect.sync(() => {
          if (++done === n) {
            last = performance.now() - t0
            roundCpuUs = cpuSince(cpu0)
            resolve()
          }
        }))
      }
    })
    if (round >= 2) {
      lastStarts.push(last)
      cpuUs += roundCpuUs
    }
    await sleep(50)
  }
  lastStarts.sort((a, b) => a - b)
  report(
    {
      n,
      lastStartMs: lastStarts[Math.floor(lastStarts.length / 2)]!,
      maxMs: lastStarts[lastStarts.length - 1]!,
      cpuUsPerFiber: cpuUs / (n * lastStarts.length)
    } satisfies FloorResult
  )
  process.exit(0)
}

/** JSON lines built and serialised by the JSON line floor (after 50,000 of warm-up). */
const JSON_LINES = 200_000

/**
 * The floor of a JSON log line at info, in its own process: a plain object with the fields of our `job finished`
 * line (timestamp, level, message and its eleven fields: job, fire_time, run_id, node, fence, outcome, duration_ms,
 * lateness_ms, attempt, kind, begin_sent_at; times as ISO strings of fresh `Date`s), `JSON.stringify`, into a sink
 * that counts its length and discards it. CPU per line over 200,000 lines after 50,000 of warm-up.
 */
const jsonFloorChild = () => {
  const names = Array.from({ length: 10_000 }, (_, i) => `job-${i}`)
  const runIds = Array.from({ length: 1024 }, () => randomUUID())
  const fireBase = Math.floor(Date.now() / 1000) * 1000
  let chars = 0
  const sink = (line: string) => {
    chars += line.length
  }
  const lines = (count: number) => {
    for (let i = 0; i < count; i++) {
      const fireTime = fireBase + Math.floor(i / 10_000) * 1000
      const line: Record<string, unknown> = {
        timestamp: new Date().toISOString(),
        level: "INFO",
        message: "job finished"
      }
      line.job = names[i % names.length]
      line.fire_time = new Date(fireTime).toISOString()
      line.run_id = runIds[i % runIds.length]
      line.node = "bench"
      line.fence = i + 1
      line.outcome = "succeeded"
      line.duration_ms = (i % 7) * 0.013
      line.lateness_ms = (i % 11) * 0.117
      line.attempt = 1
      line.kind = "scheduled"
      line.begin_sent_at = new Date(fireTime + 1).toISOString()
      sink(JSON.stringify(line))
    }
  }
  lines(50_000)
  fullGc()
  chars = 0
  const cpu0 = process.cpuUsage()
  lines(JSON_LINES)
  const cpuUs = cpuSince(cpu0)
  report({ lines: JSON_LINES, cpuUsPerLine: cpuUs / JSON_LINES, chars: chars / JSON_LINES } satisfies JsonFloorResult)
  process.exit(0)
}

/** Calls in the Redis client floor's pipeline; batched variant: calls of items (4 fields an item, packed). */
const REDIS_CALLS = 10_000
const REDIS_BATCH_CALLS = 10
const REDIS_ITEMS_PER_CALL = 1_000
const REDIS_WARMUP_ROUNDS = 3
const REDIS_ROUNDS = 8

/**
 * The floor of a Redis script call from this client, in its own process against a `redis-server` of its own (started
 * as the Redis contender starts it), over the ioredis client our `Redis.make` builds (the Redis store's options: a
 * `commandTimeout` per command, no offline queue, no retries): one pipeline of 10,000 `EVALSHA` of a script
 * that does nothing (`return 1`), one key and three arguments each of the length of ours; and one of 10 `EVALSHA` of
 * a script that returns its last argument's length, each carrying 1,000 items of 4 fields packed into that argument
 * as the Redis store packs its rows (`BatchArgs`): the floor of a batched script call. Client process CPU
 * from building the pipeline until its last reply, per call or item, over the measured rounds (3 of warm-up first);
 * round trip = from `exec()` until every reply is in, median.
 */
const redisFloorChild = async () => {
  const runIds = Array.from({ length: 1024 }, () => randomUUID())
  const expectAll = (replies: Array<[Error | null, unknown]> | null, value: (i: number) => unknown, what: string) => {
    if (replies === null) throw new Error(`${what}: no replies`)
    replies.forEach(([error, reply], i) => {
      if (error !== null) throw new Error(`${what}: ${error.message}`)
      if (reply !== value(i)) throw new Error(`${what}: reply ${String(reply)}, expected ${String(value(i))}`)
    })
  }
  const measure = async (client: IORedis): Promise<RedisFloorResult> => {
    const sha = String(await client.script("LOAD", "return 1"))
    const batchSha = String(await client.script("LOAD", "return string.len(ARGV[#ARGV])"))
    const fence = String(Date.now())
    let cpuUs = 0
    const trips: Array<number> = []
    for (let round = 0; round < REDIS_WARMUP_ROUNDS + REDIS_ROUNDS; round++) {
      const cpu0 = process.cpuUsage()
      const pipeline = client.pipeline()
      for (let i = 0; i < REDIS_CALLS; i++) {
        pipeline.evalsha(sha, 1, `bench:job:lock:job-${i}`, runIds[i % runIds.length]!, "30000", fence)
      }
      const t0 = performance.now()
      const replies = await pipeline.exec()
      const trip = performance.now() - t0
      const used = cpuSince(cpu0)
      expectAll(replies, () => 1, "EVALSHA return 1")
      if (round >= REDIS_WARMUP_ROUNDS) {
        cpuUs += used
        trips.push(trip)
      }
      await sleep(20)
    }
    let batchCpuUs = 0
    const batchTrips: Array<number> = []
    for (let round = 0; round < REDIS_WARMUP_ROUNDS + REDIS_ROUNDS; round++) {
      const cpu0 = process.cpuUsage()
      const pipeline = client.pipeline()
      const sizes: Array<number> = []
      for (let call = 0; call < REDIS_BATCH_CALLS; call++) {
        // Packed as the Redis store packs its rows: every item in one argument.
        const batch = new BatchArgs("bench", 4, [])
        for (let item = 0; item < REDIS_ITEMS_PER_CALL; item++) {
          const i = call * REDIS_ITEMS_PER_CALL + item
          batch.push([`bench:job:lock:job-${i}`, runIds[i % runIds.length]!, "30000", fence])
        }
        const args = batch.args
        sizes.push(args[args.length - 1]!.length)
        pipeline.evalsha(batchSha, 0, ...args)
      }
      const t0 = performance.now()
      const replies = await pipeline.exec()
      const trip = performance.now() - t0
      const used = cpuSince(cpu0)
      expectAll(replies, (i) => sizes[i], "EVALSHA return the packed rows' length")
      if (round >= REDIS_WARMUP_ROUNDS) {
        batchCpuUs += used
        batchTrips.push(trip)
      }
      await sleep(20)
    }
    return {
      calls: REDIS_CALLS,
      cpuUsPerCall: cpuUs / (REDIS_CALLS * REDIS_ROUNDS),
      roundTripMs: median(trips),
      batchCalls: REDIS_BATCH_CALLS,
      itemsPerCall: REDIS_ITEMS_PER_CALL,
      cpuUsPerItem: batchCpuUs / (REDIS_BATCH_CALLS * REDIS_ITEMS_PER_CALL * REDIS_ROUNDS),
      batchRoundTripMs: median(batchTrips)
    }
  }
  const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const server = yield* startRedis()
    const redis = yield* Redis.make({ url: server.url, keyPrefix: "bench" })
    return yield* Effect.promise(() => measure(redis.client))
  })))
  report(result)
  process.exit(0)
}

/** One throughput goal, as the bench judges it: what, the figure, the verdict, and the limit measured beside it. */
interface Goal {
  readonly goal: string
  readonly figure: string
  readonly met: boolean | undefined
  /** What the figure is up against, measured by this run in children of their own; "-" for none. */
  readonly limit: string
}

/**
 * The limits measured in this run besides the fiber floors: `undefined` when not run (its contender was not run at
 * 10,000 jobs/s), else the child's outcome.
 */
interface Limits {
  readonly floors: ReadonlyMap<number, FloorResult>
  readonly json: ChildOutcome<JsonFloorResult> | undefined
  readonly redis: ChildOutcome<RedisFloorResult> | undefined
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
  limits: Limits
): Array<Goal> => {
  const floors = limits.floors
  // The fiber's CPU from the floor at 10,000 (the size of the CPU goals), else the largest floor measured.
  const fiberFloor = floors.get(10000) ??
    [...floors.values()].reduce<FloorResult | undefined>((a, b) => (a === undefined || b.n > a.n ? b : a), undefined)
  const fiberLimit = fiberFloor === undefined
    ? "a bare fiber: not measured"
    : `a bare fiber: ${fmt(fiberFloor.cpuUsPerFiber, 2)} us CPU` +
      (fiberFloor.n === 10000 ? "" : ` (floor at ${fiberFloor.n.toLocaleString("en-US")})`)
  const jsonLimit = limits.json === undefined
    ? "a JSON line: not run (ours-json not run at 10,000)"
    : limits.json._tag === "Failed"
    ? `a JSON line: not measured: ${limits.json.reason}`
    : `a JSON line (JSON.stringify, 14 fields): ${fmt(limits.json.value.cpuUsPerLine, 2)} us CPU`
  const fiberAndJson = `${fiberLimit}; ${jsonLimit}` +
    (fiberFloor !== undefined && limits.json?._tag === "Ok"
      ? `; together ${fmt(fiberFloor.cpuUsPerFiber + limits.json.value.cpuUsPerLine, 2)} us`
      : "")
  const redisFloor = limits.redis
  const redisCalls = redisFloor === undefined
    ? "Redis client floor: not run (ours-redis not run at 10,000)"
    : redisFloor._tag === "Failed"
    ? `Redis client floor: not measured: ${redisFloor.reason}`
    : `one EVALSHA of \`return 1\` in a pipeline of ${redisFloor.value.calls.toLocaleString("en-US")}: ${
      fmt(redisFloor.value.cpuUsPerCall, 2)
    } us client CPU per call, round trip ${
      fmt(redisFloor.value.roundTripMs, 1)
    } ms; batched, ${redisFloor.value.batchCalls} EVALSHA x ${
      redisFloor.value.itemsPerCall.toLocaleString("en-US")
    } packed items of 4 fields: ${fmt(redisFloor.value.cpuUsPerItem, 2)} us per item, round trip ${
      fmt(redisFloor.value.batchRoundTripMs, 1)
    } ms`
  const find = (n: number, id: string) => results.get(n)?.find((r) => r.id === id)
  const clean = (r: LatenessResult) => r.missed === 0 && r.double === 0 && r.early === 0
  const goals: Array<Goal> = []
  const json = find(10000, "ours-json")
  goals.push({
    goal: "CPU per fire at 10,000 jobs/s, memory lock, JSON logs at info discarded: <= 25 us",
    figure: json === undefined ? "-" : `${fmt(json.cpuUsPerFire, 1)} us`,
    met: json === undefined ? undefined : json.cpuUsPerFire <= 25 && clean(json),
    limit: fiberAndJson
  })
  const redis = find(10000, "ours-redis")
  const redisCounts = redis === undefined ? undefined : redisFigures(redis)
  // What a fire's Redis calls cost at the floor's prices (derived, not measured): its commands of their own at the
  // price of a call, and its two rows (one in a batched begin, one in a batched finish) at the price of an item.
  const redisPerFire = redisCounts === undefined || redisFloor?._tag !== "Ok"
    ? undefined
    : `at this run's ${fmt(redisCounts.commandsPerFire, 3)} commands per fire and 2 batched rows per fire: ${
      fmt(redisCounts.commandsPerFire * redisFloor.value.cpuUsPerCall + 2 * redisFloor.value.cpuUsPerItem, 1)
    } us per fire (derived)`
  goals.push({
    goal: "CPU per fire at 10,000 jobs/s, Redis store: <= 40 us",
    figure: redis === undefined ? "-" : `${fmt(redis.cpuUsPerFire, 1)} us`,
    met: redis === undefined ? undefined : redis.cpuUsPerFire <= 40 && clean(redis),
    limit: `${fiberAndJson}; ${redisCalls}` + (redisPerFire === undefined ? "" : `; ${redisPerFire}`)
  })
  const oursAt1k = find(1000, "ours-lock")
  const peers1k = (results.get(1000) ?? []).filter((r) => contender(r.id).peer && r.missed === 0 && r.double === 0)
  const best1k = peers1k.length === 0 ? undefined : peers1k.reduce((a, b) => (b.p99 < a.p99 ? b : a))
  const floor1k = floors.get(1000)
  goals.push({
    goal: "p99 lateness at 1,000 jobs/s (memory lock) <= the best peer's p99 in the same run",
    figure: oursAt1k === undefined || best1k === undefined
      ? "-"
      : `${fmt(oursAt1k.p99, 2)} ms vs ${contender(best1k.id).name} ${fmt(best1k.p99, 2)} ms`,
    met: oursAt1k === undefined || best1k === undefined ? undefined : oursAt1k.p99 <= best1k.p99 && clean(oursAt1k),
    limit: [
      floor1k === undefined ?
        "bare-fiber floor at 1,000: not measured" :
        `bare-fiber floor at 1,000: ${fmt(floor1k.lastStartMs, 2)} ms`,
      best1k === undefined
        ? "best peer: none clean"
        : `best peer ${contender(best1k.id).name}: p99 ${fmt(best1k.p99, 2)} ms`,
      ...[oursAt1k, best1k].filter((r) => r !== undefined).map((r) =>
        `${contender(r.id).name}: first start of each second late ${fmt(r.wakeP50, 2)} ms median, ${
          fmt(r.wakeMax, 2)
        } max; first to last start ${fmt(r.spreadP50, 2)} ms median, ${fmt(r.spreadMax, 2)} max`
      )
    ].join("; ")
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
      : oursAt10k.p99 <= 2 * floor10k.lastStartMs && clean(oursAt10k),
    limit: floor10k === undefined
      ? "bare-fiber floor at 10,000: not measured"
      : `bare-fiber floor at 10,000: ${fmt(floor10k.lastStartMs, 2)} ms (2x = ${fmt(2 * floor10k.lastStartMs, 2)} ms)`
  })
  const ours = [...results.values()].flat().filter((r) => !contender(r.id).peer)
  goals.push({
    goal: "never an early or double fire (every run of ours)",
    figure: `${ours.reduce((a, r) => a + r.early, 0)} early, ${ours.reduce((a, r) => a + r.double, 0)} double`,
    met: ours.length === 0 ? undefined : ours.every((r) => r.early === 0 && r.double === 0),
    limit: "- (correctness)"
  })
  const overload = find(100000, "ours-lock") ?? find(100000, "ours")
  goals.push({
    goal: "overload, 100,000 jobs/s, memory store: >= 40,000 runs start per second",
    figure: overload === undefined ? "-" : `${fmt(overload.firesPerSecond, 0)} runs/s (${overload.id})`,
    met: overload === undefined ? undefined : overload.firesPerSecond >= 40000,
    limit: fiberFloor === undefined
      ? "fiber floor CPU: not measured"
      : `${fiberLimit} -> at most ${fmt(1e6 / fiberFloor.cpuUsPerFiber, 0)} runs/s per core (derived: 1e6 / ${
        fmt(fiberFloor.cpuUsPerFiber, 2)
      })`
  })
  goals.push({
    goal: "overload: every job runs at least once every 5 s (longest gap of any job in the window)",
    figure: overload === undefined
      ? "-"
      : `${fmt(overload.maxGapMs / 1000, 2)} s, ${overload.outOfOrder} runs out of fire-time order`,
    met: overload === undefined ? undefined : overload.maxGapMs <= 5000,
    limit: "-"
  })
  goals.push({
    goal: "overload: heap growth <= 300 MB over the window",
    figure: overload === undefined ? "-" : `${fmt(overload.heapAfterMB - overload.heapBeforeMB, 1)} MB`,
    met: overload === undefined ? undefined : overload.heapAfterMB - overload.heapBeforeMB <= 300,
    limit: "-"
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
    met: redis === undefined ? undefined : redis.missed === 0 && redis.double === 0 && redis.early === 0,
    limit: redisCalls
  })
  return goals
}

/** Prints the goals table. */
const printGoals = (goals: ReadonlyArray<Goal>): void => {
  console.log(table(
    ["throughput goal", "figure", "verdict", "limit measured in this run"],
    goals.map((g) => [g.goal, g.figure, verdict(g.met), g.limit])
  ))
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
  let jsonFloor: ChildOutcome<JsonFloorResult> | undefined
  let redisFloor: ChildOutcome<RedisFloorResult> | undefined
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
    // The limits of the CPU goals at 10,000 jobs/s, each in a child of its own, when their contender runs there.
    const limitLines: Array<string> = []
    if (n === 10000 && jsonFloor === undefined && ids.includes("ours-json")) {
      process.stderr.write(`lateness: JSON line floor ...\n`)
      jsonFloor = await runChild<JsonFloorResult>(
        [...selfCommand(import.meta.url, ["--expose-gc"]), "json-floor"],
        {},
        120_000
      )
      limitLines.push(
        jsonFloor._tag === "Ok"
          ? `JSON line floor: ${jsonFloor.value.lines.toLocaleString("en-US")} lines of our \`job finished\` fields (${
            fmt(jsonFloor.value.chars, 0)
          } chars) built and serialised cost ${fmt(jsonFloor.value.cpuUsPerLine, 2)} us CPU each`
          : `JSON line floor: not measured: ${jsonFloor.reason}`
      )
    }
    if (n === 10000 && redisFloor === undefined && ids.includes("ours-redis")) {
      process.stderr.write(`lateness: Redis client floor ...\n`)
      redisFloor = Exit.isFailure(Effect.runSyncExit(findExecutable("redis-server", "")))
        ? { _tag: "Failed", reason: "redis-server not found" }
        : await runChild<RedisFloorResult>([...selfCommand(import.meta.url, []), "redis-floor"], {}, 120_000)
      limitLines.push(
        redisFloor._tag === "Ok"
          ? `Redis client floor: a pipeline of ${
            redisFloor.value.calls.toLocaleString("en-US")
          } EVALSHA (\`return 1\`)` +
            ` costs ${fmt(redisFloor.value.cpuUsPerCall, 2)} us client CPU per call, round trip ${
              fmt(redisFloor.value.roundTripMs, 1)
            } ms; ${redisFloor.value.batchCalls} EVALSHA of ${
              redisFloor.value.itemsPerCall.toLocaleString("en-US")
            } items (4 fields each, packed as the store packs rows): ${
              fmt(redisFloor.value.cpuUsPerItem, 2)
            } us per item, round trip ${fmt(redisFloor.value.batchRoundTripMs, 1)} ms (medians of ${REDIS_ROUNDS})`
          : `Redis client floor: not measured: ${redisFloor.reason}`
      )
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
          } ms (median of 10, max ${fmt(floor.maxMs, 2)}), ${fmt(floor.cpuUsPerFiber, 2)} us CPU per fiber`)
    )
    for (const line of limitLines) console.log(line)
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
  printGoals(goalsOf(all, { floors, json: jsonFloor, redis: redisFloor }))
  console.log("")
  console.log(
    "limit measured in this run: what the figure is up against, each measured by this run in a child of its own." +
      " a bare fiber = process CPU per fiber of the bare-fiber floor. a JSON line = a plain object with the fields of" +
      " our `job finished` line, JSON.stringify, discarded: the least a JSON line at info costs in JS. Redis client" +
      " floor = ioredis with our client's options against a redis-server of its own: client CPU per EVALSHA of a script that does" +
      " nothing in one pipeline of 10,000, and per item of 10 EVALSHA carrying 1,000 items each packed into one argument as the store packs its rows (a batched script" +
      " call); round trip = exec() until every reply. runs/s per core is derived from the fiber's CPU (1e6 / us)." +
      " first start of each second = how late the first run of each fire second started (the timer's wake and" +
      " anything before the batch's first run); first to last start = that second's spread (the batch's own work and" +
      " any GC pause inside it); median and max over the window's seconds."
  )
}

if (process.argv[2] === "floor") {
  await floorChild(Number(process.argv[3]))
} else if (process.argv[2] === "json-floor") {
  jsonFloorChild()
} else if (process.argv[2] === "redis-floor") {
  await redisFloorChild()
} else if (process.argv[2] === "child") {
  await child(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]))
} else {
  await parent()
}
