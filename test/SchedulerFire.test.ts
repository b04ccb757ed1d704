import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, FastCheck, Schedule } from "effect"
import * as Cron from "../src/Cron.js"
import * as Fire from "../src/internal/scheduler/fire.js"

// The scheduler's fire arithmetic, without a clock: first fires, the newest due fire, misfire and overlap rules.

const at = (text: string) => Date.parse(text)
const cron = (expression: string, timezone = "UTC") => {
  const parsed = Cron.parse(expression, { timezone })
  if (parsed._tag === "Left") throw new Error(`bad cron in test: ${expression}`)
  return parsed.right
}
const out = (): Fire.DueFire => ({ newest: 0, missed: 0, next: 0 })

describe("fire: first fire", () => {
  const every = Duration.seconds(10)

  it("a cron job plans the next match after the last recorded fire, or after now when none is recorded", () => {
    const trigger = { _tag: "Cron", cron: cron("0 */5 * * * *") } as const
    const now = at("2026-05-01T00:12:00Z")
    expect(Fire.firstFire(trigger, undefined, now)).toBe(at("2026-05-01T00:15:00Z"))
    expect(Fire.firstFire(trigger, at("2026-05-01T00:05:00Z"), now)).toBe(at("2026-05-01T00:10:00Z"))
  })

  it("a cron job's first fire is its own, whatever cron or instant was asked about just before", () => {
    // Many jobs on one cron ask the same question when leading starts; the answer kept for it must not leak to
    // another cron (same expression in another zone included) nor to another instant.
    const crons = [cron("0 */5 * * * *"), cron("0 */5 * * * *", "Asia/Kathmandu"), cron("0 0 * * * *")]
    const instants = [at("2026-05-01T00:12:00Z"), at("2026-05-01T00:12:00.001Z"), at("2026-05-01T03:59:59Z")]
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(FastCheck.tuple(FastCheck.nat(2), FastCheck.nat(2)), { minLength: 2, maxLength: 30 }),
        (asks) => {
          for (const [c, i] of asks) {
            const trigger = { _tag: "Cron", cron: crons[c]! } as const
            expect(Fire.firstFire(trigger, undefined, instants[i]!)).toBe(Cron.next(crons[c]!, instants[i]!))
          }
        }
      )
    )
  })

  it("an interval job plans `every` after the last recorded fire, or `every` after now", () => {
    const now = at("2026-05-01T00:00:00Z")
    for (const _tag of ["FixedDelay", "FixedRate"] as const) {
      expect(Fire.firstFire({ _tag, every }, undefined, now)).toBe(now + 10_000)
      expect(Fire.firstFire({ _tag, every }, now - 3_000, now)).toBe(now + 7_000)
    }
  })

  it("a Schedule's fire is the start of its decision, never before `earliest`, none once it is done", () => {
    const now = at("2026-05-01T00:00:00Z")
    const schedule = Schedule.spaced("7 seconds").pipe(Schedule.compose(Schedule.recurs(1)))
    const [state, , first] = Effect.runSync(schedule.step(now, undefined, schedule.initial))
    expect(Fire.scheduleFire(first, now)).toBe(now + 7_000)
    // A decision whose start has passed is planned at `earliest`.
    expect(Fire.scheduleFire(first, now + 9_000)).toBe(now + 9_000)
    const [, , second] = Effect.runSync(schedule.step(now + 7_000, undefined, state))
    expect(Fire.scheduleFire(second, now + 7_001)).toBeUndefined()
  })
})

describe("fire: the newest due fire", () => {
  it("cron, on time: the planned fire itself, nothing missed, the next match after it", () => {
    const due = out()
    const planned = at("2026-05-01T00:00:10Z")
    Fire.cronDue(cron("*/10 * * * * *"), planned, planned + 3, 60_000, due)
    expect(due).toEqual({ newest: planned, missed: 0, next: at("2026-05-01T00:00:20Z") })
  })

  it("cron, late: the newest match <= now, the matches passed over counted, never one per missed fire", () => {
    const due = out()
    Fire.cronDue(cron("*/10 * * * * *"), at("2026-05-01T00:00:10Z"), at("2026-05-01T00:00:45Z"), 60_000, due)
    expect(due).toEqual({ newest: at("2026-05-01T00:00:40Z"), missed: 3, next: at("2026-05-01T00:00:50Z") })
  })

  it("cron, late beyond the window: only matches within the window count (older ones could only be skipped)", () => {
    const due = out()
    // Planned a day ago, every second: the window (5 s) bounds the search instead of walking 86,400 matches.
    const now = at("2026-05-02T00:00:00Z")
    Fire.cronDue(cron("* * * * * *"), now - 86_400_000, now, 5_000, due)
    expect(due.newest).toBe(now)
    expect(due.missed).toBe(6)
    expect(due.next).toBe(now + 1_000)
  })

  it("cron across a DST gap: a late fire lands on the real match, the next follows the zone's rules", () => {
    const due = out()
    // America/New_York skips 02:00-03:00 on 2026-03-08; a 02:30 daily job fires at 03:00 EDT = 07:00Z that day.
    const daily = cron("0 30 2 * * *", "America/New_York")
    Fire.cronDue(daily, at("2026-03-08T07:00:00Z"), at("2026-03-08T07:00:00.500Z"), 60_000, due)
    expect(due).toEqual({ newest: at("2026-03-08T07:00:00Z"), missed: 0, next: at("2026-03-09T06:30:00Z") })
  })

  it("fixed rate: the newest grid point <= now and the next; the grid never moves", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.integer({ min: 1, max: 100_000 }),
        FastCheck.integer({ min: 0, max: 10_000_000 }),
        FastCheck.integer({ min: 0, max: 1_000_000 }),
        (everyMs, planned, late) => {
          const due = out()
          const now = planned + late
          Fire.fixedRateDue(everyMs, planned, now, due)
          expect(due.newest).toBeLessThanOrEqual(now)
          expect(due.next).toBeGreaterThan(now)
          expect(due.next - due.newest).toBe(everyMs)
          expect((due.newest - planned) % everyMs).toBe(0)
          expect(due.missed).toBe((due.newest - planned) / everyMs)
        }
      )
    )
  })

  it("cron: planned <= newest <= now < next, next is the first match after now", () => {
    const every5 = cron("*/5 * * * * *")
    const start = at("2026-05-01T00:00:00Z")
    FastCheck.assert(
      FastCheck.property(
        FastCheck.integer({ min: 0, max: 1_000 }),
        FastCheck.integer({ min: 0, max: 120_000 }),
        FastCheck.integer({ min: 1_000, max: 60_000 }),
        (slot, late, windowMs) => {
          const planned = start + slot * 5_000
          const now = planned + late
          const due = out()
          Fire.cronDue(every5, planned, now, windowMs, due)
          expect(due.newest).toBeLessThanOrEqual(now)
          expect(due.newest).toBeGreaterThanOrEqual(planned)
          expect(due.next).toBeGreaterThan(now)
          expect(due.next).toBe(Cron.next(every5, now))
          // Missed: the matches after the search start (the planned fire, or the window's start) up to now.
          const from = Math.max(planned, now - windowMs - 1)
          expect(due.missed).toBe(Math.floor((now - start) / 5_000) - Math.floor((from - start) / 5_000))
          // Late within the window, the newest is the last match <= now; beyond it, a match within the window if any.
          if (late <= windowMs || now % 5_000 <= windowMs) expect(due.newest).toBe(now - (now % 5_000))
          else expect(due.newest).toBe(planned)
        }
      )
    )
  })
})

describe("fire: misfire and overlap rules", () => {
  it("on time within the threshold; runOnce catches up within the grace; otherwise misfired", () => {
    expect(Fire.misfire(0, 1_000, "skip", 60_000)).toBe("on_time")
    expect(Fire.misfire(1_000, 1_000, "skip", 60_000)).toBe("on_time")
    expect(Fire.misfire(1_001, 1_000, "skip", 60_000)).toBe("misfired")
    expect(Fire.misfire(1_001, 1_000, "runOnce", 60_000)).toBe("catch_up")
    expect(Fire.misfire(60_000, 1_000, "runOnce", 60_000)).toBe("catch_up")
    expect(Fire.misfire(60_001, 1_000, "runOnce", 60_000)).toBe("misfired")
    // A grace below the threshold catches nothing up.
    expect(Fire.misfire(1_500, 2_000, "runOnce", 500)).toBe("on_time")
    expect(Fire.misfire(2_500, 2_000, "runOnce", 500)).toBe("misfired")
  })

  it("a fire runs when nothing runs or overlap is allowed; else the policy decides", () => {
    for (const policy of ["skip", "allow", "replace"] as const) expect(Fire.overlap(0, policy)).toBe("run")
    expect(Fire.overlap(1, "allow")).toBe("run")
    expect(Fire.overlap(2, "skip")).toBe("skip")
    expect(Fire.overlap(1, "replace")).toBe("replace")
  })
})
