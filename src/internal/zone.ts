/**
 * UTC offsets of an IANA time zone, fast: the cron search asks for offsets many times per `next()`, and one
 * `Intl.DateTimeFormat#formatToParts` call costs ~5 us here, so every answer is cached per UTC day.
 *
 * Model: instants are cut into UTC-day buckets `[d * DAY, (d + 1) * DAY)`. For each bucket boundary the zone's
 * offset is computed once with Intl; when the offsets at a bucket's two ends differ, the bucket holds a
 * transition, whose instant is binary-searched to the second (once) and cached.
 *
 * Assumption (true of every zone in the IANA database since 1970 that we know of): a zone changes its offset at
 * most once within any two consecutive UTC days, and every offset differs from every other offset of the same
 * zone by less than 24 hours. A bucket with two transitions that cancel out would be seen as having none.
 *
 * Nothing here reads the process's local time zone (`TZ`): only UTC arithmetic and Intl with an explicit zone.
 *
 * @internal
 */

/** Milliseconds in a UTC day (the cache bucket size). */
export const DAY = 86_400_000

/**
 * Largest magnitude an instant handed to Intl may have: `Date`'s range is +-8.64e15 ms; callers keep their
 * searches inside it (see `Cron.next`).
 */
export const MAX_INSTANT = 8_640_000_000_000_000

/**
 * Above this many cached day boundaries a zone's cache is dropped and rebuilt: ~270 years of days, far more than a
 * scheduler touches, so it only bounds memory for callers that query random instants across centuries.
 */
const MAX_CACHED_DAYS = 100_000

// ---------------------------------------------------------------------------------------------------------------
// Civil calendar arithmetic (proleptic Gregorian), no Date objects, so nothing depends on the process zone.
// ---------------------------------------------------------------------------------------------------------------

/** Days since 1970-01-01 of the civil date `y-m-d` (`m` 1-12). */
export const daysFromCivil = (y: number, m: number, d: number): number => {
  // Count years from March so that the leap day is the last day of the "year".
  const yy = m <= 2 ? y - 1 : y
  const era = Math.floor(yy / 400)
  const yoe = yy - era * 400 // [0, 399]
  const mp = m > 2 ? m - 3 : m + 9 // March = 0
  const doy = Math.floor((153 * mp + 2) / 5) + d - 1 // [0, 365]
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy // [0, 146096]
  // 719468 = days from 0000-03-01 to 1970-01-01; 146097 = days in a 400-year era.
  return era * 146097 + doe - 719468
}

/** Outputs of `civilFromDays`, in module variables so that the hot path allocates nothing. */
export let civilYear = 1970
export let civilMonth = 1
export let civilDay = 1

/** Sets `civilYear`, `civilMonth` (1-12) and `civilDay` to the civil date `days` after 1970-01-01. */
export const civilFromDays = (days: number): void => {
  const z = days + 719468
  const era = Math.floor(z / 146097)
  const doe = z - era * 146097 // [0, 146096]
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100)) // [0, 365]
  const mp = Math.floor((5 * doy + 2) / 153) // [0, 11], March = 0
  civilDay = doy - Math.floor((153 * mp + 2) / 5) + 1
  civilMonth = mp < 10 ? mp + 3 : mp - 9
  civilYear = yoe + era * 400 + (civilMonth <= 2 ? 1 : 0)
}

/** Whether `y` is a Gregorian leap year. */
export const isLeapYear = (y: number): boolean => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0

/** Days in month `m` (1-12) of year `y`. */
export const daysInMonth = (y: number, m: number): number =>
  m === 2 ? (isLeapYear(y) ? 29 : 28) : m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31

// ---------------------------------------------------------------------------------------------------------------
// Zones
// ---------------------------------------------------------------------------------------------------------------

/**
 * Offsets (local wall-clock time minus UTC, in ms, always whole seconds) of one zone, cached per UTC day.
 */
export class Zone {
  /** True for UTC and its aliases: offset always 0, no Intl, no cache. */
  readonly utc: boolean
  private readonly format: Intl.DateTimeFormat | undefined
  /** Offset at the instant `day * DAY`, keyed by `day`. */
  private readonly boundaries = new Map<number, number>()
  /** Transition instant inside bucket `day`, keyed by `day` (only buckets whose end offsets differ). */
  private readonly transitions = new Map<number, number>()

  constructor(readonly name: string, resolvedName: string) {
    this.utc = UTC_NAMES.has(resolvedName)
    this.format = this.utc ? undefined : new Intl.DateTimeFormat("en-US", {
      timeZone: name,
      // h23: midnight is 00, never 24 (some ICU versions print 24 with hour12: false).
      hourCycle: "h23",
      era: "short",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric"
    })
  }

  /** The offset at instant `t` (ms). */
  offsetAt(t: number): number {
    if (this.utc) return 0
    const day = Math.floor(t / DAY)
    const start = this.boundary(day)
    const end = this.boundary(day + 1)
    if (start === end) return start
    return t < this.transition(day) ? start : end
  }

  /** The offset at the instant `day * DAY`, i.e. at the start of UTC day `day`. */
  boundary(day: number): number {
    if (this.utc) return 0
    let offset = this.boundaries.get(day)
    if (offset === undefined) {
      if (this.boundaries.size >= MAX_CACHED_DAYS) {
        this.boundaries.clear()
        this.transitions.clear()
      }
      offset = this.computeOffset(day * DAY)
      this.boundaries.set(day, offset)
    }
    return offset
  }

  /**
   * The first instant (whole second) of bucket `day` that has the offset of the bucket's end. Only meaningful when
   * `boundary(day) !== boundary(day + 1)`.
   */
  transition(day: number): number {
    let instant = this.transitions.get(day)
    if (instant === undefined) {
      const before = this.boundary(day)
      // Invariant: offset(lo) === before, offset(hi) !== before; both whole seconds.
      let lo = day * DAY
      let hi = lo + DAY
      while (hi - lo > 1000) {
        const mid = lo + Math.floor((hi - lo) / 2000) * 1000
        if (this.computeOffset(mid) === before) lo = mid
        else hi = mid
      }
      instant = hi
      this.transitions.set(day, instant)
    }
    return instant
  }

  /** One Intl call: the zone's wall clock at `t` (floored to the second) minus `t`. */
  private computeOffset(t: number): number {
    const instant = Math.floor(t / 1000) * 1000
    const parts = this.format!.formatToParts(instant)
    let year = 0
    let month = 1
    let day = 1
    let hour = 0
    let minute = 0
    let second = 0
    let bc = false
    for (const part of parts) {
      switch (part.type) {
        case "year":
          year = Number(part.value)
          break
        case "month":
          month = Number(part.value)
          break
        case "day":
          day = Number(part.value)
          break
        case "hour":
          // Guard for ICU builds that still print 24 at midnight.
          hour = Number(part.value) % 24
          break
        case "minute":
          minute = Number(part.value)
          break
        case "second":
          second = Number(part.value)
          break
        case "era":
          bc = part.value === "BC" || part.value === "B"
          break
      }
    }
    // Astronomical year numbering: 1 BC = year 0.
    if (bc) year = 1 - year
    const local = daysFromCivil(year, month, day) * DAY + hour * 3_600_000 + minute * 60_000 + second * 1000
    return local - instant
  }
}

/** Names Intl resolves to plain UTC (`Etc/UTC`, `GMT`, `utc` all resolve to `UTC` on Node 20). */
const UTC_NAMES = new Set(["UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"])

/** One `Zone` per name for the whole process, so that every cron in a zone shares the cache. */
const zones = new Map<string, Zone>()

/**
 * The zone named `name`, or a reason string when Intl does not know it. Never throws.
 */
export const getZone = (name: string): Zone | string => {
  const cached = zones.get(name)
  if (cached !== undefined) return cached
  let resolved: string
  try {
    // Throws a RangeError for an unknown zone; an empty name is rejected too.
    resolved = new Intl.DateTimeFormat("en-US", { timeZone: name }).resolvedOptions().timeZone
  } catch (error) {
    return `unknown IANA time zone "${name}"${error instanceof Error ? ` (${error.message})` : ""}`
  }
  const zone = new Zone(name, resolved)
  zones.set(name, zone)
  return zone
}
