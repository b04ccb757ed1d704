/**
 * What one run of a job is: its context (given to the handler), its outcome and its record.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Schema from "effect/Schema"

/**
 * How a run ended.
 *
 * @since 0.1.0
 * @category models
 */
export const Outcome = Schema.Literal(
  "success",
  "business_error",
  "system_error",
  "timeout",
  "interrupted",
  "lock_lost",
  "leadership_lost",
  "defect"
)

/**
 * How a run ended, as a type: one of the `Outcome` literals.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome = typeof Outcome.Type

/**
 * Why a fire did not start a run.
 *
 * - `lock_held`: another owner (another run, another node, a Go service on the same Redis) holds the job's lock.
 * - `overlap`: the job is still running here and its overlap policy is `skip`.
 * - `paused`: the job is paused cluster-wide.
 * - `slot_taken`: another node already claimed this fire time.
 * - `misfired`: the fire time passed while nobody ran it, and the misfire policy drops it.
 * - `store_error`: the store (Redis) did not answer when the run was to begin.
 * - `shutting_down`: a manual trigger that arrived while the scheduler shuts down (no run begins then).
 *
 * @since 0.1.0
 * @category models
 */
export const SkipReason = Schema.Literal(
  "lock_held",
  "overlap",
  "paused",
  "slot_taken",
  "misfired",
  "store_error",
  "shutting_down"
)

/**
 * Why a fire did not run, as a type: one of the `SkipReason` literals.
 *
 * @since 0.1.0
 * @category models
 */
export type SkipReason = typeof SkipReason.Type

/**
 * How a run was started: by its trigger, or by `Scheduler.trigger`.
 *
 * @since 0.1.0
 * @category models
 */
export const RunKind = Schema.Literal("scheduled", "manual")

/**
 * Why a run did not succeed, kept structured: the error's `_tag` (`BusinessError`, a domain error's tag, `Timeout`,
 * `Defect`, ...), its `code` when it has one, and its message.
 *
 * @since 0.1.0
 * @category models
 */
export const RunErrorInfo = Schema.Struct({
  tag: Schema.String,
  code: Schema.optional(Schema.String),
  message: Schema.String
})

/**
 * Why a run did not succeed, as a type: `{ tag, code?, message }`.
 *
 * @since 0.1.0
 * @category models
 */
export type RunErrorInfo = typeof RunErrorInfo.Type

/**
 * A record's error as stored before it was structured: one string, `"CODE: message"` or a bare message. Decoded
 * with the tag `Unknown` (the old records did not keep it); encoded structured, never back to a string.
 */
const LegacyRunError = Schema.transform(Schema.String, Schema.typeSchema(RunErrorInfo), {
  strict: true,
  decode: (text) => {
    const match = /^([A-Z][A-Z0-9_]*): (.*)$/s.exec(text)
    return match === null ? { tag: "Unknown", message: text } : { tag: "Unknown", code: match[1], message: match[2]! }
  },
  encode: (info) => (info.code === undefined ? info.message : `${info.code}: ${info.message}`)
})

/**
 * One record per run, kept per job (capped) and readable from any node. Times are `Date`s, as in `RunContext`;
 * encoded (the Redis store's JSON, the RPC wire) they are epoch milliseconds, as they always were
 * (`Schema.DateFromNumber`), so stored records and clients of the wire format need no change.
 *
 * @since 0.1.0
 * @category models
 */
export class RunRecord extends Schema.Class<RunRecord>("RunRecord")({
  runId: Schema.String,
  job: Schema.String,
  kind: RunKind,
  fireTime: Schema.DateFromNumber,
  startedAt: Schema.DateFromNumber,
  finishedAt: Schema.DateFromNumber,
  durationMs: Schema.Number,
  node: Schema.String,
  attempt: Schema.Number,
  fence: Schema.Number,
  outcome: Outcome,
  /** Structured; a record stored as one string by an older version decodes too (tag `Unknown`). */
  error: Schema.optional(Schema.Union(RunErrorInfo, LegacyRunError))
}) {}

/**
 * What the handler of a run can know about it. Provided by the scheduler to every handler.
 *
 * @since 0.1.0
 * @category context
 */
export class RunContext extends Context.Tag("effect-job-scheduler/RunContext")<RunContext, {
  readonly job: string
  /** The fire time this run is for (for a manual run, the time it was triggered). */
  readonly fireTime: Date
  readonly runId: string
  /** 1 for the first attempt, 2 for the first retry, ... */
  readonly attempt: number
  readonly nodeId: string
  /** Grows with every run of the job across the cluster: pass it to writes that must reject stale runs. */
  readonly fence: number
  readonly kind: typeof RunKind.Type
  /**
   * What a manual trigger passed for this run (`Scheduler.trigger(name, { input })`), for the handler to use instead
   * of its usual input (a schedule's stored payload); absent otherwise.
   */
  readonly input?: unknown
}>() {}
