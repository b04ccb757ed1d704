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
import { type InvalidCron, InvalidJob, type JobError } from "./Errors.js"
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

const fail = (job: string, path: string, reason: string) => Either.left(new InvalidJob({ job, path, reason }))

const duration = (job: string, path: string, input: unknown, allowZero = false) =>
  Either.mapLeft(decodeDuration(input, { allowZero }), (reason) => new InvalidJob({ job, path, reason }))

const instant = (job: string, path: string, input: Date | number | undefined) => {
  if (input === undefined) return Either.right(undefined)
  const ms = input instanceof Date ? input.getTime() : input
  return typeof ms === "number" && Number.isFinite(ms)
    ? Either.right(ms)
    : fail(job, path, "expected a valid date or epoch milliseconds")
}

/**
 * A trigger from a cron expression; the expression is parsed and validated now.
 *
 * @since 0.1.0
 * @category triggers
 */
export const cron = (expression: string, timezone = "UTC"): Either.Either<Trigger, InvalidCron> =>
  // `Cron.parse` shares one parsed value per expression and zone, so schedules loaded together parse each once.
  Either.map(Cron.parse(expression, { timezone }), (parsed): Trigger => ({ _tag: "Cron", cron: parsed }))

/**
 * Validate options into a job. Every invalid option is an `InvalidJob` naming its path; a bad cron is `InvalidCron`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <R, E = JobError>(
  options: JobOptions<R, E>
): Either.Either<Job<Exclude<R, RunContext>>, InvalidJob | InvalidCron> => {
  // Plain checks with early returns rather than `Either.gen`: stored schedules make a job each when a leader loads
  // them (100,000 at a time), and a generator per job was a measurable part of that.
  const name = options.name
  if (typeof name !== "string" || !NAME.test(name)) {
    return fail(
      String(name),
      "name",
      "expected a letter or digit, then letters, digits and _ . : / - (at most 200 characters)"
    )
  }
  const given = (options.cron !== undefined ? 1 : 0) + (options.every !== undefined ? 1 : 0) +
    (options.schedule !== undefined ? 1 : 0) + (options.at !== undefined ? 1 : 0)
  if (given !== 1) return fail(name, "trigger", "expected exactly one of cron, every, schedule or at")
  const startAtE = instant(name, "startAt", options.startAt)
  if (Either.isLeft(startAtE)) return Either.left(startAtE.left)
  const endAtE = instant(name, "endAt", options.endAt)
  if (Either.isLeft(endAtE)) return Either.left(endAtE.left)
  const startAt = startAtE.right
  const endAt = endAtE.right
  if (startAt !== undefined && endAt !== undefined && endAt < startAt) {
    return fail(name, "endAt", "endAt is before startAt: the job could never fire")
  }
  let trigger: Trigger
  if (options.cron !== undefined) {
    const made = EffectCron.isCron(options.cron)
      ? Either.map(
        Cron.fromEffect(options.cron, { timezone: options.timezone }),
        (parsed): Trigger => ({ _tag: "Cron", cron: parsed })
      )
      : cron(options.cron, options.timezone ?? "UTC")
    if (Either.isLeft(made)) return Either.left(made.left)
    trigger = made.right
  } else if (options.every !== undefined) {
    const every = duration(name, "every", options.every)
    if (Either.isLeft(every)) return Either.left(every.left)
    trigger = options.fixedRate ? { _tag: "FixedRate", every: every.right } : { _tag: "FixedDelay", every: every.right }
  } else if (options.at !== undefined) {
    const at = instant(name, "at", options.at)
    if (Either.isLeft(at)) return Either.left(at.left)
    trigger = { _tag: "At", at: at.right! }
  } else {
    if (!Schedule.isSchedule(options.schedule)) return fail(name, "schedule", "expected an effect Schedule")
    trigger = { _tag: "Schedule", schedule: options.schedule }
  }
  if (options.timezone !== undefined && options.cron === undefined) {
    return fail(name, "timezone", "a time zone applies to cron triggers only")
  }
  let timeout = defaultTimeout
  if (options.timeout !== undefined) {
    const decoded = duration(name, "timeout", options.timeout)
    if (Either.isLeft(decoded)) return Either.left(decoded.left)
    timeout = decoded.right
  }
  const overlap = options.overlap ?? "skip"
  if (overlap !== "skip" && overlap !== "allow" && overlap !== "replace") {
    return fail(name, "overlap", `expected skip, allow or replace, got "${overlap}"`)
  }
  let lockTtl = defaultLockTtl
  if (options.lock?.ttl !== undefined) {
    const decoded = duration(name, "lock.ttl", options.lock.ttl)
    if (Either.isLeft(decoded)) return Either.left(decoded.left)
    lockTtl = decoded.right
  }
  const times = options.retry?.times ?? 0
  if (!Number.isInteger(times) || times < 0) {
    return fail(name, "retry.times", `expected a whole number >= 0, got ${times}`)
  }
  const factor = options.retry?.factor ?? 2
  if (typeof factor !== "number" || !Number.isFinite(factor) || factor < 1) {
    return fail(name, "retry.factor", `expected a number >= 1, got ${factor}`)
  }
  let delay = DEFAULT_RETRY_DELAY
  if (options.retry?.delay !== undefined) {
    const decoded = duration(name, "retry.delay", options.retry.delay, true)
    if (Either.isLeft(decoded)) return Either.left(decoded.left)
    delay = decoded.right
  }
  let maxDelay = DEFAULT_RETRY_MAX_DELAY
  if (options.retry?.maxDelay !== undefined) {
    const decoded = duration(name, "retry.maxDelay", options.retry.maxDelay, true)
    if (Either.isLeft(decoded)) return Either.left(decoded.left)
    maxDelay = decoded.right
  }
  const misfire = options.misfire ?? "runOnce"
  if (misfire !== "skip" && misfire !== "runOnce") {
    return fail(name, "misfire", `expected skip or runOnce, got "${misfire}"`)
  }
  let misfireGrace = defaultMisfireGrace
  if (options.misfireGrace !== undefined) {
    const decoded = duration(name, "misfireGrace", options.misfireGrace, true)
    if (Either.isLeft(decoded)) return Either.left(decoded.left)
    misfireGrace = decoded.right
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
    lock: options.lock === undefined
      ? DEFAULT_LOCK
      : { enabled: options.lock?.enabled ?? true, ttl: lockTtl },
    retry: options.retry === undefined ? NO_RETRY : { times, delay, factor, maxDelay },
    misfire,
    misfireGrace
  }
  // Set only when given (no spread of a literal per job: jobs are made by the 100,000 when stored schedules load).
  if (startAt !== undefined) job.startAt = startAt
  if (endAt !== undefined) job.endAt = endAt
  return Either.right(job)
}

/**
 * Like `make`, but throws the typed error: for job sets written in code and checked by tests.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMake = <R, E = JobError>(options: JobOptions<R, E>): Job<Exclude<R, RunContext>> =>
  Either.getOrThrowWith(make(options), (error) => error)

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
