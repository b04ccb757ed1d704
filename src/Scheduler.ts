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
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberHandle from "effect/FiberHandle"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Cron from "./Cron.js"
import { DuplicateJob, type JobError, type StoreError, UnknownJob } from "./Errors.js"
import { JobMetrics } from "./internal/jobMetrics.js"
import { Timer } from "./internal/timer.js"
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
  fiber: Fiber.RuntimeFiber<void, never> | undefined
  /** Why the scheduler interrupted this run, when it did (the first reason wins). */
  reason: "timeout" | "lock_lost" | "leadership_lost" | "replaced" | "shutdown" | undefined
  /** Set once the run has ended: its timer entries (deadline, renewals) are stale from then on. */
  done: boolean
  lock: Option.Option<LockHandle>
  /** When the last successful renewal (or the acquisition) was sent. */
  confirmedAt: number
}

/** What the run timer wakes up for: a run's timeout, or its next lock renewal. */
interface RunTimerEntry {
  readonly run: Running
  readonly kind: "deadline" | "renew"
}

/**
 * What the scheduler keeps per job. The pieces a job needs only once it runs (its metric labels, its handler with
 * the layer's context, its `begin` template) are made on first use: an idle job costs only what it must.
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
  private handlerCache: Effect.Effect<void, JobError, RunContext> | undefined = undefined
  private beginCache: JobState["begin"] | undefined = undefined

  constructor(
    readonly job: AnyJob,
    // The handlers' requirements, from the scheduler's layer (typed at `make`).
    private readonly context: Context.Context<never>,
    private readonly misfireThresholdMs: number
  ) {}

  get metrics(): JobMetrics {
    return this.metricsCache ??= new JobMetrics(this.job.name)
  }

  /** The handler with the layer's context provided; it still needs `RunContext`. */
  get handler(): Effect.Effect<void, JobError, RunContext> {
    return this.handlerCache ??= Effect.provide(this.job.handler, this.context)
  }

  /** The parts of every `begin` request that do not change from run to run. */
  get begin(): Pick<BeginRequest, "lock" | "statusTtl"> & { readonly slotTtl: Duration.Duration } {
    const job = this.job
    return this.beginCache ??= {
      slotTtl: DurationM.millis(
        Math.max(DurationM.toMillis(job.misfireGrace), this.misfireThresholdMs) + SLOT_TTL_MARGIN_MS
      ),
      lock: job.lock.enabled ? Option.some({ key: job.name, ttl: job.lock.ttl }) : Option.none(),
      statusTtl: job.lock.enabled ? job.lock.ttl : DurationM.sum(job.timeout, Job.LOCK_TTL_MARGIN)
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
      states.set(job.name, new JobState(job as AnyJob, context as Context.Context<never>, misfireThresholdMs))
    }

    const runs = yield* FiberSet.make<void, never>()
    let shuttingDown = false
    let leading = false

    // -------------------------------------------------------------------------------------------------------------
    // The fire timer: one heap over all planned fires, one fiber waiting for its top (while leading).
    // -------------------------------------------------------------------------------------------------------------
    const fireTimer = new Timer<{ readonly state: JobState; readonly generation: number }>(
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

    const logSkip = (state: JobState, fireTime: number, reason: SkipReason, extra?: Record<string, unknown>) => {
      state.skips++
      return Effect.logInfo("job skipped").pipe(
        Effect.annotateLogs({
          job: state.job.name,
          fire_time: new Date(fireTime).toISOString(),
          node: nodeId,
          reason,
          ...extra
        }),
        Effect.zipRight(Effect.sync(() => state.metrics.skip(reason)))
      )
    }

    // -------------------------------------------------------------------------------------------------------------
    // One run: begin (pause, slot, lock, fence) -> handler under timeout, retry and lock renewal -> finish (release,
    // status, record) -> one log line.
    // -------------------------------------------------------------------------------------------------------------
    const execute = (
      state: JobState,
      running: Running,
      fireTime: number,
      started: Extract<BeginResult, { _tag: "Started" }>,
      startedAt: number,
      restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
    ): Effect.Effect<void> => {
      const job = state.job
      let attempt = 0
      const attemptOnce = Effect.suspend(() => {
        attempt++
        return Effect.provideService(state.handler, RunContext, {
          job: job.name,
          fireTime: new Date(fireTime),
          runId: running.runId,
          attempt,
          nodeId,
          fence: started.fence,
          kind: running.kind
        })
      })
      const retried = job.retry.times === 0 ? attemptOnce : attemptOnce.pipe(
        Effect.retry({
          times: job.retry.times,
          schedule: Schedule.exponential(job.retry.delay, job.retry.factor).pipe(
            Schedule.modifyDelay((delay) => DurationM.min(delay, job.retry.maxDelay))
          ),
          while: (error) => error._tag === "SystemError"
        })
      )
      // The timeout and the lock renewals are entries of the run timer, which interrupts this fiber with a reason
      // (`timeout`, `lock_lost`): no extra fiber per run. Only the handler is interruptible; recording the
      // outcome and releasing the lock always happen.
      running.lock = started.lock
      running.confirmedAt = startedAt
      runTimer.schedule(startedAt + DurationM.toMillis(job.timeout), { run: running, kind: "deadline" })
      if (Option.isSome(started.lock)) runTimer.schedule(startedAt + renewEvery(state), { run: running, kind: "renew" })
      return restore(retried).pipe(
        Effect.onExit((exit) =>
          Effect.gen(function*() {
            running.done = true
            const finishedAt = yield* Clock.currentTimeMillis
            // Let runs that fired at the same time start their handlers before this one's bookkeeping (store,
            // record, log): with many jobs on one fire time, start lateness then grows with the cost of starting a
            // run, not of a whole run.
            yield* Effect.yieldNow()
            const { error, outcome } = outcomeOf(exit, running)
            // Built from values this function computed: validating them again would only cost time per run.
            const record = new RunRecord({
              runId: running.runId,
              job: job.name,
              kind: running.kind,
              fireTime,
              startedAt,
              finishedAt,
              durationMs: finishedAt - startedAt,
              node: nodeId,
              attempt,
              fence: started.fence,
              outcome,
              ...(error === undefined ? {} : { error })
            }, true)
            state.lastRun = Option.some(record)
            state.runs++
            if (outcome === "success") state.success++
            else if (outcome !== "business_error") state.failures++
            // Stores bound every operation themselves (JobStore's contract), so no timeout fiber is added here.
            yield* store.finish({ record, lock: started.lock, statusTtl, maxRecords }).pipe(
              Effect.catchAllCause((cause) =>
                Effect.logError("run record not saved", cause).pipe(Effect.annotateLogs({ job: job.name }))
              )
            )
            state.metrics.run(outcome, record.durationMs)
            const annotations = {
              job: job.name,
              fire_time: new Date(fireTime).toISOString(),
              run_id: running.runId,
              node: nodeId,
              fence: started.fence,
              outcome,
              duration_ms: record.durationMs,
              lateness_ms: startedAt - fireTime,
              attempt,
              kind: running.kind,
              ...(error === undefined ? {} : { error })
            }
            const logCause = outcome === "defect" ? (Exit.isFailure(exit) ? exit.cause : Cause.empty) : Cause.empty
            yield* Effect.logWithLevel(levelOf(outcome), "job finished", logCause).pipe(Effect.annotateLogs(annotations))
          })
        ),
        Effect.catchAllCause(() => Effect.void),
        Effect.withSpan("job.run", {
          attributes: { job: job.name, fire_time: fireTime, run_id: running.runId, node: nodeId, fence: started.fence },
          // A stack trace per run costs more than the rest of the run's bookkeeping; the span name says where.
          captureStackTrace: false
        })
      )
    }

    // -------------------------------------------------------------------------------------------------------------
    // The run timer: every running job's deadline and lock renewals, one fiber for all of them (always running, also
    // while not leading: manual runs and the shutdown drain need their timeouts too).
    // -------------------------------------------------------------------------------------------------------------
    const runTimer = new Timer<RunTimerEntry>(maxWaitMs, (entry) => entry.run.done)
    /** Renew every third of the TTL: two renewals can fail before the lock could lapse. */
    const renewEvery = (state: JobState) => Math.max(1, Math.floor(DurationM.toMillis(state.job.lock.ttl) / 3))

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
        const every = renewEvery(state)
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

    const onRunTimer = (entry: RunTimerEntry): Effect.Effect<void> => {
      const running = entry.run
      if (running.done) return Effect.void
      if (entry.kind === "deadline") return interruptRun(running, "timeout")
      return Option.match(running.lock, {
        onNone: () => Effect.void,
        onSome: (lock) => Effect.asVoid(FiberSet.run(runs, renew(running, lock)))
      })
    }

    /**
     * Launch one run in its own fiber: (for `replace`, wait for the runs it replaces) -> begin -> body -> finish. The
     * run counts as running from launch, so a fire during its `begin` sees the overlap. `begin` and the finalizer that
     * releases what it took are in one uninterruptible region, so no lock can leak between them.
     */
    const launch = (
      state: JobState,
      fireTime: number,
      kind: typeof RunKind.Type,
      replaced: ReadonlyArray<Fiber.RuntimeFiber<void, never>> = []
    ): Effect.Effect<Deferred.Deferred<TriggerResult, StoreError> | undefined> =>
      Effect.gen(function*() {
        // Only a manual trigger waits for `begin`'s answer; scheduled fires do not pay for a Deferred.
        const result = kind === "manual" ? yield* Deferred.make<TriggerResult, StoreError>() : undefined
        const running: Running = {
          runId: newRunId(),
          kind,
          state,
          fiber: undefined,
          reason: undefined,
          done: false,
          lock: Option.none(),
          confirmedAt: 0
        }
        state.running.add(running)
        const request: BeginRequest = {
          job: state.job.name,
          fireTime,
          runId: running.runId,
          nodeId,
          slot: kind === "scheduled" ? Option.some({ ttl: state.begin.slotTtl }) : Option.none(),
          lock: state.begin.lock,
          statusTtl: state.begin.statusTtl
        }
        const body = Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            if (replaced.length > 0) yield* Fiber.interruptAll(replaced)
            const begun = yield* Effect.exit(store.begin(request))
            if (result !== undefined) {
              yield* Deferred.done(
                result,
                Exit.map(begun, (r): TriggerResult =>
                  r._tag === "Started" ? { _tag: "Started", runId: running.runId, fence: r.fence } : r)
              )
            }
            if (Exit.isFailure(begun)) {
              const reason = Cause.squash(begun.cause)
              return yield* logSkip(state, fireTime, "store_error", { error: String((reason as Error)?.message ?? reason) })
            }
            const started = begun.value
            if (started._tag === "Skipped") return yield* logSkip(state, fireTime, started.reason)
            const startedAt = yield* Clock.currentTimeMillis
            state.metrics.lateness(startedAt - fireTime)
            return yield* execute(state, running, fireTime, started, startedAt, restore)
          })
        ).pipe(
          Effect.ensuring(Effect.suspend(() => {
            running.done = true
            state.running.delete(running)
            return afterRun(state)
          }))
        )
        running.fiber = yield* FiberSet.run(runs, body)
        return result
      })

    /** A fixed-delay job plans its next fire `every` after its run ended (or after a fire that did not run). */
    const afterRun = (state: JobState) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          if (state.job.trigger._tag === "FixedDelay" && leading && state.running.size === 0 && !shuttingDown) {
            plan(state, now + DurationM.toMillis(state.job.trigger.every))
          }
        }))

    /** A planned fire is due: apply overlap and misfire rules, plan the next fire, and start the run. */
    const fire = (state: JobState, planned: number, now: number): Effect.Effect<void> =>
      Effect.gen(function*() {
        const job = state.job
        const trigger = job.trigger
        // Newest fire time <= now: fires older than it are superseded (never N catch-up runs).
        let newest = planned
        let missed = 0
        const window = Math.max(DurationM.toMillis(job.misfireGrace), misfireThresholdMs)
        if (trigger._tag === "Cron") {
          let candidate = Cron.next(trigger.cron, Math.max(planned, now - window - 1))
          while (candidate <= now) {
            newest = candidate
            missed++
            candidate = Cron.next(trigger.cron, candidate)
          }
          plan(state, Cron.next(trigger.cron, now))
        } else if (trigger._tag === "FixedRate") {
          const every = DurationM.toMillis(trigger.every)
          const steps = Math.floor((now - planned) / every)
          newest = planned + steps * every
          missed = steps
          plan(state, newest + every)
        } else if (trigger._tag === "Schedule") {
          const [nextState, , decision] = yield* trigger.schedule.step(now, undefined, state.scheduleState)
          state.scheduleState = nextState
          plan(state, ScheduleDecision.isDone(decision) ? undefined : Math.max(now + 1, Intervals.start(decision.intervals)))
        }
        // FixedDelay plans its next fire when this one's run ends (or now, if it does not run).
        const lateness = now - newest
        if (missed > 0) {
          yield* Effect.logInfo("missed fires").pipe(
            Effect.annotateLogs({ job: job.name, node: nodeId, missed, newest_fire: new Date(newest).toISOString() })
          )
        }
        const onTime = lateness <= misfireThresholdMs
        const catchUp = !onTime && job.misfire === "runOnce" && lateness <= DurationM.toMillis(job.misfireGrace)
        if (!onTime && !catchUp) {
          yield* logSkip(state, newest, "misfired", { lateness_ms: lateness })
          return yield* afterRun(state)
        }
        const replaced: Array<Fiber.RuntimeFiber<void, never>> = []
        if (state.running.size > 0) {
          if (job.overlap === "skip") {
            yield* logSkip(state, newest, "overlap")
            return yield* afterRun(state)
          }
          if (job.overlap === "replace") {
            for (const running of state.running) {
              running.reason = "replaced"
              if (running.fiber !== undefined) replaced.push(running.fiber)
            }
          }
        }
        // Leadership is checked at the last moment: a node that woke from a freeze must not start anything.
        if (!(yield* election.isLeader)) {
          return yield* Effect.logDebug("fire dropped: not leading").pipe(Effect.annotateLogs({ job: job.name }))
        }
        yield* launch(state, newest, "scheduled", replaced)
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

    const timerLoop = fireTimer.run((entry, time, now) => {
      if (entry.generation !== entry.state.generation) return Effect.void
      entry.state.nextFire = undefined
      return fire(entry.state, time, now)
    })

    const lead = Effect.gen(function*() {
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
          running.reason = "leadership_lost"
          if (running.fiber !== undefined) fibers.push(running.fiber)
        }
      }
      yield* Fiber.interruptAll(fibers)
    })
    yield* Effect.forkScoped(runTimer.run(onRunTimer))
    yield* Metric.set(Metrics.leader, 0)
    yield* election.changes.pipe(
      Stream.runForEach((leadership) => (leadership._tag === "Leader" ? becomeLeader : loseLeadership)),
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
        const fibers = pending.flatMap((running) => (running.fiber === undefined ? [] : [running.fiber]))
        const drained = DurationM.isZero(shutdownGrace)
          ? Option.none()
          // Finalizers are uninterruptible: without `interruptible` the timeout could not stop the wait.
          : yield* Fiber.awaitAll(fibers).pipe(Effect.interruptible, Effect.timeout(shutdownGrace), Effect.option)
        if (Option.isNone(drained)) {
          for (const running of pending) running.reason = "shutdown"
          yield* Effect.logWarning("shutdown grace over: interrupting running jobs").pipe(
            Effect.annotateLogs({ node: nodeId })
          )
          yield* Fiber.interruptAll(fibers)
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
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            // A manual launch always returns its Deferred.
            Effect.flatMap(launch(state, now, "manual"), (result) => Deferred.await(result!)))),
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
