/**
 * The scheduler: runs registered jobs while this node leads, one shared timer over all due jobs.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as DurationM from "effect/Duration"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberHandle from "effect/FiberHandle"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { DuplicateJob, type StoreError, UnknownJob } from "./Errors.js"
import { Bookkeeper } from "./internal/scheduler/bookkeeper.js"
import { type AnyJob, JobState } from "./internal/scheduler/jobState.js"
import { type BeginOutcome, type Flags, Launcher } from "./internal/scheduler/launcher.js"
import { Planner } from "./internal/scheduler/planner.js"
import type { InterruptReason, Run } from "./internal/scheduler/run.js"
import { RunForker } from "./internal/scheduler/runFork.js"
import { follow as followTestClock, isTestClock } from "./internal/scheduler/testClock.js"
import { Watchdog } from "./internal/scheduler/watchdog.js"
import * as Job from "./Job.js"
import type { JobLockModel } from "./JobLockModel.js"
import { JobStore } from "./JobStore.js"
import * as JobStoreM from "./JobStore.js"
import { LeaderElection } from "./LeaderElection.js"
import * as LeaderElectionM from "./LeaderElection.js"
import * as Metrics from "./Metrics.js"
import type { RunRecord, SkipReason } from "./Run.js"

/**
 * The scheduler's own options: shutdown grace, misfire threshold, records kept per job, status TTL, longest timer
 * wait.
 *
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
 * What the scheduler knows of one job: its trigger, whether it is enabled or paused, its planned next fire, its runs
 * in progress, its last record and this node's counters.
 *
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
 * What `trigger` did: `Started` (with the run id, its fence, and `await` for the run's record) or `Skipped` with the
 * reason.
 *
 * @since 0.1.0
 * @category models
 */
export type TriggerResult =
  | {
    readonly _tag: "Started"
    readonly runId: string
    readonly fence: number
    /**
     * Waits until the run is over (its record written, its lock released) and gives its record, like BullMQ's
     * `waitUntilFinished`. Dies in the one case where there is no record: the run's bookkeeping failed (logged).
     */
    readonly await: Effect.Effect<RunRecord>
  }
  | { readonly _tag: "Skipped"; readonly reason: SkipReason }

/**
 * Options of a manual trigger: `input` reaches the handler as `RunContext.input` (a schedule's handler decodes it
 * instead of its stored payload).
 *
 * @since 0.2.0
 * @category models
 */
export interface TriggerOptions {
  readonly input?: unknown
}

/**
 * The scheduler as a service: runs the registered jobs while this node leads; status, trigger, pause, resume and run
 * records of each job.
 *
 * @since 0.1.0
 * @category tags
 */
export class Scheduler extends Context.Tag("effect-job-scheduler/Scheduler")<Scheduler, {
  readonly nodeId: string
  /** Names of the registered jobs, in registration order (read again after `register` / `unregister`). */
  readonly jobs: ReadonlyArray<string>
  readonly status: Effect.Effect<ReadonlyArray<JobStatus>, StoreError>
  readonly jobStatus: (name: string) => Effect.Effect<JobStatus, UnknownJob | StoreError>
  /**
   * Run the job now through the same path as a fire (pause check, lock, fence, record); returns once started.
   * `Skipped` with `shutting_down` once the scheduler is shutting down (no run begins then).
   */
  readonly trigger: (
    name: string,
    options?: TriggerOptions
  ) => Effect.Effect<TriggerResult, UnknownJob | StoreError>
  /**
   * Register a job while the scheduler runs, or replace the one of the same name. While leading, its first fire is
   * planned at once: for a new name from the last fire recorded by any node (as when a node starts leading), for a
   * replaced job from now when `replan` is true (its trigger changed: the old times never fire), else at the fire the
   * replaced job had planned. A run of the replaced job in progress finishes under the old definition.
   */
  readonly register: (
    job: Job.Job<never>,
    options?: { readonly replan?: boolean | undefined }
  ) => Effect.Effect<void>
  /**
   * `register` for many jobs at once (their first fires planned with few store calls). `lastFire`: the job's last
   * fire time as the caller read it from the store (`JobStore.lastFireTime`, none: never fired), so that it is not
   * read again; absent, the store is asked.
   */
  readonly registerAll: (
    entries: ReadonlyArray<{
      readonly job: Job.Job<never>
      readonly replan?: boolean | undefined
      readonly lastFire?: Option.Option<number> | undefined
    }>
  ) => Effect.Effect<void>
  /**
   * Run the job now for the past fire time `fireTime`, as a scheduled run (a backfill): its slot is claimed, so a fire
   * time that ran already is skipped with `slot_taken`. Only while leading: `Skipped` with `not_leading` otherwise.
   */
  readonly runFire: (
    name: string,
    fireTime: number
  ) => Effect.Effect<TriggerResult | { readonly _tag: "NotLeading" }, UnknownJob | StoreError>
  /**
   * Remove a job: its planned fire is dropped and it fires no more; a run in progress finishes. False when no job has
   * that name.
   */
  readonly unregister: (name: string) => Effect.Effect<boolean>
  /** Pause the job cluster-wide: fires are skipped with reason `paused` until `resume`. */
  readonly pause: (name: string) => Effect.Effect<void, UnknownJob | StoreError>
  readonly resume: (name: string) => Effect.Effect<void, UnknownJob | StoreError>
  /**
   * The newest run records of the job (from the store: every node's runs), newest first. At most `maxRecords` (100
   * by default) are kept per job, so a `limit` above it returns at most that many: older runs are gone.
   */
  readonly runs: (name: string, limit?: number) => Effect.Effect<ReadonlyArray<RunRecord>, UnknownJob | StoreError>
}>() {}

/**
 * The scheduler's default shutdown grace.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultShutdownGrace: Duration.Duration = DurationM.seconds(30)

/**
 * The default longest single timer wait. Effect's default clock arms no timer for waits above 2^31-1 ms (the sleep
 * never wakes), and timers run on a monotonic clock, so a wall-clock step (NTP) is only noticed when the loop wakes:
 * ten minutes bounds how late a step can make a fire, at a cost of one idle wake-up per ten minutes.
 */
const DEFAULT_MAX_TIMER_WAIT_MS = 10 * 60_000

/**
 * A backfill run's slot claim is kept this long past its fire time's age, so that a second backfill of the same
 * window within a week finds the fire times that ran (a scheduled fire's claim is kept only past its misfire window).
 */
const BACKFILL_SLOT_MS = 7 * 24 * 60 * 60_000

/** The largest delay Node's timers accept (a signed 32-bit millisecond count). */
const TIMER_LIMIT_MS = 2 ** 31 - 1

/** The states of the jobs given to `make`, in order; the first name seen twice, if any. */
const registerInitial = (
  jobs: Iterable<Job.Job<unknown>>,
  states: Map<string, JobState>,
  misfireThresholdMs: number
): string | undefined => {
  const list = Array.isArray(jobs) ? jobs as ReadonlyArray<Job.Job<unknown>> : Array.from(jobs)
  for (let i = 0; i < list.length; i++) {
    const job = list[i]!
    // One lookup per job: a name seen before leaves the size unchanged (the map is dropped with the failure).
    const size = states.size
    // Exclude<R | RunContext, R> does not reduce for a generic R: the job is kept as Job<never> and its R comes
    // from the layer's context when its run is forked.
    states.set(job.name, new JobState(job as AnyJob, misfireThresholdMs))
    if (states.size === size) return job.name
  }
  return undefined
}

/**
 * Build a scheduler for `jobs` in the current scope. It fires while `LeaderElection` says this node leads; when the
 * scope closes it stops firing, lets running jobs finish within `shutdownGrace`, then interrupts them. Once the
 * scope has begun to close no run begins.
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
    const nodeId = election.nodeId
    // Under effect's TestClock (see internal/scheduler/testClock.ts) the defaults that exist for real time change: no
    // shutdown grace (the TestClock stands still while a test's scope closes, so a grace would never end), and no
    // timer chunking (TestClock timers have no 2^31-1 ms limit and its wall clock never steps by itself; every chunk
    // would cost a TestClock round). Options given explicitly are honoured either way.
    const testClock = isTestClock(yield* Effect.clock)
    const shutdownGrace = DurationM.decode(options.shutdownGrace ?? (testClock ? DurationM.zero : defaultShutdownGrace))
    const misfireThresholdMs = DurationM.toMillis(options.misfireThreshold ?? "1 second")
    const maxRecords = options.maxRecords ?? 100
    const statusTtl = DurationM.decode(options.statusTtl ?? "1 day")
    const maxWaitMs = options.maxTimerWait === undefined && testClock
      ? Number.POSITIVE_INFINITY
      : Math.max(1, Math.min(TIMER_LIMIT_MS, DurationM.toMillis(options.maxTimerWait ?? DEFAULT_MAX_TIMER_WAIT_MS)))

    // Registration.
    const states = new Map<string, JobState>()
    // A plain function over the jobs (an array indexed, not iterated): this generator runs once, unoptimised, and an
    // iterator step there makes a result object per job.
    const duplicate = registerInitial(jobs, states, misfireThresholdMs)
    if (duplicate !== undefined) return yield* new DuplicateJob({ job: duplicate })

    // The flags, written only here: `leading` while this node fires (set on becoming leader, cleared when firing
    // stops), `term` the term of the latest leadership (begins made while leading carry it), `shuttingDown` from the
    // first step of shutdown on. The parts read them.
    const flags: { -readonly [K in keyof Flags]: Flags[K] } = { leading: false, term: undefined, shuttingDown: false }

    // The parts, and what each of them owns:
    // - `Run` (internal/scheduler/run.ts): one run's phase, interrupt reason (first wins), fiber, lock and fence;
    // - the watchdog: the run timer (deadlines, renewals);
    // - the bookkeeper: the backlog of finished runs and skips, the drain, each job's counters and last record;
    // - the launcher: begin + start (nothing begins once shutting down), through the forker (the runtime pieces);
    // - the planner: the fire timer, each job's planned fire and generation.
    // Step 1, made first so that it is interrupted last: the fiber set of the runs' helpers (renewals, replacing
    // runs waiting for the runs they replace). Their work may be needed until the shutdown drain is over.
    const helpers = yield* FiberSet.make<void, never>()
    const forker = yield* RunForker.make(yield* Effect.context<R>())
    const watchdog = new Watchdog(maxWaitMs, store, helpers)
    // `planner` is made below; the bookkeeper calls it only once a run is over, after everything is made.
    const bookkeeper = new Bookkeeper(store, forker.clock, {
      nodeId,
      statusTtl,
      maxRecords,
      onOver: (state, now) => planner.afterRun(state, now)
    })
    const launcher = new Launcher(nodeId, store, election, flags, forker, watchdog, bookkeeper)
    const planner = new Planner(maxWaitMs, misfireThresholdMs, states, store, flags, launcher, bookkeeper, helpers)
    // Under a TestClock, `TestClock.setTime` called from this scope re-plans first (a wall-clock step), whenever the
    // test sets the clock: before or after this scheduler was made.
    const clock = yield* Effect.clock
    if (isTestClock(clock)) yield* followTestClock(clock, (instant) => planner.clockSet(instant))

    // Done once the first leadership state is known and, when it is leading, the first fires are planned: `make`
    // returns then, so that `status` right after start-up shows the planned fires.
    const startup = yield* Deferred.make<void>()
    const settled = () => Deferred.unsafeDone(startup, Exit.void)
    // Step 2: the fiber that fires while leading, in a handle of its own (interrupted when firing stops).
    const leaderFiber = yield* FiberHandle.make<never, never>()
    const becomeLeader = Effect.gen(function*() {
      if (flags.leading || flags.shuttingDown) return
      flags.leading = true
      yield* Metric.set(Metrics.leader, 1)
      yield* Effect.logInfo("leading: firing jobs").pipe(Effect.annotateLogs({ node: nodeId }))
      yield* FiberHandle.run(leaderFiber, planner.lead(settled))
    })
    const stopFiring = Effect.gen(function*() {
      flags.leading = false
      // Waits for a fire batch in progress: it is uninterruptible until its runs have begun (or were dropped).
      yield* FiberHandle.clear(leaderFiber)
      planner.stop()
    })
    // Jobs replaced or removed while runs of theirs were in progress: those runs still count (leadership loss and
    // shutdown stop them), until they are over. Written by `register` / `unregister`, pruned by `allStates`.
    const retired = new Set<JobState>()
    const allStates = (): Array<JobState> => {
      for (const state of retired) if (state.runningCount === 0) retired.delete(state)
      return [...states.values(), ...retired]
    }
    /** Every run in progress, asked to stop for `reason` (the first reason a run is given wins); their fibers. */
    const interruptAll = (reason: InterruptReason) => {
      const runs: Array<Run> = []
      const fibers: Array<Fiber.RuntimeFiber<void, never>> = []
      for (const state of allStates()) {
        for (const run of state.running) {
          runs.push(run)
          // A run still beginning has no fiber yet: it stops as soon as it starts.
          const fiber = run.interrupt(reason)
          if (fiber !== undefined) fibers.push(fiber)
        }
      }
      return { runs, fibers }
    }
    const loseLeadership = Effect.gen(function*() {
      if (!flags.leading) return
      yield* stopFiring
      yield* Metric.set(Metrics.leader, 0)
      yield* Effect.logWarning("not leading: stopped firing, interrupting running jobs").pipe(
        Effect.annotateLogs({ node: nodeId })
      )
      yield* Fiber.interruptAll(interruptAll("leadership_lost").fibers)
    })

    // Step 3: the run timer. It must outlive the shutdown drain: runs being drained still time out and renew.
    yield* Effect.forkScoped(watchdog.loop)
    // Step 4: the bookkeeping fiber. It must outlive the shutdown drain too: a run is over (and the drain waits for
    // it) only once this fiber has written its record and released its lock.
    yield* Effect.forkScoped(bookkeeper.loop)
    // Step 5: leadership changes. Interrupted right after shutdown (which has cleared `leading` and set
    // `shuttingDown`, so a change arriving during the drain does nothing).
    yield* Metric.set(Metrics.leader, 0)
    yield* election.changes.pipe(
      Stream.runForEach((leadership) =>
        leadership._tag === "Leader"
          ? Effect.zipRight(Effect.sync(() => (flags.term = leadership.term)), becomeLeader)
          : Effect.zipRight(loseLeadership, Effect.sync(settled))
      ),
      Effect.catchAllCause((cause) => Effect.logError("leadership stream failed", cause)),
      Effect.forkScoped
    )

    // Step 6, added last so that it runs first when the scope closes (finalizers run in reverse): stop firing,
    // drain within the grace, interrupt what is left, and wait until every run is over. Steps 1-5 are still alive
    // while it runs; they end after it, in reverse order.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        flags.shuttingDown = true
        yield* stopFiring
        const pending = allStates().flatMap((state) => state.running)
        if (pending.length === 0) return
        yield* Effect.logInfo("shutting down: waiting for running jobs").pipe(
          Effect.annotateLogs({ node: nodeId, running: pending.length, grace_ms: DurationM.toMillis(shutdownGrace) })
        )
        const drained = DurationM.isZero(shutdownGrace)
          ? Option.none()
          // Finalizers are uninterruptible: without `interruptible` the timeout could not stop the wait.
          : yield* Bookkeeper.awaitOver(pending).pipe(
            Effect.interruptible,
            Effect.timeout(shutdownGrace),
            Effect.option
          )
        if (Option.isNone(drained)) {
          yield* Effect.logWarning("shutdown grace over: interrupting running jobs").pipe(
            Effect.annotateLogs({ node: nodeId })
          )
          const { fibers, runs } = interruptAll("shutdown")
          yield* Fiber.interruptAll(fibers)
          // Their records and lock releases are queued: wait for them (stores bound each operation).
          yield* Bookkeeper.awaitOver(runs)
        }
      })
    )

    // Wait for the start-up planning, at most one second of real time (a backend that takes longer to say whether
    // this node leads, such as an etcd campaign, does not hold the caller up; it is timed on a live clock, which a
    // TestClock does not stop).
    yield* Deferred.await(startup).pipe(Effect.timeout("1 second"), Effect.ignore, Effect.withClock(Clock.make()))

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
        running: state.runningCount,
        lastRun: state.lastRun,
        counters: { runs: state.runs, success: state.success, failures: state.failures, skips: state.skips }
      }))

    /** What a begun manual or backfill run gives its caller. */
    const started = (
      name: string,
      { result, run }: { readonly run: Run; readonly result: BeginOutcome }
    ): Effect.Effect<TriggerResult, StoreError> =>
      result === undefined
        ? Effect.die(new Error("the store returned no result for the run"))
        : Either.isLeft(result)
        ? Effect.fail(result.left)
        : result.right._tag === "Started"
        ? Effect.succeed({
          _tag: "Started",
          runId: run.runId,
          fence: result.right.fence,
          await: Effect.flatMap(Bookkeeper.awaitOver([run]), () =>
            run.record === undefined
              ? Effect.die(new Error(`run ${run.runId} of ${name} has no record: its bookkeeping failed`))
              : Effect.succeed(run.record))
        })
        : Effect.succeed(result.right)

    const retire = (old: JobState) => {
      planner.retire(old)
      if (old.runningCount > 0) retired.add(old)
    }
    const registerAll: Scheduler["Type"]["registerAll"] = (entries) =>
      Effect.suspend(() => {
        if (flags.shuttingDown) return Effect.void
        const toAdd: Array<
          { readonly state: JobState; readonly from: "lastFire" | "now"; readonly last?: Option.Option<number> }
        > = []
        for (const { job, lastFire, replan } of entries) {
          const old = states.get(job.name)
          const planned = old?.nextFire
          const state = new JobState(job, misfireThresholdMs)
          if (old !== undefined) {
            // This node's counters and last record are the job's, whatever its definition.
            state.inherit(old)
            retire(old)
          }
          states.set(job.name, state)
          if (old === undefined) {
            toAdd.push(
              lastFire === undefined ? { state, from: "lastFire" } : { state, from: "lastFire", last: lastFire }
            )
          } else if (replan === true) {
            toAdd.push({ state, from: "now" })
          } else if (planned !== undefined && flags.leading && job.enabled) {
            planner.plan(state, planned)
          } else if (old.runningCount === 0) {
            // Nothing planned to keep (a job that was disabled or not planned); a fixed-delay job whose run is in
            // progress is planned when that run ends.
            toAdd.push({ state, from: "now" })
          }
        }
        return planner.addMany(toAdd)
      })

    return {
      nodeId,
      get jobs() {
        return Array.from(states.keys())
      },
      status: Effect.suspend(() => Effect.forEach(Array.from(states.values()), statusOf)),
      jobStatus: (name) => Effect.flatMap(lookup(name), statusOf),
      register: (job, registerOptions) => registerAll([{ job, replan: registerOptions?.replan }]),
      registerAll,
      unregister: (name) =>
        Effect.sync(() => {
          const old = states.get(name)
          if (old === undefined) return false
          states.delete(name)
          retire(old)
          return true
        }),
      trigger: (name, triggerOptions) =>
        Effect.flatMap(
          lookup(name),
          (state) =>
            Effect.flatMap(
              launcher.manual(state, triggerOptions?.input),
              (begun): Effect.Effect<TriggerResult, StoreError> =>
                begun === undefined
                  ? Effect.succeed({ _tag: "Skipped", reason: "shutting_down" })
                  : started(name, begun)
            )
        ),
      runFire: (name, fireTime) =>
        Effect.flatMap(lookup(name), (state) =>
          Effect.flatMap(
            launcher.backfill(state, fireTime, DurationM.millis(Math.max(0, Date.now() - fireTime) + BACKFILL_SLOT_MS)),
            (begun): Effect.Effect<TriggerResult | { readonly _tag: "NotLeading" }, StoreError> =>
              begun === undefined ? Effect.succeed({ _tag: "NotLeading" }) : started(name, begun)
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
