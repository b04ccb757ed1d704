/**
 * Faults against a real `redis-server`: killed, restarted, frozen with SIGSTOP, unreachable at start-up, a lock that
 * lapses while another owner takes it. Every failure must be a typed `StoreError` within the configured bound, never
 * a hang, and the same layer must recover once Redis is back. Each test owns its server (the faults would disturb
 * others). Real time throughout.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import { StoreError } from "../src/Errors.js"
import * as Job from "../src/Job.js"
import * as JobLockModel from "../src/JobLockModel.js"
import * as JobStore from "../src/JobStore.js"
import * as JobStoreRedis from "../src/JobStore/Redis.js"
import * as LeaderElection from "../src/LeaderElection.js"
import * as Metrics from "../src/Metrics.js"
import * as Redis from "../src/Redis.js"
import { RunContext, RunRecord } from "../src/Run.js"
import * as Scheduler from "../src/Scheduler.js"
import { freePort, startRedis, uniquePrefix } from "./harness/redis.js"

/** The configured command bound in these tests. */
const COMMAND_TIMEOUT = Duration.millis(500)
/** What the tests accept as "within the bound": the bound plus generous room for a loaded 2-core machine. */
const FAIL_WITHIN_MS = 3000
/** How long a restarted or resumed Redis may take to be usable again (reconnect backoff is capped at 1 s). */
const RECOVER_WITHIN = Duration.seconds(10)

const LONG = Duration.seconds(30)
const T0 = Date.UTC(2026, 0, 1)

const storeLayer = (url: string, options: { readonly commandTimeout?: Duration.DurationInput } = {}) =>
  JobStoreRedis.layer.pipe(
    Layer.provideMerge(
      Redis.layer({ url, keyPrefix: uniquePrefix(), commandTimeout: options.commandTimeout ?? COMMAND_TIMEOUT })
    )
  )

/** Build the store and hand back its services (the layer lives as long as the test's scope). */
const buildStore = (url: string, options: { readonly commandTimeout?: Duration.DurationInput } = {}) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(storeLayer(url, options))
    return {
      store: Effect.runSync(Effect.provide(JobStore.JobStore, context)),
      model: Effect.runSync(Effect.provide(JobLockModel.JobLockModel, context)),
      redis: Effect.runSync(Effect.provide(Redis.RedisClient, context))
    }
  })

const beginRequest = (
  fireTime: number,
  nodeId = "node-1",
  lockTtl: Duration.Duration = LONG
): JobStore.BeginRequest => ({
  job: "sync_user",
  fireTime,
  runId: `run-${fireTime}-${nodeId}`,
  nodeId,
  slot: Option.some({ ttl: LONG }),
  lock: Option.some({ key: "sync_user", ttl: lockTtl }),
  statusTtl: LONG
})

const runRecord = (fireTime: number, fence: number) =>
  new RunRecord({
    runId: `run-${fireTime}`,
    job: "sync_user",
    kind: "scheduled",
    fireTime: new Date(fireTime),
    startedAt: new Date(fireTime),
    finishedAt: new Date(fireTime + 10),
    durationMs: 10,
    node: "node-1",
    attempt: 1,
    fence,
    outcome: "success"
  })

/** Run `effect`, expect a `StoreError`, and return how long it took to fail (real ms). */
const expectStoreError = <A>(effect: Effect.Effect<A, StoreError>) =>
  Effect.gen(function*() {
    const [elapsed, result] = yield* Effect.timed(Effect.either(effect))
    assert.isTrue(Either.isLeft(result), "expected a StoreError, got a success")
    const error = (result as Either.Left<StoreError, A>).left
    assert.instanceOf(error, StoreError)
    assert.strictEqual(error.backend, "redis")
    return { error, elapsedMs: Duration.toMillis(elapsed) }
  })

/** Retry `effect` until it succeeds, for at most `RECOVER_WITHIN`. */
const eventually = <A, E>(effect: Effect.Effect<A, E>) =>
  effect.pipe(
    Effect.retry(Schedule.spaced(Duration.millis(100))),
    Effect.timeoutFail({ duration: RECOVER_WITHIN, onTimeout: () => new Error("did not recover") })
  )

describe("Redis faults", () => {
  it.scopedLive("Redis killed: commands fail with StoreError within the bound, and work again after a restart", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const server = yield* startRedis()
      const { store } = yield* buildStore(server.url)
      const before = yield* store.begin(beginRequest(T0))
      if (before._tag !== "Started") return assert.fail(`first begin: ${before.reason}`)
      const counted = yield* dataLossCount("marker")

      yield* server.kill()
      for (
        const attempt of [
          store.begin(beginRequest(T0 + 1000)),
          store.finish({ record: runRecord(T0, 1), lock: Option.none(), statusTtl: LONG, maxRecords: 10 }),
          store.renewLock({ key: "sync_user", token: "t" }, LONG),
          store.isPaused("sync_user"),
          store.recentRuns("sync_user", 10)
        ] as ReadonlyArray<Effect.Effect<unknown, StoreError>>
      ) {
        const { elapsedMs } = yield* expectStoreError(attempt)
        assert.isBelow(elapsedMs, FAIL_WITHIN_MS)
      }

      yield* server.restart()
      // The same layer reconnects by itself; the restarted server is empty (no persistence), and the store says so
      // as soon as it is connected again (the epoch marker it knew is gone), before any run.
      assert.isFalse(yield* eventually(store.isPaused("sync_user")))
      yield* waitFor("the data loss logged at ERROR", () => logs.errors("marker").length === 1)
      expect(yield* dataLossCount("marker")).toBe(counted + 1)
      const after = yield* store.begin(beginRequest(T0 + 2000))
      if (after._tag !== "Started") return assert.fail(`begin after the restart: ${after.reason}`)
      // The fence counter was lost with the rest; fences still grow.
      assert.isAbove(after.fence, before.fence)
      yield* store.finish({
        record: runRecord(T0 + 2000, after.fence),
        lock: after.lock,
        statusTtl: LONG,
        maxRecords: 10
      })
      expect((yield* store.recentRuns("sync_user", 10)).map((r) => r.fireTime.getTime())).toEqual([T0 + 2000])
      // Noticed once.
      expect(logs.errors("marker").length).toBe(1)
    }).pipe(Effect.provide(logs.layer))
  })

  it.scopedLive("a command in flight when Redis dies fails at once, not after the command timeout", () =>
    Effect.gen(function*() {
      const server = yield* startRedis()
      // A long command bound: failing fast here must come from the dropped connection, not from a timeout.
      const { store } = yield* buildStore(server.url, { commandTimeout: Duration.seconds(20) })
      assert.isFalse(yield* store.isPaused("sync_user"))
      yield* server.pause()
      const inFlight = yield* Effect.fork(Effect.timed(Effect.either(store.begin(beginRequest(T0)))))
      yield* Effect.sleep(Duration.millis(200))
      yield* server.kill()
      const [elapsed, result] = yield* Fiber.join(inFlight)
      assert.isTrue(Either.isLeft(result))
      if (Either.isLeft(result)) assert.strictEqual(result.left.reason, "connection lost before the reply")
      assert.isBelow(Duration.toMillis(elapsed), FAIL_WITHIN_MS)
    }))

  it.scopedLive("Redis frozen with SIGSTOP: commands fail within the bound, none hangs, SIGCONT recovers", () =>
    Effect.gen(function*() {
      const server = yield* startRedis()
      const { store } = yield* buildStore(server.url)
      yield* store.setPaused("paused_job", true)
      const first = yield* store.begin(beginRequest(T0))
      assert.strictEqual(first._tag, "Started")

      yield* server.pause()
      // Many fibers at once: every one must end with a StoreError within the bound.
      const results = yield* Effect.forEach(
        [
          store.begin(beginRequest(T0 + 1000)),
          store.isPaused("paused_job"),
          store.isPaused("sync_user"),
          store.lastFireTime("sync_user"),
          store.finish({ record: runRecord(T0, 1), lock: Option.none(), statusTtl: LONG, maxRecords: 10 }),
          store.renewLock({ key: "sync_user", token: "t" }, LONG)
        ] as ReadonlyArray<Effect.Effect<unknown, StoreError>>,
        expectStoreError,
        { concurrency: "unbounded" }
      )
      for (const { elapsedMs } of results) assert.isBelow(elapsedMs, FAIL_WITHIN_MS)
      // Still frozen: new commands fail too (no silent queueing).
      assert.isBelow((yield* expectStoreError(store.isPaused("paused_job"))).elapsedMs, FAIL_WITHIN_MS)

      yield* server.resume()
      // Late replies to the timed-out commands must not be handed to new ones.
      assert.isTrue(yield* eventually(store.isPaused("paused_job")))
      assert.isFalse(yield* store.isPaused("sync_user"))
      const next = yield* store.begin(beginRequest(T0 + 5000, "node-1", LONG))
      // The lock from the first begin is still held (its owner never released it).
      assert.deepStrictEqual(next, { _tag: "Skipped", reason: "lock_held" })
      assert.deepStrictEqual(yield* store.lastFireTime("sync_user"), Option.some(T0 + 5000))
    }))

  // it.scoped: the TestClock is installed and never advanced, and the calls run uninterruptibly (as a lock release
  // in a finalizer does). The bound is wall-clock and must hold anyway.
  it.scoped("the command bound holds under TestClock and inside uninterruptible regions", () =>
    Effect.gen(function*() {
      const server = yield* startRedis()
      const { model, store } = yield* buildStore(server.url)
      const lock = Option.getOrThrow(yield* model.acquireLock("sync_user", LONG))
      yield* server.pause()
      for (
        const call of [
          store.renewLock(lock, LONG),
          model.releaseLock(lock),
          store.begin(beginRequest(T0))
        ] as ReadonlyArray<Effect.Effect<unknown, StoreError>>
      ) {
        const startedAt = Date.now()
        const result = yield* Effect.either(Effect.uninterruptible(call))
        assert.isTrue(Either.isLeft(result))
        assert.isBelow(Date.now() - startedAt, FAIL_WITHIN_MS)
      }
      yield* server.resume()
    }))

  it.scopedLive("a lock lapsing while another owner takes it: renewLock is false, late finish keeps theirs", () =>
    Effect.gen(function*() {
      const server = yield* startRedis()
      const { store } = yield* buildStore(server.url)
      const first = yield* store.begin(beginRequest(T0, "node-1", Duration.millis(400)))
      if (first._tag !== "Started") return assert.fail(`first begin: ${first.reason}`)
      yield* Effect.sleep(Duration.millis(1200))
      const second = yield* store.begin(beginRequest(T0 + 1000, "node-2"))
      if (second._tag !== "Started") return assert.fail(`second begin: ${second.reason}`)
      assert.isFalse(yield* store.renewLock(Option.getOrThrow(first.lock), LONG))
      yield* store.finish({ record: runRecord(T0, first.fence), lock: first.lock, statusTtl: LONG, maxRecords: 10 })
      assert.deepStrictEqual(yield* store.begin(beginRequest(T0 + 2000, "node-3")), {
        _tag: "Skipped",
        reason: "lock_held"
      })
      assert.isTrue(yield* store.renewLock(Option.getOrThrow(second.lock), LONG))
    }))

  it.scopedLive("a Redis that does not answer at start-up fails the layer with StoreError within connectTimeout", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const layer = Redis.layer({
        url: `redis://127.0.0.1:${port}`,
        keyPrefix: "x",
        connectTimeout: Duration.seconds(1)
      })
      const { elapsedMs, error } = yield* expectStoreError(Effect.scoped(Layer.build(layer)))
      assert.strictEqual(error.operation, "connect")
      assert.isBelow(elapsedMs, FAIL_WITHIN_MS)
    }))

  it.scopedLive("password and db come from the URL; a wrong password fails start-up without logging the password", () =>
    Effect.gen(function*() {
      const server = yield* startRedis({ extraArgs: ["--requirepass", "s3cret-pw"] })
      const prefix = uniquePrefix()
      const good = yield* Layer.build(
        JobStoreRedis.layer.pipe(
          Layer.provideMerge(Redis.layer({
            url: Redacted.make(`redis://:s3cret-pw@127.0.0.1:${server.port}/3`),
            keyPrefix: prefix
          }))
        )
      )
      const store = Effect.runSync(Effect.provide(JobStore.JobStore, good))
      const { client } = Effect.runSync(Effect.provide(Redis.RedisClient, good))
      yield* store.setPaused("sync_user", true)
      // The key is in db 3, not db 0.
      expect(yield* Effect.promise(() => client.exists(`${prefix}:job:paused:sync_user`))).toBe(1)
      expect(yield* Effect.promise(() => client.select(0).then(() => client.exists(`${prefix}:job:paused:sync_user`))))
        .toBe(0)

      const { error } = yield* expectStoreError(Effect.scoped(Layer.build(Redis.layer({
        url: Redacted.make(`redis://:wrong-pw@127.0.0.1:${server.port}/0`),
        keyPrefix: prefix,
        connectTimeout: Duration.seconds(1)
      }))))
      assert.strictEqual(error.operation, "connect")
      assert.notInclude(error.reason, "wrong-pw")
      assert.include(error.reason, "***")
      assert.strictEqual(Redis.describeUrl(`rediss://user:pw@host:6380/2`), "rediss://user:***@host:6380/2")
    }))
})

// ---------------------------------------------------------------------------------------------------------------
// The scheduler on Redis under faults
// ---------------------------------------------------------------------------------------------------------------

interface LogLine {
  readonly message: string
  readonly level: string
  readonly annotations: Readonly<Record<string, unknown>>
}

/** The data-loss counter's value for `reason` (process-wide: tests compare before and after). */
const dataLossCount = (reason: string) =>
  Metric.value(Metric.tagged(Metric.tagged(Metrics.storeDataLoss, "backend", "redis"), "reason", reason)).pipe(
    Effect.map((state) => state.count)
  )

/** A logger that keeps every line (message and annotations), replacing the console one for the test. */
const captureLogs = () => {
  const lines: Array<LogLine> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    lines.push({
      message: String(Array.isArray(message) ? message[0] : message),
      level: logLevel.label,
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    })
  })
  /** The ERROR lines about a store data loss for `reason`. */
  const errors = (reason: string) =>
    lines.filter((line) => line.level === "ERROR" && line.annotations.reason === reason)
  const finished = (job: string) =>
    lines.filter((line) => line.message === "job finished" && line.annotations.job === job)
  const skippedFor = (job: string, reason: string) =>
    lines.filter((line) =>
      line.message === "job skipped" && line.annotations.job === job &&
      line.annotations.reason === reason
    )
  return { lines, finished, skippedFor, errors, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** Poll `check` every 50 ms until true; fail the test naming `what` after `within`. Real time. */
const waitFor = (what: string, check: () => boolean, within: Duration.DurationInput = RECOVER_WITHIN) =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail(new Error(`not yet: ${what}`)))).pipe(
    Effect.retry(Schedule.spaced(Duration.millis(50))),
    Effect.timeoutFail({ duration: within, onTimeout: () => new Error(`timed out waiting for: ${what}`) }),
    Effect.orDie
  )

/** A scheduler node on Redis with single-node leadership (the slot claim alone must give exactly-once). */
const schedulerOnRedis = (
  jobs: ReadonlyArray<Job.Job<never>>,
  options: { readonly url: string; readonly keyPrefix: string; readonly nodeId: string }
) =>
  Scheduler.layer(jobs, { shutdownGrace: Duration.seconds(1) }).pipe(
    Layer.provide(LeaderElection.layerSingleNode(options.nodeId)),
    Layer.provideMerge(JobStoreRedis.layer),
    Layer.provideMerge(Redis.layer({ url: options.url, keyPrefix: options.keyPrefix, commandTimeout: COMMAND_TIMEOUT }))
  )

describe("Scheduler on Redis faults", () => {
  it.scopedLive("Redis killed mid-run: run ends lock_lost, fires skip store_error, runs resume after restart", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const server = yield* startRedis()
      const firstStarted = yield* Deferred.make<void>()
      let calls = 0
      const job = Job.unsafeMake({
        name: "sync_user",
        every: "200 millis",
        timeout: "30 seconds",
        // Renewed every 500 ms; with Redis gone the run counts its lock as lost 1.5 s after the last renewal.
        lock: { ttl: "1500 millis" },
        handler: Effect.suspend(() => {
          calls++
          return calls === 1 ? Effect.zipRight(Deferred.succeed(firstStarted, undefined), Effect.never) : Effect.void
        })
      })
      const context = yield* Layer.build(
        schedulerOnRedis([job], { url: server.url, keyPrefix: uniquePrefix(), nodeId: "node-a" })
      )
      const scheduler = Effect.runSync(Effect.provide(Scheduler.Scheduler, context))
      yield* Deferred.await(firstStarted).pipe(Effect.timeout(RECOVER_WITHIN), Effect.orDie)

      yield* server.kill()
      yield* waitFor(
        "the running job to end lock_lost",
        () => logs.finished("sync_user").some((line) => line.annotations.outcome === "lock_lost")
      )
      yield* waitFor(
        "fires to go on (skipped store_error)",
        () => logs.skippedFor("sync_user", "store_error").length >= 2
      )

      yield* server.restart()
      yield* waitFor(
        "a successful run after the restart",
        () => logs.finished("sync_user").some((line) => line.annotations.outcome === "success")
      )
      // The restarted Redis is empty: the records there are the runs after the restart.
      const records = yield* scheduler.runs("sync_user")
      assert.isTrue(records.length >= 1 && records.every((record) => record.outcome === "success"))
      const status = yield* scheduler.jobStatus("sync_user")
      assert.isTrue(status.counters.failures >= 1, "the lock_lost run is counted as a failure")
    }).pipe(Effect.provide(logs.layer))
  }, 60_000)

  it.scopedLive("two schedulers on one Redis, single-node leadership each: every fire time runs exactly once", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const server = yield* startRedis()
      const keyPrefix = uniquePrefix()
      const invocations = new Map<number, Array<string>>()
      const job = Job.unsafeMake({
        name: "tick",
        cron: "* * * * * *",
        timeout: "5 seconds",
        // No lock: exactly-once must come from the slot claim alone.
        lock: { enabled: false },
        handler: Effect.flatMap(RunContext, (run) =>
          Effect.sync(() => {
            const time = run.fireTime.getTime()
            invocations.set(time, [...(invocations.get(time) ?? []), run.nodeId])
          }))
      })
      const nodeA = yield* Layer.build(schedulerOnRedis([job], { url: server.url, keyPrefix, nodeId: "node-a" }))
      yield* Layer.build(schedulerOnRedis([job], { url: server.url, keyPrefix, nodeId: "node-b" }))
      yield* waitFor("at least 4 fire times", () => invocations.size >= 4, Duration.seconds(15))
      // Let the last fires finish on both nodes.
      yield* Effect.sleep(Duration.millis(300))

      for (const [time, nodes] of invocations) {
        assert.strictEqual(nodes.length, 1, `fire ${new Date(time).toISOString()} ran on ${nodes.join(", ")}`)
      }
      const records = yield* Effect.flatMap(Effect.provide(Scheduler.Scheduler, nodeA), (s) => s.runs("tick"))
      const perFire = new Map<number, number>()
      for (const record of records) {
        perFire.set(record.fireTime.getTime(), (perFire.get(record.fireTime.getTime()) ?? 0) + 1)
      }
      assert.isTrue(perFire.size >= 4)
      for (const [time, count] of perFire) assert.strictEqual(count, 1, `records for ${new Date(time).toISOString()}`)
      // Both nodes really competed: the losers were told slot_taken.
      assert.isAbove(logs.skippedFor("tick", "slot_taken").length, 0)
    }).pipe(Effect.provide(logs.layer))
  }, 60_000)

  it.scopedLive("a lock that lapses mid-run and is taken by another owner interrupts the run with lock_lost", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const server = yield* startRedis()
      const keyPrefix = uniquePrefix()
      const started = yield* Deferred.make<void>()
      const job = Job.unsafeMake({
        name: "archive_user",
        // Far away: the run comes from `trigger`.
        cron: "0 0 0 1 1 *",
        timeout: "30 seconds",
        lock: { ttl: "900 millis" },
        handler: Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)
      })
      const context = yield* Layer.build(schedulerOnRedis([job], { url: server.url, keyPrefix, nodeId: "node-a" }))
      const scheduler = Effect.runSync(Effect.provide(Scheduler.Scheduler, context))
      const { client } = Effect.runSync(Effect.provide(Redis.RedisClient, context))
      const result = yield* scheduler.trigger("archive_user")
      assert.strictEqual(result._tag, "Started")
      yield* Deferred.await(started).pipe(Effect.timeout(RECOVER_WITHIN), Effect.orDie)

      // The TTL lapses (forced, as after a stall), and another owner (e.g. a Go service) takes the lock.
      const lockKey = `${keyPrefix}:job:lock:archive_user`
      yield* Effect.promise(() => client.pexpire(lockKey, 1))
      yield* Effect.sleep(Duration.millis(20))
      expect(yield* Effect.promise(() => client.set(lockKey, "other-owner", "PX", 30_000, "NX"))).toBe("OK")

      yield* waitFor(
        "the run to end lock_lost",
        () => logs.finished("archive_user").some((line) => line.annotations.outcome === "lock_lost"),
        Duration.seconds(5)
      )
      const records = yield* scheduler.runs("archive_user")
      expect(records.map((record) => record.outcome)).toEqual(["lock_lost"])
      // Our finish did not delete the new owner's lock.
      expect(yield* Effect.promise(() => client.get(lockKey))).toBe("other-owner")
    }).pipe(Effect.provide(logs.layer))
  }, 30_000)
})
