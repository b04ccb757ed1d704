/**
 * effect-job-scheduler: scheduled jobs for Effect applications.
 *
 * The root holds the backend-free core: importing it loads `effect` and this package only. The Redis and etcd
 * backends have import paths of their own (`effect-job-scheduler/JobStore/Redis`, `effect-job-scheduler/Redis`,
 * `effect-job-scheduler/JobLockModel/Redis`, `effect-job-scheduler/Etcd`, `effect-job-scheduler/LeaderElection/Etcd`),
 * so an application that keeps everything in memory installs and loads neither `ioredis` nor `etcd3`.
 *
 * @since 0.1.0
 */

/**
 * Cron expressions with seconds, IANA zones and Vixie-cron DST rules: `parse`, `fromEffect`, `next`.
 *
 * @since 0.1.0
 */
export * as Cron from "./Cron.js"

/**
 * The errors of the package: what handlers fail with (`BusinessError`, `SystemError`), why runs stop (`JobTimeout`,
 * `LockLost`, `LeadershipLost`), bad definitions (`InvalidCron`, `InvalidJob`, `DuplicateJob`, `UnknownJob`) and
 * backend failures (`StoreError`, `ElectionError`).
 *
 * @since 0.1.0
 */
export * from "./Errors.js"

/**
 * Job definitions: a name, a trigger, a handler and its options, validated when made (`make`, `unsafeMake`).
 *
 * @since 0.1.0
 */
export * as Job from "./Job.js"

/**
 * The per-run lock and job status (`acquireLock`, `releaseLock`, `setJobStatus`, `getJobStatus`, `withLock`).
 *
 * @since 0.1.0
 */
export * as JobLockModel from "./JobLockModel.js"

/**
 * The run path's state: slot claims, locks, fences, statuses, run records and pause flags; `layerMemory`.
 *
 * @since 0.1.0
 */
export * as JobStore from "./JobStore.js"

/**
 * Which node runs the jobs: `layerSingleNode`, `layerManual` for tests; etcd in its own module.
 *
 * @since 0.1.0
 */
export * as LeaderElection from "./LeaderElection.js"

/**
 * Loggers: one JSON object per line, or one readable line per event; the minimum level.
 *
 * @since 0.1.0
 */
export * as Logging from "./Logging.js"

/**
 * The scheduler's metrics as effect `Metric`s: runs, durations, lateness, skips, leadership, lock renewals.
 *
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.js"

/**
 * What a run is and what it ended in: `RunContext`, `RunRecord`, `Outcome`, `SkipReason`.
 *
 * @since 0.1.0
 */
export * as Run from "./Run.js"

export {
  /**
   * What a handler knows about its run: job, fire time, run id, attempt, node id and fence.
   *
   * @since 0.1.0
   */
  RunContext,
  /**
   * One record per run, kept per job and readable from any node.
   *
   * @since 0.1.0
   */
  RunRecord
} from "./Run.js"

/**
 * The scheduler: runs registered jobs while this node leads; status, trigger, pause, resume, runs; its layers.
 *
 * @since 0.1.0
 */
export * as Scheduler from "./Scheduler.js"

/**
 * Schedules as data: handlers registered in code with a payload schema, schedules stored in the `JobStore` and
 * managed at runtime, cluster-wide.
 *
 * @since 0.2.0
 */
export * as Schedules from "./Schedules.js"
