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

/** @since 0.1.0 */
export * as Cron from "./Cron.js"
/** @since 0.1.0 */
export * from "./Errors.js"
/** @since 0.1.0 */
export * as Job from "./Job.js"
/** @since 0.1.0 */
export * as JobLockModel from "./JobLockModel.js"
/** @since 0.1.0 */
export * as JobStore from "./JobStore.js"
/** @since 0.1.0 */
export * as LeaderElection from "./LeaderElection.js"
/** @since 0.1.0 */
export * as Logging from "./Logging.js"
/** @since 0.1.0 */
export * as Metrics from "./Metrics.js"
/** @since 0.1.0 */
export * as Run from "./Run.js"
/** @since 0.1.0 */
export { RunContext, RunRecord } from "./Run.js"
/** @since 0.1.0 */
export * as Scheduler from "./Scheduler.js"
