/**
 * The scheduler: runs registered jobs while this node leads, one shared timer over all due jobs.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as DurationM from "effect/Duration"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberHandle from "effect/FiberHandle"
import * as FiberSet from "effect/FiberSet"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as Cron from "./Cron.js"
import { DuplicateJob, type JobError, type StoreError, UnknownJob } from "./Errors.js"
import { JobMetrics } from "./internal/jobMetrics.js"
import { RunSpan } from "./internal/runSpan.js"
import { Timer, type TimerEntry } from "./internal/timer.js"
import * as Job from "./Job.js"
import type { JobLockModel, LockHandle } from "./JobLockModel.js"
import { type BeginRequest, type BeginResult, JobStore } from "./JobStore.js"
import * as JobStoreM from "./JobStore.js"
import { LeaderElection } from "./LeaderElection.js"
import * as LeaderElectionM from "./LeaderElection.js"
import * as Metrics from "./Metrics.js"
import { type Outcome, RunContext, type RunKind, RunRecord, type SkipReason } from "./Run.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface SchedulerOptions {
  /** How long running jobs may finish after shutdown starts before they are interrupted. Default 30 seconds. */
  readonly shutdownGrace?: Duration.DurationInput | undefined
  /**
   * How late a fire may be dispatched and still count as on time. A fire later than this is a misfire, handled by
   * the job's misfire policy. Default 1 second.
   */
  readonly misfireThreshold?: Duration.DurationInput | undefined
  /** Run records kept per job. Default 100. */
  readonly maxRecords?: number | undefined
  /** How long a finished job's status is kept. Default 1 day. */
  readonly statusTtl?: Duration.DurationInput | undefined
  /**
   * The longest single wait of the timer; longer waits are made of several. Bounds how late a wall-clock step can
   * make a fire. Default 10 minutes; capped at 2^31-1 ms, the largest timer Node arms.
   */
  readonly maxTimerWait?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface JobStatus {
  readonly name: string
  readonly trigger: string
  readonly enabled: boolean
  readonly paused: boolean
  /** The next fire time this node has planned (none while not leading, disabled, or for a finished schedule). */
  readonly nextFire: Option.Option<Date>
  /** Runs of the job in progress on this node. */
  readonly running: number
  readonly lastRun: Option.Option<RunRecord>
  /** Counters since this node started. */
  readonly counters: {
    readonly runs: number
    readonly success: number
    readonly failures: number
    readonly skips: number
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export type TriggerResult =
  | { readonly _tag: "Started"; readonly runId: string; readonly fence: number }
  | { readonly _tag: "Skipped"; readonly reason: SkipReason }

/**
 * @since 0.1.0
 * @category tags
 */
export class Scheduler extends Context.Tag("effect-job-scheduler/Scheduler")<Scheduler, {
  readonly nodeId: string
  /** Names of the registered jobs, in registration order. */
  readonly jobs: ReadonlyArray<string>
  readonly status: Effect.Effect<ReadonlyArray<JobStatus>, StoreError>
  readonly jobStatus: (name: string) => Effect.Effect<JobStatus, UnknownJob | StoreError>
  /** Run the job now through the same path as a fire (pause check, lock, fence, record); returns once started. */
  readonly trigger: (name: string) => Effect.Effect<TriggerResult, UnknownJob | StoreError>
  /** Pause the job cluster-wide: fires are skipped with reason `paused` until `resume`. */
  readonly pause: (name: string) => Effect.Effect<void, UnknownJob | StoreError>
  readonly resume: (name: string) => Effect.Effect<void, UnknownJob | StoreError>
  /** The newest run records of the job (from the store: every node's runs), newest first. */
  readonly runs: (name: string, limit?: number) => Effect.Effect<ReadonlyArray<RunRecord>, UnknownJob | StoreError>
}>() {}

// ---------------------------------------------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------------------------------------------

/**
 * The scheduler's default shutdown grace.
 *
 * @since 0.1.0
 * @category defaults
 */
export const DEFAULT_SHUTDOWN_GRACE: Duration.Duration = DurationM.seconds(30)

/**
 * The default longest single timer wait. Effect's default clock arms no timer for waits above 2^31-1 ms (the sleep
 * never wakes), and timers run on a monotonic clock, so a wall-clock step (NTP) is only noticed when the loop wakes:
 * ten minutes bounds how late a step can make a fire, at a cost of one idle wake-up per ten minutes.
 */
const DEFAULT_MAX_TIMER_WAIT_MS = 10 * 60_000

/** The largest delay Node's timers accept (a signed 32-bit millisecond count). */
const TIMER_LIMIT_MS = 2 ** 31 - 1

/**
 * Slot claims outlive the misfire window by this much, so that a late node (a stale leader, a second instance)
 * still finds the slot taken.
 */
const SLOT_TTL_MARGIN_MS = 10 * 60_000

/** A job whose requirements (besides RunContext) are already provided from the layer's context. */
type AnyJob = Job.Job<never>

interface Running {
  readonly runId: string
  readonly kind: typeof RunKind.Type
  readonly state: JobState
  /** The fire time it runs for (for a manual run, when it was triggered). */
  readonly fireTime: number
  fiber: Fiber.RuntimeFiber<void, never> | undefined
  /** Why the scheduler interrupted this run, when it did (the first reason wins). */
  reason: "timeout" | "lock_lost" | "leadership_lost" | "replaced" | "shutdown" | undefined
  /** Set once the handler has ended: its timer entries (deadline, renewals) are stale from then on. */
  done: boolean
  /** Set once the run is over: record written, lock released (or it never started). */
  over: boolean
  lock: Option.Option<LockHandle>
  fence: number
  startedAt: number
  /** When the last successful renewal (or the acquisition) was sent. */
  confirmedAt: number
  attempt: number
  /** The runs this one replaces (overlap `replace`): it begins once they are over. */
  replaces?: ReadonlyArray<Running>
  /** Called once the run is over. */
  waiters: Array<() => void> | undefined
}

/** What the fire timer holds per planned fire; stale once the job's generation moved on. */
interface FireEntry {
  readonly state: JobState
  readonly generation: number
}

interface Finished {
  readonly _tag: "Finished"
  readonly running: Running
  readonly exit: Exit.Exit<void, JobError>
  readonly finishedAt: number
}

/** Work queued for the bookkeeping fiber. */
type Bookkeeping =
  | Finished
  | {
    readonly _tag: "Skipped"
    readonly state: JobState
    readonly fireTime: number
    readonly reason: SkipReason
    readonly extra: Record<string, unknown> | undefined
  }
  | { readonly _tag: "Missed"; readonly state: JobState; readonly missed: number; readonly newest: number }
  | { readonly _tag: "Dropped"; readonly state: JobState }

const isSystemError = (error: JobError): boolean => error._tag === "SystemError"

/** What the run timer wakes up for: a run's timeout, or its next lock renewal. */
interface RunTimerEntry {
  readonly run: Running
  readonly kind: "deadline" | "renew"
}

/**
 * What the scheduler keeps per job. The pieces a job needs only once it runs (its metric labels, its `begin`
 * template, its retry schedule) are made on first use, and durations in milliseconds are read off the job when
 * needed rather than kept: an idle job costs only what it must.
 */
class JobState {
  /** Bumped whenever the planned fire changes; timer entries of older generations are stale. */
  generation = 0
  nextFire: number | undefined = undefined
  scheduleState: unknown = undefined
  readonly running = new Set<Running>()
  lastRun: Option.Option<RunRecord> = Option.none()
  runs = 0
  success = 0
  failures = 0
  skips = 0
  private metricsCache: JobMetrics | undefined = undefined
  private beginCache: JobState["begin"] | undefined = undefined
  private retryCache: Schedule.Schedule<unknown, unknown> | undefined = undefined

  constructor(readonly job: AnyJob, private readonly misfireThresholdMs: number) {}

  get metrics(): JobMetrics {
    return this.metricsCache ??= new JobMetrics(this.job.name)
  }

  get timeoutMs(): number {
    return DurationM.toMillis(this.job.timeout)
  }

  /** Renew every third of the TTL: two renewals can fail before the lock could lapse. */
  get renewEveryMs(): number {
    return Math.max(1, Math.floor(DurationM.toMillis(this.job.lock.ttl) / 3))
  }

  get misfireGraceMs(): number {
    return DurationM.toMillis(this.job.misfireGrace)
  }

  /** How far back a late fire looks for the newest missed fire time. */
  get windowMs(): number {
    return Math.max(this.misfireGraceMs, this.misfireThresholdMs)
  }

  get retrySchedule(): Schedule.Schedule<unknown, unknown> {
    const retry = this.job.retry
    return this.retryCache ??= Schedule.exponential(retry.delay, retry.factor).pipe(
      Schedule.modifyDelay((delay) => DurationM.min(delay, retry.maxDelay))
    )
  }

  /** The parts of every `begin` request that do not change from run to run. */
  get begin(): Pick<BeginRequest, "slot" | "lock" | "statusTtl"> {
    const job = this.job
    return this.beginCache ??= {
      slot: Option.some({
        ttl: DurationM.millis(
          Math.max(DurationM.toMillis(job.misfireGrace), this.misfireThresholdMs) + SLOT_TTL_MARGIN_MS
        )
      }),
      lock: job.lock.enabled ? Option.some({ key: job.name, ttl: job.lock.ttl }) : Option.none(),
      statusTtl: DurationM.sum(job.timeout, Job.LOCK_TTL_MARGIN)
    }
  }
}

const newRunId = (): string => crypto.randomUUID()

const outcomeOf = (exit: Exit.Exit<void, unknown>, running: Running): { outcome: Outcome; error?: string } => {
  if (Exit.isSuccess(exit)) return { outcome: "success" }
  const cause = exit.cause
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value as { readonly _tag?: string; readonly message?: string; readonly code?: string }
    const text = error.code === undefined ? String(error.message ?? error) : `${error.code}: ${error.message}`
    return error._tag === "BusinessError"
      ? { outcome: "business_error", error: text }
      : { outcome: "system_error", error: text }
  }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) {
    const value = defect.value
    return { outcome: "defect", error: value instanceof Error ? value.message : String(value) }
  }
  switch (running.reason) {
    case "timeout":
      return { outcome: "timeout", error: "run exceeded its timeout" }
    case "lock_lost":
      return { outcome: "lock_lost", error: "lock lost while running" }
    case "leadership_lost":
      return { outcome: "leadership_lost", error: "this node stopped leading" }
    case "replaced":
      return { outcome: "interrupted", error: "replaced by a newer run" }
    default:
      return { outcome: "interrupted", error: "interrupted" }
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

/**
 * Build a scheduler for `jobs` in the current scope. It fires while `LeaderElection` says this node leads; when the
 * scope closes it stops firing, lets running jobs finish within `shutdownGrace`, then interrupts them.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <R>(
  jobs: Iterable<Job.Job<R>>,
  options: SchedulerOptions = {}
): Effect.Effect<Scheduler["Type"], DuplicateJob, R | JobStore | LeaderElection | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* JobStore
    const election = yield* LeaderElection
    const context = yield* Effect.context<R>()
    const nodeId = election.nodeId
    const shutdownGrace = DurationM.decode(options.shutdownGrace ?? DEFAULT_SHUTDOWN_GRACE)
    const misfireThresholdMs = DurationM.toMillis(options.misfireThreshold ?? "1 second")
    const maxRecords = options.maxRecords ?? 100
    const statusTtl = DurationM.decode(options.statusTtl ?? "1 day")
    const maxWaitMs = Math.max(
      1,
      Math.min(TIMER_LIMIT_MS, DurationM.toMillis(options.maxTimerWait ?? DEFAULT_MAX_TIMER_WAIT_MS))
    )

    const states = new Map<string, JobState>()
    for (const job of jobs) {
      if (states.has(job.name)) return yield* new DuplicateJob({ job: job.name })
      // Exclude<R | RunContext, R> does not reduce for a generic R: the job is kept as Job<never> and its R comes
      // from `context` when the handler is first needed.
      states.set(job.name, new JobState(job as AnyJob, misfireThresholdMs))
    }

    const runs = yield* FiberSet.make<void, never>()
    let shuttingDown = false
    let leading = false
    /** The term of the current leadership (set with every `Leader` change): begins made while leading carry it. */
    let term: number | undefined = undefined

    // -------------------------------------------------------------------------------------------------------------
    // The fire timer: one heap over all planned fires, one fiber waiting for its top (while leading).
    // -------------------------------------------------------------------------------------------------------------
    const fireTimer = new Timer<FireEntry>(
      maxWaitMs,
      (entry) => entry.generation !== entry.state.generation
    )
    const plan = (state: JobState, planned: number | undefined) => {
      // A trigger with no further fire (a finished Schedule, or a cron whose next fire is beyond Date's range).
      const time = planned !== undefined && Number.isFinite(planned) ? planned : undefined
      state.generation++
      state.nextFire = time
      if (time !== undefined && leading) fireTimer.schedule(time, { state, generation: state.generation })
    }

    // -------------------------------------------------------------------------------------------------------------
    // The run timer: every running job's deadline and lock renewals, one fiber for all of them (always running, also
    // while not leading: manual runs and the shutdown drain need their timeouts too).
    // -------------------------------------------------------------------------------------------------------------
    const runTimer = new Timer<RunTimerEntry>(maxWaitMs, (entry) => entry.run.done)

    /** Interrupt a run for `reason`, without waiting for it (its finalizer records the outcome). */
    const interruptRun = (running: Running, reason: NonNullable<Running["reason"]>) =>
      Effect.suspend(() => {
        if (running.done || running.fiber === undefined) return Effect.void
        running.reason ??= reason
        return Fiber.interruptFork(running.fiber)
      })

    /**
     * One renewal. Found gone or taken: the run is interrupted with `lock_lost`. The store not answering is retried
     * at the next renewal time until the TTL has certainly run out since the last confirmed renewal; then the lock
     * counts as lost too (someone else may hold it by now).
     */
    const renew = (running: Running, lock: LockHandle): Effect.Effect<void> =>
      Effect.gen(function*() {
        const state = running.state
        const ttl = state.job.lock.ttl
        const every = state.renewEveryMs
        const sentAt = yield* Clock.currentTimeMillis
        const renewed = yield* store.renewLock(lock, ttl).pipe(
          Effect.catchAllCause((cause) =>
            Effect.as(
              Effect.logWarning("lock renewal failed", cause).pipe(Effect.annotateLogs({ job: state.job.name })),
              undefined
            )
          )
        )
        if (running.done) return
        const now = yield* Clock.currentTimeMillis
        if (renewed === true) {
          running.confirmedAt = sentAt
          state.metrics.lockRenewed()
        } else if (renewed === false || now - running.confirmedAt >= DurationM.toMillis(ttl)) {
          state.metrics.lockLost()
          return yield* interruptRun(running, "lock_lost")
        }
        runTimer.schedule(now + every, { run: running, kind: "renew" })
      })

    const onRunTimer = (batch: ReadonlyArray<TimerEntry<RunTimerEntry>>): Effect.Effect<void> =>
      Effect.forEach(batch, ({ value: entry }) => {
        const running = entry.run
        if (running.done) return Effect.void
        if (entry.kind === "deadline") return interruptRun(running, "timeout")
        return Option.match(running.lock, {
          onNone: () => Effect.void,
          onSome: (lock) => Effect.asVoid(FiberSet.run(runs, renew(running, lock)))
        })
      }, { discard: true })

    // -------------------------------------------------------------------------------------------------------------
    // Runs are root fibers forked from one runtime made here: the context of this scope (the handlers' layer) plus
    // each run's `RunContext` and span, and this scope's fiber refs (logger, log level, clock, tracer). They start
    // uninterruptible and only the handler is made interruptible, so an interruption that arrives before a run's
    // first step still lets it record its outcome and release its lock.
    // -------------------------------------------------------------------------------------------------------------
    const baseRuntime = yield* Effect.runtime<never>()
    const runFlags = RuntimeFlags.disable(baseRuntime.runtimeFlags, RuntimeFlags.Interruption)
    const baseContext = context as Context.Context<never>
    const clock = yield* Effect.clock
    const tracer = yield* Effect.tracer
    const tracing = yield* FiberRef.get(FiberRef.currentTracerEnabled)
    // Effect's built-in tracer keeps spans nowhere: a lighter span of the same shape stands in for its spans.
    const nativeTracer = tracer === Effect.runSync(Effect.tracer)

    // -------------------------------------------------------------------------------------------------------------
    // Bookkeeping (store `finish`, counters, metrics, log lines) is queued and done by one fiber in batches, after
    // the runs that are due have started: a run's start costs only what starting it needs.
    // -------------------------------------------------------------------------------------------------------------
    let backlog: Array<Bookkeeping> = []
    let drainGate: Deferred.Deferred<void> | undefined = undefined
    const enqueue = (item: Bookkeeping) => {
      backlog.push(item)
      const gate = drainGate
      if (gate !== undefined) {
        drainGate = undefined
        Deferred.unsafeDone(gate, Exit.void)
      }
    }

    const skip = (state: JobState, fireTime: number, reason: SkipReason, extra?: Record<string, unknown>) => {
      state.skips++
      state.metrics.skip(reason)
      enqueue({ _tag: "Skipped", state, fireTime, reason, extra })
    }

    /** A fixed-delay job plans its next fire `every` after its run ended (or after a fire that did not run). */
    const afterRun = (state: JobState, now: number) => {
      if (state.job.trigger._tag === "FixedDelay" && leading && state.running.size === 0 && !shuttingDown) {
        plan(state, now + DurationM.toMillis(state.job.trigger.every))
      }
    }

    /** The run is over (bookkeeping done, or it never started): whoever waits for it may go on. */
    const complete = (running: Running, now: number) => {
      running.done = true
      running.over = true
      running.state.running.delete(running)
      const waiters = running.waiters
      running.waiters = undefined
      if (waiters !== undefined) for (const wake of waiters) wake()
      afterRun(running.state, now)
    }

    /** Wait until every run of `list` is over (its record written and its lock released, or it never started). */
    const awaitOver = (list: ReadonlyArray<Running>): Effect.Effect<void> =>
      Effect.async<void>((resume) => {
        let left = 0
        const wake = () => {
          if (--left === 0) resume(Effect.void)
        }
        for (const running of list) {
          if (running.over) continue
          left++
          ;(running.waiters ??= []).push(wake)
        }
        if (left === 0) resume(Effect.void)
      })

    const settle = (batch: ReadonlyArray<Bookkeeping>): Effect.Effect<void> =>
      Effect.gen(function*() {
        // Log lines carry their fields as annotations. Built in one mutable pass over this fiber's annotations: the
        // usual `annotateLogs` makes a new persistent map per field, most of the allocation of a short run.
        const baseAnnotations = yield* FiberRef.get(FiberRef.currentLogAnnotations)
        const minimumLevel = yield* FiberRef.get(FiberRef.currentMinimumLogLevel)
        const logWith = (
          level: LogLevel.LogLevel,
          message: string,
          fields: Record<string, unknown>,
          cause: Cause.Cause<unknown> = Cause.empty
        ) =>
          // Below the minimum level the line would be dropped anyway: do not build its annotations.
          LogLevel.lessThan(level, minimumLevel) ? Effect.void : Effect.locally(
            Effect.logWithLevel(level, message, cause),
            FiberRef.currentLogAnnotations,
            HashMap.mutate(baseAnnotations, (annotations) => {
              for (const key in fields) HashMap.set(annotations, key, fields[key])
            })
          )
        const finished: Array<{ readonly item: Finished; readonly record: RunRecord }> = []
        for (const item of batch) {
          if (item._tag !== "Finished") continue
          const { running } = item
          const { error, outcome } = outcomeOf(item.exit, running)
          // Built from values this scheduler computed: validating them again would only cost time per run.
          const record = new RunRecord({
            runId: running.runId,
            job: running.state.job.name,
            kind: running.kind,
            fireTime: running.fireTime,
            startedAt: running.startedAt,
            finishedAt: item.finishedAt,
            durationMs: item.finishedAt - running.startedAt,
            node: nodeId,
            attempt: running.attempt,
            fence: running.fence,
            outcome,
            ...(error === undefined ? {} : { error })
          }, true)
          finished.push({ item, record })
        }
        // Stores bound every operation themselves (JobStore's contract), so no timeout is added here.
        const saved = finished.length === 0 ? [] : yield* JobStoreM.finishMany(
          store,
          finished.map(({ item, record }) => ({ record, lock: item.running.lock, statusTtl, maxRecords }))
        )
        let k = 0
        for (const item of batch) {
          switch (item._tag) {
            case "Skipped": {
              yield* logWith(LogLevel.Info, "job skipped", {
                job: item.state.job.name,
                fire_time: new Date(item.fireTime).toISOString(),
                node: nodeId,
                reason: item.reason,
                ...item.extra
              })
              break
            }
            case "Missed": {
              yield* logWith(LogLevel.Info, "missed fires", {
                job: item.state.job.name,
                node: nodeId,
                missed: item.missed,
                newest_fire: new Date(item.newest).toISOString()
              })
              break
            }
            case "Dropped": {
              yield* Effect.logDebug("fire dropped: not leading").pipe(
                Effect.annotateLogs({ job: item.state.job.name })
              )
              break
            }
            case "Finished": {
              const { record } = finished[k]
              const result = saved[k]
              k++
              const running = item.running
              const state = running.state
              if (result !== undefined && Either.isLeft(result)) {
                yield* Effect.logError("run record not saved", Cause.fail(result.left)).pipe(
                  Effect.annotateLogs({ job: state.job.name })
                )
              }
              const outcome = record.outcome
              state.lastRun = Option.some(record)
              state.runs++
              if (outcome === "success") state.success++
              else if (outcome !== "business_error") state.failures++
              state.metrics.lateness(running.startedAt - running.fireTime)
              state.metrics.run(outcome, record.durationMs)
              const logCause = outcome === "defect" && Exit.isFailure(item.exit) ? item.exit.cause : Cause.empty
              yield* logWith(levelOf(outcome), "job finished", {
                job: state.job.name,
                fire_time: new Date(running.fireTime).toISOString(),
                run_id: running.runId,
                node: nodeId,
                fence: running.fence,
                outcome,
                duration_ms: record.durationMs,
                lateness_ms: running.startedAt - running.fireTime,
                attempt: running.attempt,
                kind: running.kind,
                ...(record.error === undefined ? {} : { error: record.error })
              }, logCause)
              complete(running, item.finishedAt)
              break
            }
          }
        }
      })

    const drainLoop: Effect.Effect<never> = Effect.gen(function*() {
      for (;;) {
        if (backlog.length === 0) {
          const gate = yield* Deferred.make<void>()
          drainGate = gate
          yield* Deferred.await(gate)
          continue
        }
        const batch = backlog
        backlog = []
        yield* Effect.uninterruptible(settle(batch)).pipe(
          // Not expected; but a run whose bookkeeping failed must still end, or it would count as running forever.
          Effect.catchAllCause((cause) =>
            Effect.zipRight(
              Effect.logError("run bookkeeping failed", cause),
              Effect.sync(() => {
                const now = clock.unsafeCurrentTimeMillis()
                for (const item of batch) if (item._tag === "Finished" && !item.running.over) complete(item.running, now)
              })
            )
          )
        )
      }
    })

    // -------------------------------------------------------------------------------------------------------------
    // One run: begin (pause, slot, lock, fence; batched per fire time) -> the handler, in its own fiber, under the
    // run timer's deadline and lock renewals -> queued bookkeeping (release, status, record, one log line).
    // -------------------------------------------------------------------------------------------------------------
    const newRunning = (state: JobState, fireTime: number, kind: typeof RunKind.Type): Running => {
      const running: Running = {
        runId: newRunId(),
        kind,
        state,
        fireTime,
        fiber: undefined,
        reason: undefined,
        done: false,
        over: false,
        lock: Option.none(),
        fence: 0,
        startedAt: 0,
        confirmedAt: 0,
        attempt: 1,
        waiters: undefined
      }
      // Counted as running from here, so a fire during its `begin` sees the overlap.
      state.running.add(running)
      return running
    }

    /** The handler of one run; retried runs get a fresh `RunContext` (its `attempt`) per retry. */
    const handlerOf = (running: Running, runContext: RunContext["Type"]): Effect.Effect<void, JobError, RunContext> => {
      const job = running.state.job
      if (job.retry.times === 0) return job.handler
      return Effect.suspend(() => {
        running.attempt++
        return running.attempt === 1
          ? job.handler
          : Effect.provideService(job.handler, RunContext, { ...runContext, attempt: running.attempt })
      }).pipe(
        Effect.retry({ times: job.retry.times, schedule: running.state.retrySchedule, while: isSystemError })
      )
    }

    const handlerEnded = (running: Running, span: Tracer.Span | undefined) => (exit: Exit.Exit<void, JobError>) =>
      Effect.sync(() => {
        running.done = true
        // Nothing interrupts it any more; dropping the fiber lets it (its context, refs, span) be collected young,
        // instead of being copied by every scavenge until the bookkeeping is done.
        running.fiber = undefined
        span?.end(clock.unsafeCurrentTimeNanos(), exit)
        enqueue({ _tag: "Finished", running, exit, finishedAt: clock.unsafeCurrentTimeMillis() })
      })

    /** Start a begun run: its deadline and renewals on the run timer, then its fiber. Synchronous. */
    const start = (running: Running, started: Extract<BeginResult, { _tag: "Started" }>) => {
      const state = running.state
      const job = state.job
      const now = clock.unsafeCurrentTimeMillis()
      running.fence = started.fence
      running.lock = started.lock
      running.startedAt = now
      running.confirmedAt = now
      runTimer.schedule(now + state.timeoutMs, { run: running, kind: "deadline" })
      if (Option.isSome(started.lock)) runTimer.schedule(now + state.renewEveryMs, { run: running, kind: "renew" })
      const runContext: RunContext["Type"] = {
        job: job.name,
        fireTime: new Date(running.fireTime),
        runId: running.runId,
        attempt: 1,
        nodeId,
        fence: started.fence,
        kind: running.kind
      }
      if (job.retry.times > 0) running.attempt = 0
      // One copy of the layer's context per run, with the run's own services set in it.
      const services = new Map(baseContext.unsafeMap)
      services.set(RunContext.key, runContext)
      let span: Tracer.Span | undefined = undefined
      if (tracing) {
        const startTime = clock.unsafeCurrentTimeNanos()
        const fields = { job: job.name, fireTime: running.fireTime, runId: running.runId, node: nodeId, fence: started.fence }
        if (nativeTracer) {
          span = new RunSpan("job.run", startTime, fields)
        } else {
          span = tracer.span("job.run", Option.none(), Context.empty(), [], startTime, "internal")
          span.attribute("job", fields.job)
          span.attribute("fire_time", fields.fireTime)
          span.attribute("run_id", fields.runId)
          span.attribute("node", fields.node)
          span.attribute("fence", fields.fence)
        }
        services.set(Tracer.ParentSpan.key, span)
      }
      const runContexts = Context.unsafeMake<RunContext>(services)
      const runtime = Runtime.make({ context: runContexts, runtimeFlags: runFlags, fiberRefs: baseRuntime.fiberRefs })
      const body = Effect.flatMap(
        Effect.exit(Effect.interruptible(handlerOf(running, runContext))),
        handlerEnded(running, span)
      )
      const fiber = Runtime.runFork(runtime)(body)
      running.fiber = fiber
      // Interrupted (leadership lost, shutdown, replaced) while it was beginning: it starts and stops at once.
      if (running.reason !== undefined) fiber.unsafeInterruptAsFork(FiberId.none)
    }

    const requestOf = (running: Running): BeginRequest => {
      const state = running.state
      const begin = state.begin
      return {
        job: state.job.name,
        fireTime: running.fireTime,
        runId: running.runId,
        nodeId,
        slot: running.kind === "scheduled" ? begin.slot : Option.none(),
        lock: begin.lock,
        term: leading ? term : undefined,
        statusTtl: begin.statusTtl
      }
    }

    /**
     * `begin` all of `list` in one store call and start those that may run. Uninterruptible: nothing can stop it
     * between taking a lock and starting the run that releases it.
     */
    const beginAndStart = (
      list: ReadonlyArray<Running>
    ): Effect.Effect<ReadonlyArray<Either.Either<BeginResult, StoreError>>> =>
      Effect.uninterruptible(Effect.suspend(() => {
        // When the attempt was made: a skip the store gives is logged later (after its reply, or its timeout).
        const sentAt = clock.unsafeCurrentTimeMillis()
        return Effect.map(JobStoreM.beginMany(store, list.map(requestOf)), (results) => {
          const now = clock.unsafeCurrentTimeMillis()
          const begin_sent_at = new Date(sentAt).toISOString()
          for (let i = 0; i < list.length; i++) {
            const running = list[i]
            const result = results[i]
            if (result === undefined || Either.isLeft(result)) {
              const reason = result === undefined ? "no result" : result.left.message
              skip(running.state, running.fireTime, "store_error", { error: reason, begin_sent_at })
              complete(running, now)
            } else if (result.right._tag === "Skipped") {
              skip(running.state, running.fireTime, result.right.reason, { begin_sent_at })
              complete(running, now)
            } else {
              start(running, result.right)
            }
          }
          return results
        })
      }))

    /** Scheduled runs: leadership is checked at the last moment, once per batch (a node that woke from a freeze must not start anything). */
    const launchScheduled = (list: ReadonlyArray<Running>): Effect.Effect<void> =>
      Effect.flatMap(election.isLeader, (isLeader) => {
        if (isLeader) return Effect.asVoid(beginAndStart(list))
        const now = clock.unsafeCurrentTimeMillis()
        for (const running of list) {
          enqueue({ _tag: "Dropped", state: running.state })
          complete(running, now)
        }
        return Effect.void
      })

    /**
     * A planned fire is due: find the newest fire time <= now (older ones are superseded: never N catch-up runs),
     * plan the next fire, apply the misfire and overlap rules. Returns the run to begin, or undefined.
     */
    const due = (state: JobState, newest: number, now: number): Running | undefined => {
      const job = state.job
      // FixedDelay plans its next fire when this one's run ends (or now, if it does not run).
      const lateness = now - newest
      const onTime = lateness <= misfireThresholdMs
      const catchUp = !onTime && job.misfire === "runOnce" && lateness <= state.misfireGraceMs
      if (!onTime && !catchUp) {
        skip(state, newest, "misfired", { lateness_ms: lateness })
        afterRun(state, now)
        return undefined
      }
      if (state.running.size > 0) {
        if (job.overlap === "skip") {
          skip(state, newest, "overlap")
          afterRun(state, now)
          return undefined
        }
        if (job.overlap === "replace") {
          const replaced = Array.from(state.running)
          for (const running of replaced) running.reason = "replaced"
          const running = newRunning(state, newest, "scheduled")
          running.replaces = replaced
          return running
        }
      }
      return newRunning(state, newest, "scheduled")
    }

    /** The newest fire time <= now from the planned one, planning the next fire (synchronous triggers). */
    const advance = (state: JobState, planned: number, now: number): number => {
      const trigger = state.job.trigger
      if (trigger._tag === "Cron") {
        let newest = planned
        let missed = 0
        let candidate = Cron.next(trigger.cron, Math.max(planned, now - state.windowMs - 1))
        while (candidate <= now) {
          newest = candidate
          missed++
          candidate = Cron.next(trigger.cron, candidate)
        }
        plan(state, candidate)
        if (missed > 0) enqueue({ _tag: "Missed", state, missed, newest })
        return newest
      }
      if (trigger._tag === "FixedRate") {
        const every = DurationM.toMillis(trigger.every)
        const steps = Math.floor((now - planned) / every)
        const newest = planned + steps * every
        plan(state, newest + every)
        if (steps > 0) enqueue({ _tag: "Missed", state, missed: steps, newest })
        return newest
      }
      return planned
    }

    /** Every fire due at one wake-up of the fire timer, begun in one store call. */
    const fireBatch = (batch: ReadonlyArray<TimerEntry<FireEntry>>, now: number): Effect.Effect<void> =>
      Effect.gen(function*() {
        const list: Array<Running> = []
        for (const { time, value } of batch) {
          const state = value.state
          if (value.generation !== state.generation) continue
          state.nextFire = undefined
          const trigger = state.job.trigger
          if (trigger._tag === "Schedule") {
            const [nextState, , decision] = yield* trigger.schedule.step(now, undefined, state.scheduleState)
            state.scheduleState = nextState
            plan(state, ScheduleDecision.isDone(decision) ? undefined : Math.max(now + 1, Intervals.start(decision.intervals)))
          }
          const running = due(state, advance(state, time, now), now)
          if (running === undefined) continue
          if (running.replaces === undefined) {
            list.push(running)
          } else {
            // Replacing: the new run begins once the runs it replaces are over (their locks released).
            const replaced = running.replaces
            const fibers = replaced.flatMap((r) => (r.fiber === undefined ? [] : [r.fiber]))
            yield* FiberSet.run(
              runs,
              Effect.zipRight(
                Effect.zipRight(Fiber.interruptAll(fibers), awaitOver(replaced)),
                launchScheduled([running])
              )
            )
          }
        }
        if (list.length > 0) yield* launchScheduled(list)
      })
    /** The first planned fire of a job when this node starts leading: from the last fire recorded by any node. */
    const firstFire = (state: JobState, now: number): Effect.Effect<number | undefined> =>
      Effect.gen(function*() {
        const trigger = state.job.trigger
        const last = yield* store.lastFireTime(state.job.name).pipe(
          Effect.timeout("10 seconds"),
          Effect.catchAllCause((cause) =>
            Effect.as(
              Effect.logWarning("last fire time unavailable; planning from now", cause).pipe(
                Effect.annotateLogs({ job: state.job.name })
              ),
              Option.none<number>()
            )
          )
        )
        switch (trigger._tag) {
          case "Cron":
            return Cron.next(trigger.cron, Option.getOrElse(last, () => now))
          case "FixedDelay":
          case "FixedRate":
            return Option.getOrElse(last, () => now) + DurationM.toMillis(trigger.every)
          case "Schedule": {
            state.scheduleState = trigger.schedule.initial
            const [nextState, , decision] = yield* trigger.schedule.step(now, undefined, state.scheduleState)
            state.scheduleState = nextState
            return ScheduleDecision.isDone(decision) ? undefined : Math.max(now, Intervals.start(decision.intervals))
          }
        }
      })

    // Uninterruptible: runs of a batch count as running from when it is planned, so an interruption (leadership
    // lost) must not strike between planning and `begin`, which would leave them counted forever. A batch is short:
    // a synchronous pass, then one store call bounded by the store's own timeout.
    const timerLoop = fireTimer.run((batch, now) => Effect.uninterruptible(fireBatch(batch, now)))

    const lead = Effect.gen(function*() {
      // A store that lost its data while we did not lead says so now (logged and counted by the store); beside the
      // planning, so that a slow store does not delay the first fires.
      if (store.checkEpoch !== undefined) yield* Effect.fork(Effect.ignore(store.checkEpoch))
      const now = yield* Clock.currentTimeMillis
      const enabled = Array.from(states.values()).filter((state) => state.job.enabled)
      const firsts = yield* Effect.forEach(enabled, (state) => firstFire(state, now), { concurrency: 64 })
      enabled.forEach((state, i) => plan(state, firsts[i]))
      return yield* timerLoop
    })

    // -------------------------------------------------------------------------------------------------------------
    // Leadership: fire only while leading; on losing it, interrupt every running job.
    // -------------------------------------------------------------------------------------------------------------
    const leaderFiber = yield* FiberHandle.make<never, never>()
    const becomeLeader = Effect.gen(function*() {
      if (leading || shuttingDown) return
      leading = true
      yield* Metric.set(Metrics.leader, 1)
      yield* Effect.logInfo("leading: firing jobs").pipe(Effect.annotateLogs({ node: nodeId }))
      yield* FiberHandle.run(leaderFiber, lead)
    })
    const stopFiring = Effect.gen(function*() {
      leading = false
      yield* FiberHandle.clear(leaderFiber)
      fireTimer.clear()
      for (const state of states.values()) {
        state.generation++
        state.nextFire = undefined
      }
    })
    const loseLeadership = Effect.gen(function*() {
      if (!leading) return
      yield* stopFiring
      yield* Metric.set(Metrics.leader, 0)
      yield* Effect.logWarning("not leading: stopped firing, interrupting running jobs").pipe(
        Effect.annotateLogs({ node: nodeId })
      )
      const fibers: Array<Fiber.RuntimeFiber<void, never>> = []
      for (const state of states.values()) {
        for (const running of state.running) {
          // A run still beginning has no fiber yet: it is interrupted as soon as it starts.
          running.reason ??= "leadership_lost"
          if (running.fiber !== undefined) fibers.push(running.fiber)
        }
      }
      yield* Fiber.interruptAll(fibers)
    })
    yield* Effect.forkScoped(runTimer.run(onRunTimer))
    yield* Effect.forkScoped(drainLoop)
    yield* Metric.set(Metrics.leader, 0)
    yield* election.changes.pipe(
      Stream.runForEach((leadership) =>
        leadership._tag === "Leader"
          ? Effect.zipRight(Effect.sync(() => (term = leadership.term)), becomeLeader)
          : loseLeadership
      ),
      Effect.catchAllCause((cause) => Effect.logError("leadership stream failed", cause)),
      Effect.forkScoped
    )

    // -------------------------------------------------------------------------------------------------------------
    // Shutdown (added last, so it runs first when the scope closes): stop firing, drain within the grace, interrupt.
    // -------------------------------------------------------------------------------------------------------------
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        shuttingDown = true
        yield* stopFiring
        const pending = Array.from(states.values()).flatMap((state) => Array.from(state.running))
        if (pending.length === 0) return
        yield* Effect.logInfo("shutting down: waiting for running jobs").pipe(
          Effect.annotateLogs({ node: nodeId, running: pending.length, grace_ms: DurationM.toMillis(shutdownGrace) })
        )
        const drained = DurationM.isZero(shutdownGrace)
          ? Option.none()
          // Finalizers are uninterruptible: without `interruptible` the timeout could not stop the wait.
          : yield* awaitOver(pending).pipe(Effect.interruptible, Effect.timeout(shutdownGrace), Effect.option)
        if (Option.isNone(drained)) {
          for (const running of pending) running.reason ??= "shutdown"
          yield* Effect.logWarning("shutdown grace over: interrupting running jobs").pipe(
            Effect.annotateLogs({ node: nodeId })
          )
          yield* Fiber.interruptAll(pending.flatMap((running) => (running.fiber === undefined ? [] : [running.fiber])))
          // Their records and lock releases are queued: wait for them (stores bound each operation).
          yield* awaitOver(pending)
        }
      })
    )

    // -------------------------------------------------------------------------------------------------------------
    // Control
    // -------------------------------------------------------------------------------------------------------------
    const lookup = (name: string) => {
      const state = states.get(name)
      return state === undefined ? Effect.fail(new UnknownJob({ job: name })) : Effect.succeed(state)
    }
    const statusOf = (state: JobState) =>
      Effect.map(store.isPaused(state.job.name), (paused): JobStatus => ({
        name: state.job.name,
        trigger: Job.describeTrigger(state.job.trigger),
        enabled: state.job.enabled,
        paused,
        nextFire: state.nextFire === undefined ? Option.none() : Option.some(new Date(state.nextFire)),
        running: state.running.size,
        lastRun: state.lastRun,
        counters: { runs: state.runs, success: state.success, failures: state.failures, skips: state.skips }
      }))

    return {
      nodeId,
      jobs: Array.from(states.keys()),
      status: Effect.suspend(() => Effect.forEach(Array.from(states.values()), statusOf)),
      jobStatus: (name) => Effect.flatMap(lookup(name), statusOf),
      trigger: (name) =>
        Effect.flatMap(lookup(name), (state) =>
          // Counted as running from its creation: created and begun in one uninterruptible step.
          Effect.uninterruptible(Effect.flatMap(Clock.currentTimeMillis, (now) => {
            const running = newRunning(state, now, "manual")
            return Effect.map(beginAndStart([running]), ([result]) => ({ result, runId: running.runId }))
          })).pipe(
            Effect.flatMap(({ result, runId }): Effect.Effect<TriggerResult, StoreError> =>
              result === undefined
                ? Effect.die(new Error("the store returned no result for the run"))
                : Either.isLeft(result)
                ? Effect.fail(result.left)
                : Effect.succeed(
                  result.right._tag === "Started" ? { _tag: "Started", runId, fence: result.right.fence } : result.right
                ))
          )),
      pause: (name) =>
        Effect.flatMap(lookup(name), () => store.setPaused(name, true)).pipe(
          Effect.tap(() => Effect.logInfo("job paused").pipe(Effect.annotateLogs({ job: name, node: nodeId })))
        ),
      resume: (name) =>
        Effect.flatMap(lookup(name), () => store.setPaused(name, false)).pipe(
          Effect.tap(() => Effect.logInfo("job resumed").pipe(Effect.annotateLogs({ job: name, node: nodeId })))
        ),
      runs: (name, limit = maxRecords) => Effect.flatMap(lookup(name), () => store.recentRuns(name, limit))
    } satisfies Scheduler["Type"]
  })

/**
 * The scheduler as a layer over its backends (`JobStore`, `LeaderElection`) and the handlers' requirements.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <R>(
  jobs: Iterable<Job.Job<R>>,
  options?: SchedulerOptions
): Layer.Layer<Scheduler, DuplicateJob, R | JobStore | LeaderElection> => Layer.scoped(Scheduler, make(jobs, options))

/**
 * The scheduler on the embedded defaults: in-memory store and locks, single-node leadership.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = <R>(
  jobs: Iterable<Job.Job<R>>,
  options?: SchedulerOptions & { readonly nodeId?: string | undefined }
): Layer.Layer<Scheduler | JobStore | JobLockModel, DuplicateJob, R> =>
  layer(jobs, options).pipe(
    Layer.provide(LeaderElectionM.layerSingleNode(options?.nodeId)),
    Layer.provideMerge(JobStoreM.layerMemory)
  )
