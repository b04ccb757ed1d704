/**
 * The scheduler passes its leadership term to the store (on TestClock, memory store, hand-driven leadership): a run
 * begun while leading carries the term and takes over a lock left by an older term (a crashed leader), a manual run
 * on a node that does not lead carries none, and the store's data-loss check runs when the node starts leading.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Layer, Option, TestClock } from "effect"
import * as Job from "../src/Job.js"
import * as JobStore from "../src/JobStore.js"
import * as LeaderElection from "../src/LeaderElection.js"
import * as Scheduler from "../src/Scheduler.js"

const T0 = Date.parse("2026-05-01T00:00:00Z")

const request = (fireTime: number, term?: number): JobStore.BeginRequest => ({
  job: "work",
  fireTime,
  runId: `outside-${fireTime}`,
  nodeId: "node-old",
  slot: Option.none(),
  lock: Option.some({ key: "work", ttl: Duration.minutes(10) }),
  ...(term === undefined ? {} : { term }),
  statusTtl: Duration.minutes(10)
})

const start = (jobs: ReadonlyArray<Job.Job<never>>) =>
  Effect.gen(function*() {
    const scheduler = yield* Scheduler.make(jobs, { shutdownGrace: 0 })
    yield* TestClock.adjust(0)
    return scheduler
  })

describe("Scheduler: leadership terms on the run path", () => {
  it.scoped("a fire while leading under term 7 takes over a lock an older term (3) left; not one of term 9", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const store = yield* JobStore.JobStore
      // A run of a dead leader (term 3) holds the lock for ten minutes.
      const dead = yield* store.begin(request(T0 - 500, 3))
      assert.strictEqual(dead._tag, "Started")
      const scheduler = yield* start([
        Job.unsafeMake({ name: "work", every: "1 second", fixedRate: true, handler: Effect.void })
      ])
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("10 millis")
      expect((yield* scheduler.runs("work")).map((run) => run.outcome)).toEqual(["success"])

      // A lock of a newer term (9: a newer leader, as seen by this stale one) is respected.
      const newer = yield* store.begin(request(T0 + 1500, 9))
      assert.strictEqual(newer._tag, "Started")
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("10 millis")
      expect((yield* scheduler.runs("work")).map((run) => run.outcome)).toEqual(["success"])
      const status = yield* scheduler.jobStatus("work")
      assert.strictEqual(status.counters.skips, 1)
    }).pipe(
      Effect.provide(Layer.merge(JobStore.layerMemory, LeaderElection.layerManual("node-a", LeaderElection.leader(7))))
    ))

  it.scoped("a manual run on a node that does not lead takes its lock without a term: no leader takes it over", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const store = yield* JobStore.JobStore
      const release = yield* Deferred.make<void>()
      const scheduler = yield* start([
        Job.unsafeMake({ name: "work", cron: "0 0 0 1 1 *", handler: Deferred.await(release) })
      ])
      const result = yield* scheduler.trigger("work")
      assert.strictEqual(result._tag, "Started")
      assert.deepStrictEqual(yield* store.begin(request(T0 + 1, 1_000_000)), { _tag: "Skipped", reason: "lock_held" })
      yield* Deferred.succeed(release, undefined)
      yield* TestClock.adjust("10 millis")
      expect((yield* scheduler.runs("work")).map((run) => run.outcome)).toEqual(["success"])
    }).pipe(
      Effect.provide(Layer.merge(JobStore.layerMemory, LeaderElection.layerManual("node-a", LeaderElection.follower())))
    ))

  it.scoped("the store's epoch check runs when the node starts leading", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      let checks = 0
      const memory = yield* Effect.provide(JobStore.JobStore, JobStore.layerMemory)
      const store: JobStore.JobStore["Type"] = { ...memory, checkEpoch: Effect.sync(() => void checks++) }
      const manual = yield* LeaderElection.ManualLeadership
      yield* start([Job.unsafeMake({ name: "work", every: "1 hour", handler: Effect.void })]).pipe(
        Effect.provideService(JobStore.JobStore, store)
      )
      assert.strictEqual(checks, 0)
      yield* manual.set(LeaderElection.leader(4))
      yield* TestClock.adjust(0)
      assert.strictEqual(checks, 1)
      yield* manual.set(LeaderElection.follower())
      yield* manual.set(LeaderElection.leader(8))
      yield* TestClock.adjust(0)
      assert.strictEqual(checks, 2)
    }).pipe(Effect.provide(LeaderElection.layerManual("node-a", LeaderElection.follower()))))
})
