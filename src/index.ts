/**
 * effect-job-scheduler: scheduled jobs for Effect applications.
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
/** @since 0.1.0 */
export * as Redis from "./Redis.js"
/** @since 0.1.0 */
export * as JobStoreRedis from "./JobStore/Redis.js"
/** @since 0.1.0 */
export * as JobLockModelRedis from "./JobLockModel/Redis.js"
/** @since 0.1.0 */
export * as Etcd from "./Etcd.js"
/** @since 0.1.0 */
export * as LeaderElectionEtcd from "./LeaderElection/Etcd.js"
