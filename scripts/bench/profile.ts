/**
 * Where our scheduler's time and memory go, for the performance notes (not part of `bench`: it explains figures).
 *
 *   node --expose-gc scripts/run.mjs scripts/bench/profile.ts run [N=1000] [seconds=5] [no|lock|ours-json|ours-redis]
 *     N jobs every second in this process; after a 2 s warm-up, a CPU profile and an allocation sample (objects
 *     collected since included) over the window. Prints self time and allocated bytes by function (mapped to the
 *     TypeScript sources through the bundle's source map) and by file, and writes the .cpuprofile to .tmp/bench/.
 *     With PROFILE_SURVIVORS=1 the allocation tables count only objects that outlived a scavenge.
 *   node --expose-gc scripts/run.mjs scripts/bench/profile.ts breakdown [iterations=20000]
 *     The run path piece by piece: each step our scheduler takes per run, timed alone (us and bytes per op).
 *   node --expose-gc scripts/run.mjs scripts/bench/profile.ts heap [N=100000]
 *     Retained heap per idle job by constructor, from a heap snapshot diff (hourly jobs, no fires).
 *   node --expose-gc scripts/run.mjs scripts/bench/profile.ts growth [N=1000] [seconds=20]
 *     Heap kept per fire while N jobs fire every second (what grows with the run rate), by constructor.
 *   node --expose-gc scripts/run.mjs scripts/bench/profile.ts floor [N=1000,10000]
 *     The floor of a fiber per run: N fibers forked in one synchronous loop (`Runtime.runFork`, each running a
 *     one-line `Effect.sync`), time from the loop's start until each fiber ran; p50/p99/max over 10 rounds.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberSet from "effect/FiberSet"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as fs from "node:fs"
import * as inspector from "node:inspector"
import { SourceMap } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as v8 from "node:v8"
import * as Cron from "../../src/Cron.js"
import { JobMetrics } from "../../src/internal/jobMetrics.js"
import * as Job from "../../src/Job.js"
import { JobStore } from "../../src/JobStore.js"
import * as JobStoreM from "../../src/JobStore.js"
import * as LeaderElection from "../../src/LeaderElection.js"
import * as Metrics from "../../src/Metrics.js"
import { RunContext, RunRecord } from "../../src/Run.js"
import * as Scheduler from "../../src/Scheduler.js"
import { calibrateClock, fmt, fullGc, now, root, sleep, table } from "./common.js"
import { contender } from "./contenders.js"

const session = new inspector.Session()
session.connect()
const post = <A>(method: string, params: object = {}): Promise<A> =>
  new Promise((resolve, reject) =>
    session.post(method, params, (error, result) => (error === null ? resolve(result as A) : reject(error)))
  )

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}

// ---------------------------------------------------------------------------------------------------------------
// Naming profile frames: bundle positions back to TypeScript through the inline source map
// ---------------------------------------------------------------------------------------------------------------

const bundleFile = fileURLToPath(import.meta.url)
const sourceMap = (() => {
  const text = fs.readFileSync(bundleFile, "utf8")
  const match = /\/\/# sourceMappingURL=data:application\/json;base64,(\S+)\s*$/.exec(text)
  return match === null ? undefined : new SourceMap(JSON.parse(Buffer.from(match[1]!, "base64").toString("utf8")))
})()

const frameName = (frame: CallFrame): string => {
  const fn = frame.functionName === "" ? "(anonymous)" : frame.functionName
  // Native frames (GC, idle, builtins such as Map.prototype.set) have no file: label them so.
  if (frame.url === "") return fn.startsWith("(") ? fn : `${fn} (native)`
  if (frame.url.includes(path.basename(bundleFile)) && sourceMap !== undefined) {
    const entry = sourceMap.findEntry(frame.lineNumber, frame.columnNumber) as {
      originalSource?: string
      originalLine?: number
    }
    if (entry.originalSource !== undefined) {
      return `${fn} ${path.relative(root, fileURLToPath(new URL(entry.originalSource, `file://${bundleFile}`)))}:${
        (entry.originalLine ?? 0) + 1
      }`
    }
  }
  const file = frame.url.includes("node_modules/") ? frame.url.split("node_modules/")[1]! : frame.url
  return `${fn} ${file}:${frame.lineNumber + 1}`
}

/** Frames the profiler names itself (no file): kept as they are. */
const PSEUDO_FRAMES = new Set(["(idle)", "(garbage collector)", "(program)", "(root)"])

const fileOf = (name: string): string => {
  if (PSEUDO_FRAMES.has(name)) return name
  if (name.endsWith("(native)")) return "(native builtins)"
  const at = name.lastIndexOf(" ")
  if (at < 0) return name
  return name.slice(at + 1).replace(/:\d+$/, "").replace(/^effect\/dist\/esm\//, "effect/")
}

const top = (totals: Map<string, number>, count: number, unit: (x: number) => string, total: number) =>
  [...totals].sort((a, b) => b[1] - a[1]).slice(0, count).map(([name, value]) => [
    name,
    unit(value),
    `${fmt((100 * value) / total, 1)}%`
  ])

// ---------------------------------------------------------------------------------------------------------------
// run: profile N jobs every second
// ---------------------------------------------------------------------------------------------------------------

interface CpuProfile {
  readonly nodes: ReadonlyArray<{ readonly id: number; readonly callFrame: CallFrame }>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

interface SamplingNode {
  readonly callFrame: CallFrame
  readonly selfSize: number
  readonly children: ReadonlyArray<SamplingNode>
}

const run = async (n: number, seconds: number, id: string) => {
  calibrateClock()
  let fires = 0
  const lateness: Array<number> = []
  await contender(id).start({
    n,
    expr: "* * * * * *",
    timezone: undefined,
    intervalMs: 1000,
    fired: (_job, fireTime) => {
      fires++
      lateness.push(now() - fireTime)
    }
  })
  await sleep(Math.ceil((Date.now() + 2000) / 1000) * 1000 - Date.now())
  await post("Profiler.enable")
  await post("Profiler.setSamplingInterval", { interval: 100 })
  await post("Profiler.start")
  // PROFILE_SURVIVORS=1: only what outlived a scavenge (what each scavenge copies, and promotes to the old space).
  const survivorsOnly = process.env.PROFILE_SURVIVORS === "1"
  await post("HeapProfiler.startSampling", {
    samplingInterval: 8192,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: !survivorsOnly
  })
  const fires0 = fires
  lateness.length = 0
  const cpu0 = process.cpuUsage()
  await sleep(seconds * 1000)
  const cpu = process.cpuUsage(cpu0)
  const windowFires = fires - fires0
  const { profile } = await post<{ profile: CpuProfile }>("Profiler.stop")
  const { profile: heap } = await post<{ profile: { head: SamplingNode } }>("HeapProfiler.stopSampling")
  const outDir = path.join(root, ".tmp", "bench")
  fs.mkdirSync(outDir, { recursive: true })
  const out = path.join(outDir, `${id}-${n}-${process.pid}.cpuprofile`)
  fs.writeFileSync(out, JSON.stringify(profile))

  // CPU: self time by function and by file.
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const selfByFn = new Map<string, number>()
  const selfByFile = new Map<string, number>()
  let totalUs = 0
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0
    const name = frameName(byId.get(id)!.callFrame)
    totalUs += dt
    selfByFn.set(name, (selfByFn.get(name) ?? 0) + dt)
    selfByFile.set(fileOf(name), (selfByFile.get(fileOf(name)) ?? 0) + dt)
  })
  // Allocation: bytes allocated (collected or not) by function and by file.
  const allocByFn = new Map<string, number>()
  const allocByFile = new Map<string, number>()
  // ... and by the innermost function of ours (src/) on the allocating stack: which of our steps the bytes are for.
  const allocByOurs = new Map<string, number>()
  let totalBytes = 0
  const walk = (node: SamplingNode, ours: string) => {
    const name = frameName(node.callFrame)
    const inner = name.includes("src/") ? name : ours
    if (node.selfSize > 0) {
      totalBytes += node.selfSize
      allocByFn.set(name, (allocByFn.get(name) ?? 0) + node.selfSize)
      allocByFile.set(fileOf(name), (allocByFile.get(fileOf(name)) ?? 0) + node.selfSize)
      allocByOurs.set(inner, (allocByOurs.get(inner) ?? 0) + node.selfSize)
    }
    node.children.forEach((child) => walk(child, inner))
  }
  walk(heap.head, "(outside src/)")

  const sorted = [...lateness].sort((a, b) => a - b)
  const idle = selfByFn.get("(idle)") ?? 0
  console.log(`${contender(id).name}, ${n} jobs every second, ${seconds} s profiled`)
  console.log(
    `fires ${windowFires}, CPU ${fmt((cpu.user + cpu.system) / windowFires, 1)} us/fire (process), busy ` +
      `${fmt((totalUs - idle) / windowFires, 1)} us/fire (profile), allocated ~${
        fmt(totalBytes / windowFires / 1024, 1)
      } KB/fire, p50 lateness ${fmt(sorted[Math.floor(sorted.length / 2)], 1)} ms, p99 ${
        fmt(sorted[Math.floor(sorted.length * 0.99)], 1)
      } ms`
  )
  console.log(`profile: ${path.relative(root, out)}`)
  console.log("")
  const us = (x: number) => fmt(x / windowFires, 2)
  console.log(table(["self time by file", "us/fire", "share"], top(selfByFile, 15, us, totalUs)))
  console.log("")
  console.log(table(["self time by function", "us/fire", "share"], top(selfByFn, 30, us, totalUs)))
  console.log("")
  const kb = (x: number) => fmt(x / windowFires, 0)
  console.log(table(["allocated by file", "bytes/fire", "share"], top(allocByFile, 12, kb, totalBytes)))
  console.log("")
  console.log(table(["allocated by function", "bytes/fire", "share"], top(allocByFn, 25, kb, totalBytes)))
  console.log("")
  console.log(table(["allocated under our function", "bytes/fire", "share"], top(allocByOurs, 20, kb, totalBytes)))
  process.exit(0)
}

// ---------------------------------------------------------------------------------------------------------------
// breakdown: the run path piece by piece
// ---------------------------------------------------------------------------------------------------------------

/**
 * Time `iterations` runs of `op` (an effect run to completion each time in one fiber, as the scheduler's run fiber
 * does) after a warm-up; bytes from an allocation sample over the timed part.
 */
const measure = async (
  name: string,
  iterations: number,
  op: (i: number) => Effect.Effect<unknown, unknown>
): Promise<ReadonlyArray<string>> => {
  // Logs are dropped as in the lateness benchmark; the logger is provided once around the loop.
  const loop = (count: number) =>
    Effect.gen(function*() {
      for (let i = 0; i < count; i++) yield* op(i)
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, Logger.none)))
  await Effect.runPromise(loop(Math.min(2000, iterations)))
  fullGc()
  const start = now()
  await Effect.runPromise(loop(iterations))
  const elapsed = now() - start
  // Allocation in a second pass: the sampler's stack walks would slow the timed one.
  const sampled = Math.min(iterations, 5000)
  fullGc()
  await post("HeapProfiler.startSampling", {
    samplingInterval: 512,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true
  })
  await Effect.runPromise(loop(sampled))
  const { profile } = await post<{ profile: { head: SamplingNode } }>("HeapProfiler.stopSampling")
  let bytes = 0
  const walk = (node: SamplingNode) => {
    bytes += node.selfSize
    node.children.forEach(walk)
  }
  walk(profile.head)
  return [name, fmt((elapsed * 1000) / iterations, 2), fmt(bytes / sampled, 0)]
}

/** Until the scheduler has no run of `job-1` in progress. */
const waitIdle = async (scheduler: Scheduler.Scheduler["Type"]) => {
  // setImmediate, not a timer: a 1 ms timer tick would dominate a run of a few microseconds.
  while ((await Effect.runPromise(Effect.orDie(scheduler.jobStatus("job-1")))).running > 0) {
    await new Promise((resolve) => setImmediate(resolve))
  }
}

const breakdown = async (iterations: number) => {
  calibrateClock()
  const context = await Effect.runPromise(Layer.build(JobStoreM.layerMemory).pipe(Effect.scoped))
  const storeT = Context.get(context, JobStore)
  const fiberSet = await Effect.runPromise(FiberSet.make<void, never>().pipe(Effect.scoped))
  const lateness = Metric.tagged(Metrics.lateness, "job", "job-1")
  const runs = Metrics.runs.pipe(Metric.tagged("job", "job-1"), Metric.tagged("outcome", "success"))
  const ttl = Duration.minutes(5)
  let fire = Date.UTC(2026, 0, 1)
  const request = (lock: boolean) => ({
    job: "job-1",
    fireTime: ++fire,
    runId: "run",
    nodeId: "bench",
    slot: Option.some({ ttl: Duration.minutes(11) }),
    lock: lock ? Option.some({ key: "job-1", ttl }) : Option.none(),
    statusTtl: ttl
  })
  /** A run record as the scheduler makes one; `unchecked` skips the Schema validation, as the scheduler does. */
  const record = (unchecked = false) =>
    new RunRecord({
      runId: crypto.randomUUID(),
      job: "job-1",
      kind: "scheduled",
      fireTime: new Date(fire),
      startedAt: new Date(fire),
      finishedAt: new Date(fire),
      durationMs: 0,
      node: "bench",
      attempt: 1,
      fence: 1,
      outcome: "success"
    }, unchecked)
  const handler = Effect.flatMap(RunContext, () => Effect.void)
  const provideCtx = (effect: Effect.Effect<void, never, RunContext>) =>
    Effect.provideService(effect, RunContext, {
      job: "job-1",
      fireTime: new Date(fire),
      runId: "run",
      attempt: 1,
      nodeId: "bench",
      fence: 1,
      kind: "scheduled"
    })
  const rows: Array<ReadonlyArray<string>> = []
  const m = (name: string, op: (i: number) => Effect.Effect<unknown, unknown>) =>
    measure(name, iterations, op).then((row) => rows.push(row))
  await m("baseline: Effect.void", () => Effect.void)
  await m("crypto.randomUUID()", () => Effect.sync(() => crypto.randomUUID()))
  await m("Deferred.make + Deferred.done", () => Effect.flatMap(Deferred.make<number>(), (d) => Deferred.succeed(d, 1)))
  await m(
    "FiberSet.run + Fiber.await (fork a run fiber)",
    () => Effect.flatMap(FiberSet.run(fiberSet, Effect.void), (fiber) => fiber.await)
  )
  await m(
    "uninterruptibleMask + ensuring",
    () => Effect.uninterruptibleMask((restore) => restore(Effect.void)).pipe(Effect.ensuring(Effect.void))
  )
  await m("store.begin (memory, no lock)", () => storeT.begin(request(false)))
  await m(
    "store.begin + finish (memory, lock)",
    () =>
      Effect.flatMap(storeT.begin(request(true)), (started) =>
        storeT.finish({
          record: record(),
          lock: started._tag === "Started" ? started.lock : Option.none(),
          statusTtl: ttl,
          maxRecords: 100
        }))
  )
  await m("new RunRecord (Schema.Class, validated)", () => Effect.sync(() => record()))
  await m("  proposal: new RunRecord(fields, true) (validation off)", () => Effect.sync(() => record(true)))
  await m("handler with RunContext provided", () => provideCtx(handler))
  await m(
    "Effect.timeoutFail (5 minutes) around the handler",
    () => Effect.timeoutFail(provideCtx(handler), { duration: ttl, onTimeout: () => new Error("timeout") })
  )
  await m("  proposal: plain timer interrupts the run fiber", () =>
    Effect.withFiberRuntime<void>((fiber) => {
      const timer = setTimeout(() => fiber.unsafeInterruptAsFork(FiberId.none), Duration.toMillis(ttl))
      return Effect.ensuring(provideCtx(handler), Effect.sync(() => clearTimeout(timer)))
    }))
  await m(
    "raceFirst(handler, renew loop sleeping 100 s) (lock)",
    () => Effect.raceFirst(provideCtx(handler), Effect.zipRight(Effect.sleep("100 seconds"), Effect.never))
  )
  await m("Metric.update lateness histogram (tagged)", () => Metric.update(lateness, 0.001))
  await m("Metric.increment runs counter (tagged twice)", () => Metric.increment(runs))
  await m(
    "Effect.logInfo + 10 annotations (Logger.none)",
    () =>
      Effect.logInfo("job finished").pipe(Effect.annotateLogs({
        job: "job-1",
        fire_time: new Date(fire).toISOString(),
        run_id: "run",
        node: "bench",
        fence: 1,
        outcome: "success",
        duration_ms: 0,
        lateness_ms: 0,
        attempt: 1,
        kind: "scheduled"
      }))
  )
  await m(
    "  proposal: the same annotations as one prebuilt HashMap (Effect.locally)",
    () =>
      Effect.logInfo("job finished").pipe(Effect.locally(
        FiberRef.currentLogAnnotations,
        HashMap.make(
          ["job", "job-1"],
          ["fire_time", new Date(fire).toISOString()],
          ["run_id", "run"],
          ["node", "bench"],
          ["fence", 1],
          ["outcome", "success"],
          ["duration_ms", 0],
          ["lateness_ms", 0],
          ["attempt", 1],
          ["kind", "scheduled"]
        )
      ))
  )
  await m("Effect.withSpan (5 attributes)", () =>
    Effect.void.pipe(Effect.withSpan("job.run", {
      attributes: { job: "job-1", fire_time: fire, run_id: "run", node: "bench", fence: 1 }
    })))
  await m("Effect.withSpan, captureStackTrace: false", () =>
    Effect.void.pipe(Effect.withSpan("job.run", {
      captureStackTrace: false,
      attributes: { job: "job-1", fire_time: fire, run_id: "run", node: "bench", fence: 1 }
    })))
  await m("new Date(fire).toISOString()", () => Effect.sync(() => new Date(fire).toISOString()))
  // The whole run path, through the scheduler's manual trigger (begin, handler, finish, record, log, span): one run
  // at a time, then 1,000 started together as at a shared fire time.
  const scheduler = await new Promise<Scheduler.Scheduler["Type"]>((resolve) => {
    Effect.runFork(
      Effect.scoped(Effect.flatMap(
        Scheduler.make([Job.unsafeMake({ name: "job-1", every: "1 hour", lock: { enabled: false }, handler })]),
        (s) => Effect.zipRight(Effect.sync(() => resolve(s)), Effect.never)
      )).pipe(Effect.provide(Layer.mergeAll(
        JobStoreM.layerMemory,
        LeaderElection.layerSingleNode("bench"),
        Logger.replace(Logger.defaultLogger, Logger.none)
      )))
    )
  })
  await m(
    "whole run via Scheduler.trigger, one at a time (waits for the end)",
    () => Effect.zipRight(scheduler.trigger("job-1"), Effect.promise(() => waitIdle(scheduler)))
  )
  const batch = 1000
  const rounds = Math.max(1, Math.floor(iterations / batch))
  const triggerBatch = () =>
    Effect.runPromise(
      Effect.forEach(Array.from({ length: batch }), () => scheduler.trigger("job-1"), { discard: true }).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, Logger.none))
      )
    )
  await triggerBatch()
  await waitIdle(scheduler)
  fullGc()
  const batchStart = now()
  for (let r = 0; r < rounds; r++) {
    await triggerBatch()
    await waitIdle(scheduler)
  }
  rows.push([
    `whole run via Scheduler.trigger, ${batch} at once (per run)`,
    fmt(((now() - batchStart) * 1000) / (rounds * batch), 2),
    "-"
  ])
  console.log(`run path pieces, ${iterations} iterations each after a warm-up, one fiber; bytes = allocated (sampled)`)
  console.log(table(["step", "us/op", "bytes/op"], rows))
  process.exit(0)
}

// ---------------------------------------------------------------------------------------------------------------
// heap: retained memory per idle job by constructor
// ---------------------------------------------------------------------------------------------------------------

interface Snapshot {
  readonly snapshot: {
    readonly meta: { readonly node_fields: ReadonlyArray<string>; readonly node_types: [ReadonlyArray<string>] }
  }
  readonly nodes: ReadonlyArray<number>
  readonly strings: ReadonlyArray<string>
}

/** Shallow size by (type, name) over the whole heap, from a snapshot written to `file`. */
const shallowByConstructor = (file: string): Map<string, { count: number; bytes: number }> => {
  const snap = JSON.parse(fs.readFileSync(file, "utf8")) as Snapshot
  const fields = snap.snapshot.meta.node_fields
  const width = fields.length
  const typeAt = fields.indexOf("type")
  const nameAt = fields.indexOf("name")
  const sizeAt = fields.indexOf("self_size")
  const types = snap.snapshot.meta.node_types[0]
  const totals = new Map<string, { count: number; bytes: number }>()
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!]!
    const raw = type === "object" || type === "closure" ? snap.strings[snap.nodes[i + nameAt]!]! : `(${type})`
    const key = type === "closure" ? `closure ${raw}` : raw
    const entry = totals.get(key) ?? { count: 0, bytes: 0 }
    entry.count++
    entry.bytes += snap.nodes[i + sizeAt]!
    totals.set(key, entry)
  }
  return totals
}

/** Heap growth per item of keeping `n` results of `make` (after a full GC before and after). */
const retained = (n: number, make: (i: number) => unknown): number => {
  fullGc()
  const before = process.memoryUsage().heapUsed
  const kept = Array.from({ length: n }, (_, i) => make(i))
  fullGc()
  const bytes = (process.memoryUsage().heapUsed - before) / n
  // Keep `kept` alive until after the measurement.
  return kept.length === n ? bytes : NaN
}

const heap = async (n: number) => {
  const outDir = path.join(root, ".tmp", "bench")
  fs.mkdirSync(outDir, { recursive: true })
  // What one idle job keeps, piece by piece (each measured alone; the array slot itself is 8 bytes/item).
  const handler = Effect.void
  const parts: Array<ReadonlyArray<string>> = [
    ["Cron.parse result (compiled tables)", fmt(retained(n, (i) => Cron.parse(`${i % 60} 0 * * * *`)), 0)],
    [
      "Job.unsafeMake result (includes its Cron)",
      fmt(retained(n, (i) => Job.unsafeMake({ name: `job-${i}`, cron: `${i % 60} 0 * * * *`, handler })), 0)
    ],
    [
      "JobMetrics (the scheduler's per-job metric series, made at its first run)",
      fmt(retained(n, (i) => JobMetrics.forJob(`job-${i}`)), 0)
    ],
    ["a Duration made per job (e.g. Duration.sum(timeout, margin))", fmt(retained(n, (i) => Duration.millis(i)), 0)],
    [
      "Effect.provide(handler, context) (done per job by make)",
      fmt(retained(n, () => Effect.provide(handler, Context.empty())), 0)
    ],
    ["job name string `job-<i>`", fmt(retained(n, (i) => `job-${i}`), 0)]
  ]
  console.log(`heap kept per job by each piece alone, ${n} items`)
  console.log(table(["piece", "bytes/job"], parts))
  console.log("")
  fullGc()
  const before = v8.writeHeapSnapshot(path.join(outDir, `idle-before-${process.pid}.heapsnapshot`))
  const heap0 = process.memoryUsage().heapUsed
  await contender("ours").start({ n, expr: "0 0 * * * *", timezone: undefined, intervalMs: 3_600_000, fired: () => {} })
  await sleep(500)
  fullGc()
  const heap1 = process.memoryUsage().heapUsed
  const after = v8.writeHeapSnapshot(path.join(outDir, `idle-after-${process.pid}.heapsnapshot`))
  const a = shallowByConstructor(before)
  const b = shallowByConstructor(after)
  fs.rmSync(before)
  fs.rmSync(after)
  const diff = [...b].map(([key, v]) => {
    const old = a.get(key) ?? { count: 0, bytes: 0 }
    return { key, count: v.count - old.count, bytes: v.bytes - old.bytes }
  }).filter((d) => d.bytes > 0).sort((x, y) => y.bytes - x.bytes)
  const total = diff.reduce((s, d) => s + d.bytes, 0)
  console.log(
    `ours, ${n} idle hourly jobs: heap used +${fmt((heap1 - heap0) / n, 0)} bytes/job; snapshot diff ` +
      `+${fmt(total / n, 0)} bytes/job (shallow sizes by constructor)`
  )
  console.log(table(
    ["constructor", "objects/job", "bytes/job", "share"],
    diff.slice(0, 30).map((
      d
    ) => [d.key, fmt(d.count / n, 2), fmt(d.bytes / n, 0), `${fmt((100 * d.bytes) / total, 1)}%`])
  ))
  process.exit(0)
}

/** Print the snapshot diff `after - before` per `unit` (an item count), largest first. */
const printDiff = (before: string, after: string, unit: number, unitName: string) => {
  const a = shallowByConstructor(before)
  const b = shallowByConstructor(after)
  fs.rmSync(before)
  fs.rmSync(after)
  const diff = [...b].map(([key, v]) => {
    const old = a.get(key) ?? { count: 0, bytes: 0 }
    return { key, count: v.count - old.count, bytes: v.bytes - old.bytes }
  }).filter((d) => d.bytes > 0).sort((x, y) => y.bytes - x.bytes)
  const total = diff.reduce((sum, d) => sum + d.bytes, 0)
  console.log(table(
    ["constructor", `objects/${unitName}`, `bytes/${unitName}`, "share"],
    diff.slice(0, 30).map((d) => [
      d.key,
      fmt(d.count / unit, 2),
      fmt(d.bytes / unit, 0),
      `${fmt((100 * d.bytes) / total, 1)}%`
    ])
  ))
  return total
}

/** Heap kept per fire while N jobs fire every second: snapshot diff over `seconds` of steady firing. */
const growth = async (n: number, seconds: number) => {
  const outDir = path.join(root, ".tmp", "bench")
  fs.mkdirSync(outDir, { recursive: true })
  let fires = 0
  await contender("ours").start({ n, expr: "* * * * * *", timezone: undefined, intervalMs: 1000, fired: () => fires++ })
  await sleep(3000)
  fullGc()
  const fires0 = fires
  const heap0 = process.memoryUsage().heapUsed
  const before = v8.writeHeapSnapshot(path.join(outDir, `growth-before-${process.pid}.heapsnapshot`))
  await sleep(seconds * 1000)
  fullGc()
  const count = fires - fires0
  const heap1 = process.memoryUsage().heapUsed
  const after = v8.writeHeapSnapshot(path.join(outDir, `growth-after-${process.pid}.heapsnapshot`))
  console.log(
    `ours (no lock), ${n} jobs every second: ${count} fires in ${seconds} s; heap used +${
      fmt((heap1 - heap0) / count, 0)
    } bytes/fire kept (shallow sizes by constructor below)`
  )
  printDiff(before, after, count, "fire")
  process.exit(0)
}

const [mode, ...args] = process.argv.slice(2)
/** N trivial fibers forked in one loop: how long until the last of them has run (the cost of a fiber per run). */
const floor = async (sizes: ReadonlyArray<number>) => {
  const rows: Array<ReadonlyArray<string>> = []
  for (const n of sizes) {
    const lastStarts: Array<number> = []
    for (let round = 0; round < 12; round++) {
      const starts = new Float64Array(n)
      let done = 0
      const all = new Promise<void>((resolve) => {
        const t0 = performance.now()
        for (let i = 0; i < n; i++) {
          Runtime.runFork(Runtime.defaultRuntime)(Effect.sync(() => {
            starts[i] = performance.now() - t0
            if (++done === n) resolve()
          }))
        }
      })
      await all
      // The first two rounds warm the JIT up.
      if (round >= 2) lastStarts.push(starts[n - 1]!)
      await sleep(50)
    }
    lastStarts.sort((a, b) => a - b)
    rows.push([
      fmt(n, 0),
      fmt(lastStarts[Math.floor(lastStarts.length / 2)]!, 2),
      fmt(lastStarts[lastStarts.length - 1]!, 2),
      fmt((1000 * lastStarts[Math.floor(lastStarts.length / 2)]!) / n, 2)
    ])
  }
  console.log(table(["fibers forked at once", "last start ms (median of 10)", "max ms", "us per fiber"], rows))
}

if (mode === "run") {
  // The third argument: a contender id of ours (ours, ours-lock, ours-json, ours-redis); `lock` = ours-lock.
  const id = args[2] === undefined || args[2] === "no" ? "ours" : args[2] === "lock" ? "ours-lock" : args[2]
  await run(Number(args[0] ?? 1000), Number(args[1] ?? 5), id)
} else if (mode === "breakdown") await breakdown(Number(args[0] ?? 20000))
else if (mode === "heap") await heap(Number(args[0] ?? 100000))
else if (mode === "growth") await growth(Number(args[0] ?? 1000), Number(args[1] ?? 20))
else if (mode === "floor") await floor((args[0] ?? "1000,10000").split(",").map(Number))
else {
  console.error("usage: profile.ts run [N] [seconds] [lock] | breakdown [iterations] | heap [N] | growth [N] [seconds]")
  process.exit(2)
}
