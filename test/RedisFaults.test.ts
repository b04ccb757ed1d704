/**
 * Faults against a real `redis-server`: killed, restarted, frozen with SIGSTOP, unreachable at start-up, a lock that
 * lapses while another owner takes it. Every failure must be a typed `StoreError` within the configured bound, never
 * a hang, and the same layer must recover once Redis is back. Each test owns its server (the faults would disturb
 * others). Real time throughout.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import { StoreError } from "../src/Errors.js"
import * as JobLockModel from "../src/JobLockModel.js"
import * as JobStore from "../src/JobStore.js"
import * as JobStoreRedis from "../src/JobStore/Redis.js"
import * as Redis from "../src/Redis.js"
import { RunRecord } from "../src/Run.js"
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
  JobStoreRedis.layerRedis.pipe(
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
    fireTime,
    startedAt: fireTime,
    finishedAt: fireTime + 10,
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
  it.scopedLive("Redis killed: commands fail with StoreError within the bound, and work again after a restart", () =>
    Effect.gen(function*() {
      const server = yield* startRedis()
      const { store } = yield* buildStore(server.url)
      const before = yield* store.begin(beginRequest(T0))
      assert.strictEqual(before._tag, "Started")

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
      // The same layer reconnects by itself; the restarted server is empty (no persistence).
      assert.isFalse(yield* eventually(store.isPaused("sync_user")))
      const after = yield* store.begin(beginRequest(T0 + 2000))
      assert.strictEqual(after._tag, "Started")
      if (after._tag !== "Started") return
      assert.strictEqual(after.fence, 1)
      yield* store.finish({
        record: runRecord(T0 + 2000, after.fence),
        lock: after.lock,
        statusTtl: LONG,
        maxRecords: 10
      })
      expect((yield* store.recentRuns("sync_user", 10)).map((r) => r.fireTime)).toEqual([T0 + 2000])
    }))

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
        JobStoreRedis.layerRedis.pipe(
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
