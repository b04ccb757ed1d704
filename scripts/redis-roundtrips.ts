/**
 * Round trips and latency of one locked run on the Redis `JobStore`, against a `redis-server` this script starts on a
 * free loopback port (and stops). Counts the commands the client sends for `begin` + `finish` (each command is one
 * round trip: nothing is pipelined), and times them against a raw `SET NX PX` and against the same `begin` done as
 * separate commands.
 *
 *   node scripts/run.mjs scripts/redis-roundtrips.ts [iterations]
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as JobStoreScripts from "../src/internal/jobStoreScripts.js"
import * as RedisScript from "../src/internal/redisScript.js"
import type { JobStore } from "../src/JobStore.js"
import * as JobStoreM from "../src/JobStore.js"
import * as JobStoreRedis from "../src/JobStore/Redis.js"
import * as Redis from "../src/Redis.js"
import { RunRecord } from "../src/Run.js"
import { startRedis } from "../test/harness/redis.js"

const iterations = Number(process.argv[2] ?? 2000)
/** Runs before measuring, so that scripts are loaded and the connection and JIT are warm. */
const WARMUP = 200
const LONG = Duration.seconds(60)

interface Row {
  readonly name: string
  readonly commands: number
  readonly samples: Array<number>
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

const us = (nanos: number) => (nanos / 1000).toFixed(1).padStart(8)

const program = Effect.gen(function*() {
  const server = yield* startRedis()
  const keyPrefix = "bench"
  const context = yield* Layer.build(JobStoreRedis.layer.pipe(
    Layer.provideMerge(Redis.layer({ url: server.url, keyPrefix }))
  ))
  const store: JobStore["Type"] = Effect.runSync(Effect.provide(JobStoreM.JobStore, context))
  const { client } = Effect.runSync(Effect.provide(Redis.RedisClient, context))

  // Count what the client sends: every command is one request and one reply.
  let sent = 0
  const names: Array<string> = []
  const original = client.sendCommand.bind(client)
  client.sendCommand = (command, stream) => {
    sent++
    names.push(command.name)
    return original(command, stream)
  }

  let fireTime = Date.UTC(2026, 0, 1)
  const begin = () =>
    store.begin({
      job: "sync_user",
      fireTime: ++fireTime,
      runId: `run-${fireTime}`,
      nodeId: "bench",
      slot: Option.some({ ttl: LONG }),
      lock: Option.some({ key: "sync_user", ttl: LONG }),
      statusTtl: LONG
    })
  const finish = (started: JobStoreM.BeginResult) =>
    store.finish({
      record: new RunRecord({
        runId: `run-${fireTime}`,
        job: "sync_user",
        kind: "scheduled",
        fireTime: new Date(fireTime),
        startedAt: new Date(fireTime),
        finishedAt: new Date(fireTime + 5),
        durationMs: 5,
        node: "bench",
        attempt: 1,
        fence: started._tag === "Started" ? started.fence : 0,
        outcome: "success"
      }),
      lock: started._tag === "Started" ? started.lock : Option.none(),
      statusTtl: LONG,
      maxRecords: 100
    })
  const lockedRun = Effect.suspend(() =>
    Effect.flatMap(begin(), (started) => {
      if (started._tag !== "Started") return Effect.dieMessage(`begin skipped: ${started.reason}`)
      return finish(started)
    })
  )
  /**
   * The same begin as separate commands (what one would write without a script): EXISTS, SET NX, SET, SET NX, INCR,
   * SET, plus a DEL to free the lock for the next iteration.
   */
  const naiveBegin = Effect.promise(async () => {
    const job = "sync_user"
    const t = ++fireTime
    if (await client.exists(`${keyPrefix}:job:paused:${job}`)) return
    if (await client.set(`${keyPrefix}:job:tick:${job}:${t}`, "bench", "PX", 60_000, "NX") === null) return
    await client.set(`${keyPrefix}:job:last:${job}`, String(t))
    if (await client.set(`${keyPrefix}:job:lock:naive`, "token", "PX", 60_000, "NX") === null) return
    await client.incr(`${keyPrefix}:job:fence:${job}`)
    await client.set(`${keyPrefix}:job:status:${job}`, "running", "PX", 60_000)
    await client.del(`${keyPrefix}:job:lock:naive`)
  })
  /** The begin script called straight on the client: the Redis share of `begin`, without the effect wrapper. */
  const rawBeginScript = Effect.promise(() => {
    const t = ++fireTime
    const batch = new JobStoreScripts.BatchArgs(keyPrefix, JobStoreScripts.beginWidth, ["epoch"])
    batch.push(["raw", String(t), "60000", "bench", "raw", "token", "", "60000", "", "0"])
    return RedisScript.evalScript(client, JobStoreScripts.beginScript, [`${keyPrefix}:job:epoch`], batch.args)
  })
  let rawKey = 0
  const rawSetNx = Effect.promise(() => client.set(`${keyPrefix}:raw:${++rawKey}`, "token", "PX", 60_000, "NX"))

  /** Time `op` (and count only its commands); `prepare` makes its input and `cleanup` undoes it, untimed. */
  const measure = <I, O>(
    name: string,
    prepare: Effect.Effect<I, unknown>,
    op: (input: I) => Effect.Effect<O, unknown>,
    cleanup: (output: O) => Effect.Effect<unknown, unknown> = () => Effect.void
  ) =>
    Effect.gen(function*() {
      for (let i = 0; i < WARMUP; i++) yield* Effect.flatMap(Effect.flatMap(prepare, op), cleanup)
      let commands = 0
      const samples: Array<number> = []
      for (let i = 0; i < iterations; i++) {
        const input = yield* prepare
        const before = sent
        const start = process.hrtime.bigint()
        const output = yield* op(input)
        samples.push(Number(process.hrtime.bigint() - start))
        commands += sent - before
        yield* cleanup(output)
      }
      return { name, commands: commands / iterations, samples } satisfies Row
    })

  // One locked run, command by command (after the warm-up below has loaded the scripts).
  const describeRun = Effect.gen(function*() {
    names.length = 0
    const started = yield* begin()
    const beginNames = [...names]
    names.length = 0
    yield* finish(started)
    return { beginNames, finishNames: [...names] }
  })

  const rows: Array<Row> = [
    yield* measure("raw SET NX PX (floor)", Effect.void, () => rawSetNx),
    yield* measure("begin script, bare client call", Effect.void, () => rawBeginScript),
    yield* measure("begin", Effect.void, begin, finish),
    yield* measure("finish", Effect.suspend(begin), finish),
    yield* measure("locked run: begin + finish", Effect.void, () => lockedRun),
    yield* measure("begin as separate commands", Effect.void, () => naiveBegin)
  ]
  const { beginNames, finishNames } = yield* describeRun

  console.log(`redis-server ${server.url}, ${iterations} iterations after ${WARMUP} warm-up, times in microseconds`)
  console.log(`begin sends:  ${beginNames.join(", ")}`)
  console.log(`finish sends: ${finishNames.join(", ")}`)
  console.log("")
  const header = ["round trips".padStart(11), "p50".padStart(8), "p99".padStart(8), "mean".padStart(8)]
  console.log(`${"operation".padEnd(30)} ${header.join(" ")}`)
  for (const row of rows) {
    const sorted = [...row.samples].sort((a, b) => a - b)
    const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length
    console.log(
      `${row.name.padEnd(30)} ${row.commands.toFixed(2).padStart(11)} ${us(percentile(sorted, 50))} ${
        us(percentile(sorted, 99))
      } ${us(mean)}`
    )
  }
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
