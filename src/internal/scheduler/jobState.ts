/**
 * What the scheduler keeps per job. An idle job keeps its definition, its planned fire and its place on the fire
 * timer (the state is its own timer entry); everything a job needs only once it runs or is skipped (its runs, last
 * record, counters, metric labels, `begin` template, retry schedule) is made on first use, in one object, and
 * durations in milliseconds are read off the job when needed rather than kept.
 *
 * Each mutable field has one writer, named on the field.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Job from "../../Job.js"
import type { BeginRequest } from "../../JobStore.js"
import type { RunRecord } from "../../Run.js"
import { JobMetrics } from "../jobMetrics.js"
import type { TimerSlot } from "../timer.js"
import type { Run } from "./run.js"

/** A job whose requirements (besides RunContext) are already provided from the layer's context. */
export type AnyJob = Job.Job<never>

/**
 * Slot claims outlive the misfire window by this much, so that a late node (a stale leader, a second instance)
 * still finds the slot taken.
 */
const SLOT_TTL_MARGIN_MS = 10 * 60_000

/**
 * The parts of a job's state that only a job that ran, was skipped or fires on a `Schedule` needs: made on the first
 * write, so that an idle job (most stored schedules, most of the time) keeps none of them.
 */
class Activity {
  /** Its runs in progress: none, the one (nearly always), or a set of two or more (overlap `allow`). */
  running: Run | Set<Run> | undefined = undefined
  lastRun: RunRecord | undefined = undefined
  runs = 0
  success = 0
  failures = 0
  skips = 0
  pausedSkipLogged = false
  scheduleState: unknown = undefined
  metrics: JobMetrics | undefined = undefined
  begin: JobState["begin"] | undefined = undefined
  retry: Schedule.Schedule<unknown, unknown> | undefined = undefined
}

export class JobState implements TimerSlot {
  /** Bumped whenever the planned fire changes; a fire taken off the timer under an older one is stale. Planner. */
  generation = 0
  /** The planned fire (epoch ms), if any. Planner (through the fire timer while the job is on it). */
  nextFire: number | undefined = undefined
  /** Its place on the planner's fire timer, -1 when not on it. The fire timer. */
  timerIndex = -1
  private activity: Activity | undefined = undefined

  constructor(readonly job: AnyJob, private readonly misfireThresholdMs: number) {}

  private get active(): Activity {
    return this.activity ??= new Activity()
  }

  /** The state of a `Schedule` trigger between its steps. Planner. */
  get scheduleState(): unknown {
    return this.activity?.scheduleState
  }
  set scheduleState(value: unknown) {
    this.active.scheduleState = value
  }

  /**
   * Its runs from creation until over (`Run`'s constructor adds, its `over` transition deletes: `addRun`,
   * `deleteRun`). Run. A copy, in the order they were added. One run is kept as itself and a set is made only for
   * two at once, so that a job keeps nothing between its runs.
   */
  get running(): ReadonlyArray<Run> {
    const running = this.activity?.running
    return running === undefined ? [] : running instanceof Set ? Array.from(running) : [running]
  }

  /** How many of its runs are in progress (`running`'s length, without the copy). */
  get runningCount(): number {
    const running = this.activity?.running
    return running === undefined ? 0 : running instanceof Set ? running.size : 1
  }

  /** Its newest record written on this node. Bookkeeper (`recordRun`). */
  get lastRun(): Option.Option<RunRecord> {
    return Option.fromNullable(this.activity?.lastRun)
  }

  /** Counters since this node started. Bookkeeper (`recordRun`, `countSkip`). */
  get runs(): number {
    return this.activity?.runs ?? 0
  }
  get success(): number {
    return this.activity?.success ?? 0
  }
  get failures(): number {
    return this.activity?.failures ?? 0
  }
  get skips(): number {
    return this.activity?.skips ?? 0
  }

  /** A run's record was written: it is the job's last run, and it counts (a business error is no failure). */
  recordRun(record: RunRecord): void {
    const active = this.active
    active.lastRun = record
    active.runs++
    if (record.outcome === "success") active.success++
    else if (record.outcome !== "business_error") active.failures++
  }

  countSkip(): void {
    this.active.skips++
  }

  /**
   * Whether the current streak of `paused` skips has been logged at INFO already: the first skip of a pause is, the
   * ones after it (one per fire while the pause lasts) are DEBUG. Cleared by any other skip or run. Bookkeeper.
   */
  get pausedSkipLogged(): boolean {
    return this.activity?.pausedSkipLogged ?? false
  }
  set pausedSkipLogged(value: boolean) {
    this.active.pausedSkipLogged = value
  }

  /**
   * This node's counters and last record of `old`, the state this one replaces (the job's, whatever its
   * definition). Scheduler.
   */
  inherit(old: JobState): void {
    const from = old.activity
    if (from === undefined) return
    const to = this.active
    to.lastRun = from.lastRun
    to.runs = from.runs
    to.success = from.success
    to.failures = from.failures
    to.skips = from.skips
  }

  addRun(run: Run): void {
    const active = this.active
    const running = active.running
    if (running === undefined) active.running = run
    else if (running instanceof Set) running.add(run)
    else if (running !== run) active.running = new Set([running, run])
  }

  deleteRun(run: Run): void {
    const active = this.activity
    if (active === undefined) return
    const running = active.running
    if (running === run) active.running = undefined
    else if (running instanceof Set && running.delete(run) && running.size === 0) active.running = undefined
  }

  private get metricsCache(): JobMetrics | undefined {
    return this.activity?.metrics
  }
  private set metricsCache(value: JobMetrics | undefined) {
    this.active.metrics = value
  }

  get metrics(): JobMetrics {
    return this.metricsCache ??= JobMetrics.forJob(this.job.name)
  }

  get timeoutMs(): number {
    return Duration.toMillis(this.job.timeout)
  }

  /** Renew every third of the TTL: two renewals can fail before the lock could lapse. */
  get renewEveryMs(): number {
    return Math.max(1, Math.floor(Duration.toMillis(this.job.lock.ttl) / 3))
  }

  get misfireGraceMs(): number {
    return Duration.toMillis(this.job.misfireGrace)
  }

  /** How far back a late fire looks for the newest missed fire time. */
  get windowMs(): number {
    return Math.max(this.misfireGraceMs, this.misfireThresholdMs)
  }

  get retrySchedule(): Schedule.Schedule<unknown, unknown> {
    const retry = this.job.retry
    return this.active.retry ??= Schedule.exponential(retry.delay, retry.factor).pipe(
      Schedule.modifyDelay((delay) => Duration.min(delay, retry.maxDelay))
    )
  }

  /** The parts of every `begin` request that do not change from run to run. */
  get begin(): Pick<BeginRequest, "slot" | "lock" | "statusTtl"> {
    const job = this.job
    return this.active.begin ??= {
      slot: Option.some({ ttl: Duration.millis(this.windowMs + SLOT_TTL_MARGIN_MS) }),
      lock: job.lock.enabled ? Option.some({ key: job.name, ttl: job.lock.ttl }) : Option.none(),
      // The `running` status must not expire mid-run: the lock is renewed, the status is not.
      statusTtl: Duration.sum(job.timeout, Job.statusTtlMargin)
    }
  }
}
