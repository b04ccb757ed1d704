/**
 * Cron expressions with seconds, IANA time zones and Vixie-cron DST rules. Pure: no timers, no I/O.
 *
 * Syntax: 6 fields `second minute hour day-of-month month day-of-week`, or 5 fields (seconds = 0), separated by
 * runs of spaces or tabs. Each field is a comma-separated list of `*`, `n`, `a-b`, `*\/n`, `a-b/n` or `a/n`
 * (`a/n` = from `a` to the field's maximum, step `n`). Months accept `JAN`-`DEC`, days of week `SUN`-`SAT`
 * (case-insensitive); day of week is 0-6 with 0 = Sunday, and 7 is accepted as Sunday too (in `*\/n` and `a/n`
 * the day-of-week maximum is 6, so `*\/2` is Sunday, Tuesday, Thursday, Saturday). `?` is accepted as `*` in the
 * day-of-month and day-of-week fields (the Quartz habit). Macros: `@yearly` (`@annually`), `@monthly`,
 * `@weekly`, `@daily` (`@midnight`), `@hourly`.
 *
 * Day matching (Vixie cron): when both day-of-month and day-of-week are restricted (neither is written `*` or
 * `?`) a day matches if EITHER matches; when one of them is `*`/`?` only the other restricts. "Restricted" is
 * about how the field is written, not its value set: `1-31` restricts, `*` does not.
 *
 * Time zones and DST (Vixie cron): a cron whose hour field is `*` or contains a step `/` ("wildcard-hour",
 * `@hourly` included) fires at every instant whose wall-clock time in the zone matches, so it keeps its rhythm in
 * elapsed time: both occurrences of a repeated (fall-back) hour fire, a skipped (spring-forward) hour has no
 * fires. Any other cron (pinned hours) fires each matching wall-clock time once: at its first occurrence when the
 * clock falls back, and at the instant of the jump when the clock springs forward over it (several skipped times
 * fire once, at the jump). Results never depend on the process's `TZ`.
 *
 * @since 0.1.0
 */
import type * as EffectCron from "effect/Cron"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { InvalidCron } from "./Errors.js"
import {
  civilDay,
  civilFromDays,
  civilMonth,
  civilYear,
  DAY,
  daysFromCivil,
  daysInMonth,
  getZone,
  MAX_INSTANT,
  type Zone
} from "./internal/zone.js"

/**
 * A parsed, validated cron expression bound to a time zone. Make one with `parse`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Cron {
  readonly _tag: "Cron"
  /** The expression as written (macros kept as written). */
  readonly expression: string
  /** IANA zone name, `UTC` by default. */
  readonly timezone: string
}

// ---------------------------------------------------------------------------------------------------------------
// Compiled form
// ---------------------------------------------------------------------------------------------------------------

/**
 * Size of one day-of-month lookup table: index 0 unused, 1-31 days, index 32 a sentinel (-1) reached when the day
 * counter runs past the month's end, so the search carries into the next month without a bounds check.
 */
const DAY_TABLE = 33

/**
 * The compiled form. Every field is a "next allowed value >= x" table (-1 = none in this unit, carry into the
 * next unit), with a -1 sentinel one past the field's maximum so that incrementing a counter past it carries too.
 */
class CronImpl implements Cron {
  readonly _tag = "Cron" as const
  constructor(
    readonly expression: string,
    readonly timezone: string,
    readonly zone: Zone,
    /** Pinned hours: DST gaps fire at the jump, overlaps fire once (see the module doc). */
    readonly pinned: boolean,
    readonly nextSecond: Int8Array, // 61 entries
    readonly nextMinute: Int8Array, // 61 entries
    readonly nextHour: Int8Array, // 25 entries
    readonly nextMonth: Int8Array, // 14 entries, index 0 unused
    /**
     * Next matching day >= d, for every month shape: `((daysInMonth - 28) * 7 + weekdayOfThe1st) * DAY_TABLE + d`.
     * Precomputing the 28 shapes folds day-of-month, day-of-week and the Vixie OR rule into one lookup.
     */
    readonly dayTable: Int8Array
  ) {}

  toString(): string {
    return `Cron(${this.expression}, ${this.timezone})`
  }

  toJSON(): unknown {
    return { _tag: "Cron", expression: this.expression, timezone: this.timezone }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------------------

interface FieldSpec {
  readonly name: "second" | "minute" | "hour" | "dayOfMonth" | "month" | "dayOfWeek"
  readonly min: number
  /** Largest value accepted literally. */
  readonly max: number
  /** Largest value reached by `*`, `*\/n` and `a/n` (6 for day of week, where 7 is only an alias of 0). */
  readonly rangeMax: number
  readonly names?: ReadonlyArray<string>
}

const MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

const FIELDS: ReadonlyArray<FieldSpec> = [
  { name: "second", min: 0, max: 59, rangeMax: 59 },
  { name: "minute", min: 0, max: 59, rangeMax: 59 },
  { name: "hour", min: 0, max: 23, rangeMax: 23 },
  { name: "dayOfMonth", min: 1, max: 31, rangeMax: 31 },
  { name: "month", min: 1, max: 12, rangeMax: 12, names: MONTH_NAMES },
  { name: "dayOfWeek", min: 0, max: 7, rangeMax: 6, names: DAY_NAMES }
]

/** Macros and their 6-field meaning. */
const MACROS: Record<string, string> = {
  "@yearly": "0 0 0 1 1 *",
  "@annually": "0 0 0 1 1 *",
  "@monthly": "0 0 0 1 * *",
  "@weekly": "0 0 0 * * 0",
  "@daily": "0 0 0 * * *",
  "@midnight": "0 0 0 * * *",
  "@hourly": "0 0 * * * *"
}

/** Longest day of each month (index 1-12) in any year: February has 29 in leap years. */
const MAX_DAYS_IN_MONTH = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

class FieldError {
  constructor(readonly field: FieldSpec["name"] | undefined, readonly reason: string) {}
}

const parseValue = (text: string, spec: FieldSpec): number | FieldError => {
  if (/^\d+$/.test(text)) {
    const value = Number(text)
    if (value < spec.min || value > spec.max) {
      return new FieldError(spec.name, `value ${text} is out of range ${spec.min}-${spec.max}`)
    }
    return value
  }
  if (spec.names !== undefined) {
    const index = spec.names.indexOf(text.toLowerCase())
    if (index >= 0) return index + spec.min
    return new FieldError(
      spec.name,
      `unknown value "${text}"; expected a number ${spec.min}-${spec.max} or one of ${
        spec.names.map((name) => name.toUpperCase()).join(", ")
      }`
    )
  }
  return new FieldError(spec.name, `"${text}" is not a number ${spec.min}-${spec.max}`)
}

/** Parses one field into a set (array indexed by value); day-of-week 7 is folded into 0. */
const parseField = (text: string, spec: FieldSpec): Array<boolean> | FieldError => {
  const set = new Array<boolean>(spec.rangeMax + 1).fill(false)
  if (text === "?" && (spec.name === "dayOfMonth" || spec.name === "dayOfWeek")) text = "*"
  for (const item of text.split(",")) {
    if (item === "") return new FieldError(spec.name, `empty list item in "${text}"`)
    const slash = item.indexOf("/")
    const base = slash < 0 ? item : item.slice(0, slash)
    let step = 1
    if (slash >= 0) {
      const stepText = item.slice(slash + 1)
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) {
        return new FieldError(spec.name, `step "${stepText}" in "${item}" must be a positive integer`)
      }
      step = Number(stepText)
    }
    let from: number
    let to: number
    if (base === "*") {
      from = spec.min
      to = spec.rangeMax
    } else {
      const dash = base.indexOf("-")
      if (dash < 0) {
        const value = parseValue(base, spec)
        if (value instanceof FieldError) return value
        from = value
        // `a/n` runs from a to the field's maximum; a lone value is just itself.
        to = slash >= 0 ? Math.max(value, spec.rangeMax) : value
      } else {
        const low = parseValue(base.slice(0, dash), spec)
        if (low instanceof FieldError) return low
        const high = parseValue(base.slice(dash + 1), spec)
        if (high instanceof FieldError) return high
        if (low > high) return new FieldError(spec.name, `range "${base}" is reversed (${low} > ${high})`)
        from = low
        to = high
      }
    }
    for (let value = from; value <= to; value += step) set[spec.name === "dayOfWeek" ? value % 7 : value] = true
  }
  return set
}

/** A "next allowed value >= x" table over 0..size-1, with -1 from the first index past the last allowed value. */
const nextTable = (set: ReadonlyArray<boolean>, size: number): Int8Array => {
  const table = new Int8Array(size).fill(-1)
  let next = -1
  for (let value = size - 1; value >= 0; value--) {
    if (value < set.length && set[value]) next = value
    table[value] = next
  }
  return table
}

const buildDayTable = (
  days: ReadonlyArray<boolean>,
  weekdays: ReadonlyArray<boolean>,
  domRestricted: boolean,
  dowRestricted: boolean
): Int8Array => {
  const table = new Int8Array(4 * 7 * DAY_TABLE).fill(-1)
  for (let length = 28; length <= 31; length++) {
    for (let firstWeekday = 0; firstWeekday < 7; firstWeekday++) {
      const base = ((length - 28) * 7 + firstWeekday) * DAY_TABLE
      let next = -1
      for (let d = length; d >= 1; d--) {
        const dom = days[d] === true
        const dow = weekdays[(firstWeekday + d - 1) % 7] === true
        // Vixie: both restricted = OR; otherwise the unrestricted one's set is full and AND leaves the other.
        if (domRestricted && dowRestricted ? dom || dow : dom && dow) next = d
        table[base + d] = next
      }
    }
  }
  return table
}

/**
 * Parses and validates a cron expression in a time zone (`UTC` by default). Every problem is an `InvalidCron`
 * naming the field at fault: a value out of range, a bad step, a reversed range, an unknown name, a wrong field
 * count, an empty expression, an unknown zone (field `timezone`), or an expression that can never fire
 * (`0 0 0 30 2 *`). Never throws.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import * as Cron from "effect-job-scheduler/Cron"
 *
 * const cron = Either.getOrThrow(Cron.parse("0 0 2 * * *", { timezone: "Asia/Shanghai" }))
 * Cron.next(cron, Date.UTC(2026, 0, 1)) // 2026-01-01T18:00:00Z (02:00 in Shanghai)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const parse = (
  expression: string,
  options?: { readonly timezone?: string | undefined }
): Either.Either<Cron, InvalidCron> => {
  const timezone = options?.timezone ?? "UTC"
  // A parsed Cron is immutable, so jobs with the same expression and zone share one (its tables are ~1.3 KB): a
  // scheduler with 100,000 hourly jobs then holds one set of tables, not 100,000.
  const key = typeof expression === "string" && typeof timezone === "string" ? `${timezone}\u0000${expression}` : ""
  const cached = key === "" ? undefined : parsedCache.get(key)
  if (cached !== undefined) return Either.right(cached)
  const parsed = parseUncached(expression, timezone)
  if (key !== "" && Either.isRight(parsed) && parsedCache.size < PARSED_CACHE_MAX) parsedCache.set(key, parsed.right)
  return parsed
}

/**
 * Takes an effect `Cron` (from `effect/Cron`'s `parse`, `unsafeParse` or `make`) as a cron of this module, so that
 * it fires by this module's rules: Vixie-cron DST handling (a pinned time in a spring-forward gap fires at the
 * jump, a repeated hour fires once) and results that never depend on the process's `TZ`. effect's own
 * `Schedule.cron` handles DST differently: `Schedule.cron("30 2 * * *", "America/New_York")` fires at 07:30Z on
 * 2026-03-08, where this module fires at 07:00Z (03:00 EDT, the jump).
 *
 * The zone is the effect cron's (a named zone, or a whole-hour offset as `Etc/GMT±N`), else `timezone`, else UTC.
 * An effect cron made with `and: true` (day-of-month AND day-of-week) has no cron syntax here and is an
 * `InvalidCron`, as is a zone given both ways that disagree.
 *
 * @example
 * ```ts
 * import { Cron as EffectCron, Either } from "effect"
 * import * as Cron from "effect-job-scheduler/Cron"
 *
 * const cron = Either.getOrThrow(Cron.fromEffect(EffectCron.unsafeParse("0 30 2 * * *", "America/New_York")))
 * new Date(Cron.next(cron, Date.UTC(2026, 2, 8))).toISOString() // "2026-03-08T07:00:00.000Z"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromEffect = (
  cron: EffectCron.Cron,
  options?: { readonly timezone?: string | undefined }
): Either.Either<Cron, InvalidCron> => {
  const field = (values: ReadonlySet<number>) => values.size === 0 ? "*" : [...values].sort((a, b) => a - b).join(",")
  const expression = [cron.seconds, cron.minutes, cron.hours, cron.days, cron.months, cron.weekdays].map(field)
    .join(" ")
  const fail = (fieldName: string | undefined, timezone: string, reason: string) =>
    Either.left(new InvalidCron({ expression, timezone, field: fieldName, reason }))
  const own = Option.map(cron.tz, (zone): string | undefined => {
    if (zone._tag === "Named") return zone.id
    if (zone.offset === 0) return "UTC"
    const hours = zone.offset / 3_600_000
    // IANA's Etc/GMT zones have the POSIX sign: Etc/GMT-8 is 8 hours ahead of UTC.
    return Number.isInteger(hours) && Math.abs(hours) <= 14
      ? `Etc/GMT${hours > 0 ? "-" : "+"}${Math.abs(hours)}`
      : undefined
  })
  const given = options?.timezone
  if (Option.isSome(own) && own.value === undefined) {
    return fail(
      "timezone",
      String(given ?? "UTC"),
      "an offset zone that is not a whole number of hours has no IANA name"
    )
  }
  const ownName = Option.getOrUndefined(own)
  if (ownName !== undefined && given !== undefined && ownName !== given) {
    return fail("timezone", given, `the effect Cron carries the zone ${ownName}, which differs from ${given}`)
  }
  const timezone = ownName ?? given ?? "UTC"
  // effect 3.22's Cron has `and` (both day fields must match); older ones do not.
  if ((cron as { readonly and?: boolean }).and === true && cron.days.size > 0 && cron.weekdays.size > 0) {
    return fail("dayOfWeek", timezone, "day-of-month AND day-of-week matching has no cron syntax; use one of them")
  }
  return parse(expression, { timezone })
}

/** Distinct (zone, expression) pairs kept; beyond this, new ones are parsed without being kept. */
const PARSED_CACHE_MAX = 10_000
const parsedCache = new Map<string, Cron>()

const parseUncached = (expression: string, timezone: string): Either.Either<Cron, InvalidCron> => {
  const fail = (field: string | undefined, reason: string) =>
    Either.left(
      new InvalidCron({ expression: String(expression), timezone: String(timezone), field, reason })
    )
  if (typeof expression !== "string") return fail(undefined, `expected a string, got ${typeof expression}`)
  if (typeof timezone !== "string") return fail("timezone", `expected a zone name, got ${typeof timezone}`)

  let source = expression.trim()
  if (source === "") return fail(undefined, "empty expression")
  if (source.startsWith("@")) {
    const macro = MACROS[source.toLowerCase()]
    if (macro === undefined) {
      return fail(undefined, `unknown macro "${source}"; expected one of ${Object.keys(MACROS).join(", ")}`)
    }
    source = macro
  }
  const texts = source.split(/[ \t]+/)
  if (texts.length === 5) texts.unshift("0")
  else if (texts.length !== 6) {
    return fail(undefined, `expected 5 or 6 fields separated by spaces, got ${texts.length}`)
  }

  const sets: Array<Array<boolean>> = []
  for (let i = 0; i < 6; i++) {
    const set = parseField(texts[i], FIELDS[i])
    if (set instanceof FieldError) return fail(set.field, set.reason)
    sets.push(set)
  }
  const [seconds, minutes, hours, days, months, weekdays] = sets
  const domRestricted = texts[3] !== "*" && texts[3] !== "?"
  const dowRestricted = texts[5] !== "*" && texts[5] !== "?"

  // With day-of-week unrestricted only day-of-month picks days: some allowed month must have an allowed day.
  // (A restricted day-of-week always fires: every month has every weekday.) February counts 29 days, so
  // `0 0 0 29 2 *` is valid and fires in leap years.
  if (domRestricted && !dowRestricted) {
    let possible = false
    for (let m = 1; m <= 12 && !possible; m++) {
      if (!months[m]) continue
      for (let d = 1; d <= MAX_DAYS_IN_MONTH[m] && !possible; d++) possible = days[d]
    }
    if (!possible) {
      return fail("dayOfMonth", "the expression can never fire: no allowed month has an allowed day of month")
    }
  }

  const zone = getZone(timezone)
  if (typeof zone === "string") return fail("timezone", zone)

  const wildcardHour = texts[2] === "*" || texts[2].includes("/")
  return Either.right(
    new CronImpl(
      expression,
      timezone,
      zone,
      !wildcardHour,
      nextTable(seconds, 61),
      nextTable(minutes, 61),
      nextTable(hours, 25),
      nextTable(months, 14),
      buildDayTable(days, weekdays, domRestricted, dowRestricted)
    )
  )
}

// ---------------------------------------------------------------------------------------------------------------
// Next fire time
// ---------------------------------------------------------------------------------------------------------------

/**
 * How many years ahead the wall-clock search looks before giving up. A validated expression always matches
 * within 8 years (the longest wait is February 29 across a skipped leap year, 2096 -> 2104); 10 leaves margin.
 */
const SEARCH_YEARS = 10

/**
 * `next` answers `Infinity` for `after` beyond this: the search (up to SEARCH_YEARS plus a few days) must stay
 * inside `Date`'s range, where Intl can compute offsets. 16 years of margin, in ms.
 */
const LIMIT = MAX_INSTANT - 16 * 366 * DAY

/** Bound on the window loop in `next`; a validated expression needs 1-3 rounds (see `next`). */
const MAX_ROUNDS = 10_000

/**
 * The smallest matching wall-clock time >= `from`, both as "local milliseconds" (the wall clock read as if it
 * were UTC). `Infinity` when nothing matches within SEARCH_YEARS. Allocation-free: plain numbers and the tables.
 */
const nextLocal = (c: CronImpl, from: number): number => {
  const days = Math.floor(from / DAY)
  let rem = from - days * DAY
  let h = Math.floor(rem / 3_600_000)
  rem -= h * 3_600_000
  let mi = Math.floor(rem / 60_000)
  rem -= mi * 60_000
  // Round a fractional second up: the result must be >= from and a whole second (60 carries via the sentinel).
  let s = Math.ceil(rem / 1000)
  civilFromDays(days)
  let y = civilYear
  let m = civilMonth
  let d = civilDay
  const lastYear = y + SEARCH_YEARS
  let monthBase = -1 // offset of the current (y, m) shape in dayTable; -1 = recompute
  let monthStart = 0 // days since 1970-01-01 of the 1st of the current month
  for (;;) {
    const m2 = c.nextMonth[m]
    if (m2 < 0) {
      if (++y > lastYear) return Infinity
      m = 1
      d = 1
      h = mi = s = 0
      monthBase = -1
      continue
    }
    if (m2 !== m) {
      m = m2
      d = 1
      h = mi = s = 0
      monthBase = -1
    }
    if (monthBase < 0) {
      monthStart = daysFromCivil(y, m, 1)
      // 1970-01-01 was a Thursday (4); the double modulo keeps negative day counts in 0-6.
      const firstWeekday = ((monthStart + 4) % 7 + 7) % 7
      monthBase = ((daysInMonth(y, m) - 28) * 7 + firstWeekday) * DAY_TABLE
    }
    const d2 = c.dayTable[monthBase + d]
    if (d2 < 0) {
      m++ // 13 reaches the month table's sentinel and carries into the next year
      d = 1
      h = mi = s = 0
      monthBase = -1
      continue
    }
    if (d2 !== d) {
      d = d2
      h = mi = s = 0
    }
    const h2 = c.nextHour[h]
    if (h2 < 0) {
      d++ // past the month's end reaches the day table's -1 and carries
      h = mi = s = 0
      continue
    }
    if (h2 !== h) {
      h = h2
      mi = s = 0
    }
    const mi2 = c.nextMinute[mi]
    if (mi2 < 0) {
      h++
      mi = s = 0
      continue
    }
    if (mi2 !== mi) {
      mi = mi2
      s = 0
    }
    const s2 = c.nextSecond[s]
    if (s2 < 0) {
      mi++
      s = 0
      continue
    }
    return (monthStart + d - 1) * DAY + h * 3_600_000 + mi * 60_000 + s2 * 1000
  }
}

/** Crons built outside `parse` (structurally typed look-alikes) are compiled once here. */
const foreign = new WeakMap<Cron, CronImpl | undefined>()

const compiled = (cron: Cron): CronImpl | undefined => {
  if (cron instanceof CronImpl) return cron
  if (foreign.has(cron)) return foreign.get(cron)
  const parsed = parse(cron.expression, { timezone: cron.timezone })
  const impl = Either.isRight(parsed) ? (parsed.right as CronImpl) : undefined
  foreign.set(cron, impl)
  return impl
}

/**
 * The first fire time strictly after `after`: epoch milliseconds, always a whole second, always > `after`. Never
 * throws. For a cron made by `parse` a fire always exists (at worst 8 years away, for February 29), so the
 * result is finite, except: `Infinity` when `after` is within ~16 years of the end of `Date`'s range, or for a
 * wildcard-hour cron whose only matching wall-clock times all fall in DST gaps for 10 years; `NaN` when `after`
 * is `NaN` (an invalid `Date`). A look-alike object not made by `parse` is parsed from its fields (`Infinity` if
 * invalid).
 *
 * @since 0.1.0
 * @category combinators
 */
export const next = (cron: Cron, after: number | Date): number => {
  const input = typeof after === "number" ? after : after.getTime()
  if (Number.isNaN(input)) return NaN
  if (input >= LIMIT) return Infinity
  const c = compiled(cron)
  if (c === undefined) return Infinity
  // The smallest whole second strictly after `after`; far past inputs start at the edge of Date's range.
  const start = Math.max(Math.floor(input / 1000) * 1000 + 1000, -LIMIT)
  const zone = c.zone
  if (zone.utc) return nextLocal(c, start)

  // Walk windows of 4 UTC days around t (buckets dt-1 .. dt+2). A window without an offset change is the fast
  // path: one wall-clock search. A window with transitions is cut into constant-offset segments that are
  // searched in order, applying the DST rules at each transition.
  let t = start
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const dt = Math.floor(t / DAY)
    const windowEnd = (dt + 3) * DAY
    const o0 = zone.boundary(dt - 1)
    if (
      o0 === zone.boundary(dt) && o0 === zone.boundary(dt + 1) && o0 === zone.boundary(dt + 2) &&
      o0 === zone.boundary(dt + 3)
    ) {
      const local = nextLocal(c, t + o0)
      if (local === Infinity) return Infinity
      const fire = local - o0
      if (fire < windowEnd) return fire
      // Nothing in [t, windowEnd). A fire f before `fire - 2 days` would need a matching wall-clock time in
      // [t + o0, local), where there is none, as long as offsets differ by less than 2 days (they differ by < 1):
      // so jump close to the candidate instead of walking window by window.
      t = Math.max(windowEnd, fire - 2 * DAY)
      continue
    }
    const result = searchWindow(c, zone, t, dt, windowEnd)
    if (result !== undefined) return result
    t = windowEnd
  }
  return Infinity
}

/**
 * Searches `[t, windowEnd)` segment by segment (constant offset between transitions). `undefined` = no fire in
 * the window, continue after it.
 *
 * Rules at a transition at instant T from offset `before` to `after`:
 * - spring forward (`after > before`): the wall-clock times `[T + before, T + after)` never happen; a pinned-hour
 *   cron matching any of them fires once at T. Wildcard-hour crons just have no fire there.
 * - fall back (`after < before`): the wall-clock times `[T + after, T + before)` happen twice; a pinned-hour cron
 *   fires only at the first occurrence, so after T its search starts at `T + (before - after)`.
 * Transitions are assumed at least 2 days apart (see internal/zone.ts), and each overlap shorter than a day.
 */
const searchWindow = (c: CronImpl, zone: Zone, t: number, dt: number, windowEnd: number): number | undefined => {
  let segStart = (dt - 1) * DAY
  let segOffset = zone.boundary(dt - 1)
  let prevOffset = NaN // offset before the transition at segStart; NaN = the window's start, no transition
  for (let day = dt - 1; day <= dt + 3; day++) {
    let segEnd: number
    let nextOffset = segOffset
    if (day === dt + 3) {
      segEnd = windowEnd
    } else {
      nextOffset = zone.boundary(day + 1)
      if (nextOffset === zone.boundary(day)) continue
      segEnd = zone.transition(day)
    }
    if (segEnd > t) {
      let from = Math.max(segStart, t)
      if (!Number.isNaN(prevOffset)) {
        if (segOffset > prevOffset) {
          if (c.pinned && segStart >= t && nextLocal(c, segStart + prevOffset) < segStart + segOffset) {
            return segStart
          }
        } else if (c.pinned) {
          from = Math.max(from, segStart + (prevOffset - segOffset))
        }
      }
      if (from < segEnd) {
        const local = nextLocal(c, from + segOffset)
        if (local === Infinity) return Infinity
        if (local - segOffset < segEnd) return local - segOffset
      }
    }
    prevOffset = segOffset
    segOffset = nextOffset
    segStart = segEnd
  }
  return undefined
}
