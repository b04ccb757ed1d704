/**
 * Schedules on the TestClock: schedules added, changed and removed while the scheduler runs fire exactly at their
 * new times; startAt / endAt / limit; typed payloads; typed errors at upsert; `at` once; trigger and backfill.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as Job from "../src/Job.js"
import * as JobStore from "../src/JobStore.js"
import * as LeaderElection from "../src/LeaderElection.js"
import { RunContext } from "../src/Run.js"
import * as Scheduler from "../src/Scheduler.js"
import * as Schedules from "../src/Schedules.js"

const T0 = Date.parse("2026-05-01T00:00:00Z")
const at = (seconds: number) => T0 + seconds * 1000

/** What the handlers saw: the schedule id, the fire time (seconds after T0), the payload, the run kind. */
interface Seen {
  readonly id: string
  readonly second: number
  readonly payload: unknown
  readonly kind: string
}

const setup = (jobs: ReadonlyArray<Job.Job<never>> = []) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(T0)
    const seen: Array<Seen> = []
    const note = (payload: unknown) =>
      Effect.flatMap(RunContext, (run) =>
        Effect.sync(() => {
          seen.push({ id: run.job, second: (run.fireTime.getTime() - T0) / 1000, payload, kind: run.kind })
        }))
    const greet = Schedules.handler(
      "greet",
      Schema.Struct({ userId: Schema.NumberFromString, tags: Schema.optional(Schema.Array(Schema.String)) }),
      note
    )
    const tick = Schedules.handler("tick", Schema.Void, note)
    const scheduler = yield* Scheduler.make(jobs)
    const schedules = yield* Schedules.make([greet, tick]).pipe(
      Effect.provideService(Scheduler.Scheduler, scheduler)
    )
    const fires = (id: string) => seen.filter((s) => s.id === id && s.kind === "scheduled").map((s) => s.second)
    return { scheduler, schedules, seen, fires, greet }
  })

const TestLayers = Layer.mergeAll(
  JobStore.layerMemory,
  LeaderElection.layerSingleNode("test"),
  Logger.remove(Logger.defaultLogger)
)

describe("Schedules", () => {
  it.scoped("a payload reaches the handler decoded with its schema (typed), and a manual payload replaces it", () =>
    Effect.gen(function*() {
      const { schedules, seen } = yield* setup()
      yield* schedules.upsert({
        id: "greet-42",
        handler: "greet",
        trigger: { every: "10 seconds" },
        payload: { userId: "42" }
      })
      yield* TestClock.adjust("10 seconds")
      expect(seen).toEqual([{ id: "greet-42", second: 10, payload: { userId: 42 }, kind: "scheduled" }])
      const result = yield* schedules.trigger("greet-42", { userId: "7", tags: ["vip"] })
      assert.strictEqual(result._tag, "Started")
      if (result._tag === "Started") yield* result.await
      expect(seen[1]!.payload).toEqual({ userId: 7, tags: ["vip"] })
      const bad = yield* Effect.flip(schedules.trigger("greet-42", { userId: 7 }))
      assert.strictEqual(bad._tag, "InvalidPayload")
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("upsert refuses an unknown handler, a payload its schema rejects (with the path), a trigger that never fires", () =>
    Effect.gen(function*() {
      const { schedules } = yield* setup([Job.unsafeMake({ name: "nightly", cron: "@daily", handler: Effect.void })])
      const base = { id: "s1", handler: "greet", trigger: { every: "1 minute" }, payload: { userId: "1" } } as const
      const errors = yield* Effect.all([
        Effect.flip(schedules.upsert({ ...base, handler: "nope" })),
        Effect.flip(schedules.upsert({ ...base, payload: { userId: "1", tags: ["a", 2] } })),
        Effect.flip(schedules.upsert({ ...base, trigger: { cron: "0 0 0 30 2 *" } })),
        Effect.flip(schedules.upsert({ ...base, trigger: { at: new Date(at(-3600)) } })),
        Effect.flip(schedules.upsert({ ...base, trigger: { cron: "0 0 * * * *" }, endAt: new Date(at(-1)) })),
        Effect.flip(
          schedules.upsert({
            ...base,
            trigger: { cron: "0 0 12 * * *" },
            startAt: new Date(at(3600)),
            endAt: new Date(at(7200))
          })
        ),
        Effect.flip(schedules.upsert({ ...base, trigger: { every: "soon" } })),
        Effect.flip(schedules.upsert({ ...base, id: "nightly" }))
      ])
      expect(errors.map((e) => e._tag)).toEqual([
        "UnknownHandler",
        "InvalidPayload",
        "NeverFires",
        "NeverFires",
        "NeverFires",
        "NeverFires",
        "InvalidSchedule",
        "InvalidSchedule"
      ])
      const payloadError = errors[1]!
      assert(payloadError._tag === "InvalidPayload")
      assert.strictEqual(payloadError.path, "tags.1")
      const every = errors[6]!
      assert(every._tag === "InvalidSchedule")
      assert.strictEqual(every.path, "every")
      // Nothing was stored.
      assert.deepStrictEqual((yield* schedules.list()).schedules, [])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("a schedule added, changed (cron to interval and back) and removed fires at the new times, never the old", () =>
    Effect.gen(function*() {
      const { fires, schedules } = yield* setup()
      yield* schedules.upsert({ id: "t", handler: "tick", trigger: { cron: "*/10 * * * * *" } })
      yield* TestClock.adjust("35 seconds")
      // Changed at 35 s: the cron's fire at 40 s never happens; fixed delay runs 7 s after the change, then 7 s after
      // each run.
      yield* schedules.upsert({ id: "t", handler: "tick", trigger: { every: "7 seconds" } })
      yield* TestClock.adjust("15 seconds")
      // Back to a cron at 50 s: the interval's fire at 56 s never happens.
      yield* schedules.upsert({ id: "t", handler: "tick", trigger: { cron: "0 * * * * *" } })
      yield* TestClock.adjust("75 seconds")
      yield* schedules.remove("t")
      yield* TestClock.adjust("10 minutes")
      expect(fires("t")).toEqual([10, 20, 30, 42, 49, 60, 120])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("upsert of the same spec (fields in another order) changes nothing; a changed payload keeps the plan", () =>
    Effect.gen(function*() {
      const { scheduler, schedules, seen } = yield* setup()
      const first = yield* schedules.upsert({
        id: "g",
        handler: "greet",
        trigger: { every: "30 seconds" },
        payload: { userId: "1", tags: ["a"] }
      })
      yield* TestClock.adjust("20 seconds")
      const again = yield* schedules.upsert({
        payload: { tags: ["a"], userId: "1" },
        trigger: { every: "30 seconds" },
        handler: "greet",
        id: "g"
      })
      expect([first.result, again.result, again.revision]).toEqual(["created", "unchanged", first.revision])
      const changed = yield* schedules.upsert({
        id: "g",
        handler: "greet",
        trigger: { every: "30 seconds" },
        payload: { userId: "2" }
      })
      assert.strictEqual(changed.result, "updated")
      const status = yield* scheduler.jobStatus("g")
      // Still the fire planned at creation (30 s), not 30 s after the change.
      assert.deepStrictEqual(status.nextFire, Option.some(new Date(at(30))))
      yield* TestClock.adjust("10 seconds")
      expect(seen.map((s) => [s.second, s.payload])).toEqual([[30, { userId: 2 }]])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("startAt, endAt and limit bound the fires", () =>
    Effect.gen(function*() {
      const { fires, schedules } = yield* setup()
      yield* schedules.upsert({
        id: "window",
        handler: "tick",
        trigger: { cron: "*/10 * * * * *" },
        startAt: new Date(at(25)),
        endAt: new Date(at(65))
      })
      yield* schedules.upsert({ id: "limited", handler: "tick", trigger: { every: "5 seconds" }, limit: 3 })
      yield* schedules.upsert({
        id: "late-interval",
        handler: "tick",
        trigger: { every: "20 seconds", fixedRate: true },
        startAt: new Date(at(100))
      })
      yield* TestClock.adjust("3 minutes")
      expect(fires("window")).toEqual([30, 40, 50, 60])
      expect(fires("limited")).toEqual([5, 10, 15])
      expect(fires("late-interval")).toEqual([100, 120, 140, 160, 180])
      const limited = yield* schedules.get("limited")
      expect([limited.state, limited.runs]).toEqual(["finished", 3])
      assert.strictEqual((yield* schedules.get("window")).state, "finished")
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("an at schedule runs once, is kept as finished with its record, and upserting it again changes nothing", () =>
    Effect.gen(function*() {
      const { fires, schedules } = yield* setup()
      const spec = { id: "once", handler: "tick", trigger: { at: new Date(at(90)) } } as const
      yield* schedules.upsert(spec)
      yield* TestClock.adjust("10 minutes")
      expect(fires("once")).toEqual([90])
      const info = yield* schedules.get("once")
      expect([info.state, Option.map(info.lastFire, (d) => d.getTime())]).toEqual(["finished", Option.some(at(90))])
      assert.strictEqual(Option.getOrThrow(info.lastRun).outcome, "success")
      // Upserted again long after: the same spec is unchanged (not "in the past"), and it does not run again.
      assert.strictEqual((yield* schedules.upsert(spec)).result, "unchanged")
      yield* schedules.reconcile
      yield* TestClock.adjust("1 minute")
      expect(fires("once")).toEqual([90])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("remove then upsert of the same id has a next run", () =>
    Effect.gen(function*() {
      const { fires, scheduler, schedules } = yield* setup()
      const spec = { id: "r", handler: "tick", trigger: { cron: "0 * * * * *" } } as const
      yield* schedules.upsert(spec)
      yield* TestClock.adjust("61 seconds")
      assert.isTrue(yield* schedules.remove("r"))
      assert.isFalse(yield* schedules.remove("r"))
      yield* schedules.upsert(spec)
      assert.deepStrictEqual((yield* scheduler.jobStatus("r")).nextFire, Option.some(new Date(at(120))))
      yield* TestClock.adjust("60 seconds")
      expect(fires("r")).toEqual([60, 120])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("list pages in id order and filters by handler", () =>
    Effect.gen(function*() {
      const { schedules } = yield* setup()
      for (const i of [3, 1, 4, 2, 5]) {
        yield* schedules.upsert({
          id: `s${i}`,
          handler: i % 2 === 0 ? "tick" : "greet",
          trigger: { every: "1 hour" },
          ...(i % 2 === 0 ? {} : { payload: { userId: String(i) } })
        })
      }
      const first = yield* schedules.list({ limit: 2 })
      expect(first.schedules.map((s) => s.spec.id)).toEqual(["s1", "s2"])
      const second = yield* schedules.list({ limit: 2, cursor: Option.getOrThrow(first.next) })
      expect(second.schedules.map((s) => s.spec.id)).toEqual(["s3", "s4"])
      const greets = yield* schedules.list({ handler: "greet" })
      expect(greets.schedules.map((s) => s.spec.id)).toEqual(["s1", "s3", "s5"])
      assert.isTrue(Option.isNone(greets.next))
      const missing = yield* Effect.flip(schedules.get("s9"))
      assert.strictEqual(missing._tag, "UnknownSchedule")
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("backfill runs each past fire time of the window once, oldest first, and skips those that ran", () =>
    Effect.gen(function*() {
      const { schedules, seen } = yield* setup()
      yield* TestClock.adjust("10 minutes")
      // Without its lock, so that two backfill runs may run at once.
      yield* schedules.upsert({ id: "b", handler: "tick", trigger: { cron: "0 * * * * *" }, lock: { enabled: false } })
      const first = yield* schedules.backfill("b", {
        from: new Date(at(60)),
        to: new Date(at(300)),
        concurrency: 2
      })
      expect(first.fires.map((f) => [f._tag, (f.fireTime.getTime() - T0) / 1000])).toEqual([
        ["Ran", 60],
        ["Ran", 120],
        ["Ran", 180],
        ["Ran", 240],
        ["Ran", 300]
      ])
      expect(seen.map((s) => s.second).sort((a, b) => a - b)).toEqual([60, 120, 180, 240, 300])
      const again = yield* schedules.backfill("b", { from: new Date(at(0)), to: new Date(at(300)) })
      expect(again.fires.map((f) => f._tag === "Skipped" ? f.reason : "ran")).toEqual([
        "ran",
        "already_ran",
        "already_ran",
        "already_ran",
        "already_ran",
        "already_ran"
      ])
      assert.isTrue(Either.isRight(Schedules.spec(Schedules.handler("x", Schema.Number, () => Effect.void), {
        id: "typed",
        trigger: { every: "1 hour" },
        payload: 1
      })))
    }).pipe(Effect.provide(TestLayers)))
})
