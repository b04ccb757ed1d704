/**
 * The scheduler: runs registered jobs while this node leads, one shared timer over all due jobs.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { StoreError, UnknownJob } from "./Errors.js"
import type { RunRecord, SkipReason } from "./Run.js"

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
