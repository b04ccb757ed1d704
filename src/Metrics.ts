/**
 * The scheduler's metrics, as effect `Metric`s. Exported at `/metrics` by the service in Prometheus
 * text format; embedders can read them with `Metric.snapshot`.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

/**
 * Runs by `job` and `outcome`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const runs = Metric.counter("job_runs_total", { description: "Finished runs by job and outcome" })

/**
 * Run duration in seconds by `job`. Buckets from 1 ms doubling to ~65 s, then longer runs fall in +Inf.
 *
 * @since 0.1.0
 * @category metrics
 */
export const runDuration = Metric.histogram(
  "job_run_duration_seconds",
  MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 17 }),
  "Run duration by job"
)

/**
 * Fire lateness (run start minus fire time) in seconds by `job`. Buckets from 0.5 ms doubling to ~16 s.
 *
 * @since 0.1.0
 * @category metrics
 */
export const lateness = Metric.histogram(
  "job_fire_lateness_seconds",
  MetricBoundaries.exponential({ start: 0.0005, factor: 2, count: 16 }),
  "Fire lateness by job"
)

/**
 * Fires that did not run, by `job` and `reason`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const skips = Metric.counter("job_skips_total", { description: "Skipped fires by job and reason" })

/**
 * 1 while this node leads, else 0.
 *
 * @since 0.1.0
 * @category metrics
 */
export const leader = Metric.gauge("scheduler_leader", { description: "1 while this node leads" })

/**
 * Successful lock renewals by `job`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const lockRenewals = Metric.counter("job_lock_renewals_total", { description: "Lock renewals by job" })

/**
 * Locks lost while running, by `job`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const lockLosses = Metric.counter("job_lock_losses_total", { description: "Locks lost mid-run by job" })

/**
 * Times this node found that the store lost its data, by `backend` and `reason`: `marker` (the store's epoch marker
 * changed or vanished: a Redis restarted without persistence, a FLUSHALL) or `fence_rollback` (a job's fencing
 * counter was behind a fence this node had already been given: a failover to a replica that lagged, a restored
 * backup). Pause flags, run records, slot claims and locks written before the loss may be gone.
 *
 * @since 0.1.0
 * @category metrics
 */
export const storeDataLoss = Metric.counter("job_store_data_loss_total", {
  description: "Data losses of the job store detected by this node, by backend and reason"
})
