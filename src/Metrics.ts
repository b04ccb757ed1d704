/**
 * The scheduler's metrics. Exported at `/metrics` by the service in Prometheus text format; embedders read them
 * with `Metrics.snapshot`, which has the shape of effect's `Metric.snapshot`.
 *
 * The per-job series (`job_runs_total{job,outcome}`, `job_run_duration_seconds{job}`,
 * `job_fire_lateness_seconds{job}`, `job_skips_total{job,reason}`, `job_lock_renewals_total{job}`,
 * `job_lock_losses_total{job}`) are not kept in effect's global metric registry: there each labelled series is a
 * metric key, a hook (closures, and two typed arrays per histogram) and a hash-map entry, about 3.5 KB of heap for
 * every job that has run, 350 MB at 100,000 jobs. The scheduler keeps them in a compact store instead (one object
 * and one `Float64Array` per job that has run, shared by every scheduler of the process), and `snapshot` returns
 * them as `MetricPair`s built at call time, beside everything in effect's registry. So effect's `Metric.snapshot`
 * and `Metric.value` no longer see these series; `runs`, `runDuration`, `lateness`, `skips`, `lockRenewals` and
 * `lockLosses` below remain their definitions (name, description, boundaries), as effect `Metric`s. The other
 * metrics (`scheduler_leader`, `job_store_data_loss_total`) are effect metrics in effect's registry, as before.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as MetricPair from "effect/MetricPair"
import * as JobMetrics from "./internal/jobMetrics.js"

/**
 * Every metric of this process: effect's registry (`Metric.unsafeSnapshot`) followed by the scheduler's per-job
 * series, as metric pairs built now.
 *
 * @since 0.1.0
 * @category snapshot
 */
export const unsafeSnapshot = (): Array<MetricPair.MetricPair.Untyped> => [
  ...Metric.unsafeSnapshot(),
  ...JobMetrics.unsafeSnapshot()
]

/**
 * Every metric of this process, as `unsafeSnapshot` in an `Effect`: what effect's `Metric.snapshot` gives, plus
 * the scheduler's per-job series.
 *
 * @since 0.1.0
 * @category snapshot
 */
export const snapshot: Effect.Effect<Array<MetricPair.MetricPair.Untyped>> = Effect.sync(unsafeSnapshot)

/**
 * Runs by `job` and `outcome`. Recorded by the scheduler outside effect's registry: read it with `snapshot`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const runs = Metric.counter(JobMetrics.RUNS.name, { description: JobMetrics.RUNS.description })

/**
 * Run duration in seconds by `job`. Buckets from 1 ms doubling to ~65 s, then longer runs fall in +Inf.
 * Recorded by the scheduler outside effect's registry: read it with `snapshot`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const runDuration = Metric.histogram(
  JobMetrics.RUN_DURATION.name,
  JobMetrics.RUN_DURATION.boundaries,
  JobMetrics.RUN_DURATION.description
)

/**
 * Fire lateness (run start minus fire time) in seconds by `job`. Buckets from 0.5 ms doubling to ~16 s.
 * Recorded by the scheduler outside effect's registry: read it with `snapshot`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const lateness = Metric.histogram(
  JobMetrics.LATENESS.name,
  JobMetrics.LATENESS.boundaries,
  JobMetrics.LATENESS.description
)

/**
 * Fires that did not run, by `job` and `reason`. Recorded by the scheduler outside effect's registry: read it with `snapshot`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const skips = Metric.counter(JobMetrics.SKIPS.name, { description: JobMetrics.SKIPS.description })

/**
 * 1 while this node leads, else 0.
 *
 * @since 0.1.0
 * @category metrics
 */
export const leader = Metric.gauge("scheduler_leader", { description: "1 while this node leads" })

/**
 * Successful lock renewals by `job`. Recorded by the scheduler outside effect's registry: read it with `snapshot`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const lockRenewals = Metric.counter(JobMetrics.LOCK_RENEWALS.name, {
  description: JobMetrics.LOCK_RENEWALS.description
})

/**
 * Locks lost while running, by `job`. Recorded by the scheduler outside effect's registry: read it with `snapshot`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const lockLosses = Metric.counter(JobMetrics.LOCK_LOSSES.name, {
  description: JobMetrics.LOCK_LOSSES.description
})

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
