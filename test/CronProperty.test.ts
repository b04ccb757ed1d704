import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Either from "effect/Either"
import * as Cron from "../src/Cron.js"

// ---------------------------------------------------------------------------------------------------------------
// Random expressions, generated as structure (so the brute force below never parses text)
// ---------------------------------------------------------------------------------------------------------------

type Item =
  | { readonly kind: "star" }
  | { readonly kind: "starStep"; readonly n: number }
  | { readonly kind: "value"; readonly a: number }
  | { readonly kind: "range"; readonly a: number; readonly b: number }
  | { readonly kind: "rangeStep"; readonly a: number; readonly b: number; readonly n: number }
  | { readonly kind: "fromStep"; readonly a: number; readonly n: number }

interface Field {
  readonly text: string
  /** The values the field allows, expanded from its items; day of week already folded 7 -> 0. */
  readonly values: ReadonlySet<number>
}

interface Bounds {
  readonly min: number
  /** Largest literal value (7 for day of week). */
  readonly max: number
  /** Where `*`, `*\/n` and `a/n` stop (6 for day of week). */
  readonly rangeMax: number
  readonly names?: ReadonlyArray<string>
}

const SECOND: Bounds = { min: 0, max: 59, rangeMax: 59 }
const MINUTE: Bounds = SECOND
const HOUR: Bounds = { min: 0, max: 23, rangeMax: 23 }
const DOM: Bounds = { min: 1, max: 31, rangeMax: 31 }
const MONTH: Bounds = {
  min: 1,
  max: 12,
  rangeMax: 12,
  names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
}
const DOW: Bounds = { min: 0, max: 7, rangeMax: 6, names: ["sun", "Mon", "TUE", "wed", "Thu", "FRI", "sat"] }

/** A value as a number, or (for names fields, sometimes) as its name; 7 (Sunday again) has no name. */
const render = (value: number, bounds: Bounds, named: boolean): string =>
  named && bounds.names !== undefined && value - bounds.min < bounds.names.length
    ? bounds.names[value - bounds.min]
    : String(value)

const renderItem = (item: Item, bounds: Bounds, named: boolean): string => {
  switch (item.kind) {
    case "star":
      return "*"
    case "starStep":
      return `*/${item.n}`
    case "value":
      return render(item.a, bounds, named)
    case "range":
      return `${render(item.a, bounds, named)}-${render(item.b, bounds, named)}`
    case "rangeStep":
      return `${render(item.a, bounds, named)}-${render(item.b, bounds, named)}/${item.n}`
    case "fromStep":
      return `${render(item.a, bounds, named)}/${item.n}`
  }
}

const expandItem = (item: Item, bounds: Bounds): Array<number> => {
  const out: Array<number> = []
  const walk = (from: number, to: number, step: number) => {
    for (let v = from; v <= to; v += step) out.push(v)
  }
  switch (item.kind) {
    case "star":
      walk(bounds.min, bounds.rangeMax, 1)
      break
    case "starStep":
      walk(bounds.min, bounds.rangeMax, item.n)
      break
    case "value":
      out.push(item.a)
      break
    case "range":
      walk(item.a, item.b, 1)
      break
    case "rangeStep":
      walk(item.a, item.b, item.n)
      break
    case "fromStep":
      walk(item.a, Math.max(item.a, bounds.rangeMax), item.n)
      break
  }
  return out
}

const makeField = (items: ReadonlyArray<Item>, bounds: Bounds, named: boolean): Field => ({
  text: items.map((item) => renderItem(item, bounds, named)).join(","),
  values: new Set(items.flatMap((item) => expandItem(item, bounds)).map((v) => (bounds === DOW ? v % 7 : v)))
})

const star = (bounds: Bounds, text = "*"): Field => ({ text, values: new Set(expandItem({ kind: "star" }, bounds)) })

const value = (bounds: Bounds, lo = bounds.min, hi = bounds.max) => fc.integer({ min: lo, max: hi })

/** One list item of any syntax, values within `[lo, hi]`, steps within `[1, maxStep]`. */
const itemArb = (bounds: Bounds, lo: number, hi: number, maxStep: number): fc.Arbitrary<Item> => {
  const step = fc.integer({ min: 1, max: maxStep })
  const pair = fc.tuple(value(bounds, lo, hi), value(bounds, lo, hi)).map(([x, y]) => [Math.min(x, y), Math.max(x, y)])
  return fc.oneof(
    { arbitrary: value(bounds, lo, hi).map((a): Item => ({ kind: "value", a })), weight: 4 },
    { arbitrary: pair.map(([a, b]): Item => ({ kind: "range", a, b })), weight: 2 },
    { arbitrary: step.map((n): Item => ({ kind: "starStep", n })), weight: 2 },
    { arbitrary: fc.tuple(pair, step).map(([[a, b], n]): Item => ({ kind: "rangeStep", a, b, n })), weight: 1 },
    { arbitrary: fc.tuple(value(bounds, lo, hi), step).map(([a, n]): Item => ({ kind: "fromStep", a, n })), weight: 1 }
  )
}

const listArb = (bounds: Bounds, lo: number, hi: number, maxStep: number, named = false): fc.Arbitrary<Field> =>
  fc.tuple(fc.array(itemArb(bounds, lo, hi, maxStep), { minLength: 1, maxLength: 3 }), fc.boolean()).map((
    [items, useNames]
  ) => makeField(items, bounds, named && useNames))

interface Spec {
  readonly second: Field
  readonly minute: Field
  readonly hour: Field
  readonly dom: Field
  readonly month: Field
  readonly dow: Field
  readonly fiveFields: boolean
}

const expressionOf = (spec: Spec): string =>
  [
    ...(spec.fiveFields ? [] : [spec.second.text]),
    spec.minute.text,
    spec.hour.text,
    spec.dom.text,
    spec.month.text,
    spec.dow.text
  ].join(" ")

/**
 * Expressions that fire often enough for a minute-by-minute brute force: months and days are mostly `*` or dense;
 * hours lean to 0-4, where the DST changes of the zones under test happen (New York 02:00, Berlin 02:00-03:00,
 * Lord Howe 01:30-02:30).
 */
const specArb: fc.Arbitrary<Spec> = fc.record({
  fiveFields: fc.boolean(),
  second: fc.oneof(
    { arbitrary: value(SECOND).map((a) => makeField([{ kind: "value", a }], SECOND, false)), weight: 6 },
    { arbitrary: listArb(SECOND, 0, 59, 30), weight: 3 },
    { arbitrary: fc.constant(star(SECOND)), weight: 1 }
  ),
  minute: fc.oneof(
    { arbitrary: fc.constant(star(MINUTE)), weight: 1 },
    { arbitrary: listArb(MINUTE, 0, 59, 30), weight: 4 }
  ),
  hour: fc.oneof(
    // wildcard-hour forms
    { arbitrary: fc.constant(star(HOUR)), weight: 2 },
    { arbitrary: listArb(HOUR, 0, 4, 6).filter((f) => f.text.includes("/")), weight: 2 },
    // pinned-hour forms, mostly around the DST hours
    {
      arbitrary: fc.array(value(HOUR, 0, 4), { minLength: 1, maxLength: 3 }).map((vs) =>
        makeField(vs.map((a) => ({ kind: "value", a })), HOUR, false)
      ),
      weight: 4
    },
    { arbitrary: listArb(HOUR, 0, 23, 1).filter((f) => !f.text.includes("/")), weight: 2 }
  ),
  month: fc.oneof(
    { arbitrary: fc.constant(star(MONTH)), weight: 8 },
    // Restricted months, each missing at most one month (June or July, far from the DST changes under test, so
    // that few searches start in a missing month and the brute force stays short).
    {
      arbitrary: fc.constantFrom("JAN-MAY,JUL-DEC", "1-6,8-12", "jan-jun,aug-dec,jul", "*/1", "2-12/1,1").map(
        (text) => ({ text, values: monthSet(text) })
      ),
      weight: 2
    }
  ),
  dom: fc.oneof(
    { arbitrary: fc.constant(star(DOM)), weight: 4 },
    { arbitrary: fc.constant(star(DOM, "?")), weight: 1 },
    { arbitrary: fc.array(itemArb(DOM, 1, 31, 3), { minLength: 1, maxLength: 3 }), weight: 4 }
  ),
  denseDom: fc.constantFrom<ReadonlyArray<Item>>(
    [{ kind: "starStep", n: 2 }],
    [{ kind: "starStep", n: 3 }],
    [{ kind: "fromStep", a: 2, n: 3 }],
    [{ kind: "rangeStep", a: 1, b: 31, n: 2 }],
    [{ kind: "fromStep", a: 3, n: 2 }, { kind: "value", a: 1 }]
  ),
  dow: fc.oneof(
    { arbitrary: fc.constant(star(DOW)), weight: 4 },
    { arbitrary: fc.constant(star(DOW, "?")), weight: 1 },
    { arbitrary: listArb(DOW, 0, 7, 3, true), weight: 3 }
  )
}).map(({ denseDom, dom, fiveFields, ...rest }): Spec => {
  const dowStar = rest.dow.text === "*" || rest.dow.text === "?"
  // With day of week `*` only day of month picks days: add a dense item so that a fire is at most ~3 days away.
  const domField = Array.isArray(dom) ? makeField(dowStar ? [...dom, ...denseDom] : dom, DOM, false) : (dom as Field)
  return {
    ...rest,
    fiveFields,
    dom: domField,
    second: fiveFields ? makeField([{ kind: "value", a: 0 }], SECOND, false) : rest.second
  }
})

/** The month sets of the fixed restricted month fields above, written out by hand. */
const monthSet = (text: string): ReadonlySet<number> => {
  const sets: Record<string, ReadonlyArray<number>> = {
    "*/1": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    "2-12/1,1": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    "JAN-MAY,JUL-DEC": [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12],
    "jan-jun,aug-dec,jul": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    "1-6,8-12": [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
  }
  return new Set(sets[text])
}

// ---------------------------------------------------------------------------------------------------------------
// Brute force: step instants minute by minute, read the wall clock with Intl, apply the rules literally
// ---------------------------------------------------------------------------------------------------------------

const formatters = new Map<string, Intl.DateTimeFormat>()

/** The wall clock of `zone` at instant `t`, as "local ms" (the wall-clock fields read as if they were UTC). */
const wallClock = (zone: string, t: number): number => {
  let format = formatters.get(zone)
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric"
    })
    formatters.set(zone, format)
  }
  const f: Record<string, number> = {}
  for (const part of format.formatToParts(t)) if (part.type !== "literal") f[part.type] = Number(part.value)
  return Date.UTC(f.year, f.month - 1, f.day, f.hour, f.minute, f.second)
}

/** Whether the wall-clock minute `local` (local ms) matches every field but the seconds. */
const minuteMatches = (spec: Spec, local: number): boolean => {
  const d = new Date(local)
  const domStar = spec.dom.text === "*" || spec.dom.text === "?"
  const dowStar = spec.dow.text === "*" || spec.dow.text === "?"
  const dom = spec.dom.values.has(d.getUTCDate())
  const dow = spec.dow.values.has(d.getUTCDay())
  // Vixie: both restricted = either; otherwise the `*` one allows everything and the other decides.
  const day = !domStar && !dowStar ? dom || dow : dom && dow
  return day && spec.month.values.has(d.getUTCMonth() + 1) && spec.hour.values.has(d.getUTCHours()) &&
    spec.minute.values.has(d.getUTCMinutes())
}

const MINUTE_MS = 60_000

/**
 * The first fire strictly after `after`, scanning no further than `limit`; `undefined` if none. The zones under
 * test have offsets in whole minutes (Lord Howe: 30) that change on whole minutes, so within one UTC minute the
 * wall clock's seconds equal the instant's seconds and only the minute needs Intl.
 */
const bruteNext = (spec: Spec, zone: string, after: number, limit: number): number | undefined => {
  const pinned = !(spec.hour.text === "*" || spec.hour.text.includes("/"))
  const seconds = [...spec.second.values].sort((x, y) => x - y)
  let m = Math.floor(after / MINUTE_MS) * MINUTE_MS
  let previous = wallClock(zone, m - MINUTE_MS)
  for (; m <= limit; m += MINUTE_MS) {
    const local = wallClock(zone, m)
    // Spring forward: the wall clock jumped over [previous + 1 min, local). A pinned-hour cron matching any
    // skipped wall-clock minute fires at the jump instant m.
    if (pinned && local - previous > MINUTE_MS && m > after) {
      for (let skipped = previous + MINUTE_MS; skipped < local; skipped += MINUTE_MS) {
        if (minuteMatches(spec, skipped)) return m
      }
    }
    previous = local
    if (!minuteMatches(spec, local)) continue
    // Fall back: this wall-clock time already happened 30 or 60 minutes earlier (the only shifts in these zones);
    // a pinned-hour cron fires only at the first occurrence.
    if (pinned && (wallClock(zone, m - 30 * MINUTE_MS) === local || wallClock(zone, m - 60 * MINUTE_MS) === local)) {
      continue
    }
    for (const s of seconds) if (m + s * 1000 > after) return m + s * 1000
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------------------------------

const ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Shanghai", "Australia/Lord_Howe"] as const

/** DST changes of 2026-2027 (UTC), to start many searches in the days around them. */
const TRANSITIONS: Record<(typeof ZONES)[number], ReadonlyArray<string>> = {
  "UTC": ["2026-03-08T07:00:00Z", "2026-11-01T06:00:00Z"],
  "America/New_York": ["2026-03-08T07:00:00Z", "2026-11-01T06:00:00Z", "2027-03-14T07:00:00Z", "2027-11-07T06:00:00Z"],
  "Europe/Berlin": ["2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z", "2027-03-28T01:00:00Z", "2027-10-31T01:00:00Z"],
  "Asia/Shanghai": ["2026-03-08T07:00:00Z", "2026-11-01T06:00:00Z"],
  "Australia/Lord_Howe": [
    "2026-04-04T15:00:00Z",
    "2026-10-03T15:30:00Z",
    "2027-04-03T15:00:00Z",
    "2027-10-02T15:30:00Z"
  ]
}

const YEAR_START = Date.parse("2026-01-01T00:00:00Z")
const YEAR_END = Date.parse("2028-01-01T00:00:00Z")
const HOUR_MS = 3_600_000

const caseArb = fc.constantFrom(...ZONES).chain((zone) =>
  fc.record({
    zone: fc.constant(zone),
    spec: specArb,
    start: fc.oneof(
      { arbitrary: fc.integer({ min: YEAR_START, max: YEAR_END }), weight: 1 },
      // Within 2 days before to 1 day after a DST change, so that most searches cross it.
      {
        arbitrary: fc.tuple(
          fc.constantFrom(...TRANSITIONS[zone]),
          fc.integer({ min: -48 * HOUR_MS, max: 24 * HOUR_MS })
        ).map(([transition, delta]) => Date.parse(transition) + delta),
        weight: 2
      }
    ),
    wholeSecond: fc.boolean()
  })
)

/** No generated expression waits longer than this (one month missing, then days at most ~3 apart). */
const MAX_WAIT = 40 * 24 * HOUR_MS

describe("Cron.next agrees with a brute-force matcher", () => {
  it("on random expressions and start instants in five zones, including DST weeks (3 chained fires each)", () => {
    fc.assert(
      fc.property(caseArb, ({ spec, start, wholeSecond, zone }) => {
        const expression = expressionOf(spec)
        const parsed = Cron.parse(expression, { timezone: zone })
        // Every generated expression is valid and can fire (each month set has a 31-day month).
        if (Either.isLeft(parsed)) throw new Error(`rejected "${expression}" (${zone}): ${parsed.left.message}`)
        let after = wholeSecond ? Math.floor(start / 1000) * 1000 : start
        // Chain: the 2nd and 3rd searches start exactly at a fire time, which must not be returned again.
        for (let i = 0; i < 3; i++) {
          const ours = Cron.next(parsed.right, after)
          const expected = bruteNext(spec, zone, after, Math.min(ours, after + MAX_WAIT))
          expect({ expression, zone, after: new Date(after).toISOString(), next: isoOrValue(ours) }).toEqual({
            expression,
            zone,
            after: new Date(after).toISOString(),
            next: isoOrValue(expected)
          })
          after = ours
        }
      }),
      { numRuns: 500 }
    )
  }, 60_000)
})

const isoOrValue = (t: number | undefined): string =>
  t !== undefined && Number.isFinite(t) ? new Date(t).toISOString() : String(t)
