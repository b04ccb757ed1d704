/**
 * Bookkeeping (store `finish`, counters, metrics, log lines) is queued and done by one fiber in batches, after the
 * runs that are due have started: a run's start costs only what starting it needs. The bookkeeper owns the
 * backlog and the drain fiber, writes each job's counters and last record, and makes every run that ended over
 * once its record is written (or once its bookkeeping failed: a run must never count as running forever).
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as HashMap from "effect/HashMap"
import type * as HashSet from "effect/HashSet"
import * as Inspectable from "effect/Inspectable"
import type * as List from "effect/List"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as LogSpan from "effect/LogSpan"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import type { Mutable } from "effect/Types"
import { defaultIsExpected } from "../../Job.js"
import { type JobStore } from "../../JobStore.js"
import * as JobStoreM from "../../JobStore.js"
import { type Outcome, type RunErrorInfo, RunRecord, type SkipReason } from "../../Run.js"
import { type FieldLogger, fieldLoggerOf } from "../fieldLines.js"
import { IsoTime } from "../isoTime.js"
import type { JobState } from "./jobState.js"
import type { Run } from "./run.js"

/** Work queued for the bookkeeping fiber: a run whose handler ended, or a fire that did not run. */
type Item =
  | Run
  | {
    readonly _tag: "Skipped"
    readonly state: JobState
    readonly fireTime: number
    readonly reason: SkipReason
    readonly extra: Record<string, unknown> | undefined
  }
  | { readonly _tag: "Missed"; readonly state: JobState; readonly missed: number; readonly newest: number }
  | { readonly _tag: "Dropped"; readonly state: JobState; readonly why: string }

export interface BookkeeperOptions {
  readonly nodeId: string
  readonly statusTtl: Duration.Duration
  readonly maxRecords: number
  /** Called once per run when it is over (a fixed-delay job plans its next fire then). */
  readonly onOver: (state: JobState, now: number) => void
}

export class Bookkeeper {
  private backlog: Array<Item> = []
  private gate: Deferred.Deferred<void> | undefined = undefined

  constructor(
    private readonly store: JobStore["Type"],
    private readonly clock: Clock.Clock,
    private readonly options: BookkeeperOptions
  ) {}

  private enqueue(item: Item): void {
    this.backlog.push(item)
    const gate = this.gate
    if (gate !== undefined) {
      this.gate = undefined
      Deferred.unsafeDone(gate, Exit.void)
    }
  }

  /** A run's handler ended (the run is `ended`): record it. */
  ended(run: Run): void {
    this.enqueue(run)
  }

  /** A fire that did not run: counted now, logged by the drain. */
  skip(state: JobState, fireTime: number, reason: SkipReason, extra?: Record<string, unknown>): void {
    state.countSkip()
    state.metrics.skip(reason)
    this.enqueue({ _tag: "Skipped", state, fireTime, reason, extra })
  }

  /** Fires passed over by a late fire (only the newest of them may run). */
  missed(state: JobState, missed: number, newest: number): void {
    this.enqueue({ _tag: "Missed", state, missed, newest })
  }

  /** A run created but not begun (`why`: not leading, shutting down) is over at once. */
  drop(run: Run, why: string, now: number): void {
    this.enqueue({ _tag: "Dropped", state: run.state, why })
    this.complete(run, now)
  }

  /** The run is over (bookkeeping done, or it never started): whoever waits for it may go on. */
  complete(run: Run, now: number, record?: RunRecord): void {
    if (run.over(record)) this.options.onOver(run.state, now)
  }

  /** Wait until every run of `list` is over (its record written and its lock released, or it never started). */
  static awaitOver(list: ReadonlyArray<Run>): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      let left = 0
      const wake = () => {
        if (--left === 0) resume(Effect.void)
      }
      for (const run of list) if (run.onOver(wake)) left++
      if (left === 0) resume(Effect.void)
    })
  }

  /** The drain fiber: forked once, for the scheduler's life. */
  get loop(): Effect.Effect<never> {
    const self = this
    return Effect.gen(function*() {
      for (;;) {
        if (self.backlog.length === 0) {
          const gate = yield* Deferred.make<void>()
          self.gate = gate
          yield* Deferred.await(gate)
          continue
        }
        const batch = self.backlog
        self.backlog = []
        yield* Effect.uninterruptible(self.settle(batch)).pipe(
          // Not expected; but a run whose bookkeeping failed must still end, or it would count as running forever.
          Effect.catchAllCause((cause) =>
            Effect.zipRight(
              Effect.logError("run bookkeeping failed", cause),
              Effect.sync(() => {
                const now = self.clock.unsafeCurrentTimeMillis()
                for (const item of batch) if (item._tag === "Run") self.complete(item, now)
              })
            )
          )
        )
      }
    })
  }

  private settle(batch: ReadonlyArray<Item>): Effect.Effect<void> {
    const self = this
    const { maxRecords, nodeId, statusTtl } = this.options
    return Effect.gen(function*() {
      const runs: Array<Run> = []
      const records: Array<RunRecord> = []
      for (const item of batch) {
        if (item._tag !== "Run") continue
        runs.push(item)
        records.push(recordOf(item, nodeId))
      }
      // Stores bound every operation themselves (JobStore's contract), so no timeout is added here.
      const saved = records.length === 0 ? [] : yield* JobStoreM.finishMany(
        self.store,
        records.map((record, i) => ({ record, lock: runs[i]!.lock, statusTtl, maxRecords }))
      )
      const lines = yield* LineWriter.current(self.clock)
      // The rest is synchronous: one pass over the batch, each log line handed to the loggers directly.
      lines.batch(() => {
        let k = 0
        for (const item of batch) {
          switch (item._tag) {
            case "Skipped": {
              // What an operator must act on: a store error is a WARN; a paused job's skips are INFO once per pause.
              const state = item.state
              const level = item.reason === "store_error"
                ? LogLevel.Warning
                : item.reason === "paused" && state.pausedSkipLogged
                ? LogLevel.Debug
                : LogLevel.Info
              state.pausedSkipLogged = item.reason === "paused"
              if (lines.enabled(level)) {
                lines.write(level, JOB_SKIPPED, {
                  job: item.state.job.name,
                  fire_time: new Date(item.fireTime).toISOString(),
                  node: nodeId,
                  reason: item.reason,
                  ...item.extra
                })
              }
              break
            }
            case "Missed": {
              if (lines.enabled(LogLevel.Info)) {
                lines.write(LogLevel.Info, MISSED_FIRES, {
                  job: item.state.job.name,
                  node: nodeId,
                  missed: item.missed,
                  newest_fire: new Date(item.newest).toISOString()
                })
              }
              break
            }
            case "Dropped": {
              if (lines.enabled(LogLevel.Debug)) {
                lines.write(LogLevel.Debug, [`fire dropped: ${item.why}`], { job: item.state.job.name })
              }
              break
            }
            case "Run": {
              const record = records[k]!
              const result = saved[k]
              k++
              const run = item
              const state = run.state
              state.pausedSkipLogged = false
              if (result !== undefined && Either.isLeft(result) && lines.enabled(LogLevel.Error)) {
                lines.write(LogLevel.Error, RECORD_NOT_SAVED, { job: state.job.name }, Cause.fail(result.left))
              }
              const outcome = record.outcome
              state.recordRun(record)
              const lateness = run.startedAt - run.fireTime
              state.metrics.lateness(lateness)
              state.metrics.run(outcome, record.durationMs)
              const level = levelOf(outcome)
              if (lines.enabled(level)) {
                const exit = run.exit
                const logCause = outcome === "defect" && exit !== undefined && Exit.isFailure(exit)
                  ? exit.cause
                  : Cause.empty
                const error = record.error
                lines.write(
                  level,
                  JOB_FINISHED,
                  error === undefined
                    ? finishedFields(run, nodeId, record, lateness)
                    : {
                      ...finishedFields(run, nodeId, record, lateness),
                      error: error.message,
                      error_tag: error.tag,
                      ...(error.code === undefined ? {} : { error_code: error.code })
                    },
                  logCause
                )
              }
              self.complete(run, run.finishedAt, record)
              break
            }
          }
        }
      })
    })
  }
}

const fireTimes = new IsoTime()
const sentTimes = new IsoTime()

/** The fields of a `job finished` line, in the order the pretty format prints them. */
const finishedFields = (run: Run, nodeId: string, record: RunRecord, lateness: number): Record<string, unknown> => ({
  job: run.state.job.name,
  fire_time: fireTimes.of(run.fireTime),
  run_id: run.runId,
  node: nodeId,
  fence: run.fence,
  outcome: record.outcome,
  duration_ms: record.durationMs,
  lateness_ms: lateness,
  attempt: record.attempt,
  kind: run.kind,
  begin_sent_at: sentTimes.of(run.beginSentAt)
})

// Messages as `Effect.log` hands them to loggers (the list of its arguments), made once.
const JOB_FINISHED: ReadonlyArray<string> = ["job finished"]
const JOB_SKIPPED: ReadonlyArray<string> = ["job skipped"]
const MISSED_FIRES: ReadonlyArray<string> = ["missed fires"]
const RECORD_NOT_SAVED: ReadonlyArray<string> = ["run record not saved"]

/**
 * The bookkeeper's log lines, handed to the fiber's loggers directly, as `Effect.logWithLevel` under
 * `Effect.annotateLogs` would hand them (same message, level, cause, spans, fiber refs, annotations = the fiber's
 * plus the line's fields), without an effect, a fiber-ref update or a persistent map per field for each line: a run's
 * `job finished` line was most of what its bookkeeping cost.
 */
class LineWriter {
  static current(clock: Clock.Clock): Effect.Effect<LineWriter> {
    return Effect.withFiberRuntime((fiber) =>
      Effect.succeed(
        new LineWriter(
          fiber.id(),
          fiber.getFiberRefs(),
          fiber.getFiberRef(FiberRef.currentLoggers),
          fiber.getFiberRef(FiberRef.currentMinimumLogLevel),
          fiber.getFiberRef(FiberRef.currentLogAnnotations),
          fiber.getFiberRef(FiberRef.currentLogSpan),
          clock
        )
      )
    )
  }

  private dateMs = Number.NaN
  private date = new Date(Number.NaN)

  /** The loggers that take a line's fields as a record (this package's), and the others. */
  private readonly fieldLoggers: Array<FieldLogger> = []
  private readonly mapLoggers: Array<Logger.Logger<unknown, unknown>> = []

  private constructor(
    private readonly fiberId: FiberId.FiberId,
    private readonly fiberRefs: FiberRefs.FiberRefs,
    loggers: HashSet.HashSet<Logger.Logger<unknown, unknown>>,
    private readonly minimumLevel: LogLevel.LogLevel,
    private readonly baseAnnotations: HashMap.HashMap<string, unknown>,
    private readonly spans: List.List<LogSpan.LogSpan>,
    private readonly clock: Clock.Clock
  ) {
    // Effect's tracer logger adds each line to the fiber's current span as an event, and does nothing without one
    // (or with an external one): then the line is not built for it.
    const span = Context.getOption(FiberRefs.getOrDefault(fiberRefs, FiberRef.currentContext), Tracer.ParentSpan)
    const spanless = Option.isNone(span) || span.value._tag === "ExternalSpan"
    for (const logger of loggers) {
      // `Logger.none` writes nothing: a line only it would get is not built.
      if (logger === Logger.none || (spanless && logger === Logger.tracerLogger)) continue
      const fields = fieldLoggerOf(logger)
      if (fields !== undefined) this.fieldLoggers.push(fields)
      else this.mapLoggers.push(logger)
    }
  }

  /** Whether a line at `level` is written at all (below the minimum level, or with no logger, it is not built). */
  enabled(level: LogLevel.LogLevel): boolean {
    return !LogLevel.lessThan(level, this.minimumLevel) &&
      (this.fieldLoggers.length > 0 || this.mapLoggers.length > 0)
  }

  /** Run `f`, whose lines may contain redactable values, in this fiber's redaction context (as `Effect.log`). */
  batch(f: () => void): void {
    Inspectable.withRedactableContext(this.fiberRefs, f)
  }

  write(
    logLevel: LogLevel.LogLevel,
    message: ReadonlyArray<string>,
    fields: Record<string, unknown>,
    cause: Cause.Cause<unknown> = Cause.empty
  ): void {
    // The lines of a batch are written within a few milliseconds: those of one millisecond share their `Date`.
    const ms = this.clock.unsafeCurrentTimeMillis()
    if (ms !== this.dateMs) {
      this.date = new Date(ms)
      this.dateMs = ms
    }
    const date = this.date
    const fieldLoggers = this.fieldLoggers
    if (fieldLoggers.length > 0) {
      const line = { logLevel, message, date, base: this.baseAnnotations, fields, cause }
      for (let i = 0; i < fieldLoggers.length; i++) fieldLoggers[i]!(line)
    }
    const mapLoggers = this.mapLoggers
    if (mapLoggers.length === 0) return
    const annotations = HashMap.mutate(this.baseAnnotations, (map) => {
      for (const key in fields) HashMap.set(map, key, fields[key])
    })
    for (let i = 0; i < mapLoggers.length; i++) {
      mapLoggers[i]!.log({
        fiberId: this.fiberId,
        logLevel,
        message,
        cause,
        context: this.fiberRefs,
        spans: this.spans,
        annotations,
        date
      })
    }
  }
}

/**
 * The record of a run whose handler ended. Built from values this scheduler computed: not validated again. Made as
 * `new RunRecord(fields, true)` makes it (the same own fields, in the same order, on the same prototype: equal,
 * `Schema.is`, the same encoding), without the class constructor's two copies of the fields and its walk over the
 * schema's fields for defaults (it has none), and with no fields object to copy from: one per run. Made by a
 * constructor of its own, so that its fields sit in the object itself (fields added to an `Object.create` object past
 * its first few go to a separate array).
 */
export const recordOf = (run: Run, nodeId: string): RunRecord => {
  const { error, outcome } = outcomeOf(run.exit ?? Exit.void, run, run.state.job.isExpected)
  return new MadeRecord(run, nodeId, outcome, error)
}

interface MadeRecordClass {
  new(run: Run, nodeId: string, outcome: Outcome, error: RunErrorInfo | undefined): RunRecord
}

/** `RunRecord`'s fields, in its constructor's order, on its prototype (see `recordOf`). */
const MadeRecord = function(
  this: Mutable<RunRecord>,
  run: Run,
  nodeId: string,
  outcome: Outcome,
  error: RunErrorInfo | undefined
) {
  this.runId = run.runId
  this.job = run.state.job.name
  this.kind = run.kind
  this.fireTime = new Date(run.fireTime)
  this.startedAt = new Date(run.startedAt)
  this.finishedAt = new Date(run.finishedAt)
  this.durationMs = run.finishedAt - run.startedAt
  this.node = nodeId
  this.attempt = run.attempt
  this.fence = run.fence
  this.outcome = outcome
  if (error !== undefined) this.error = error
} as unknown as MadeRecordClass
MadeRecord.prototype = RunRecord.prototype

/** The structured form of whatever a handler failed or died with. */
const infoOf = (value: unknown, fallbackTag: string): RunErrorInfo => {
  if (typeof value === "object" && value !== null) {
    const fields = value as { readonly _tag?: unknown; readonly code?: unknown; readonly message?: unknown }
    const tag = typeof fields._tag === "string" ? fields._tag : value instanceof Error ? value.name : fallbackTag
    const message = typeof fields.message === "string" ? fields.message : String(value)
    return typeof fields.code === "string" ? { tag, code: fields.code, message } : { tag, message }
  }
  return { tag: fallbackTag, message: String(value) }
}

const SUCCESS: { readonly outcome: Outcome; readonly error?: RunErrorInfo } = { outcome: "success" }

/**
 * A run's outcome: from its exit (a failure classified by the job's `isExpected`), and for a bare interruption from
 * the reason the scheduler interrupted it.
 */
export const outcomeOf = (
  exit: Exit.Exit<void, unknown>,
  run: { readonly reason: Run["reason"] },
  isExpected: (error: unknown) => boolean = defaultIsExpected
): { readonly outcome: Outcome; readonly error?: RunErrorInfo } => {
  if (Exit.isSuccess(exit)) return SUCCESS
  const cause = exit.cause
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = infoOf(failure.value, "Error")
    return isExpected(failure.value) ? { outcome: "business_error", error } : { outcome: "system_error", error }
  }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) return { outcome: "defect", error: infoOf(defect.value, "Defect") }
  switch (run.reason) {
    case "timeout":
      return { outcome: "timeout", error: { tag: "JobTimeout", message: "run exceeded its timeout" } }
    case "lock_lost":
      return { outcome: "lock_lost", error: { tag: "LockLost", message: "lock lost while running" } }
    case "leadership_lost":
      return { outcome: "leadership_lost", error: { tag: "LeadershipLost", message: "this node stopped leading" } }
    case "replaced":
      return { outcome: "interrupted", error: { tag: "Interrupted", message: "replaced by a newer run" } }
    default:
      return { outcome: "interrupted", error: { tag: "Interrupted", message: "interrupted" } }
  }
}

const levelOf = (outcome: Outcome): LogLevel.LogLevel => {
  switch (outcome) {
    case "success":
    case "business_error":
    case "interrupted":
      return LogLevel.Info
    case "timeout":
    case "lock_lost":
    case "leadership_lost":
      return LogLevel.Warning
    case "system_error":
    case "defect":
      return LogLevel.Error
  }
}
