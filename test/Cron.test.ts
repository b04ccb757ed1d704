import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import { execFile } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Cron from "../src/Cron.js"
import type { InvalidCron } from "../src/Errors.js"

const cron = (expression: string, timezone?: string): Cron.Cron =>
  Either.getOrThrow(Cron.parse(expression, { timezone }))

const invalid = (expression: string, timezone?: string): InvalidCron => {
  const result = Cron.parse(expression, { timezone })
  if (Either.isRight(result)) throw new Error(`expected "${expression}" (${timezone}) to be rejected`)
  return result.left
}

const iso = (ms: number): string => new Date(ms).toISOString().replace(".000Z", "Z")

/** The first `count` fire times strictly after `from` (ISO), as ISO strings without milliseconds. */
const fires = (c: Cron.Cron, from: string, count: number): Array<string> => {
  const out: Array<string> = []
  let t = Date.parse(from)
  for (let i = 0; i < count; i++) {
    t = Cron.next(c, t)
    out.push(iso(t))
  }
  return out
}

/** All fire times in `[from, to)`, `from` itself included when it is a fire. */
const firesBetween = (c: Cron.Cron, from: string, to: string): Array<string> => {
  const out: Array<string> = []
  const end = Date.parse(to)
  for (let t = Cron.next(c, Date.parse(from) - 1); t < end; t = Cron.next(c, t)) out.push(iso(t))
  return out
}

describe("Cron.parse rejects bad input with InvalidCron naming the field", () => {
  const cases: ReadonlyArray<[string, string, string | undefined, RegExp]> = [
    ["second out of range", "60 * * * * *", "second", /out of range 0-59/],
    ["minute out of range", "0 60 * * * *", "minute", /out of range/],
    ["hour out of range", "0 0 24 * * *", "hour", /out of range 0-23/],
    ["day of month 0", "0 0 0 0 * *", "dayOfMonth", /out of range 1-31/],
    ["day of month 32", "0 0 0 32 * *", "dayOfMonth", /out of range/],
    ["month 13", "0 0 0 1 13 *", "month", /out of range 1-12/],
    ["day of week 8", "0 0 0 * * 8", "dayOfWeek", /out of range 0-7/],
    ["range end out of range", "0 0 20-25 * * *", "hour", /out of range/],
    ["step 0", "*/0 * * * * *", "second", /positive integer/],
    ["non-numeric step", "0 */x * * * *", "minute", /positive integer/],
    ["empty step", "0 0 1/ * * *", "hour", /positive integer/],
    ["negative-looking value", "0 0 -1 * * *", "hour", /not a number|unknown/],
    ["reversed range", "0 0 5-1 * * *", "hour", /reversed/],
    ["reversed named range", "0 0 0 * * FRI-MON", "dayOfWeek", /reversed/],
    ["unknown month name", "0 0 0 1 FOO *", "month", /unknown value "FOO"/],
    ["unknown day name", "0 0 0 * * XYZ", "dayOfWeek", /unknown value "XYZ"/],
    ["month name in day of week", "0 0 0 * * JAN", "dayOfWeek", /unknown value/],
    ["name in a numeric field", "0 0 MON * * *", "hour", /not a number/],
    ["empty list item", "0 1,,2 * * * *", "minute", /empty list item/],
    ["? outside day fields", "? * * * * *", "second", /not a number/],
    ["Quartz L is unsupported", "0 0 0 L * *", "dayOfMonth", /not a number/],
    ["never fires: February 30", "0 0 0 30 2 *", "dayOfMonth", /never fire/],
    ["never fires: 31st of 30-day months", "0 0 0 31 4,6,9,11 *", "dayOfMonth", /never fire/],
    ["never fires: 30-31 in February (5 fields)", "0 0 30,31 FEB *", "dayOfMonth", /never fire/],
    ["4 fields", "* * * *", undefined, /expected 5 or 6 fields.*got 4/],
    ["7 fields", "0 0 0 * * * 2026", undefined, /got 7/],
    ["empty", "", undefined, /empty/],
    ["blank", "  \t ", undefined, /empty/],
    ["unknown macro", "@reboot", undefined, /unknown macro/]
  ]
  for (const [name, expression, field, reason] of cases) {
    it(`rejects ${name}: "${expression}"`, () => {
      const error = invalid(expression)
      expect(error._tag).toBe("InvalidCron")
      expect(error.field).toBe(field)
      expect(error.reason).toMatch(reason)
      expect(error.expression).toBe(expression)
      expect(error.timezone).toBe("UTC")
    })
  }

  it("rejects an unknown IANA zone in field timezone", () => {
    const error = invalid("0 0 2 * * *", "Mars/Olympus_Mons")
    expect(error._tag).toBe("InvalidCron")
    expect(error.field).toBe("timezone")
    expect(error.timezone).toBe("Mars/Olympus_Mons")
    expect(error.message).toContain("Mars/Olympus_Mons")
  })

  it("rejects an empty zone name and a fixed-offset string that is not an IANA name", () => {
    expect(invalid("* * * * *", "").field).toBe("timezone")
    expect(invalid("* * * * *", "+08:00").field).toBe("timezone")
  })

  it("never throws, even for non-string input from untyped callers", () => {
    // Deliberately ill-typed: JavaScript callers and decoded config can hand anything over.
    const result = Cron.parse(42 as unknown as string)
    expect(Either.isLeft(result)).toBe(true)
  })

  it("accepts February 29 (fires in leap years)", () => {
    expect(Either.isRight(Cron.parse("0 0 0 29 2 *"))).toBe(true)
  })

  it("accepts an impossible day of month when day of week is restricted (OR makes it fire)", () => {
    expect(fires(cron("0 0 0 30 2 MON"), "2026-02-01T00:00:00Z", 2)).toEqual([
      "2026-02-02T00:00:00Z",
      "2026-02-09T00:00:00Z"
    ])
  })
})

describe("Cron.parse syntax", () => {
  it("reads 5 fields as seconds = 0 and 6 fields with seconds first", () => {
    expect(fires(cron("30 2 * * *"), "2026-01-01T00:00:00Z", 2)).toEqual(
      fires(cron("0 30 2 * * *"), "2026-01-01T00:00:00Z", 2)
    )
    expect(fires(cron("15 30 2 * * *"), "2026-01-01T00:00:00Z", 2)).toEqual([
      "2026-01-01T02:30:15Z",
      "2026-01-02T02:30:15Z"
    ])
  })

  it("keeps the expression as written and defaults the zone to UTC", () => {
    const c = cron("  @daily ")
    expect(c._tag).toBe("Cron")
    expect(c.expression).toBe("  @daily ")
    expect(c.timezone).toBe("UTC")
  })

  it("splits on runs of spaces and tabs after trimming", () => {
    expect(fires(cron(" \t0\t 30   2 *\t* * "), "2026-01-01T00:00:00Z", 1)).toEqual(["2026-01-01T02:30:00Z"])
  })

  it("accepts month and day names case-insensitively, and 7 as Sunday", () => {
    const from = "2026-01-01T00:00:00Z"
    const numeric = fires(cron("0 0 12 * 1,3 0"), from, 12)
    expect(fires(cron("0 0 12 * JAN,mar SUN"), from, 12)).toEqual(numeric)
    expect(fires(cron("0 0 12 * jan,Mar 7"), from, 12)).toEqual(numeric)
    expect(numeric.every((t) => new Date(t).getUTCDay() === 0)).toBe(true)
    expect(numeric.every((t) => [0, 2].includes(new Date(t).getUTCMonth()))).toBe(true)
  })

  it("reads day-of-week ranges with names and 7: MON-FRI is weekdays, 5-7 is Friday to Sunday", () => {
    const weekdays = fires(cron("0 0 9 * * MON-FRI"), "2026-03-01T00:00:00Z", 10).map((t) => new Date(t).getUTCDay())
    expect(weekdays).toEqual([1, 2, 3, 4, 5, 1, 2, 3, 4, 5])
    const weekend = fires(cron("0 0 9 * * 5-7"), "2026-03-01T00:00:00Z", 6).map((t) => new Date(t).getUTCDay())
    expect(weekend).toEqual([0, 5, 6, 0, 5, 6])
  })

  it("reads steps: */n from the minimum, a/n from a to the maximum, a-b/n within the range", () => {
    expect(firesBetween(cron("*/20 * * * * *"), "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z")).toEqual([
      "2026-01-01T00:00:00Z",
      "2026-01-01T00:00:20Z",
      "2026-01-01T00:00:40Z"
    ])
    expect(firesBetween(cron("0 45/5 * * * *"), "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")).toEqual([
      "2026-01-01T00:45:00Z",
      "2026-01-01T00:50:00Z",
      "2026-01-01T00:55:00Z"
    ])
    expect(firesBetween(cron("0 0 1-7/3 * * *"), "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")).toEqual([
      "2026-01-01T01:00:00Z",
      "2026-01-01T04:00:00Z",
      "2026-01-01T07:00:00Z"
    ])
    // Day-of-week steps stop at 6 (Saturday): 7 is an alias of Sunday, not a separate day.
    const weekdays = fires(cron("0 0 0 * * */2"), "2026-02-28T12:00:00Z", 4).map((t) => new Date(t).getUTCDay())
    expect(weekdays).toEqual([0, 2, 4, 6])
    const odd = fires(cron("0 0 0 * * 1/2"), "2026-02-28T12:00:00Z", 4).map((t) => new Date(t).getUTCDay())
    expect(odd).toEqual([1, 3, 5, 1])
    const fromTue = fires(cron("0 0 0 * * TUE/3"), "2026-02-28T12:00:00Z", 3).map((t) => new Date(t).getUTCDay())
    expect(fromTue).toEqual([2, 5, 2])
  })

  it("accepts ? as * in day of month and day of week (Quartz habit)", () => {
    const from = "2026-03-01T00:00:00Z"
    expect(fires(cron("0 0 0 ? * MON"), from, 3)).toEqual(fires(cron("0 0 0 * * MON"), from, 3))
    expect(fires(cron("0 0 0 15 * ?"), from, 3)).toEqual(fires(cron("0 0 0 15 * *"), from, 3))
  })

  it("expands every macro to its 6-field equivalent", () => {
    const pairs: ReadonlyArray<[string, string]> = [
      ["@yearly", "0 0 0 1 1 *"],
      ["@annually", "0 0 0 1 1 *"],
      ["@monthly", "0 0 0 1 * *"],
      ["@weekly", "0 0 0 * * 0"],
      ["@daily", "0 0 0 * * *"],
      ["@midnight", "0 0 0 * * *"],
      ["@hourly", "0 0 * * * *"],
      ["@HOURLY", "0 0 * * * *"]
    ]
    for (const [macro, expansion] of pairs) {
      for (const timezone of ["UTC", "America/New_York"]) {
        expect(fires(cron(macro, timezone), "2026-02-25T00:00:00Z", 5)).toEqual(
          fires(cron(expansion, timezone), "2026-02-25T00:00:00Z", 5)
        )
      }
    }
  })

  it("treats @hourly as wildcard-hour: both 01:00s fire on a fall-back day", () => {
    expect(firesBetween(cron("@hourly", "America/New_York"), "2026-11-01T04:00:00Z", "2026-11-01T08:00:00Z")).toEqual([
      "2026-11-01T04:00:00Z",
      "2026-11-01T05:00:00Z",
      "2026-11-01T06:00:00Z",
      "2026-11-01T07:00:00Z"
    ])
  })
})

describe("Cron.next in UTC", () => {
  it("ORs day of month and day of week when both are restricted (Vixie)", () => {
    // March 2026: Fridays are 6, 13, 20, 27; the 13th is itself a Friday; April 13 is a Monday.
    expect(fires(cron("0 0 0 13 * FRI"), "2026-03-01T00:00:00Z", 6)).toEqual([
      "2026-03-06T00:00:00Z",
      "2026-03-13T00:00:00Z",
      "2026-03-20T00:00:00Z",
      "2026-03-27T00:00:00Z",
      "2026-04-03T00:00:00Z",
      "2026-04-10T00:00:00Z"
    ])
    expect(fires(cron("0 0 0 13 * FRI"), "2026-04-10T00:00:00Z", 2)).toEqual([
      "2026-04-13T00:00:00Z",
      "2026-04-17T00:00:00Z"
    ])
  })

  it("restricts by day of week only when day of month is *, and by day of month only when day of week is *", () => {
    expect(fires(cron("0 0 0 * * FRI"), "2026-03-01T00:00:00Z", 2)).toEqual([
      "2026-03-06T00:00:00Z",
      "2026-03-13T00:00:00Z"
    ])
    expect(fires(cron("0 0 0 13 * *"), "2026-03-01T00:00:00Z", 2)).toEqual([
      "2026-03-13T00:00:00Z",
      "2026-04-13T00:00:00Z"
    ])
  })

  it("finds February 29 in the next leap year: 0 0 0 29 2 * from 2026-03-01 is 2028-02-29", () => {
    expect(fires(cron("0 0 0 29 2 *"), "2026-03-01T00:00:00Z", 2)).toEqual([
      "2028-02-29T00:00:00Z",
      "2032-02-29T00:00:00Z"
    ])
  })

  it("skips the non-leap 2100: February 29 after 2096 is in 2104", () => {
    expect(fires(cron("0 0 0 29 2 *"), "2096-03-01T00:00:00Z", 1)).toEqual(["2104-02-29T00:00:00Z"])
  })

  it("carries into the next year: 0 0 0 1 1 * from 2026-12-01 is 2027-01-01T00:00Z", () => {
    expect(fires(cron("0 0 0 1 1 *"), "2026-12-01T00:00:00Z", 1)).toEqual(["2027-01-01T00:00:00Z"])
  })

  it("carries through month ends: the 31st skips 30-day months", () => {
    expect(fires(cron("0 0 12 31 * *"), "2026-03-31T12:00:00Z", 3)).toEqual([
      "2026-05-31T12:00:00Z",
      "2026-07-31T12:00:00Z",
      "2026-08-31T12:00:00Z"
    ])
  })

  it("returns a time strictly after `after` when `after` is itself a fire time", () => {
    const c = cron("0 */5 * * * *")
    const fire = Date.parse("2026-06-01T10:05:00Z")
    expect(iso(Cron.next(c, fire))).toBe("2026-06-01T10:10:00Z")
    expect(iso(Cron.next(c, fire - 1))).toBe("2026-06-01T10:05:00Z")
  })

  it("returns a whole second strictly after an `after` with milliseconds", () => {
    const every = cron("* * * * * *")
    const after = Date.parse("2026-06-01T10:05:00.999Z")
    expect(iso(Cron.next(every, after))).toBe("2026-06-01T10:05:01Z")
    expect(iso(Cron.next(every, after - 998))).toBe("2026-06-01T10:05:01Z")
    const c = cron("0 */5 * * * *")
    expect(iso(Cron.next(c, Date.parse("2026-06-01T10:05:00.001Z")))).toBe("2026-06-01T10:10:00Z")
    for (const tz of ["UTC", "America/New_York", "Australia/Lord_Howe"]) {
      const t = Cron.next(cron("*/7 * * * * *", tz), after + 0.5)
      expect(t % 1000).toBe(0)
      expect(t).toBeGreaterThan(after)
    }
  })

  it("accepts a Date as well as epoch milliseconds", () => {
    const c = cron("0 0 9 * * *")
    expect(Cron.next(c, new Date("2026-06-01T08:00:00Z"))).toBe(Cron.next(c, Date.parse("2026-06-01T08:00:00Z")))
  })

  it("answers NaN for an invalid Date instead of throwing", () => {
    expect(Cron.next(cron("* * * * * *"), new Date("not a date"))).toBeNaN()
  })

  it("works far in the past and answers Infinity instead of throwing at the end of Date's range", () => {
    expect(fires(cron("0 0 0 1 1 *", "Europe/Berlin"), "1900-06-01T00:00:00Z", 1)).toEqual(["1900-12-31T23:00:00Z"])
    expect(Cron.next(cron("* * * * * *", "America/New_York"), 8.64e15 - 1000)).toBe(Infinity)
  })

  it("computes look-alike objects not made by parse from their fields", () => {
    const lookAlike: Cron.Cron = { _tag: "Cron", expression: "0 0 3 * * *", timezone: "UTC" }
    expect(iso(Cron.next(lookAlike, Date.parse("2026-01-01T00:00:00Z")))).toBe("2026-01-01T03:00:00Z")
    expect(Cron.next({ _tag: "Cron", expression: "nope", timezone: "UTC" }, 0)).toBe(Infinity)
  })
})

describe("Cron.next in time zones", () => {
  it("fires 0 0 2 * * * in Asia/Shanghai at 18:00Z of the previous UTC day, every day for a week", () => {
    expect(fires(cron("0 0 2 * * *", "Asia/Shanghai"), "2026-01-01T00:00:00Z", 7)).toEqual([
      "2026-01-01T18:00:00Z",
      "2026-01-02T18:00:00Z",
      "2026-01-03T18:00:00Z",
      "2026-01-04T18:00:00Z",
      "2026-01-05T18:00:00Z",
      "2026-01-06T18:00:00Z",
      "2026-01-07T18:00:00Z"
    ])
  })

  it("America/New_York spring forward: a pinned 02:30 job fires once at the jump, 03:00 EDT = 07:00Z", () => {
    expect(fires(cron("0 30 2 * * *", "America/New_York"), "2026-03-07T00:00:00Z", 3)).toEqual([
      "2026-03-07T07:30:00Z", // 02:30 EST
      "2026-03-08T07:00:00Z", // 02:30 does not exist: fires at the jump (03:00 EDT)
      "2026-03-09T06:30:00Z" // 02:30 EDT
    ])
  })

  it("America/New_York spring forward: several skipped pinned times fire once, at the jump", () => {
    expect(
      firesBetween(cron("0 0,20,40 2 * * *", "America/New_York"), "2026-03-08T00:00:00Z", "2026-03-09T00:00:00Z")
    ).toEqual(["2026-03-08T07:00:00Z"])
  })

  it("America/New_York fall back: a pinned 01:30 job fires once, at 01:30 EDT (05:30Z), not at 01:30 EST", () => {
    expect(fires(cron("0 30 1 * * *", "America/New_York"), "2026-10-31T00:00:00Z", 3)).toEqual([
      "2026-10-31T05:30:00Z",
      "2026-11-01T05:30:00Z",
      "2026-11-02T06:30:00Z"
    ])
    // Starting inside the repeated hour, after the first 01:30: the second occurrence is still skipped.
    expect(fires(cron("0 30 1 * * *", "America/New_York"), "2026-11-01T06:10:00Z", 1)).toEqual(["2026-11-02T06:30:00Z"])
  })

  it("America/New_York: an hourly job has no 02:00 on spring-forward day and two 01:00s on fall-back day", () => {
    const hourly = cron("0 0 * * * *", "America/New_York")
    expect(firesBetween(hourly, "2026-03-08T05:00:00Z", "2026-03-08T09:00:00Z")).toEqual([
      "2026-03-08T05:00:00Z", // 00:00 EST
      "2026-03-08T06:00:00Z", // 01:00 EST
      "2026-03-08T07:00:00Z", // 03:00 EDT (no 02:00)
      "2026-03-08T08:00:00Z" // 04:00 EDT
    ])
    expect(firesBetween(hourly, "2026-11-01T04:00:00Z", "2026-11-01T08:00:00Z")).toEqual([
      "2026-11-01T04:00:00Z", // 00:00 EDT
      "2026-11-01T05:00:00Z", // 01:00 EDT
      "2026-11-01T06:00:00Z", // 01:00 EST
      "2026-11-01T07:00:00Z" // 02:00 EST
    ])
  })

  it("America/New_York: 0 */15 * * * * keeps a 15-minute elapsed rhythm across both changes", () => {
    const quarter = cron("0 */15 * * * *", "America/New_York")
    for (
      const [from, to] of [
        ["2026-03-08T05:00:00Z", "2026-03-08T09:00:00Z"],
        ["2026-11-01T04:00:00Z", "2026-11-01T08:00:00Z"]
      ]
    ) {
      const times = firesBetween(quarter, from, to).map(Date.parse)
      expect(times.length).toBe(16)
      for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBe(15 * 60_000)
    }
  })

  it("America/New_York: a pinned-hour job at 01:xx on fall-back day fires each time once, in EDT", () => {
    expect(
      firesBetween(cron("0 0/30 1 * * *", "America/New_York"), "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
    ).toEqual(["2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z"])
  })

  it("America/New_York: a wildcard-hour job with a step fires in both occurrences of 01:xx", () => {
    expect(
      firesBetween(cron("0 30 */1 * * *", "America/New_York"), "2026-11-01T04:00:00Z", "2026-11-01T08:00:00Z")
    ).toEqual(["2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"])
  })

  it("Australia/Lord_Howe (30-minute shift): pinned 02:15 fires at the jump, hourly :45 fires twice at 01:45", () => {
    // 2026-10-04 02:00 LHST (+10:30) jumps to 02:30 LHDT (+11) at 2026-10-03T15:30Z.
    expect(fires(cron("0 15 2 * * *", "Australia/Lord_Howe"), "2026-10-02T00:00:00Z", 3)).toEqual([
      "2026-10-02T15:45:00Z",
      "2026-10-03T15:30:00Z",
      "2026-10-04T15:15:00Z"
    ])
    // 2026-04-05 02:00 LHDT falls back to 01:30 LHST at 2026-04-04T15:00Z: 01:45 happens at 14:45Z and 15:15Z.
    expect(firesBetween(cron("0 45 * * * *", "Australia/Lord_Howe"), "2026-04-04T13:00:00Z", "2026-04-04T16:30:00Z"))
      .toEqual(["2026-04-04T13:45:00Z", "2026-04-04T14:45:00Z", "2026-04-04T15:15:00Z", "2026-04-04T16:15:00Z"])
    // A pinned 01:45 fires only at the first occurrence.
    expect(fires(cron("0 45 1 * * *", "Australia/Lord_Howe"), "2026-04-04T12:00:00Z", 2)).toEqual([
      "2026-04-04T14:45:00Z",
      "2026-04-05T15:15:00Z"
    ])
  })

  it("Europe/Berlin: the daily 02:30 job fires at the jump (03:00 CEST) on spring-forward day", () => {
    expect(fires(cron("0 30 2 * * *", "Europe/Berlin"), "2026-03-28T00:00:00Z", 3)).toEqual([
      "2026-03-28T01:30:00Z",
      "2026-03-29T01:00:00Z",
      "2026-03-30T00:30:00Z"
    ])
  })

  it("gives identical results whatever the process TZ (TZ=UTC, America/New_York, Lord_Howe children)", async () => {
    const { build } = await import("esbuild")
    const dir = mkdtempSync(join(tmpdir(), "cron-tz-"))
    try {
      const cronModule = fileURLToPath(new URL("../src/Cron.ts", import.meta.url))
      // The child computes a fixed set of fire times (DST days, zones, leap day) and prints them with the process's
      // own view of local time, which proves the TZ variable really took effect there.
      const script = `
        import * as Cron from ${JSON.stringify(cronModule)}
        const cases = ${JSON.stringify(tzCases)}
        const out = []
        for (const [expression, timezone, from, count] of cases) {
          const parsed = Cron.parse(expression, { timezone })
          let t = Date.parse(from)
          for (let i = 0; i < count; i++) { t = Cron.next(parsed.right, t); out.push(t) }
        }
        console.log(JSON.stringify({ localOffset: new Date(Date.UTC(2026, 6, 1)).getTimezoneOffset(), out }))
      `
      const bundled = await build({
        stdin: { contents: script, loader: "ts", resolveDir: dir },
        bundle: true,
        platform: "node",
        format: "esm",
        write: false,
        logLevel: "silent"
      })
      const file = join(dir, "child.mjs")
      writeFileSync(file, bundled.outputFiles[0].text)
      const run = (tz: string) =>
        new Promise<{ localOffset: number; out: Array<number> }>((resolve, reject) =>
          execFile(
            process.execPath,
            [file],
            { env: { ...process.env, TZ: tz }, timeout: 20_000 },
            (error, stdout) => error ? reject(error) : resolve(JSON.parse(stdout))
          )
        )
      const [utc, newYork, lordHowe] = await Promise.all([
        run("UTC"),
        run("America/New_York"),
        run("Australia/Lord_Howe")
      ])
      // The TZ variable took effect in each child (July: UTC 0, EDT +240 min, LHST -630 min).
      expect([utc.localOffset, newYork.localOffset, lordHowe.localOffset]).toEqual([0, 240, -630])
      const here: Array<number> = []
      for (const [expression, timezone, from, count] of tzCases) {
        let t = Date.parse(from)
        for (let i = 0; i < count; i++) here.push(t = Cron.next(cron(expression, timezone), t))
      }
      expect(utc.out).toEqual(here)
      expect(newYork.out).toEqual(here)
      expect(lordHowe.out).toEqual(here)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

/** Expressions, zones and start times compared across process time zones. */
const tzCases: ReadonlyArray<[string, string, string, number]> = [
  ["0 30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z", 3],
  ["0 30 1 * * *", "America/New_York", "2026-10-31T00:00:00Z", 3],
  ["0 0 * * * *", "America/New_York", "2026-11-01T03:00:00Z", 6],
  ["0 */15 * * * *", "America/New_York", "2026-03-08T06:00:00Z", 8],
  ["0 0 * * * *", "UTC", "2026-11-01T03:00:00Z", 6],
  ["0 0 0 * * *", "UTC", "2026-03-28T00:00:00Z", 3],
  ["0 0 2 * * *", "Asia/Shanghai", "2026-01-01T00:00:00Z", 3],
  ["0 15 2 * * *", "Australia/Lord_Howe", "2026-10-02T00:00:00Z", 3],
  ["0 0 * * * *", "Europe/Berlin", "2026-10-25T00:00:00Z", 4],
  ["0 0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", 2]
]
