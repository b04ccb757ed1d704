/**
 * One contract for every `JobLockModel` backend (memory, Redis): the same suite body runs against each. Expiry is
 * driven by `TestClock` for memory and by real (short) TTLs for Redis.
 */
import { assert, describe, expect, it, layer } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import type { StoreError } from "../src/Errors.js"
import * as JobLockModel from "../src/JobLockModel.js"
import * as JobLockModelRedis from "../src/JobLockModel/Redis.js"
import * as Redis from "../src/Redis.js"
import { TestRedis, uniquePrefix } from "./harness/redis.js"

/** A TTL short enough to lapse inside a test, long enough that no command pair in a test takes that long. */
const SHORT = Duration.millis(600)
/** Comfortably past `SHORT` (Redis expires keys to the millisecond; the margin absorbs a loaded machine). */
const PAST_SHORT = Duration.millis(1500)
/** A TTL no test outlives. */
const LONG = Duration.seconds(30)

interface Backend {
  /** Register one test whose body gets a fresh model (an empty store or a fresh key prefix). */
  readonly test: (
    name: string,
    body: () => Effect.Effect<void, StoreError, JobLockModel.JobLockModel | Scope.Scope>
  ) => void
  /** Let time pass for TTLs: `TestClock.adjust` for memory, a real sleep for Redis. */
  readonly advance: (duration: Duration.DurationInput) => Effect.Effect<void>
}

const contract = ({ advance, test }: Backend) => {
  test("acquireLock takes a free key and returns None while another owner holds it", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      const first = yield* model.acquireLock("sync_user", LONG)
      assert.isTrue(Option.isSome(first))
      assert.strictEqual(Option.getOrThrow(first).key, "sync_user")
      assert.isTrue(Option.isNone(yield* model.acquireLock("sync_user", LONG)))
    }))

  test("every acquisition gets its own owner token", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      const a = Option.getOrThrow(yield* model.acquireLock("a", LONG))
      const b = Option.getOrThrow(yield* model.acquireLock("b", LONG))
      assert.notStrictEqual(a.token, b.token)
    }))

  test("locks on different keys are independent", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      assert.isTrue(Option.isSome(yield* model.acquireLock("job_a", LONG)))
      assert.isTrue(Option.isSome(yield* model.acquireLock("job_b", LONG)))
    }))

  test("releaseLock frees the key for the next owner; a second release returns false", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      const lock = Option.getOrThrow(yield* model.acquireLock("sync_user", LONG))
      assert.isTrue(yield* model.releaseLock(lock))
      assert.isFalse(yield* model.releaseLock(lock))
      assert.isTrue(Option.isSome(yield* model.acquireLock("sync_user", LONG)))
    }))

  test("a lock expires after its TTL and can then be taken by another owner", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      assert.isTrue(Option.isSome(yield* model.acquireLock("sync_user", SHORT)))
      assert.isTrue(Option.isNone(yield* model.acquireLock("sync_user", SHORT)))
      yield* advance(PAST_SHORT)
      assert.isTrue(Option.isSome(yield* model.acquireLock("sync_user", LONG)))
    }))

  test("a stale owner's release does not delete the new owner's lock", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      const stale = Option.getOrThrow(yield* model.acquireLock("sync_user", SHORT))
      yield* advance(PAST_SHORT)
      const current = Option.getOrThrow(yield* model.acquireLock("sync_user", LONG))
      assert.isFalse(yield* model.releaseLock(stale))
      // Still held by the new owner:
      assert.isTrue(Option.isNone(yield* model.acquireLock("sync_user", LONG)))
      assert.isTrue(yield* model.releaseLock(current))
    }))

  test("renewLock extends the owner's lock past its first TTL", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      const lock = Option.getOrThrow(yield* model.acquireLock("sync_user", SHORT))
      assert.isTrue(yield* model.renewLock(lock, LONG))
      yield* advance(PAST_SHORT)
      assert.isTrue(Option.isNone(yield* model.acquireLock("sync_user", LONG)))
      assert.isTrue(yield* model.releaseLock(lock))
    }))

  test("renewLock returns false once the lock lapsed and another owner took it, and leaves that owner's lock", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      const stale = Option.getOrThrow(yield* model.acquireLock("sync_user", SHORT))
      yield* advance(PAST_SHORT)
      const current = Option.getOrThrow(yield* model.acquireLock("sync_user", SHORT))
      assert.isFalse(yield* model.renewLock(stale, LONG))
      // The stale renewal must not have extended the new owner's lock to LONG: it still lapses after SHORT.
      yield* advance(PAST_SHORT)
      assert.isTrue(Option.isSome(yield* model.acquireLock("sync_user", LONG)))
      assert.isFalse(yield* model.renewLock(current, LONG))
    }))

  test("renewLock returns false for a released lock", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      const lock = Option.getOrThrow(yield* model.acquireLock("sync_user", LONG))
      assert.isTrue(yield* model.releaseLock(lock))
      assert.isFalse(yield* model.renewLock(lock, LONG))
    }))

  test("getJobStatus reads what setJobStatus wrote, the latest write wins, and unset is None", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      assert.isTrue(Option.isNone(yield* model.getJobStatus("sync_user")))
      yield* model.setJobStatus("sync_user", "running", LONG)
      assert.deepStrictEqual(yield* model.getJobStatus("sync_user"), Option.some("running"))
      yield* model.setJobStatus("sync_user", "success", LONG)
      assert.deepStrictEqual(yield* model.getJobStatus("sync_user"), Option.some("success"))
      assert.isTrue(Option.isNone(yield* model.getJobStatus("archive_user")))
    }))

  test("a job status expires after its TTL", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      yield* model.setJobStatus("sync_user", "running", SHORT)
      assert.deepStrictEqual(yield* model.getJobStatus("sync_user"), Option.some("running"))
      yield* advance(PAST_SHORT)
      assert.isTrue(Option.isNone(yield* model.getJobStatus("sync_user")))
    }))

  test("withLock releases the lock when its scope closes, on success and on failure", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      const held = yield* Effect.scoped(
        Effect.gen(function*() {
          const lock = yield* JobLockModel.withLock("sync_user", LONG)
          assert.isTrue(Option.isSome(lock))
          assert.isTrue(Option.isNone(yield* model.acquireLock("sync_user", LONG)))
          return lock
        })
      )
      assert.isTrue(Option.isSome(held))
      const failed = yield* Effect.exit(Effect.scoped(
        Effect.zipRight(JobLockModel.withLock("sync_user", LONG), Effect.fail("boom"))
      ))
      assert.isTrue(Exit.isFailure(failed))
      assert.isTrue(Option.isSome(yield* model.acquireLock("sync_user", LONG)))
    }))

  test("withLock keeps its lock past its TTL while the scope is open, and releases it when the scope closes", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      yield* Effect.scoped(
        Effect.gen(function*() {
          assert.isTrue(Option.isSome(yield* JobLockModel.withLock("sync_user:logic", SHORT)))
          // Well past the TTL: without renewals the lock would have expired and been free for another owner.
          yield* advance(PAST_SHORT)
          assert.isTrue(Option.isNone(yield* model.acquireLock("sync_user:logic", LONG)))
        })
      )
      assert.isTrue(Option.isSome(yield* model.acquireLock("sync_user:logic", LONG)))
    }))

  test("withLock on a held key gives None and leaves the holder's lock in place", () =>
    Effect.gen(function*() {
      const model = yield* JobLockModel.JobLockModel
      const holder = Option.getOrThrow(yield* model.acquireLock("sync_user", LONG))
      const lock = yield* Effect.scoped(JobLockModel.withLock("sync_user", LONG))
      assert.isTrue(Option.isNone(lock))
      assert.isTrue(yield* model.releaseLock(holder))
    }))
}

describe("JobLockModel contract: memory", () => {
  contract({
    test: (name, body) => it.scoped(name, () => Effect.provide(body(), JobLockModel.layerMemory)),
    advance: (duration) => TestClock.adjust(duration)
  })
})

/** The Redis model over a fresh connection and a key prefix no other test uses. */
const redisModel = (url: string, keyPrefix: string) =>
  JobLockModelRedis.layer.pipe(Layer.provideMerge(Redis.layer({ url, keyPrefix })))

layer(TestRedis.layer, { excludeTestServices: true, timeout: Duration.seconds(30) })(
  "JobLockModel contract: redis",
  (it) => {
    contract({
      test: (name, body) =>
        it.scoped(
          name,
          () => Effect.flatMap(TestRedis, (server) => Effect.provide(body(), redisModel(server.url, uniquePrefix())))
        ),
      advance: (duration) => Effect.sleep(duration)
    })

    it.scoped("the lock key is the xredis layout's: a raw SET NX (Go xredis) and acquireLock exclude each other", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const prefix = uniquePrefix("user")
        const context = yield* Layer.build(redisModel(server.url, prefix))
        const model = Effect.provide(JobLockModel.JobLockModel, context)
        const redis = Effect.provide(Redis.RedisClient, context)
        const { acquireLock, getJobStatus, setJobStatus } = yield* model
        const { client } = yield* redis

        // Ours first: the Go service's SET NX on the same key fails.
        const ours = Option.getOrThrow(yield* acquireLock("sync_user", LONG))
        expect(yield* Effect.promise(() => client.set(`${prefix}:job:lock:sync_user`, "x", "PX", 30_000, "NX")))
          .toBeNull()
        expect(yield* Effect.promise(() => client.get(`${prefix}:job:lock:sync_user`))).toBe(ours.token)

        // Theirs first: our acquireLock gives None, and our release cannot delete their lock.
        expect(yield* Effect.promise(() => client.set(`${prefix}:job:lock:archive_user`, "x", "PX", 30_000, "NX")))
          .toBe("OK")
        assert.isTrue(Option.isNone(yield* acquireLock("archive_user", LONG)))
        const forged = yield* Effect.flatMap(model, (m) => m.releaseLock({ key: "archive_user", token: "not-x" }))
        assert.isFalse(forged)
        expect(yield* Effect.promise(() => client.get(`${prefix}:job:lock:archive_user`))).toBe("x")

        // Status: the xredis key, plain string value, both ways.
        yield* setJobStatus("sync_user", "success", LONG)
        expect(yield* Effect.promise(() => client.get(`${prefix}:job:status:sync_user`))).toBe("success")
        yield* Effect.promise(() => client.set(`${prefix}:job:status:archive_user`, "running"))
        assert.deepStrictEqual(yield* getJobStatus("archive_user"), Option.some("running"))
      }).pipe(Effect.orDie))
  }
)
