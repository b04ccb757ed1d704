/**
 * Job definitions: every invalid option still gets its typed error, naming the first field at fault in the order
 * `Job.make` checks them, and jobs made in bulk share their cron and interval triggers and default options without
 * mixing up different expressions, zones or intervals.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Layer, Logger, Schedule } from "effect"
import * as Job from "../src/Job.js"
import * as JobStore from "../src/JobStore.js"
import * as LeaderElection from "../src/LeaderElection.js"
import * as Scheduler from "../src/Scheduler.js"

const h = Effect.void

// Options that are wrong on purpose: the cast lets them past the type checker, as from JavaScript or parsed config.
const bad = (options: object) => options as Job.JobOptions<never>

/** The `InvalidJob` a bad definition gets, as its fields. */
const invalid = (job: string, path: string, reason: string) => ({ job, path, reason, _tag: "InvalidJob" })

const cases: ReadonlyArray<readonly [string, object, Record<string, unknown>]> = [
  [
    "name number",
    { name: 42, every: "1 minute", handler: h },
    invalid("42", "name", "expected a letter or digit, then letters, digits and _ . : / - (at most 200 characters)")
  ],
  [
    "name undefined",
    { every: "1 minute", handler: h },
    invalid(
      "undefined",
      "name",
      "expected a letter or digit, then letters, digits and _ . : / - (at most 200 characters)"
    )
  ],
  [
    "no trigger",
    { name: "a", handler: h },
    invalid("a", "trigger", "expected exactly one of cron, every, schedule or at")
  ],
  [
    "two triggers",
    { name: "a", every: "1 minute", cron: "* * * * *", handler: h },
    invalid("a", "trigger", "expected exactly one of cron, every, schedule or at")
  ],
  [
    "startAt NaN",
    { name: "a", every: "1 minute", startAt: NaN, handler: h },
    invalid("a", "startAt", "expected a valid date or epoch milliseconds")
  ],
  [
    "startAt invalid Date",
    { name: "a", every: "1 minute", startAt: new Date("x"), handler: h },
    invalid("a", "startAt", "expected a valid date or epoch milliseconds")
  ],
  [
    "startAt string",
    { name: "a", every: "1 minute", startAt: "2026-01-01", handler: h },
    invalid("a", "startAt", "expected a valid date or epoch milliseconds")
  ],
  [
    "endAt Infinity",
    { name: "a", every: "1 minute", endAt: Infinity, handler: h },
    invalid("a", "endAt", "expected a valid date or epoch milliseconds")
  ],
  [
    "endAt before startAt",
    { name: "a", every: "1 minute", startAt: 2000, endAt: 1000, handler: h },
    invalid("a", "endAt", "endAt is before startAt: the job could never fire")
  ],
  ["bad cron", { name: "a", cron: "61 * * * *", handler: h }, {
    "expression": "61 * * * *",
    "timezone": "UTC",
    "field": "minute",
    "reason": "value 61 is out of range 0-59",
    "_tag": "InvalidCron"
  }],
  ["bad cron zone", { name: "a", cron: "* * * * *", timezone: "Mars/Base", handler: h }, {
    "expression": "* * * * *",
    "timezone": "Mars/Base",
    "field": "timezone",
    "reason": "unknown IANA time zone \"Mars/Base\" (Invalid time zone specified: Mars/Base)",
    "_tag": "InvalidCron"
  }],
  ["cron number", { name: "a", cron: 5, handler: h }, {
    "expression": "5",
    "timezone": "UTC",
    "reason": "expected a string, got number",
    "_tag": "InvalidCron"
  }],
  [
    "every bad",
    { name: "a", every: "soon", handler: h },
    invalid("a", "every", "expected a duration such as \"5 seconds\" or \"1 hour\", got \"soon\"")
  ],
  ["every zero", { name: "a", every: 0, handler: h }, invalid("a", "every", "expected a duration greater than zero")],
  [
    "every negative",
    { name: "a", every: -5, handler: h },
    invalid("a", "every", "expected a non-negative duration, got -5")
  ],
  [
    "every negative string",
    { name: "a", every: "-5 seconds", handler: h },
    invalid("a", "every", "expected a non-negative duration, got \"-5 seconds\"")
  ],
  ["every infinite", { name: "a", every: Infinity, handler: h }, invalid("a", "every", "expected a finite duration")],
  [
    "at bad",
    { name: "a", at: "tomorrow", handler: h },
    invalid("a", "at", "expected a valid date or epoch milliseconds")
  ],
  ["at NaN", { name: "a", at: NaN, handler: h }, invalid("a", "at", "expected a valid date or epoch milliseconds")],
  [
    "schedule not a schedule",
    { name: "a", schedule: {}, handler: h },
    invalid("a", "schedule", "expected an effect Schedule")
  ],
  [
    "timezone without cron",
    { name: "a", every: "1 minute", timezone: "UTC", handler: h },
    invalid("a", "timezone", "a time zone applies to cron triggers only")
  ],
  [
    "timeout bad",
    { name: "a", every: "1 minute", timeout: "long", handler: h },
    invalid("a", "timeout", "expected a duration such as \"5 seconds\" or \"1 hour\", got \"long\"")
  ],
  [
    "timeout zero",
    { name: "a", every: "1 minute", timeout: 0, handler: h },
    invalid("a", "timeout", "expected a duration greater than zero")
  ],
  [
    "overlap bad",
    { name: "a", every: "1 minute", overlap: "queue", handler: h },
    invalid("a", "overlap", "expected skip, allow or replace, got \"queue\"")
  ],
  [
    "lock ttl bad",
    { name: "a", every: "1 minute", lock: { ttl: "x" }, handler: h },
    invalid("a", "lock.ttl", "expected a duration such as \"5 seconds\" or \"1 hour\", got \"x\"")
  ],
  [
    "lock ttl zero",
    { name: "a", every: "1 minute", lock: { ttl: 0 }, handler: h },
    invalid("a", "lock.ttl", "expected a duration greater than zero")
  ],
  [
    "retry times bad",
    { name: "a", every: "1 minute", retry: { times: 1.5 }, handler: h },
    invalid("a", "retry.times", "expected a whole number >= 0, got 1.5")
  ],
  [
    "retry times negative",
    { name: "a", every: "1 minute", retry: { times: -1 }, handler: h },
    invalid("a", "retry.times", "expected a whole number >= 0, got -1")
  ],
  [
    "retry factor bad",
    { name: "a", every: "1 minute", retry: { factor: 0.5 }, handler: h },
    invalid("a", "retry.factor", "expected a number >= 1, got 0.5")
  ],
  [
    "retry factor string",
    { name: "a", every: "1 minute", retry: { factor: "2" }, handler: h },
    invalid("a", "retry.factor", "expected a number >= 1, got 2")
  ],
  [
    "retry delay bad",
    { name: "a", every: "1 minute", retry: { delay: "x" }, handler: h },
    invalid("a", "retry.delay", "expected a duration such as \"5 seconds\" or \"1 hour\", got \"x\"")
  ],
  [
    "retry maxDelay bad",
    { name: "a", every: "1 minute", retry: { maxDelay: -1 }, handler: h },
    invalid("a", "retry.maxDelay", "expected a non-negative duration, got -1")
  ],
  [
    "misfire bad",
    { name: "a", every: "1 minute", misfire: "all", handler: h },
    invalid("a", "misfire", "expected skip or runOnce, got \"all\"")
  ],
  [
    "misfireGrace bad",
    { name: "a", every: "1 minute", misfireGrace: "x", handler: h },
    invalid("a", "misfireGrace", "expected a duration such as \"5 seconds\" or \"1 hour\", got \"x\"")
  ],
  [
    "both bad: timeout and overlap",
    { name: "a", every: "1 minute", timeout: "x", overlap: "x", handler: h },
    invalid("a", "timeout", "expected a duration such as \"5 seconds\" or \"1 hour\", got \"x\"")
  ],
  [
    "bad every and bad startAt",
    { name: "a", every: "x", startAt: NaN, handler: h },
    invalid("a", "startAt", "expected a valid date or epoch milliseconds")
  ],
  ["bad timezone with every and bad timeout", {
    name: "a",
    every: "1 minute",
    timezone: "UTC",
    timeout: "x",
    handler: h
  }, { "job": "a", "path": "timezone", "reason": "a time zone applies to cron triggers only", "_tag": "InvalidJob" }]
]

describe("Job.make errors", () => {
  for (const [label, options, expected] of cases) {
    it(`${label}: ${expected._tag} at ${String(expected.path ?? expected.field ?? "-")}`, () => {
      const result = Job.make(bad(options))
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isLeft(result)) expect({ ...result.left, _tag: result.left._tag }).toEqual(expected)
      // unsafeMake throws the same typed error.
      expect(() => Job.unsafeMake(bad(options))).toThrow(expect.objectContaining(expected))
    })
  }

  it("a valid definition between two failing ones is not affected by them, nor they by it", () => {
    expect(Either.isLeft(Job.make(bad({ name: "a", every: "soon", handler: h })))).toBe(true)
    expect(Either.isRight(Job.make({ name: "a", every: "1 minute", handler: h }))).toBe(true)
    const again = Job.make(bad({ name: "b", every: "soon", handler: h }))
    expect(Either.isLeft(again) && again.left).toMatchObject({ _tag: "InvalidJob", job: "b", path: "every" })
    expect(Either.isRight(Job.make({ name: "c", cron: "0 * * * *", handler: h }))).toBe(true)
    const cron = Job.make(bad({ name: "d", cron: "0 * * * *", timezone: "Mars/Base", handler: h }))
    expect(Either.isLeft(cron) && cron.left).toMatchObject({ _tag: "InvalidCron", field: "timezone" })
  })
})

describe("Job.make in bulk", () => {
  it("jobs on the same cron and zone share one trigger; another zone or expression gets its own", () => {
    const a = Job.unsafeMake({ name: "a", cron: "0 5 * * * *", handler: h })
    const b = Job.unsafeMake({ name: "b", cron: "0 5 * * * *", handler: h })
    const shanghai = Job.unsafeMake({ name: "c", cron: "0 5 * * * *", timezone: "Asia/Shanghai", handler: h })
    const other = Job.unsafeMake({ name: "d", cron: "0 6 * * * *", handler: h })
    const utcAgain = Job.unsafeMake({ name: "e", cron: "0 5 * * * *", timezone: "UTC", handler: h })
    expect(b.trigger).toBe(a.trigger)
    expect(utcAgain.trigger).toBe(a.trigger)
    const zoneOf = (job: Job.Job) => job.trigger._tag === "Cron" ? job.trigger.cron.timezone : undefined
    const exprOf = (job: Job.Job) => job.trigger._tag === "Cron" ? job.trigger.cron.expression : undefined
    expect([zoneOf(a), zoneOf(shanghai), zoneOf(other)]).toEqual(["UTC", "Asia/Shanghai", "UTC"])
    expect([exprOf(a), exprOf(shanghai), exprOf(other)]).toEqual(["0 5 * * * *", "0 5 * * * *", "0 6 * * * *"])
  })

  it("interval triggers are shared only for the same interval and rate", () => {
    const delay = Job.unsafeMake({ name: "a", every: "5 seconds", handler: h })
    const delay2 = Job.unsafeMake({ name: "b", every: "5 seconds", handler: h })
    const rate = Job.unsafeMake({ name: "c", every: "5 seconds", fixedRate: true, handler: h })
    const longer = Job.unsafeMake({ name: "d", every: "6 seconds", handler: h })
    expect(delay2.trigger).toBe(delay.trigger)
    expect(rate.trigger._tag).toBe("FixedRate")
    expect(delay.trigger._tag).toBe("FixedDelay")
    const everyMs = (job: Job.Job) =>
      job.trigger._tag === "FixedDelay" || job.trigger._tag === "FixedRate" ? Duration.toMillis(job.trigger.every) : 0
    expect([everyMs(delay), everyMs(rate), everyMs(longer)]).toEqual([5000, 5000, 6000])
    // An array input may be changed by its owner afterwards: it is decoded again each time.
    const input: [number, number] = [7, 0]
    const seven = Job.unsafeMake({ name: "e", every: input, handler: h })
    input[0] = 8
    expect([everyMs(seven), everyMs(Job.unsafeMake({ name: "f", every: input, handler: h }))]).toEqual([7000, 8000])
  })

  it("shared default options read the same as options given explicitly", () => {
    const off = Job.unsafeMake({ name: "a", every: "1 minute", lock: { enabled: false }, handler: h })
    const on = Job.unsafeMake({ name: "b", every: "1 minute", lock: {}, handler: h })
    const ttl = Job.unsafeMake({ name: "c", every: "1 minute", lock: { enabled: false, ttl: "1 minute" }, handler: h })
    expect(off.lock.enabled).toBe(false)
    expect(Duration.toMillis(off.lock.ttl)).toBe(Duration.toMillis(Job.defaultLockTtl))
    expect(on.lock.enabled).toBe(true)
    expect(Duration.toMillis(on.lock.ttl)).toBe(Duration.toMillis(Job.defaultLockTtl))
    expect([ttl.lock.enabled, Duration.toMillis(ttl.lock.ttl)]).toEqual([false, 60_000])
    const schedule = Job.unsafeMake({ name: "d", schedule: Schedule.spaced("1 second"), handler: h })
    expect(Object.keys(schedule)).toEqual([
      "name",
      "trigger",
      "handler",
      "isExpected",
      "enabled",
      "timeout",
      "overlap",
      "lock",
      "retry",
      "misfire",
      "misfireGrace"
    ])
  })
})

describe("Scheduler.make registration", () => {
  const layers = Layer.mergeAll(
    JobStore.layerMemory,
    LeaderElection.layerSingleNode("node"),
    Logger.replace(Logger.defaultLogger, Logger.none)
  )
  const job = (name: string) => Job.unsafeMake({ name, cron: "0 0 0 1 1 *", handler: h })
  function* generated() {
    yield job("a")
    yield job("b")
    yield job("a")
  }

  it.effect("a name given twice fails with DuplicateJob naming it, from an array or any other iterable", () =>
    Effect.gen(function*() {
      for (const jobs of [[job("a"), job("b"), job("b")], new Set([job("x"), job("x")]), generated()]) {
        const error = yield* Effect.flip(Effect.scoped(Scheduler.make(jobs)))
        expect(error._tag).toBe("DuplicateJob")
      }
      const names = yield* Effect.forEach(
        [[job("a"), job("b"), job("b")], generated()],
        (jobs) => Effect.map(Effect.flip(Effect.scoped(Scheduler.make(jobs))), (error) => error.job)
      )
      expect(names).toEqual(["b", "a"])
    }).pipe(Effect.provide(layers)))

  it.effect("jobs from any iterable are registered in order, each planned once leading", () =>
    Effect.gen(function*() {
      const scheduler = yield* Scheduler.make(new Set([job("c"), job("a"), job("b")]))
      expect(scheduler.jobs).toEqual(["c", "a", "b"])
      const status = yield* scheduler.status
      expect(status.map((s) => s.nextFire._tag)).toEqual(["Some", "Some", "Some"])
    }).pipe(Effect.scoped, Effect.provide(layers)))
})
