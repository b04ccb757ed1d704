/**
 * Stored schedules at scale on Redis (a `redis-server` this script starts on a free port): upsert throughput through
 * the library, how long a new leader takes to load and plan every stored schedule, the leader's heap per schedule,
 * and the latency from a change written on another node to the leader applying it.
 *
 *   node --expose-gc scripts/run.mjs scripts/bench/schedules.ts
 *   env: BENCH_SCHEDULES=100000  BENCH_SCHEDULES_CONCURRENCY=64  BENCH_SCHEDULES_CHANGES=300
 *
 * Writer and leader share this process (and its CPU): the figures are for one process doing both.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Schema from "effect/Schema"
import * as JobStoreRedis from "../../src/JobStore/Redis.js"
import * as LeaderElection from "../../src/LeaderElection.js"
import * as Redis from "../../src/Redis.js"
import * as Scheduler from "../../src/Scheduler.js"
import * as Schedules from "../../src/Schedules.js"
import { startRedis, uniquePrefix } from "../../test/harness/redis.js"
import { envNumber, fmt, fullGc, machine, percentile, table } from "./common.js"

const N = envNumber("BENCH_SCHEDULES", 100_000)
const CONCURRENCY = envNumber("BENCH_SCHEDULES_CONCURRENCY", 64)
const CHANGES = envNumber("BENCH_SCHEDULES_CHANGES", 300)

const handler = Schedules.handler("report", Schema.Struct({ tenant: Schema.String }), () => Effect.void)
const id = (i: number) => `tenant-${String(i).padStart(6, "0")}`
// Hourly at a minute of its own: nothing fires while the bench runs (unless it crosses an hour at that minute).
const specOf = (i: number, hour = "*"): Schedules.ScheduleSpec => ({
  id: id(i),
  handler: "report",
  trigger: { cron: `0 ${i % 60} ${hour} * * *` },
  payload: { tenant: `t${i}` }
})

const heapUsed = () => {
  fullGc()
  return process.memoryUsage().heapUsed
}

const program = Effect.gen(function*() {
  const server = yield* startRedis()
  const prefix = uniquePrefix("bench")
  const storeLayer = () => JobStoreRedis.layer.pipe(Layer.provide(Redis.layer({ url: server.url, keyPrefix: prefix })))

  // A writer over the store alone (a node that runs no scheduler), on its own connection.
  const writerContext = yield* Layer.build(Layer.provideMerge(Schedules.layerStore([handler]), storeLayer()))
  const writer = Context.get(writerContext, Schedules.Schedules)

  // 1. Upsert throughput.
  const t0 = performance.now()
  yield* Effect.forEach(Array.from({ length: N }, (_, i) => i), (i) => writer.upsert(specOf(i)), {
    concurrency: CONCURRENCY,
    discard: true
  })
  const upsertSeconds = (performance.now() - t0) / 1000

  // 2. A new leader loads and plans them all; its heap per schedule.
  const heapBefore = heapUsed()
  const t1 = performance.now()
  const cpu1 = process.cpuUsage()
  const leaderContext = yield* Layer.build(
    Schedules.layer([handler], { reconcileInterval: "1 second" }).pipe(
      Layer.provideMerge(Scheduler.layer<never>([])),
      Layer.provideMerge(LeaderElection.layerSingleNode("bench-leader")),
      Layer.provideMerge(storeLayer())
    )
  )
  const scheduler = Context.get(leaderContext, Scheduler.Scheduler)
  const loadSeconds = (performance.now() - t1) / 1000
  // CPU time of this process meanwhile (user + system, GC threads included; Redis is another process): what the
  // load costs, whatever share of the machine it got (the wall time above depends on the other work running).
  const cpu = process.cpuUsage(cpu1)
  const loadCpuSeconds = (cpu.user + cpu.system) / 1e6
  const planned = (yield* Effect.forEach([0, Math.floor(N / 2), N - 1], (i) => scheduler.jobStatus(id(i)))).every(
    (status) => status.nextFire._tag === "Some"
  )
  const heapAfter = heapUsed()
  const registered = scheduler.jobs.length

  // 3. Change-to-applied latency: the writer changes a schedule's trigger; the leader applies it when its status
  // shows the new trigger (checked every tick of the event loop).
  const latencies: Array<number> = []
  for (let k = 0; k < CHANGES; k++) {
    const i = (k * 7919) % N
    const spec = specOf(i, String(k % 24))
    const expected = `cron "${"cron" in spec.trigger ? spec.trigger.cron : ""}" UTC`
    const start = performance.now()
    yield* writer.upsert(spec)
    while ((yield* scheduler.jobStatus(id(i))).trigger !== expected) {
      if (performance.now() - start > 5000) return yield* Effect.dieMessage(`change ${k} not applied within 5 s`)
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
    }
    latencies.push(performance.now() - start)
  }
  latencies.sort((a, b) => a - b)

  console.log("## 7. Stored schedules on Redis")
  console.log(`${yield* Effect.promise(machine)}; ${N} schedules, upsert concurrency ${CONCURRENCY}`)
  console.log(table(["measure", "value", "goal"], [
    ["upserts / s (Schedules.layerStore, new schedules)", fmt(N / upsertSeconds, 0), ">= 5,000"],
    [
      `new leader: all ${registered} loaded and planned (s)${planned ? "" : " NOT PLANNED"}`,
      fmt(loadSeconds, 2),
      "<= 2"
    ],
    ["  its CPU time in this process (s)", fmt(loadCpuSeconds, 2), ""],
    ["leader heap per schedule (KB)", fmt((heapAfter - heapBefore) / N / 1024, 2), "<= 1.5"],
    [`change -> applied on the leader, p50 (ms, ${CHANGES} changes)`, fmt(percentile(latencies, 50), 2), ""],
    ["change -> applied on the leader, p99 (ms)", fmt(percentile(latencies, 99), 2), "<= 100"]
  ]))
}).pipe(Effect.scoped, Effect.provide(Logger.remove(Logger.defaultLogger)))

Effect.runPromise(program).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
