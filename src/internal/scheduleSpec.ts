/**
 * The schemas of a schedule spec, apart from `Schedules.ts` so that the service's implementation can use them without
 * an import cycle. Public through `Schedules`.
 *
 * @internal
 */
import * as Schema from "effect/Schema"

export const CronTrigger = Schema.Struct({ cron: Schema.String, timezone: Schema.optional(Schema.String) })

export const EveryTrigger = Schema.Struct({ every: Schema.String, fixedRate: Schema.optional(Schema.Boolean) })

export const AtTrigger = Schema.Struct({ at: Schema.Date })

export const Trigger = Schema.Union(CronTrigger, EveryTrigger, AtTrigger)

export type Trigger = typeof Trigger.Type

export const ScheduleSpec = Schema.Struct({
  id: Schema.String,
  handler: Schema.String,
  trigger: Trigger,
  payload: Schema.optional(Schema.Unknown),
  enabled: Schema.optional(Schema.Boolean),
  timeout: Schema.optional(Schema.String),
  overlap: Schema.optional(Schema.Literal("skip", "allow", "replace")),
  lock: Schema.optional(
    Schema.Struct({ enabled: Schema.optional(Schema.Boolean), ttl: Schema.optional(Schema.String) })
  ),
  retry: Schema.optional(Schema.Struct({
    times: Schema.optional(Schema.Number),
    delay: Schema.optional(Schema.String),
    factor: Schema.optional(Schema.Number),
    maxDelay: Schema.optional(Schema.String)
  })),
  misfire: Schema.optional(Schema.Literal("skip", "runOnce")),
  misfireGrace: Schema.optional(Schema.String),
  startAt: Schema.optional(Schema.Date),
  endAt: Schema.optional(Schema.Date),
  limit: Schema.optional(Schema.Int.pipe(Schema.positive()))
})

export type ScheduleSpec = typeof ScheduleSpec.Type

// ---------------------------------------------------------------------------------------------------------------
// A fast decoder for the usual case
// ---------------------------------------------------------------------------------------------------------------

const has = (value: object, key: string): boolean => Object.prototype.hasOwnProperty.call(value, key)

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** `Schema.Date`: a string that makes a valid `Date`. */
const date = (value: unknown): Date | undefined => {
  if (typeof value !== "string") return undefined
  const made = new Date(value)
  return Number.isNaN(made.getTime()) ? undefined : made
}

/** Absent, or of the type `is` checks (a key present with `undefined` is left to the schema: JSON has none). */
const optional = (value: Record<string, unknown>, key: string, is: (v: unknown) => boolean): boolean =>
  !has(value, key) || is(value[key])

const isString = (v: unknown) => typeof v === "string"
const isBoolean = (v: unknown) => typeof v === "boolean"
const isNumber = (v: unknown) => typeof v === "number"

const trigger = (value: unknown): Trigger | undefined => {
  if (!isObject(value)) return undefined
  // The union's members in its order: the first that decodes is the result.
  if (has(value, "cron")) {
    if (typeof value.cron !== "string" || !optional(value, "timezone", isString)) return undefined
    return has(value, "timezone") ? { cron: value.cron, timezone: value.timezone as string } : { cron: value.cron }
  }
  if (has(value, "every")) {
    if (typeof value.every !== "string" || !optional(value, "fixedRate", isBoolean)) return undefined
    return has(value, "fixedRate")
      ? { every: value.every, fixedRate: value.fixedRate as boolean }
      : { every: value.every }
  }
  const at = date(value.at)
  return has(value, "at") && at !== undefined ? { at } : undefined
}

/**
 * `ScheduleSpec`'s decoding of a parsed JSON value, written out for the usual case: the same checks and the same
 * result, without the schema interpreter's allocations (a leader loading stored schedules decodes every one of them).
 * `undefined` whenever the value is anything but plainly valid: the caller then decodes with the schema, which gives
 * the result or the error. It never accepts what the schema rejects (a test checks it against the schema on random
 * specs, valid and not).
 *
 * @internal
 */
export const decodeFast = (value: unknown): ScheduleSpec | undefined => {
  if (!isObject(value)) return undefined
  if (typeof value.id !== "string" || typeof value.handler !== "string") return undefined
  const decodedTrigger = trigger(value.trigger)
  if (decodedTrigger === undefined) return undefined
  const spec: { -readonly [K in keyof ScheduleSpec]: ScheduleSpec[K] } = {
    id: value.id,
    handler: value.handler,
    trigger: decodedTrigger
  }
  // Each optional field, in the schema's order: absent stays absent.
  if (has(value, "payload")) spec.payload = value.payload
  if (has(value, "enabled")) {
    if (typeof value.enabled !== "boolean") return undefined
    spec.enabled = value.enabled
  }
  if (has(value, "timeout")) {
    if (typeof value.timeout !== "string") return undefined
    spec.timeout = value.timeout
  }
  if (has(value, "overlap")) {
    const overlap = value.overlap
    if (overlap !== "skip" && overlap !== "allow" && overlap !== "replace") return undefined
    spec.overlap = overlap
  }
  if (has(value, "lock")) {
    const lock = value.lock
    if (!isObject(lock) || !optional(lock, "enabled", isBoolean) || !optional(lock, "ttl", isString)) return undefined
    const out: { enabled?: boolean; ttl?: string } = {}
    if (has(lock, "enabled")) out.enabled = lock.enabled as boolean
    if (has(lock, "ttl")) out.ttl = lock.ttl as string
    spec.lock = out
  }
  if (has(value, "retry")) {
    const retry = value.retry
    if (
      !isObject(retry) || !optional(retry, "times", isNumber) || !optional(retry, "delay", isString) ||
      !optional(retry, "factor", isNumber) || !optional(retry, "maxDelay", isString)
    ) return undefined
    const out: { times?: number; delay?: string; factor?: number; maxDelay?: string } = {}
    if (has(retry, "times")) out.times = retry.times as number
    if (has(retry, "delay")) out.delay = retry.delay as string
    if (has(retry, "factor")) out.factor = retry.factor as number
    if (has(retry, "maxDelay")) out.maxDelay = retry.maxDelay as string
    spec.retry = out
  }
  if (has(value, "misfire")) {
    const misfire = value.misfire
    if (misfire !== "skip" && misfire !== "runOnce") return undefined
    spec.misfire = misfire
  }
  if (has(value, "misfireGrace")) {
    if (typeof value.misfireGrace !== "string") return undefined
    spec.misfireGrace = value.misfireGrace
  }
  if (has(value, "startAt")) {
    const startAt = date(value.startAt)
    if (startAt === undefined) return undefined
    spec.startAt = startAt
  }
  if (has(value, "endAt")) {
    const endAt = date(value.endAt)
    if (endAt === undefined) return undefined
    spec.endAt = endAt
  }
  if (has(value, "limit")) {
    const limit = value.limit
    if (typeof limit !== "number" || !Number.isSafeInteger(limit) || !(limit > 0)) return undefined
    spec.limit = limit
  }
  return spec
}
