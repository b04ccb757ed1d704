import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Either, Fiber, Layer, Logger, TestClock, TestServices } from "effect"
import * as Cron from "../src/Cron.js"
import { SystemError } from "../src/Errors.js"
import * as Job from "../src/Job.js"
import * as JobStore from "../src/JobStore.js"
import * as LeaderElection from "../src/LeaderElection.js"
import { RunContext } from "../src/Run.js"
import * as Scheduler from "../src/Scheduler.js"

// Testing jobs on the TestClock without traps: the clock may be set after the scheduler's layer is built, a test's
// scope may close while a run waits, and a simulated week costs little real time.

const at = (text: string) => Date.parse(text)
const iso = (ms: number) => new Date(ms).toISOString()
const Quiet = Logger.remove(Logger.defaultLogger)

/** Runs `effect` and fails it when it takes more than `limit` of real time (a hang shows as this failure). */
const withinRealTime = <A, E, R>(limit: Duration.DurationInput, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    return yield* Fiber.join(fiber).pipe(
      Effect.timeoutFail({
        duration: limit,
        onTimeout: () => new Error(`took more than ${Duration.format(limit)} of real time`)
      }),
      TestServices.provideLive
    )
  })

describe("Scheduler on the TestClock", () => {
  it.scoped("follows TestClock.setTime made after the layer was provided: fires from the new time, none before", () =>
    Effect.gen(function*() {
      const fires: Array<string> = []
      const nightly = Job.unsafeMake({
        name: "nightly",
        cron: "0 0 2 * * *",
        timezone: "Asia/Shanghai",
        handler: Effect.flatMap(RunContext, (run) => Effect.sync(() => fires.push(iso(run.fireTime.getTime()))))
      })
      yield* withinRealTime(
        "5 seconds",
        Effect.gen(function*() {
          const scheduler = yield* Scheduler.Scheduler
          yield* TestClock.adjust(0) // the scheduler leads and plans, on the clock's start (1970)
          yield* TestClock.setTime(at("2026-01-01T00:00:00Z"))
          // Planned from the new time at once, not from 1970.
          const status = yield* scheduler.jobStatus("nightly")
          expect(status.nextFire._tag === "Some" ? status.nextFire.value.toISOString() : "none")
            .toBe("2026-01-01T18:00:00.000Z")
          for (let hour = 0; hour < 48; hour++) yield* TestClock.adjust("1 hour")
        }).pipe(Effect.provide(Scheduler.layerMemory([nightly])))
      )
      expect(fires).toEqual(["2026-01-01T18:00:00.000Z", "2026-01-02T18:00:00.000Z"])
    }).pipe(Effect.provide(Quiet)))

  it.scoped("closing the scope while a retry waits ends at once (no shutdown grace under the TestClock)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      let attempts = 0
      const flaky = Job.unsafeMake({
        name: "flaky",
        every: "1 minute",
        retry: { times: 5, delay: "10 minutes" },
        handler: Effect.suspend(() => {
          attempts++
          return Effect.fail(new SystemError({ code: "DOWN", message: "smtp down" }))
        })
      })
      const store = yield* JobStore.JobStore
      let closedAt = 0
      yield* withinRealTime(
        "5 seconds",
        Effect.scoped(Effect.gen(function*() {
          yield* Scheduler.make([flaky])
          yield* TestClock.adjust("61 seconds") // the first attempt failed; the retry waits 10 minutes
          expect(attempts).toBe(1)
        })).pipe(Effect.ensuring(Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => (closedAt = now)))))
      )
      // The scope closed without the TestClock moving, and the waiting run was stopped and recorded.
      expect(iso(closedAt)).toBe("2026-05-01T00:01:01.000Z")
      const runs = yield* store.recentRuns("flaky", 10)
      expect(runs.map((r) => [r.outcome, r.attempt])).toEqual([["interrupted", 1]])
    }).pipe(Effect.provide(Layer.mergeAll(JobStore.layerMemory, LeaderElection.layerSingleNode("test"), Quiet))))

  it.scoped(
    "a simulated week of three jobs runs every fire of their crons (the README's figure: real time printed)",
    () =>
      Effect.gen(function*() {
        const start = at("2026-03-02T00:00:00Z")
        const end = start + 7 * 24 * 3_600_000
        yield* TestClock.setTime(start)
        const specs = [
          { name: "tenMinutes", cron: "0 */10 * * * *", timezone: "UTC" },
          { name: "hourly", cron: "0 0 * * * *", timezone: "UTC" },
          { name: "nightly", cron: "0 30 2 * * *", timezone: "America/New_York" }
        ]
        const ran = new Map<string, number>()
        const count = Effect.flatMap(
          RunContext,
          (run) => Effect.sync(() => ran.set(run.job, (ran.get(run.job) ?? 0) + 1))
        )
        yield* Scheduler.make(specs.map((spec) => Job.unsafeMake({ ...spec, handler: count })))
        const began = performance.now()
        for (let hour = 0; hour < 7 * 24; hour++) yield* TestClock.adjust("1 hour")
        const realMs = performance.now() - began
        // The fires each cron has in the week, counted by the cron module alone.
        const expected = specs.map((spec) => {
          const cron = Either.getOrThrow(Cron.parse(spec.cron, { timezone: spec.timezone }))
          let n = 0
          for (let t = Cron.next(cron, start); t <= end; t = Cron.next(cron, t)) n++
          return [spec.name, n]
        })
        expect(specs.map((spec) => [spec.name, ran.get(spec.name) ?? 0])).toEqual(expected)
        const total = expected.reduce((sum, [, n]) => sum + (n as number), 0)
        console.log(`simulated week: ${total} runs in ${Math.round(realMs)} ms of real time`)
      }).pipe(Effect.provide(Layer.mergeAll(JobStore.layerMemory, LeaderElection.layerSingleNode("test"), Quiet))),
    60_000
  )
})
