/**
 * What the scheduler keeps per job. The pieces a job needs only once it runs (its metric labels, its `begin`
 * template, its retry schedule) are made on first use, and durations in milliseconds are read off the job when
 * needed rather than kept: an idle job costs only what it must.
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
import type { Run } from "./run.js"

/** A job whose requirements (besides RunContext) are already provided from the layer's context. */
export type AnyJob = Job.Job<never>

/**
 * Slot claims outlive the misfire window by this much, so that a late node (a stale leader, a second instance)
 * still finds the slot taken.
 */
const SLOT_TTL_MARGIN_MS = 10 * 60_000

/** The runs of a job that has never run. */
const noRuns: ReadonlySet<Run> = new Set()

export class JobState {
  /** Bumped whenever the planned fire changes; timer entries of older generations are stale. Planner. */
  generation = 0
  /** The planned fire (epoch ms), if any. Planner. */
  nextFire: number | undefined = undefined
  /** The state of a `Schedule` trigger between its steps. Planner. */
  scheduleState: unknown = undefined
  /**
   * Its runs from creation until over (`Run`'s constructor adds, its `over` transition deletes: `addRun`,
   * `deleteRun`). Run. The set is made on the first run: an idle job (most stored schedules, most of the time) keeps
   * none, and a leader loading 100,000 schedules makes none.
   */
  get running(): ReadonlySet<Run> {
    return this.runningSet ?? noRuns
  }
  private runningSet: Set<Run> | undefined = undefined
  /** Bookkeeper. */
  lastRun: Option.Option<RunRecord> = Option.none()
  /** Counters since this node started. Bookkeeper. */
  runs = 0
  success = 0
  failures = 0
  skips = 0
  /**
   * Whether the current streak of `paused` skips has been logged at INFO already: the first skip of a pause is, the
   * ones after it (one per fire while the pause lasts) are DEBUG. Cleared by any other skip or run. Bookkeeper.
   */
  pausedSkipLogged = false
  private metricsCache: JobMetrics | undefined = undefined
  private beginCache: JobState["begin"] | undefined = undefined
  private retryCache: Schedule.Schedule<unknown, unknown> | undefined = undefined

  constructor(readonly job: AnyJob, private readonly misfireThresholdMs: number) {}

  addRun(run: Run): void {
    ;(this.runningSet ??= new Set()).add(run)
  }

  deleteRun(run: Run): void {
    this.runningSet?.delete(run)
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
    return this.retryCache ??= Schedule.exponential(retry.delay, retry.factor).pipe(
      Schedule.modifyDelay((delay) => Duration.min(delay, retry.maxDelay))
    )
  }

  /** The parts of every `begin` request that do not change from run to run. */
  get begin(): Pick<BeginRequest, "slot" | "lock" | "statusTtl"> {
    const job = this.job
    return this.beginCache ??= {
      slot: Option.some({ ttl: Duration.millis(this.windowMs + SLOT_TTL_MARGIN_MS) }),
      lock: job.lock.enabled ? Option.some({ key: job.name, ttl: job.lock.ttl }) : Option.none(),
      // The `running` status must not expire mid-run: the lock is renewed, the status is not.
      statusTtl: Duration.sum(job.timeout, Job.statusTtlMargin)
    }
  }
}
