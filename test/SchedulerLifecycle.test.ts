import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Fiber, Layer, Logger, Option, TestClock } from "effect"
import * as Job from "../src/Job.js"
import { JobLockModel } from "../src/JobLockModel.js"
import * as JobStore from "../src/JobStore.js"
import * as LeaderElection from "../src/LeaderElection.js"
import { RunContext } from "../src/Run.js"
import * as Scheduler from "../src/Scheduler.js"

// The run lifecycle where shutdown, timeouts and `replace` fires meet: which run begins, and which reason a run
// that was interrupted twice is recorded with.

const at = (text: string) => Date.parse(text)
const t0 = at("2026-05-01T00:00:00Z")
const seconds = (ms: number) => (ms - t0) / 1000

/** Handler starts, as (fire time, start time) in seconds from t0. */
const recorder = () => {
  const starts: Array<readonly [number, number]> = []
  const record = (body: Effect.Effect<void>) =>
    Effect.gen(function*() {
      const run = yield* RunContext
      starts.push([seconds(run.fireTime.getTime()), seconds(yield* Clock.currentTimeMillis)])
      yield* body
    })
  return { starts, record }
}

/** A handler that runs until interrupted, then takes `cleanup` to stop (its finalizer cannot be cut short). */
const untilInterrupted = (cleanup: Duration.DurationInput) =>
  Effect.never.pipe(Effect.onInterrupt(() => Effect.sleep(cleanup)))

const advance = (total: Duration.DurationInput, step: Duration.DurationInput = "500 millis") =>
  Effect.gen(function*() {
    const totalMs = Duration.toMillis(total)
    const stepMs = Duration.toMillis(step)
    for (let done = 0; done < totalMs; done += stepMs) yield* TestClock.adjust(Math.min(stepMs, totalMs - done))
  })

const TestLayers = Layer.mergeAll(
  JobStore.layerMemory,
  LeaderElection.layerManual("node-a"),
  Logger.remove(Logger.defaultLogger)
)

describe("Scheduler: run lifecycle", () => {
  it.scoped("a replace fire whose replaced run ends after shutdown has begun begins no replacement run", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(t0)
      const { record, starts } = recorder()
      const store = yield* JobStore.JobStore
      let closedAt: number | undefined = undefined
      const fiber = yield* Effect.fork(
        Effect.scoped(Effect.gen(function*() {
          yield* Scheduler.make([
            Job.unsafeMake({
              name: "replaced",
              every: "10 seconds",
              fixedRate: true,
              overlap: "replace",
              handler: record(untilInterrupted("5 seconds"))
            })
          ], { shutdownGrace: "30 seconds" })
          // The run of 10 s is replaced at 20 s and takes until 25 s to stop; the scope closes at 22 s, in between.
          yield* Effect.sleep("22 seconds")
        })).pipe(Effect.ensuring(Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => (closedAt = now)))))
      )
      yield* advance("70 seconds")
      yield* Fiber.join(fiber)
      // Only the run of 10 s ever started: the replacement for 20 s was due to begin during the shutdown.
      expect(starts).toEqual([[10, 10]])
      const list = yield* store.recentRuns("replaced", 10)
      expect(list.map((r) => [seconds(r.fireTime.getTime()), r.outcome])).toEqual([[10, "interrupted"]])
      // Shutdown waited for the replaced run only (it stopped at 25 s), not for a replacement's grace.
      expect(closedAt === undefined ? undefined : seconds(closedAt)).toBe(25)
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("a run ended by its timeout is recorded timeout even when a replace fire comes while it stops", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(t0)
      const { record, starts } = recorder()
      const store = yield* JobStore.JobStore
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        yield* Scheduler.make([
          Job.unsafeMake({
            name: "slow",
            every: "10 seconds",
            fixedRate: true,
            overlap: "replace",
            timeout: "5 seconds",
            // The run of 10 s times out at 15 s and takes until 23 s to stop: the fire of 20 s comes in between.
            handler: record(untilInterrupted("8 seconds"))
          })
        ], { shutdownGrace: 0 })
        yield* Effect.sleep("25 seconds")
      })))
      yield* advance("40 seconds")
      yield* Fiber.join(fiber)
      const list = yield* store.recentRuns("slow", 10)
      // Newest first: the replacement, interrupted by the shutdown at 25 s, then the run that timed out.
      expect(list.map((r) => [seconds(r.fireTime.getTime()), r.outcome, r.durationMs])).toEqual([
        [20, "interrupted", 10_000],
        [10, "timeout", 13_000]
      ])
      // The replacement begins once the replaced run is over.
      expect(starts).toEqual([[10, 10], [20, 23]])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("a manual trigger while shutdown drains begins no run and answers Skipped with shutting_down", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(t0)
      const { record, starts } = recorder()
      const store = yield* JobStore.JobStore
      const made = yield* Deferred.make<Scheduler.Scheduler["Type"]>()
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const scheduler = yield* Scheduler.make([
          Job.unsafeMake({ name: "drained", every: "10 seconds", handler: record(Effect.sleep("10 seconds")) })
        ], { shutdownGrace: "30 seconds" })
        yield* Deferred.succeed(made, scheduler)
        // The run of 10 s lasts until 20 s; the scope closes at 12 s and the drain waits for it.
        yield* Effect.sleep("12 seconds")
      })))
      const scheduler = yield* Deferred.await(made)
      yield* advance("15 seconds")
      expect(yield* scheduler.trigger("drained")).toEqual({ _tag: "Skipped", reason: "shutting_down" })
      yield* advance("10 seconds")
      yield* Fiber.join(fiber)
      expect(starts).toEqual([[10, 10]])
      const list = yield* store.recentRuns("drained", 10)
      expect(list.map((r) => [r.kind, r.outcome])).toEqual([["scheduled", "success"]])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("a manual run whose node stops leading while it begins ends at its start without running its handler", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(t0)
      const { record, starts } = recorder()
      const store = yield* JobStore.JobStore
      const leadership = yield* LeaderElection.ManualLeadership
      // A store whose begin answers after 1 s: leadership is lost in between.
      const slow: JobStore.JobStore["Type"] = {
        ...store,
        beginMany: undefined,
        begin: (request) => Effect.zipRight(Effect.sleep("1 second"), store.begin(request))
      }
      const scheduler = yield* Scheduler.make([
        Job.unsafeMake({ name: "late", cron: "0 0 0 1 1 *", handler: record(Effect.void) })
      ], { shutdownGrace: 0 }).pipe(Effect.provideService(JobStore.JobStore, slow))
      yield* TestClock.adjust(0)
      const triggered = yield* Effect.fork(scheduler.trigger("late"))
      yield* advance("500 millis")
      yield* leadership.set(LeaderElection.follower("node-b"))
      yield* advance("2 seconds")
      const result = yield* Fiber.join(triggered)
      expect(result._tag).toBe("Started")
      expect(starts).toEqual([])
      const list = yield* store.recentRuns("late", 10)
      // Begun (lock and fence taken), then stopped at once: recorded, lock released.
      expect(list.map((r) => [r.kind, r.outcome, r.durationMs])).toEqual([["manual", "leadership_lost", 0]])
      const locks = yield* JobLockModel
      expect(Option.isSome(yield* locks.acquireLock("late", "1 minute"))).toBe(true)
    }).pipe(Effect.provide(TestLayers)))
})
