/**
 * One job's metric updates, made without effect's per-call tag handling: `Metric.tagged` builds a fresh label
 * array on every update, which misses the metric's hook cache (keyed by the array) and re-hashes the metric key
 * in the registry each time. Here each (job, label) array is built once and reused, so every update after the
 * first is a cache hit.
 *
 * @internal
 */
import * as MetricLabel from "effect/MetricLabel"
import * as Metrics from "../Metrics.js"

export class JobMetrics {
  private readonly jobLabels: ReadonlyArray<MetricLabel.MetricLabel>
  private readonly outcomeLabels = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
  private readonly reasonLabels = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()

  constructor(private readonly job: string) {
    this.jobLabels = [MetricLabel.make("job", job)]
  }

  private labels(cache: Map<string, ReadonlyArray<MetricLabel.MetricLabel>>, key: string, value: string) {
    let labels = cache.get(value)
    if (labels === undefined) {
      labels = [MetricLabel.make("job", this.job), MetricLabel.make(key, value)]
      cache.set(value, labels)
    }
    return labels
  }

  /** A finished run: its outcome and duration. */
  run(outcome: string, durationMs: number): void {
    Metrics.runs.unsafeUpdate(1, this.labels(this.outcomeLabels, "outcome", outcome))
    Metrics.runDuration.unsafeUpdate(durationMs / 1000, this.jobLabels)
  }

  skip(reason: string): void {
    Metrics.skips.unsafeUpdate(1, this.labels(this.reasonLabels, "reason", reason))
  }

  lateness(ms: number): void {
    Metrics.lateness.unsafeUpdate(Math.max(0, ms) / 1000, this.jobLabels)
  }

  lockRenewed(): void {
    Metrics.lockRenewals.unsafeUpdate(1, this.jobLabels)
  }

  lockLost(): void {
    Metrics.lockLosses.unsafeUpdate(1, this.jobLabels)
  }
}
