/**
 * The job definition API as an Effect developer meets it: names in the usual identifier shapes, and effect's own
 * `Cron` values accepted as triggers, firing by this package's DST rules.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cron as EffectCron, DateTime, Effect, Either, Layer, Logger, TestClock } from "effect"
import * as Cron from "../src/Cron.js"
import * as Job from "../src/Job.js"
import * as JobStore from "../src/JobStore.js"
import * as LeaderElection from "../src/LeaderElection.js"
import { RunContext } from "../src/Run.js"
import * as Scheduler from "../src/Scheduler.js"

const iso = (ms: number) => new Date(ms).toISOString()

describe("Job names", () => {
  it("accept camelCase and ids with : and /", () => {
    for (const name of ["nightlyReport", "report:tenant-42", "billing/eu.invoice", "sync_user", "A1"]) {
      expect(Either.isRight(Job.make({ name, every: "1 minute", handler: Effect.void })), name).toBe(true)
    }
  })

  it("reject empty names, spaces, a leading separator and names over 200 characters, naming the path", () => {
    for (const name of ["", "two words", ":leading", "-dash", "x".repeat(201), "tab\tname"]) {
      const result = Job.make({ name, every: "1 minute", handler: Effect.void })
      expect(Either.isLeft(result), JSON.stringify(name)).toBe(true)
      if (Either.isLeft(result)) expect(result.left).toMatchObject({ _tag: "InvalidJob", path: "name" })
    }
  })
})

describe("Cron.fromEffect", () => {
  it("fires a pinned time in a spring-forward gap at the jump, where effect's Schedule.cron would fire later", () => {
    const cron = Either.getOrThrow(Cron.fromEffect(EffectCron.unsafeParse("0 30 2 * * *", "America/New_York")))
    expect(cron.timezone).toBe("America/New_York")
    // 2026-03-08: New York skips 02:00-03:00; 02:30 fires at the jump, 03:00 EDT = 07:00Z.
    expect(iso(Cron.next(cron, Date.UTC(2026, 2, 8, 0)))).toBe("2026-03-08T07:00:00.000Z")
    expect(iso(Cron.next(cron, Date.UTC(2026, 2, 8, 8)))).toBe("2026-03-09T06:30:00.000Z")
  })

  it("keeps every field: lists, steps and the day-of-month OR day-of-week rule", () => {
    const effect = EffectCron.unsafeParse("*/20 5 9-10 1 * MON")
    const ours = Either.getOrThrow(Cron.fromEffect(effect))
    const reference = Either.getOrThrow(Cron.parse("0,20,40 5 9,10 1 * 1"))
    let a = Date.UTC(2026, 0, 1)
    let b = a
    for (let i = 0; i < 50; i++) {
      a = Cron.next(ours, a)
      b = Cron.next(reference, b)
      expect(iso(a)).toBe(iso(b))
    }
    expect(ours.timezone).toBe("UTC")
  })

  it("takes the zone from the effect Cron, else from the option; an offset zone as Etc/GMT; disagreement fails", () => {
    const plain = EffectCron.unsafeParse("0 0 2 * * *")
    expect(Either.getOrThrow(Cron.fromEffect(plain, { timezone: "Asia/Shanghai" })).timezone).toBe("Asia/Shanghai")
    const offset = EffectCron.make({
      minutes: [0],
      hours: [2],
      days: [],
      months: [],
      weekdays: [],
      tz: DateTime.zoneMakeOffset(8 * 3_600_000)
    })
    const eight = Either.getOrThrow(Cron.fromEffect(offset))
    expect(eight.timezone).toBe("Etc/GMT-8")
    expect(iso(Cron.next(eight, Date.UTC(2026, 0, 1)))).toBe("2026-01-01T18:00:00.000Z")
    const named = EffectCron.unsafeParse("0 0 2 * * *", "Europe/Paris")
    const clash = Cron.fromEffect(named, { timezone: "Asia/Shanghai" })
    expect(Either.isLeft(clash) && clash.left.field).toBe("timezone")
  })

  it("rejects an effect Cron that requires both day fields to match, which cron syntax cannot say", () => {
    const both = EffectCron.make({ minutes: [0], hours: [0], days: [13], months: [], weekdays: [5], and: true })
    const result = Cron.fromEffect(both)
    expect(Either.isLeft(result) && result.left.field).toBe("dayOfWeek")
  })
})

describe("a job on an effect Cron value", () => {
  it.scoped("fires on the TestClock at this package's fire times", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.UTC(2026, 2, 7, 12))
      const fires: Array<string> = []
      const job = Job.unsafeMake({
        name: "nightlyReport",
        cron: EffectCron.unsafeParse("0 30 2 * * *", "America/New_York"),
        handler: Effect.flatMap(RunContext, (run) => Effect.sync(() => fires.push(run.fireTime.toISOString())))
      })
      yield* Scheduler.make([job], { shutdownGrace: 0 })
      for (let hour = 0; hour < 48; hour++) yield* TestClock.adjust("1 hour")
      expect(fires).toEqual(["2026-03-08T07:00:00.000Z", "2026-03-09T06:30:00.000Z"])
    }).pipe(
      Effect.provide(
        Layer.mergeAll(JobStore.layerMemory, LeaderElection.layerSingleNode("n"), Logger.remove(Logger.defaultLogger))
      )
    ))
})
