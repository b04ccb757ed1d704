/**
 * One contract for every `JobStore` backend (memory, Redis), each providing the `JobStore` and the `JobLockModel` over
 * one shared state. Expiry is driven by `TestClock` for memory and by real (short) TTLs for Redis.
 */
import { assert, describe, expect, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import type { StoreError } from "../src/Errors.js"
import * as JobLockModel from "../src/JobLockModel.js"
import * as JobStore from "../src/JobStore.js"
import * as JobStoreRedis from "../src/JobStore/Redis.js"
import * as Metrics from "../src/Metrics.js"
import * as Redis from "../src/Redis.js"
import { type Outcome, RunRecord } from "../src/Run.js"
import { TestRedis, uniquePrefix } from "./harness/redis.js"

/** A TTL short enough to lapse inside a test, long enough that no command pair in a test takes that long. */
const SHORT = Duration.millis(600)
/** Comfortably past `SHORT` (Redis expires keys to the millisecond; the margin absorbs a loaded machine). */
const PAST_SHORT = Duration.millis(1500)
/** A TTL no test outlives. */
const LONG = Duration.seconds(30)

/** A fixed epoch-ms fire time, so fire times in tests read as offsets. */
const T0 = Date.UTC(2026, 0, 1)

type Services = JobStore.JobStore | JobLockModel.JobLockModel

interface Backend {
  /** Register one test whose body gets a fresh store (an empty state or a fresh key prefix). */
  readonly test: (name: string, body: () => Effect.Effect<void, StoreError, Services | Scope.Scope>) => void
  /** Let time pass for TTLs: `TestClock.adjust` for memory, a real sleep for Redis. */
  readonly advance: (duration: Duration.DurationInput) => Effect.Effect<void>
}

let runCounter = 0

const request = (
  fireTime: number,
  options: {
    readonly job?: string
    readonly slot?: Duration.Duration | undefined
    readonly lock?: Duration.Duration | undefined
    readonly nodeId?: string
    readonly term?: number
  } = {}
): JobStore.BeginRequest => ({
  ...(options.term === undefined ? {} : { term: options.term }),
  job: options.job ?? "sync_user",
  fireTime,
  runId: `run-${++runCounter}`,
  nodeId: options.nodeId ?? "node-1",
  slot: "slot" in options && options.slot === undefined ? Option.none() : Option.some({ ttl: options.slot ?? LONG }),
  lock: "lock" in options && options.lock === undefined
    ? Option.none()
    : Option.some({ key: options.job ?? "sync_user", ttl: options.lock ?? LONG }),
  statusTtl: LONG
})

/** A manual run: no slot claimed. */
const manual = (fireTime: number, job = "sync_user") => request(fireTime, { job, slot: undefined })

const record = (job: string, fireTime: number, outcome: Outcome = "success", fence = 1) =>
  new RunRecord({
    runId: `run-${++runCounter}`,
    job,
    kind: "scheduled",
    fireTime: new Date(fireTime),
    startedAt: new Date(fireTime + 3),
    finishedAt: new Date(fireTime + 50),
    durationMs: 47,
    node: "node-1",
    attempt: 1,
    fence,
    outcome,
    ...(outcome === "success" ? {} : { error: { tag: "SystemError", message: `failed with ${outcome}` } })
  })

const started = (result: JobStore.BeginResult) => {
  if (result._tag !== "Started") throw new Error(`expected Started, got Skipped(${result.reason})`)
  return result
}

const skipped = (result: JobStore.BeginResult) => result._tag === "Skipped" ? result.reason : "started"

const contract = ({ advance, test }: Backend) => {
  test("begin starts a run: a fence (a positive safe integer), our lock, status running", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const model = yield* JobLockModel.JobLockModel
      const run = started(yield* store.begin(request(T0)))
      assert.isTrue(Number.isSafeInteger(run.fence) && run.fence >= 1, `fence ${run.fence}`)
      assert.strictEqual(Option.getOrThrow(run.lock).key, "sync_user")
      assert.deepStrictEqual(yield* model.getJobStatus("sync_user"), Option.some("running"))
      // The lock is the JobLockModel's lock: nobody else can take it.
      assert.isTrue(Option.isNone(yield* model.acquireLock("sync_user", LONG)))
    }))

  test("fences strictly grow with every started run of a job, across scheduled and manual runs and terms", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const fences: Array<number> = []
      fences.push(started(yield* store.begin(request(T0, { lock: undefined }))).fence)
      assert.strictEqual(skipped(yield* store.begin(request(T0, { lock: undefined }))), "slot_taken")
      fences.push(started(yield* store.begin(manual(T0 + 500))).fence)
      fences.push(started(yield* store.begin(request(T0 + 1000, { lock: undefined, term: 7 }))).fence)
      fences.push(started(yield* store.begin(request(T0 + 2000, { lock: undefined, term: 3 }))).fence)
      // Another job's runs do not disturb this job's order.
      started(yield* store.begin(request(T0, { job: "archive_user" })))
      fences.push(started(yield* store.begin(request(T0 + 3000, { lock: undefined }))).fence)
      for (let i = 1; i < fences.length; i++) assert.isAbove(fences[i]!, fences[i - 1]!, `fences ${fences.join(", ")}`)
    }))

  test("a begin under a newer term takes over a lock held under an older term; the old holder lost it", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const model = yield* JobLockModel.JobLockModel
      const old = started(yield* store.begin(request(T0, { term: 5 })))
      const oldLock = Option.getOrThrow(old.lock)
      const next = started(yield* store.begin(request(T0 + 1000, { term: 9 })))
      assert.isAbove(next.fence, old.fence)
      const nextLock = Option.getOrThrow(next.lock)
      assert.notStrictEqual(nextLock.token, oldLock.token)
      // The old holder can neither renew nor release it; its late finish leaves the new lock alone.
      assert.isFalse(yield* store.renewLock(oldLock, LONG))
      assert.isFalse(yield* model.releaseLock(oldLock))
      yield* store.finish({
        record: record("sync_user", T0, "leadership_lost", old.fence),
        lock: old.lock,
        statusTtl: LONG,
        maxRecords: 5
      })
      assert.isTrue(yield* store.renewLock(nextLock, LONG))
      assert.strictEqual(skipped(yield* store.begin(request(T0 + 2000, { term: 9 }))), "lock_held")
    }))

  test("a lock held under the same or a newer term, or taken without a term, is not taken over", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const model = yield* JobLockModel.JobLockModel
      const held = started(yield* store.begin(request(T0, { term: 9 })))
      assert.strictEqual(skipped(yield* store.begin(request(T0 + 1000, { term: 9 }))), "lock_held")
      assert.strictEqual(skipped(yield* store.begin(request(T0 + 2000, { term: 4 }))), "lock_held")
      assert.strictEqual(skipped(yield* store.begin(request(T0 + 3000))), "lock_held")
      assert.strictEqual(skipped(yield* store.begin({ ...manual(T0 + 3500), term: 2 })), "lock_held")
      assert.isTrue(yield* store.renewLock(Option.getOrThrow(held.lock), LONG))
      yield* store.finish({ record: record("sync_user", T0), lock: held.lock, statusTtl: LONG, maxRecords: 5 })

      // A run begun without a term (a manual run on a node that does not lead) holds a lock no term takes over.
      const manualRun = started(yield* store.begin(manual(T0 + 4000)))
      assert.strictEqual(skipped(yield* store.begin(request(T0 + 5000, { term: 1_000_000 }))), "lock_held")
      yield* store.finish({
        record: record("sync_user", T0 + 4000),
        lock: manualRun.lock,
        statusTtl: LONG,
        maxRecords: 5
      })

      // Nor does a lock taken outside the scheduler (JobLockModel, or a Go service sharing the keys).
      const outside = Option.getOrThrow(yield* model.acquireLock("sync_user", LONG))
      assert.strictEqual(skipped(yield* store.begin(request(T0 + 6000, { term: 1_000_000 }))), "lock_held")
      assert.isTrue(yield* model.releaseLock(outside))
      assert.strictEqual(skipped(yield* store.begin(request(T0 + 7000, { term: 1_000_000 }))), "started")
    }))

  test("a manual run claims no slot and a run without lock holds none", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const model = yield* JobLockModel.JobLockModel
      const run = started(yield* store.begin({ ...manual(T0), lock: Option.none() }))
      assert.isTrue(Option.isNone(run.lock))
      assert.isTrue(Option.isSome(yield* model.acquireLock("sync_user", LONG)))
      // The same instant as a scheduled fire is still free.
      assert.strictEqual(skipped(yield* store.begin(request(T0, { lock: undefined }))), "started")
    }))

  test("a paused job is skipped with paused before its slot is claimed, and runs again after resume", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      yield* store.setPaused("sync_user", true)
      assert.strictEqual(skipped(yield* store.begin(request(T0))), "paused")
      assert.strictEqual(skipped(yield* store.begin(manual(T0 + 1))), "paused")
      yield* store.setPaused("sync_user", false)
      // The paused attempt claimed nothing: the same fire time runs now.
      started(yield* store.begin(request(T0)))
    }))

  test("pause state is per job and readable back", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      assert.isFalse(yield* store.isPaused("sync_user"))
      yield* store.setPaused("sync_user", true)
      yield* store.setPaused("sync_user", true)
      assert.isTrue(yield* store.isPaused("sync_user"))
      assert.isFalse(yield* store.isPaused("archive_user"))
      assert.strictEqual(skipped(yield* store.begin(request(T0, { job: "archive_user" }))), "started")
      yield* store.setPaused("sync_user", false)
      assert.isFalse(yield* store.isPaused("sync_user"))
      yield* store.setPaused("sync_user", false)
      assert.isFalse(yield* store.isPaused("sync_user"))
    }))

  test("a claimed slot is skipped with slot_taken before the lock is tried", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      started(yield* store.begin(request(T0, { nodeId: "node-1" })))
      // The lock is held too, but the slot answers first.
      assert.strictEqual(skipped(yield* store.begin(request(T0, { nodeId: "node-2" }))), "slot_taken")
    }))

  test("lock_held keeps the slot claimed: the fire time is not run later by anyone", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const model = yield* JobLockModel.JobLockModel
      const other = Option.getOrThrow(yield* model.acquireLock("sync_user", LONG))
      assert.strictEqual(skipped(yield* store.begin(request(T0))), "lock_held")
      assert.isTrue(yield* model.releaseLock(other))
      assert.strictEqual(skipped(yield* store.begin(request(T0))), "slot_taken")
      // A later fire time is free.
      started(yield* store.begin(request(T0 + 1000)))
    }))

  test("a slot claim lapses after its TTL", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      started(yield* store.begin(request(T0, { slot: SHORT, lock: undefined })))
      assert.strictEqual(skipped(yield* store.begin(request(T0, { lock: undefined }))), "slot_taken")
      yield* advance(PAST_SHORT)
      started(yield* store.begin(request(T0, { lock: undefined })))
    }))

  test("lastFireTime is the newest claimed fire time, untouched by manual runs, paused and taken fires", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const model = yield* JobLockModel.JobLockModel
      assert.isTrue(Option.isNone(yield* store.lastFireTime("sync_user")))
      started(yield* store.begin(request(T0 + 2000, { lock: undefined })))
      assert.deepStrictEqual(yield* store.lastFireTime("sync_user"), Option.some(T0 + 2000))
      // An older fire claimed late does not move it back.
      started(yield* store.begin(request(T0 + 1000, { lock: undefined })))
      assert.deepStrictEqual(yield* store.lastFireTime("sync_user"), Option.some(T0 + 2000))
      // Manual runs are not fires.
      started(yield* store.begin({ ...manual(T0 + 9000), lock: Option.none() }))
      assert.deepStrictEqual(yield* store.lastFireTime("sync_user"), Option.some(T0 + 2000))
      // A paused fire claims nothing.
      yield* store.setPaused("sync_user", true)
      assert.strictEqual(skipped(yield* store.begin(request(T0 + 3000))), "paused")
      yield* store.setPaused("sync_user", false)
      assert.deepStrictEqual(yield* store.lastFireTime("sync_user"), Option.some(T0 + 2000))
      // A fire skipped for lock_held was claimed, so it counts.
      const other = Option.getOrThrow(yield* model.acquireLock("sync_user", LONG))
      assert.strictEqual(skipped(yield* store.begin(request(T0 + 4000))), "lock_held")
      assert.deepStrictEqual(yield* store.lastFireTime("sync_user"), Option.some(T0 + 4000))
      yield* model.releaseLock(other)
      assert.isTrue(Option.isNone(yield* store.lastFireTime("archive_user")))
    }))

  test("finish releases our lock, writes the outcome as status and appends the record", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const model = yield* JobLockModel.JobLockModel
      const run = started(yield* store.begin(request(T0)))
      const done = record("sync_user", T0, "business_error", run.fence)
      yield* store.finish({ record: done, lock: run.lock, statusTtl: LONG, maxRecords: 10 })
      assert.deepStrictEqual(yield* model.getJobStatus("sync_user"), Option.some("business_error"))
      expect(yield* store.recentRuns("sync_user", 10)).toEqual([done])
      assert.isTrue(Option.isSome(yield* model.acquireLock("sync_user", LONG)))
    }))

  test("finish does not release a lock another owner took after ours lapsed, and still records the run", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const model = yield* JobLockModel.JobLockModel
      const run = started(yield* store.begin(request(T0, { lock: SHORT })))
      yield* advance(PAST_SHORT)
      const other = Option.getOrThrow(yield* model.acquireLock("sync_user", LONG))
      assert.isFalse(yield* store.renewLock(Option.getOrThrow(run.lock), LONG))
      const done = record("sync_user", T0, "lock_lost", run.fence)
      yield* store.finish({ record: done, lock: run.lock, statusTtl: LONG, maxRecords: 10 })
      assert.isTrue(Option.isNone(yield* model.acquireLock("sync_user", LONG)))
      assert.isTrue(yield* model.releaseLock(other))
      expect(yield* store.recentRuns("sync_user", 10)).toEqual([done])
      assert.deepStrictEqual(yield* model.getJobStatus("sync_user"), Option.some("lock_lost"))
    }))

  test("renewLock extends our lock past its first TTL", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const run = started(yield* store.begin(request(T0, { lock: SHORT })))
      assert.isTrue(yield* store.renewLock(Option.getOrThrow(run.lock), LONG))
      yield* advance(PAST_SHORT)
      assert.strictEqual(skipped(yield* store.begin(request(T0 + 1000))), "lock_held")
    }))

  test("a finished status expires after its TTL", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const model = yield* JobLockModel.JobLockModel
      const run = started(yield* store.begin(request(T0)))
      yield* store.finish({ record: record("sync_user", T0), lock: run.lock, statusTtl: SHORT, maxRecords: 10 })
      assert.deepStrictEqual(yield* model.getJobStatus("sync_user"), Option.some("success"))
      yield* advance(PAST_SHORT)
      assert.isTrue(Option.isNone(yield* model.getJobStatus("sync_user")))
    }))

  test("recentRuns is newest first, capped at maxRecords, limited by its argument, and per job", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const records = [1, 2, 3, 4, 5].map((i) => record("sync_user", T0 + i * 1000))
      for (const done of records) {
        yield* store.finish({ record: done, lock: Option.none(), statusTtl: LONG, maxRecords: 3 })
      }
      const other = record("archive_user", T0)
      yield* store.finish({ record: other, lock: Option.none(), statusTtl: LONG, maxRecords: 3 })
      expect(yield* store.recentRuns("sync_user", 10)).toEqual([records[4], records[3], records[2]])
      expect(yield* store.recentRuns("sync_user", 2)).toEqual([records[4], records[3]])
      expect(yield* store.recentRuns("sync_user", 0)).toEqual([])
      expect(yield* store.recentRuns("archive_user", 10)).toEqual([other])
      expect(yield* store.recentRuns("nobody", 10)).toEqual([])
    }))

  test("a record round-trips every field, including an optional error", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const failed = new RunRecord({
        runId: "r-1",
        job: "sync_user",
        kind: "manual",
        fireTime: new Date(T0),
        startedAt: new Date(T0 + 1),
        finishedAt: new Date(T0 + 1001),
        durationMs: 1000,
        node: "node-7",
        attempt: 3,
        fence: 42,
        outcome: "system_error",
        error: { tag: "SystemError", code: "DB_DOWN", message: "db down" }
      })
      yield* store.finish({ record: failed, lock: Option.none(), statusTtl: LONG, maxRecords: 5 })
      const [read] = yield* store.recentRuns("sync_user", 1)
      assert.instanceOf(read, RunRecord)
      expect(read).toEqual(failed)
    }))
  test("beginMany answers each request as begin would, in order, requests of one batch seeing each other", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      assert.isDefined(store.beginMany, "the backend implements beginMany itself")
      yield* store.setPaused("paused_job", true)
      started(yield* store.begin(manual(T0, "busy")))
      const results = yield* store.beginMany!([
        request(T0 + 1000),
        request(T0 + 1000, { nodeId: "node-2" }),
        request(T0 + 1000, { job: "paused_job" }),
        request(T0 + 1000, { job: "busy" }),
        manual(T0 + 1500, "other")
      ])
      const answers = results.map((result) => Either.isRight(result) ? skipped(result.right) : "error")
      assert.deepStrictEqual(answers, ["started", "slot_taken", "paused", "lock_held", "started"])
      const first = started(Either.getOrThrow(results[0]!))
      assert.strictEqual(Option.getOrThrow(first.lock).key, "sync_user")
      const other = started(Either.getOrThrow(results[4]!))

      // finishMany releases each lock and records each run.
      assert.isDefined(store.finishMany, "the backend implements finishMany itself")
      const finished = yield* store.finishMany!([
        { record: record("sync_user", T0 + 1000), lock: first.lock, statusTtl: LONG, maxRecords: 5 },
        { record: record("other", T0 + 1500, "business_error"), lock: other.lock, statusTtl: LONG, maxRecords: 5 }
      ])
      assert.deepStrictEqual(finished.map(Either.isRight), [true, true])
      const model = yield* JobLockModel.JobLockModel
      assert.deepStrictEqual(yield* model.getJobStatus("other"), Option.some("business_error"))
      assert.strictEqual((yield* store.recentRuns("sync_user", 5)).length, 1)
      // Both locks are free again.
      started(yield* store.begin(manual(T0 + 2000)))
      started(yield* store.begin(manual(T0 + 2000, "other")))
      assert.deepStrictEqual(yield* store.beginMany!([]), [])
    }))
}

describe("JobStore contract: memory", () => {
  contract({
    test: (name, body) => it.scoped(name, () => Effect.provide(body(), JobStore.layerMemory)),
    advance: (duration) => TestClock.adjust(duration)
  })

  it.scoped("memory fences count from 1 per job for the life of the state; skips consume none", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const fences: Array<number> = []
      fences.push(started(yield* store.begin(request(T0, { lock: undefined }))).fence)
      assert.strictEqual(skipped(yield* store.begin(request(T0, { lock: undefined }))), "slot_taken")
      fences.push(started(yield* store.begin({ ...manual(T0 + 500), lock: Option.none() })).fence)
      fences.push(started(yield* store.begin(request(T0 + 1000, { term: 4 }))).fence)
      assert.strictEqual(skipped(yield* store.begin(request(T0 + 2000, { term: 4 }))), "lock_held")
      fences.push(started(yield* store.begin(request(T0 + 3000, { term: 5 }))).fence)
      assert.deepStrictEqual(fences, [1, 2, 3, 4])
      assert.strictEqual(started(yield* store.begin(request(T0, { job: "archive_user" }))).fence, 1)
      assert.isUndefined(store.checkEpoch, "a memory store cannot lose its data without the process")
    }).pipe(Effect.provide(JobStore.layerMemory)))
})

/** The data-loss counter's value for `reason` (the metric is process-wide: tests compare before and after). */
const dataLossCount = (reason: string) =>
  Metric.value(Metric.tagged(Metric.tagged(Metrics.storeDataLoss, "backend", "redis"), "reason", reason)).pipe(
    Effect.map((state) => state.count)
  )

/** Collects the ERROR lines logged while `effect` runs. */
const errorLines = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<{ readonly message: string; readonly annotations: Record<string, unknown> }> = []
    const logger = Logger.make(({ annotations, logLevel, message }) => {
      if (logLevel._tag !== "Error") return
      lines.push({
        message: String(Array.isArray(message) ? message[0] : message),
        annotations: Object.fromEntries(HashMap.toEntries(annotations))
      })
    })
    const value = yield* Effect.provide(effect, Logger.replace(Logger.defaultLogger, logger))
    return { value, lines }
  })

/** The Redis store (and lock model, and the raw client) over a fresh connection and a prefix no other test uses. */
const redisStore = (url: string, keyPrefix: string) =>
  JobStoreRedis.layer.pipe(Layer.provideMerge(Redis.layer({ url, keyPrefix })))

/** A store and its raw client on the test server, under `prefix`, for the Redis-only tests. */
const redisFixture = (prefix: string) =>
  Effect.gen(function*() {
    const server = yield* TestRedis
    const context = yield* Layer.build(redisStore(server.url, prefix))
    return {
      store: Context.get(context, JobStore.JobStore),
      client: Context.get(context, Redis.RedisClient).client
    }
  })

layer(TestRedis.layer, { excludeTestServices: true, timeout: Duration.seconds(30) })(
  "JobStore contract: redis",
  (it) => {
    contract({
      test: (name, body) =>
        it.scoped(
          name,
          () => Effect.flatMap(TestRedis, (server) => Effect.provide(body(), redisStore(server.url, uniquePrefix())))
        ),
      advance: (duration) => Effect.sleep(duration)
    })

    it.scoped("begin writes the documented keys: tick, last, lock, fence, status, epoch", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix("user")
        const { client, store } = yield* redisFixture(prefix)
        const run = started(yield* store.begin(request(T0, { nodeId: "node-9" })))
        const get = (key: string) => Effect.promise(() => client.get(`${prefix}:job:${key}`))
        expect(yield* get(`tick:sync_user:${T0}`)).toBe("node-9")
        expect(yield* get("last:sync_user")).toBe(String(T0))
        expect(yield* get("lock:sync_user")).toBe(Option.getOrThrow(run.lock).token)
        expect(yield* get("fence:sync_user")).toBe(String(run.fence))
        expect(yield* get("epoch")).toMatch(/^\d{4}-\d\d-\d\dT[0-9:.]+Z [0-9a-f]{16}$/)
        expect(yield* get("status:sync_user")).toBe("running")
        const tickTtl = yield* Effect.promise(() => client.pttl(`${prefix}:job:tick:sync_user:${T0}`))
        assert.isTrue(tickTtl > 0 && tickTtl <= Duration.toMillis(LONG), `tick TTL ${tickTtl}`)
        yield* store.setPaused("sync_user", true)
        expect(yield* Effect.promise(() => client.exists(`${prefix}:job:paused:sync_user`))).toBe(1)
        yield* store.finish({ record: record("sync_user", T0), lock: run.lock, statusTtl: LONG, maxRecords: 5 })
        expect(yield* Effect.promise(() => client.llen(`${prefix}:job:runs:sync_user`))).toBe(1)
        expect(yield* get("lock:sync_user")).toBeNull()
      }))

    it.scoped("fences are the server clock in microseconds (or more), strictly growing", () =>
      Effect.gen(function*() {
        const { store } = yield* redisFixture(uniquePrefix())
        const before = Date.now() * 1000
        const fences: Array<number> = []
        for (let i = 0; i < 5; i++) {
          fences.push(started(yield* store.begin({ ...manual(T0 + i, "fast"), lock: Option.none() })).fence)
        }
        const after = Date.now() * 1000
        // The test process and redis-server share this host's clock; 5 s of slack for a loaded machine.
        const within = fences[0]! >= before - 5_000_000 && fences[4]! <= after + 5_000_000
        assert.isTrue(within, `fences ${fences.join(", ")}`)
        for (let i = 1; i < fences.length; i++) assert.isAbove(fences[i]!, fences[i - 1]!)
      }))

    it.scoped("a fence counter ahead of the clock goes on by +1; past 2^53 - 1 begin fails and writes nothing", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const { client, store } = yield* redisFixture(prefix)
        const ahead = Date.now() * 1000 + 3_600_000_000
        yield* Effect.promise(() => client.set(`${prefix}:job:fence:sync_user`, String(ahead)))
        assert.strictEqual(started(yield* store.begin(request(T0, { lock: undefined }))).fence, ahead + 1)
        assert.strictEqual(yield* Effect.promise(() => client.get(`${prefix}:job:fence:sync_user`)), String(ahead + 1))

        yield* Effect.promise(() => client.set(`${prefix}:job:fence:sync_user`, String(JobStoreRedis.maxFence)))
        const failed = yield* Effect.either(store.begin(request(T0 + 1000)))
        assert.isTrue(Either.isLeft(failed) && failed.left.reason.includes("2^53 - 1"), String(failed))
        // Nothing was claimed, taken or counted: the fire time is still free, the lock too.
        expect(yield* Effect.promise(() => client.exists(`${prefix}:job:tick:sync_user:${T0 + 1000}`))).toBe(0)
        expect(yield* Effect.promise(() => client.exists(`${prefix}:job:lock:sync_user`))).toBe(0)
        expect(yield* Effect.promise(() => client.get(`${prefix}:job:fence:sync_user`))).toBe(
          String(JobStoreRedis.maxFence)
        )
      }))

    it.scoped("a lock taken under a term carries it in its token: term:{term}:{random}", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const { client, store } = yield* redisFixture(prefix)
        const run = started(yield* store.begin(request(T0, { term: 4242 })))
        const value = yield* Effect.promise(() => client.get(`${prefix}:job:lock:sync_user`))
        expect(value).toBe(Option.getOrThrow(run.lock).token)
        // 128 random bits drawn once per script call, then the row's number in the call.
        expect(value).toMatch(/^term:4242:[0-9a-f]{32}[0-9a-z]+$/)
        // A foreign value that merely looks alike but names no number is never taken over.
        yield* Effect.promise(() => client.set(`${prefix}:job:lock:other`, "term:x:go-service", "PX", 30_000))
        assert.strictEqual(skipped(yield* store.begin(request(T0, { job: "other", term: 10 ** 12 }))), "lock_held")
      }))

    it.scoped("FLUSHALL: the next begin notices the new epoch (ERROR + metric); its fence beats all before", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const { client, store } = yield* redisFixture(prefix)
        const fences: Array<number> = []
        for (let i = 0; i < 3; i++) {
          fences.push(started(yield* store.begin(request(T0 + i * 1000, { lock: undefined }))).fence)
        }
        const epoch = yield* Effect.promise(() => client.get(`${prefix}:job:epoch`))
        assert.isString(epoch)
        const counted = yield* dataLossCount("marker")
        yield* Effect.promise(() => client.flushall())
        const { lines, value } = yield* errorLines(store.begin(request(T0 + 5000, { lock: undefined })))
        assert.isAbove(started(value).fence, Math.max(...fences))
        expect(lines.map((line) => line.annotations.reason)).toEqual(["marker"])
        expect(lines[0]!.annotations.previous_epoch).toBe(epoch)
        expect(yield* dataLossCount("marker")).toBe(counted + 1)
        // Noticed once: the new marker is the one known from now on.
        const again = yield* errorLines(store.begin(request(T0 + 6000, { lock: undefined })))
        expect(again.lines).toEqual([])
        expect(yield* dataLossCount("marker")).toBe(counted + 1)
      }))

    it.scoped("a fence counter found behind a fence already given (a lagging replica) is noticed and overtaken", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const { client, store } = yield* redisFixture(prefix)
        // Make the counter run ahead of the clock, then "fail over" to a copy that lags by two runs.
        const ahead = Date.now() * 1000 + 3_600_000_000
        yield* Effect.promise(() => client.set(`${prefix}:job:fence:sync_user`, String(ahead)))
        const given: Array<number> = []
        for (let i = 0; i < 3; i++) {
          given.push(started(yield* store.begin(request(T0 + i * 1000, { lock: undefined }))).fence)
        }
        assert.deepStrictEqual(given, [ahead + 1, ahead + 2, ahead + 3])
        yield* Effect.promise(() => client.set(`${prefix}:job:fence:sync_user`, String(ahead + 1)))
        const counted = yield* dataLossCount("fence_rollback")
        const { lines, value } = yield* errorLines(store.begin(request(T0 + 5000, { lock: undefined })))
        assert.strictEqual(started(value).fence, ahead + 4)
        expect(lines.map((line) => line.annotations.reason)).toEqual(["fence_rollback"])
        expect(yield* dataLossCount("fence_rollback")).toBe(counted + 1)
      }))

    it.scoped("checkEpoch notices a marker that changed while nothing ran, and writes one when missing", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const { client, store } = yield* redisFixture(prefix)
        // The layer read (and here wrote) the marker when it was built.
        const epoch = yield* Effect.promise(() => client.get(`${prefix}:job:epoch`))
        assert.isString(epoch)
        const quiet = yield* errorLines(store.checkEpoch!)
        expect(quiet.lines).toEqual([])
        yield* Effect.promise(() => client.del(`${prefix}:job:epoch`))
        const counted = yield* dataLossCount("marker")
        const { lines } = yield* errorLines(store.checkEpoch!)
        expect(lines.map((line) => line.annotations.reason)).toEqual(["marker"])
        expect(yield* dataLossCount("marker")).toBe(counted + 1)
        const fresh = yield* Effect.promise(() => client.get(`${prefix}:job:epoch`))
        assert.isString(fresh)
        assert.notStrictEqual(fresh, epoch)
      }))

    it.scoped("recentRuns skips a corrupt entry with a warning instead of failing", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const { client, store } = yield* redisFixture(prefix)
        const good = record("sync_user", T0)
        yield* store.finish({ record: good, lock: Option.none(), statusTtl: LONG, maxRecords: 5 })
        yield* Effect.promise(() => client.lpush(`${prefix}:job:runs:sync_user`, "{not json", "{\"runId\":1}"))
        expect(yield* store.recentRuns("sync_user", 10)).toEqual([good])
      }))

    it.scoped("begin and finish are one Redis command each (one round trip per step)", () =>
      Effect.gen(function*() {
        const { client, store } = yield* redisFixture(uniquePrefix())
        // Warm up: the first use of each script loads it (EVALSHA -> NOSCRIPT -> EVAL).
        const warm = started(yield* store.begin(request(T0)))
        yield* store.finish({ record: record("sync_user", T0), lock: warm.lock, statusTtl: LONG, maxRecords: 5 })

        const sent: Array<string> = []
        const original = client.sendCommand.bind(client)
        client.sendCommand = (command, stream) => {
          sent.push(command.name)
          return original(command, stream)
        }
        const run = started(yield* store.begin(request(T0 + 1000)))
        assert.deepStrictEqual(sent, ["evalsha"])
        yield* store.finish({ record: record("sync_user", T0 + 1000), lock: run.lock, statusTtl: LONG, maxRecords: 5 })
        assert.deepStrictEqual(sent, ["evalsha", "evalsha"])
        client.sendCommand = original
      }))

    it.scoped("beginMany and finishMany send one script call per 1,000 requests, in one pipeline, and load their scripts again after SCRIPT FLUSH", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const { client, store } = yield* redisFixture(prefix)
        yield* Effect.promise(() => client.script("FLUSH"))
        const sent: Array<string> = []
        const original = client.sendCommand.bind(client)
        client.sendCommand = (command, stream) => {
          sent.push(command.name)
          return original(command, stream)
        }
        let pipelines = 0
        const pipeline = client.pipeline.bind(client)
        client.pipeline = ((...args: Parameters<typeof client.pipeline>) => {
          pipelines++
          return pipeline(...args)
        }) as typeof client.pipeline
        const jobs = Array.from({ length: 2500 }, (_, i) => `job-${i}`)
        const results = yield* store.beginMany!(jobs.map((job) => request(T0, { job })))
        // Unknown script: one EVALSHA per 1,000 requests, NOSCRIPT for each, then EVAL for each: two pipelines.
        assert.deepStrictEqual(sent, ["evalsha", "evalsha", "evalsha", "eval", "eval", "eval"])
        assert.strictEqual(pipelines, 2)
        const runs = results.map((result) => started(Either.getOrThrow(result)))
        // Each request got its own lock token, and each job its status and lock keys.
        assert.strictEqual(new Set(runs.map((run) => Option.getOrThrow(run.lock).token)).size, jobs.length)
        assert.strictEqual(
          yield* Effect.promise(() => client.get(`${prefix}:job:lock:job-2499`)),
          Option.getOrThrow(runs[2499]!.lock).token
        )
        sent.length = 0
        const finished = yield* store.finishMany!(
          jobs.map((job, i) => ({ record: record(job, T0), lock: runs[i]!.lock, statusTtl: LONG, maxRecords: 5 }))
        )
        assert.deepStrictEqual(finished.filter(Either.isRight).length, jobs.length)
        assert.deepStrictEqual(sent, ["evalsha", "evalsha", "evalsha", "eval", "eval", "eval"])
        expect(yield* Effect.promise(() => client.exists(`${prefix}:job:lock:job-1500`))).toBe(0)
        expect(yield* Effect.promise(() => client.llen(`${prefix}:job:runs:job-1500`))).toBe(1)
        sent.length = 0
        // Known now: one EVALSHA per 1,000 requests, in one pipeline.
        const again = yield* store.beginMany!(jobs.map((job) => request(T0 + 1000, { job })))
        assert.strictEqual(
          again.filter((result) => Either.isRight(result) && result.right._tag === "Started").length,
          2500
        )
        assert.deepStrictEqual(sent, ["evalsha", "evalsha", "evalsha"])
        assert.strictEqual(pipelines, 5)
        // A batch of up to 1,000 is one command, without a pipeline.
        sent.length = 0
        yield* store.beginMany!(jobs.slice(0, 3).map((job) => request(T0 + 2000, { job })))
        assert.deepStrictEqual(sent, ["evalsha"])
        assert.strictEqual(pipelines, 5)
        client.sendCommand = original
        client.pipeline = pipeline
      }))

    it.scoped("a request of a batch that meets a key of the wrong type fails alone; the others are answered", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const { client, store } = yield* redisFixture(prefix)
        yield* Effect.promise(() => client.hset(`${prefix}:job:fence:b`, "not", "a counter"))
        const results = yield* store.beginMany!(["a", "b", "c"].map((job) => request(T0, { job })))
        assert.deepStrictEqual(
          results.map((result) => Either.isLeft(result) ? result.left._tag : skipped(result.right)),
          [
            "started",
            "StoreError",
            "started"
          ]
        )
        assert.isTrue(Either.isLeft(results[1]!) && results[1].left.reason.includes("WRONGTYPE"), String(results[1]))
        const runs = [results[0]!, results[2]!].map((result) => started(Either.getOrThrow(result)))
        yield* Effect.promise(() => client.set(`${prefix}:job:status:b`, "x"))
        yield* Effect.promise(() => client.hset(`${prefix}:job:runs:b`, "not", "a list"))
        const finished = yield* store.finishMany!([
          { record: record("a", T0), lock: runs[0]!.lock, statusTtl: LONG, maxRecords: 5 },
          { record: record("b", T0), lock: Option.none(), statusTtl: LONG, maxRecords: 5 },
          { record: record("c", T0), lock: runs[1]!.lock, statusTtl: LONG, maxRecords: 5 }
        ])
        assert.deepStrictEqual(finished.map((result) => Either.isLeft(result) ? result.left._tag : "ok"), [
          "ok",
          "StoreError",
          "ok"
        ])
        expect(yield* Effect.promise(() => client.llen(`${prefix}:job:runs:c`))).toBe(1)
        expect(yield* Effect.promise(() => client.exists(`${prefix}:job:lock:c`))).toBe(0)
      }))

    it.scoped("rows repeat no field equal to the row before, and names that begin with = keep their keys", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const { client, store } = yield* redisFixture(prefix)
        const jobs = ["=", "==", "=x", "x", "="]
        const results = yield* store.beginMany!([
          ...jobs.slice(0, 4).map((job) => request(T0, { job })),
          // The same job and fire time as the first row: its slot is taken.
          request(T0, { job: "=", nodeId: "node-2" })
        ])
        assert.deepStrictEqual(results.map((result) => skipped(Either.getOrThrow(result))), [
          "started",
          "started",
          "started",
          "started",
          "slot_taken"
        ])
        for (const job of ["=", "==", "=x", "x"]) {
          expect(yield* Effect.promise(() => client.get(`${prefix}:job:status:${job}`))).toBe("running")
          expect(yield* Effect.promise(() => client.get(`${prefix}:job:tick:${job}:${T0}`))).toBe("node-1")
          expect(yield* Effect.promise(() => client.get(`${prefix}:job:last:${job}`))).toBe(String(T0))
        }
        expect(yield* Effect.promise(() => client.keys(`${prefix}:job:status:*`))).toHaveLength(4)
      }))

    it.scoped("rows keep values with ':', digits, empty parts and characters of several bytes, in begin and finish", () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const { client, store } = yield* redisFixture(prefix)
        // Names and node ids that look like the packed rows' own syntax, and text of several UTF-8 bytes a character.
        const jobs = ["12:a", "a:3:b", "ü-job", "日本:1"]
        const nodes = ["nøde:1", "2:", "node-1", "💥"]
        const results = yield* store.beginMany!(jobs.map((job, i) => request(T0, { job, nodeId: nodes[i]! })))
        const runs = results.map((result) => started(Either.getOrThrow(result)))
        for (const [i, job] of jobs.entries()) {
          expect(yield* Effect.promise(() => client.get(`${prefix}:job:tick:${job}:${T0}`))).toBe(nodes[i])
          expect(yield* Effect.promise(() => client.get(`${prefix}:job:lock:${job}`))).toBe(runs[i]!.lock.pipe(
            Option.map((lock) => lock.token),
            Option.getOrNull
          ))
        }
        const failed = (job: string, message: string) =>
          new RunRecord({ ...record(job, T0, "system_error"), error: { tag: "SystemError", message } })
        const records = [
          failed(jobs[0]!, "¡falló! 💥 3:x"),
          record(jobs[1]!, T0),
          failed(jobs[2]!, ""),
          failed(jobs[3]!, "=")
        ]
        const finished = yield* store.finishMany!(
          records.map((r, i) => ({ record: r, lock: runs[i]!.lock, statusTtl: LONG, maxRecords: 5 }))
        )
        expect(finished.map(Either.isRight)).toEqual([true, true, true, true])
        for (const [i, job] of jobs.entries()) {
          expect(yield* store.recentRuns(job, 5)).toEqual([records[i]])
          expect(yield* Effect.promise(() => client.exists(`${prefix}:job:lock:${job}`))).toBe(0)
          expect(yield* Effect.promise(() => client.get(`${prefix}:job:status:${job}`))).toBe(records[i]!.outcome)
        }
      }))

    it.scoped("beginMany on a stopped connection answers every request with a StoreError", () =>
      Effect.gen(function*() {
        const { client, store } = yield* redisFixture(uniquePrefix())
        client.disconnect()
        const results = yield* store.beginMany!([request(T0), request(T0, { job: "b" })])
        assert.deepStrictEqual(results.map((result) => Either.isLeft(result) ? result.left._tag : "ok"), [
          "StoreError",
          "StoreError"
        ])
      }))
  }
)
