/**
 * A job definition: a name, a trigger, a handler and its options, validated when it is made. A cron string is
 * parsed here, never lazily, so a bad expression never reaches run time.
 *
 * @since 0.1.0
 */
import * as EffectCron from "effect/Cron"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import * as Cron from "./Cron.js"
import { InvalidCron, InvalidJob, type JobError } from "./Errors.js"
import { decodeDuration } from "./internal/duration.js"
import type { RunContext } from "./Run.js"

/**
 * When a job fires.
 *
 * - `Cron`: on a cron expression in its time zone.
 * - `FixedDelay`: `every` after the previous run ended (the first run `every` after the scheduler starts).
 * - `FixedRate`: on a grid `anchor + k * every` from the first fire; a grid point missed is skipped, not queued.
 * - `Schedule`: any effect `Schedule`, stepped with the wall-clock time of each fire.
 * - `At`: one fire at the instant `at` (epoch ms). Once a node has claimed that fire's slot the job is finished,
 *   cluster-wide and across restarts (the claimed fire time is stored: `JobStore.lastFireTime`).
 *
 * @since 0.1.0
 * @category models
 */
export type Trigger =
  | { readonly _tag: "Cron"; readonly cron: Cron.Cron }
  | { readonly _tag: "FixedDelay"; readonly every: Duration.Duration }
  | { readonly _tag: "FixedRate"; readonly every: Duration.Duration }
  | { readonly _tag: "Schedule"; readonly schedule: Schedule.Schedule<unknown, unknown> }
  | { readonly _tag: "At"; readonly at: number }

/**
 * What to do when the job is still running at its next fire time.
 *
 * @since 0.1.0
 * @category models
 */
export type OverlapPolicy = "skip" | "allow" | "replace"

/**
 * What to do with fires whose time passed while nobody ran them (after a stall, restart or leader change).
 * `runOnce`: one catch-up run for the newest missed fire if it is within `misfireGrace`. `skip`: none.
 *
 * @since 0.1.0
 * @category models
 */
export type MisfirePolicy = "skip" | "runOnce"

/**
 * Retries of retryable errors (see `JobOptions.isExpected`): `times` retries after the first attempt, waiting `delay * factor^(n-1)` (at most
 * `maxDelay`) before retry n. All attempts together are bounded by the job's timeout.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryPolicy {
  readonly times: number
  readonly delay: Duration.Duration
  readonly factor: number
  readonly maxDelay: Duration.Duration
}

/**
 * A validated job definition. `R` is what the handler needs besides `RunContext`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Job<out R = never> {
  readonly name: string
  readonly trigger: Trigger
  /** Its error type is the job's own; `isExpected` says how each error is classified. */
  readonly handler: Effect.Effect<void, unknown, R | RunContext>
  /**
   * Whether a failure of the handler is expected (recorded `business_error`, logged at info, never retried) rather
   * than retryable (recorded `system_error`, logged at error, retried per `retry`).
   */
  readonly isExpected: (error: unknown) => boolean
  readonly enabled: boolean
  readonly timeout: Duration.Duration
  readonly overlap: OverlapPolicy
  readonly lock: { readonly enabled: boolean; readonly ttl: Duration.Duration }
  readonly retry: RetryPolicy
  readonly misfire: MisfirePolicy
  readonly misfireGrace: Duration.Duration
  /** No fire is planned before `startAt` nor after `endAt` (epoch ms); absent: unbounded. */
  readonly startAt?: number | undefined
  readonly endAt?: number | undefined
}

/**
 * The options of `make`. Exactly one of `cron`, `every` or `schedule` gives the trigger.
 *
 * @since 0.1.0
 * @category models
 */
export interface JobOptions<R, E = JobError> {
  readonly name: string
  /** The work of a run. It may fail with any error type `E`; `isExpected` classifies its failures. */
  readonly handler: Effect.Effect<void, E, R>
  /**
   * Which failures are expected business outcomes (recorded `business_error`, never retried); every other failure is
   * retryable (`system_error`, retried per `retry`). Default `defaultIsExpected`: a `BusinessError` is expected,
   * anything else (a `SystemError`, a domain error) is retryable.
   */
  readonly isExpected?: ((error: E) => boolean) | undefined
  /**
   * A cron expression, 6 fields (with seconds) or 5, or a macro such as `@daily`; or an effect `Cron` value
   * (`Cron.unsafeParse(...)` from `effect`), which then fires by this package's DST rules (see `Cron.fromEffect`).
   */
  readonly cron?: string | EffectCron.Cron | undefined
  /** IANA zone of `cron`; default `UTC`. */
  readonly timezone?: string | undefined
  /** A fixed interval such as `"5 seconds"`; fixed delay unless `fixedRate` is true. */
  readonly every?: Duration.DurationInput | undefined
  readonly fixedRate?: boolean | undefined
  /** Any effect schedule, as a trigger. */
  readonly schedule?: Schedule.Schedule<unknown, unknown> | undefined
  /** One fire at this instant (see `Trigger` `At`). */
  readonly at?: Date | number | undefined
  /** No fire before this instant. */
  readonly startAt?: Date | number | undefined
  /** No fire after this instant. */
  readonly endAt?: Date | number | undefined
  /** Default true; a disabled job is registered (visible in status) but never fires on its trigger. */
  readonly enabled?: boolean | undefined
  /** Default 5 minutes. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Default `skip`. */
  readonly overlap?: OverlapPolicy | undefined
  /** Default enabled, with a TTL of `defaultLockTtl` (renewed every third of it while the run lasts). */
  readonly lock?:
    | { readonly enabled?: boolean | undefined; readonly ttl?: Duration.DurationInput | undefined }
    | undefined
  /** Default: no retry. */
  readonly retry?: {
    readonly times?: number | undefined
    readonly delay?: Duration.DurationInput | undefined
    readonly factor?: number | undefined
    readonly maxDelay?: Duration.DurationInput | undefined
  } | undefined
  /** Default `runOnce`. */
  readonly misfire?: MisfirePolicy | undefined
  /** Default 1 minute. */
  readonly misfireGrace?: Duration.DurationInput | undefined
}

/**
 * Default timeout of a run.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultTimeout: Duration.Duration = Duration.minutes(5)

/**
 * Added to the timeout to make how long the `running` status of a run is kept: the status must outlive the longest
 * run plus the time to record it (the record's status then replaces it).
 *
 * @since 0.1.0
 * @category defaults
 */
export const statusTtlMargin: Duration.Duration = Duration.seconds(30)

/**
 * The default lock TTL, whatever the timeout: the lock is renewed every third of it while the run lasts, so it need
 * not cover the run, only bound how long a lock outlives a holder that died without releasing it (a crash, kill -9).
 * A new leader does not even wait for that: it takes over a lock taken under an older leadership term (see
 * `JobStore.BeginRequest.term`); the TTL still bounds locks without a term (a manual run on a node that does not
 * lead, a single-node deployment restarted). 15 seconds means a renewal every 5 seconds, and a run whose renewals
 * fail for 15 seconds (Redis unreachable) counts its lock as lost and is interrupted (`lock_lost`): two renewals,
 * each bounded by the store's command timeout (2 seconds by default), can fail before that.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultLockTtl: Duration.Duration = Duration.seconds(15)

/**
 * How recent the newest missed fire must be for `runOnce` to run it: 1 minute.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultMisfireGrace: Duration.Duration = Duration.minutes(1)

/**
 * The default classification of a handler's failures: expected when it is a `BusinessError` (by its `_tag`), else
 * retryable. An error the job does not declare expected counts as retryable because that is the safe side: it is
 * logged at error and counted as a failure, never silenced, and it is retried only if the job has a retry policy.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultIsExpected = (error: unknown): boolean => Predicate.isTagged(error, "BusinessError")

/**
 * Job names: identifier shapes (`sync_user`, `nightlyReport`, `report:tenant-42`, `billing/eu.invoice`): a letter or
 * digit, then letters, digits and `_ . : / -`; at most 200 characters (names are parts of store keys and metric
 * labels).
 */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$/

// Shared defaults: a job that takes them holds references to these, not copies (an idle job should cost little).
const DEFAULT_RETRY_DELAY = Duration.seconds(1)
const DEFAULT_RETRY_MAX_DELAY = Duration.minutes(1)
const NO_RETRY: RetryPolicy = { times: 0, delay: DEFAULT_RETRY_DELAY, factor: 2, maxDelay: DEFAULT_RETRY_MAX_DELAY }
const DEFAULT_LOCK = { enabled: true, ttl: defaultLockTtl }
const NO_LOCK = { enabled: false, ttl: defaultLockTtl }

const invalid = (job: string, path: string, reason: string) => new InvalidJob({ job, path, reason })

/** A decoded duration, or the `InvalidJob` naming `path`. */
const duration = (job: string, path: string, input: unknown, allowZero = false): Duration.Duration | InvalidJob => {
  const decoded = decodeDuration(input, { allowZero })
  return Either.isRight(decoded) ? decoded.right : invalid(job, path, decoded.left)
}

/** Epoch milliseconds of a given instant, or NaN when it is not a valid date or number. */
const instantMs = (input: unknown): number => {
  const ms = input instanceof Date ? input.getTime() : input
  return typeof ms === "number" && Number.isFinite(ms) ? ms : Number.NaN
}

const INSTANT_REASON = "expected a valid date or epoch milliseconds"

/**
 * Cron triggers are shared: one per parsed `Cron` (which `Cron.parse` itself shares per expression and zone), so
 * 100,000 jobs on one expression hold one trigger. The last expression and zone asked for are remembered too: jobs
 * made in bulk mostly repeat them, and this skips even the lookup of the parse cache.
 */
const cronTriggers = new WeakMap<Cron.Cron, Trigger>()
let lastCron: { readonly expression: string; readonly timezone: string; readonly trigger: Trigger } | undefined

const cronTrigger = (parsed: Cron.Cron): Trigger => {
  let trigger = cronTriggers.get(parsed)
  if (trigger === undefined) {
    trigger = { _tag: "Cron", cron: parsed }
    cronTriggers.set(parsed, trigger)
  }
  return trigger
}

/**
 * Interval triggers are shared between jobs made one after the other with the same `every` (a string or number, or
 * the same Duration value) and rate: the last one made is remembered.
 */
let lastEvery: { readonly input: unknown; readonly fixedRate: boolean; readonly trigger: Trigger } | undefined

/**
 * A trigger from a cron expression; the expression is parsed and validated now.
 *
 * @since 0.1.0
 * @category triggers
 */
export const cron = (expression: string, timezone = "UTC"): Either.Either<Trigger, InvalidCron> => {
  const made = cronOf(expression, timezone)
  return made instanceof InvalidCron ? Either.left(made) : Either.right(made)
}

const cronOf = (expression: string, timezone: string): Trigger | InvalidCron => {
  const last = lastCron
  if (last !== undefined && last.expression === expression && last.timezone === timezone) return last.trigger
  // `Cron.parse` shares one parsed value per expression and zone, so schedules loaded together parse each once.
  const parsed = Cron.parse(expression, { timezone })
  if (Either.isLeft(parsed)) return parsed.left
  const trigger = cronTrigger(parsed.right)
  if (typeof expression === "string" && typeof timezone === "string") lastCron = { expression, timezone, trigger }
  return trigger
}

/**
 * Validate options into a job, or the first error found: the checks of `make`, in its order, without an `Either`
 * per step (jobs are made by the 100,000 when stored schedules load or a large job set starts).
 */
const build = <R, E>(options: JobOptions<R, E>): Job<Exclude<R, RunContext>> | InvalidJob | InvalidCron => {
  const name = options.name
  if (typeof name !== "string" || !NAME.test(name)) {
    return invalid(
      String(name),
      "name",
      "expected a letter or digit, then letters, digits and _ . : / - (at most 200 characters)"
    )
  }
  const cronOption = options.cron
  const every = options.every
  const schedule = options.schedule
  const at = options.at
  const given = (cronOption !== undefined ? 1 : 0) + (every !== undefined ? 1 : 0) +
    (schedule !== undefined ? 1 : 0) + (at !== undefined ? 1 : 0)
  if (given !== 1) return invalid(name, "trigger", "expected exactly one of cron, every, schedule or at")
  let startAt: number | undefined
  if (options.startAt !== undefined) {
    startAt = instantMs(options.startAt)
    if (Number.isNaN(startAt)) return invalid(name, "startAt", INSTANT_REASON)
  }
  let endAt: number | undefined
  if (options.endAt !== undefined) {
    endAt = instantMs(options.endAt)
    if (Number.isNaN(endAt)) return invalid(name, "endAt", INSTANT_REASON)
  }
  if (startAt !== undefined && endAt !== undefined && endAt < startAt) {
    return invalid(name, "endAt", "endAt is before startAt: the job could never fire")
  }
  const timezone = options.timezone
  let trigger: Trigger
  if (cronOption !== undefined) {
    if (EffectCron.isCron(cronOption)) {
      const made = Cron.fromEffect(cronOption, { timezone })
      if (Either.isLeft(made)) return made.left
      trigger = cronTrigger(made.right)
    } else {
      const made = cronOf(cronOption, timezone ?? "UTC")
      if (made instanceof InvalidCron) return made
      trigger = made
    }
  } else if (every !== undefined) {
    const fixedRate = options.fixedRate ? true : false
    const last = lastEvery
    if (last !== undefined && last.input === every && last.fixedRate === fixedRate) {
      trigger = last.trigger
    } else {
      const decoded = duration(name, "every", every)
      if (decoded instanceof InvalidJob) return decoded
      trigger = fixedRate ? { _tag: "FixedRate", every: decoded } : { _tag: "FixedDelay", every: decoded }
      // Only inputs that cannot change afterwards are remembered (not an array such as `[seconds, nanos]`).
      if (typeof every === "string" || typeof every === "number" || Duration.isDuration(every)) {
        lastEvery = { input: every, fixedRate, trigger }
      }
    }
  } else if (at !== undefined) {
    const ms = instantMs(at)
    if (Number.isNaN(ms)) return invalid(name, "at", INSTANT_REASON)
    trigger = { _tag: "At", at: ms }
  } else {
    if (!Schedule.isSchedule(schedule)) return invalid(name, "schedule", "expected an effect Schedule")
    trigger = { _tag: "Schedule", schedule }
  }
  if (timezone !== undefined && cronOption === undefined) {
    return invalid(name, "timezone", "a time zone applies to cron triggers only")
  }
  let timeout = defaultTimeout
  if (options.timeout !== undefined) {
    const decoded = duration(name, "timeout", options.timeout)
    if (decoded instanceof InvalidJob) return decoded
    timeout = decoded
  }
  const overlap = options.overlap ?? "skip"
  if (overlap !== "skip" && overlap !== "allow" && overlap !== "replace") {
    return invalid(name, "overlap", `expected skip, allow or replace, got "${overlap}"`)
  }
  const lockOption = options.lock
  let lock = DEFAULT_LOCK
  if (lockOption !== undefined) {
    const enabled = lockOption.enabled ?? true
    if (lockOption.ttl !== undefined) {
      const decoded = duration(name, "lock.ttl", lockOption.ttl)
      if (decoded instanceof InvalidJob) return decoded
      lock = { enabled, ttl: decoded }
    } else {
      lock = enabled ? DEFAULT_LOCK : NO_LOCK
    }
  }
  const retryOption = options.retry
  let retry = NO_RETRY
  if (retryOption !== undefined) {
    const times = retryOption.times ?? 0
    if (!Number.isInteger(times) || times < 0) {
      return invalid(name, "retry.times", `expected a whole number >= 0, got ${times}`)
    }
    const factor = retryOption.factor ?? 2
    if (typeof factor !== "number" || !Number.isFinite(factor) || factor < 1) {
      return invalid(name, "retry.factor", `expected a number >= 1, got ${factor}`)
    }
    let delay = DEFAULT_RETRY_DELAY
    if (retryOption.delay !== undefined) {
      const decoded = duration(name, "retry.delay", retryOption.delay, true)
      if (decoded instanceof InvalidJob) return decoded
      delay = decoded
    }
    let maxDelay = DEFAULT_RETRY_MAX_DELAY
    if (retryOption.maxDelay !== undefined) {
      const decoded = duration(name, "retry.maxDelay", retryOption.maxDelay, true)
      if (decoded instanceof InvalidJob) return decoded
      maxDelay = decoded
    }
    retry = { times, delay, factor, maxDelay }
  }
  const misfire = options.misfire ?? "runOnce"
  if (misfire !== "skip" && misfire !== "runOnce") {
    return invalid(name, "misfire", `expected skip or runOnce, got "${misfire}"`)
  }
  let misfireGrace = defaultMisfireGrace
  if (options.misfireGrace !== undefined) {
    const decoded = duration(name, "misfireGrace", options.misfireGrace, true)
    if (decoded instanceof InvalidJob) return decoded
    misfireGrace = decoded
  }
  const job: { -readonly [K in keyof Job<Exclude<R, RunContext>>]: Job<Exclude<R, RunContext>>[K] } = {
    name,
    trigger,
    // The handler may require RunContext; the scheduler provides it, so it is removed from R.
    handler: options.handler as Effect.Effect<void, unknown, Exclude<R, RunContext> | RunContext>,
    // The handler fails only with E, so the predicate is only ever given an E.
    isExpected: (options.isExpected ?? defaultIsExpected) as (error: unknown) => boolean,
    enabled: options.enabled ?? true,
    timeout,
    overlap,
    lock,
    retry,
    misfire,
    misfireGrace
  }
  // Set only when given (no spread of a literal per job).
  if (startAt !== undefined) job.startAt = startAt
  if (endAt !== undefined) job.endAt = endAt
  return job
}

const isError = (made: unknown): made is InvalidJob | InvalidCron =>
  made instanceof InvalidJob || made instanceof InvalidCron

/**
 * Validate options into a job. Every invalid option is an `InvalidJob` naming its path; a bad cron is `InvalidCron`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <R, E = JobError>(
  options: JobOptions<R, E>
): Either.Either<Job<Exclude<R, RunContext>>, InvalidJob | InvalidCron> => {
  const made = build(options)
  return isError(made) ? Either.left(made) : Either.right(made)
}

/**
 * Like `make`, but throws the typed error: for job sets written in code and checked by tests.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMake = <R, E = JobError>(options: JobOptions<R, E>): Job<Exclude<R, RunContext>> => {
  const made = build(options)
  if (isError(made)) throw made
  return made
}

/**
 * A one-line description of the trigger, for status and logs.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeTrigger = (trigger: Trigger): string => {
  switch (trigger._tag) {
    case "Cron":
      return `cron "${trigger.cron.expression}" ${trigger.cron.timezone}`
    case "FixedDelay":
      return `every ${Duration.format(trigger.every)}`
    case "FixedRate":
      return `every ${Duration.format(trigger.every)} (fixed rate)`
    case "Schedule":
      return "schedule"
    case "At":
      return `at ${new Date(trigger.at).toISOString()}`
  }
}
