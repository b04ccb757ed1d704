/**
 * The per-job metric series (`job_runs_total{job,outcome}`, `job_run_duration_seconds{job}`,
 * `job_fire_lateness_seconds{job}`, `job_skips_total{job,reason}`, `job_lock_renewals_total{job}`,
 * `job_lock_losses_total{job}`), kept outside effect's metric registry.
 *
 * In effect's registry every labelled series is a `MetricKey`, a `MetricHook` (closures, and for a histogram a
 * `Uint32Array` and a `Float64Array`) and a hash-map entry: about 3.5 KB of heap for a job that has run once. Here a
 * job's series are one `JobMetrics` object and 58 doubles (both histograms' bucket counts, count, sum, min and max,
 * and one counter per known outcome and skip reason) in a `Float64Array` shared by 128 jobs, created on the job's
 * first update and kept in a process-global registry keyed by job name: two schedulers in one process with the same job name add to the same
 * series, as they did in effect's registry. `unsafeSnapshot` turns them into effect `MetricPair`s at call time, with
 * the keys and states effect's own metrics would have had; a series that was never updated is left out, as effect
 * leaves out a series nobody touched.
 *
 * @internal
 */
import { globalValue } from "effect/GlobalValue"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"
import * as MetricLabel from "effect/MetricLabel"
import * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import { Outcome, SkipReason } from "../Run.js"

/** The definition of one per-job histogram: name, help text and bucket boundaries (the last one `+Inf`). */
export interface HistogramDefinition {
  readonly name: string
  readonly description: string
  readonly boundaries: MetricBoundaries.MetricBoundaries
}

/** The definition of one per-job counter. */
export interface CounterDefinition {
  readonly name: string
  readonly description: string
}

/** Run duration in seconds: buckets from 1 ms doubling to ~65 s, then `+Inf`. */
export const RUN_DURATION: HistogramDefinition = {
  name: "job_run_duration_seconds",
  description: "Run duration by job",
  boundaries: MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 17 })
}

/** Fire lateness in seconds: buckets from 0.5 ms doubling to ~16 s, then `+Inf`. */
export const LATENESS: HistogramDefinition = {
  name: "job_fire_lateness_seconds",
  description: "Fire lateness by job",
  boundaries: MetricBoundaries.exponential({ start: 0.0005, factor: 2, count: 16 })
}

export const RUNS: CounterDefinition = { name: "job_runs_total", description: "Finished runs by job and outcome" }
export const SKIPS: CounterDefinition = { name: "job_skips_total", description: "Skipped fires by job and reason" }
export const LOCK_RENEWALS: CounterDefinition = {
  name: "job_lock_renewals_total",
  description: "Lock renewals by job"
}
export const LOCK_LOSSES: CounterDefinition = {
  name: "job_lock_losses_total",
  description: "Locks lost mid-run by job"
}

/** A histogram's place in a job's `Float64Array`: its buckets (not cumulative), then count, sum, min, max. */
interface HistogramLayout {
  readonly bounds: Float64Array
  readonly offset: number
  readonly baseKey: MetricKey.MetricKey.Histogram
}

const COUNT = 0
const SUM = 1
const MIN = 2
const MAX = 3
const HISTOGRAM_FIELDS = 4

const layoutAt = (definition: HistogramDefinition, offset: number): HistogramLayout => ({
  bounds: Float64Array.from([...definition.boundaries.values].sort((a, b) => a - b)),
  offset,
  baseKey: MetricKey.histogram(definition.name, definition.boundaries, definition.description)
})

const DURATION_LAYOUT = layoutAt(RUN_DURATION, 0)
const LATENESS_LAYOUT = layoutAt(
  LATENESS,
  DURATION_LAYOUT.offset + DURATION_LAYOUT.bounds.length + HISTOGRAM_FIELDS
)
const OUTCOMES: ReadonlyArray<string> = Outcome.literals
const REASONS: ReadonlyArray<string> = SkipReason.literals
const RUNS_OFFSET = LATENESS_LAYOUT.offset + LATENESS_LAYOUT.bounds.length + HISTOGRAM_FIELDS
const SKIPS_OFFSET = RUNS_OFFSET + OUTCOMES.length
const LOCK_RENEWALS_SLOT = SKIPS_OFFSET + REASONS.length
const LOCK_LOSSES_SLOT = LOCK_RENEWALS_SLOT + 1
/** Doubles per job. */
const SLOTS = LOCK_LOSSES_SLOT + 1

const OUTCOME_SLOT: ReadonlyMap<string, number> = new Map(OUTCOMES.map((outcome, i) => [outcome, RUNS_OFFSET + i]))
const REASON_SLOT: ReadonlyMap<string, number> = new Map(REASONS.map((reason, i) => [reason, SKIPS_OFFSET + i]))
/** The labels of the known outcomes and reasons, shared by every job's snapshot. */
const OUTCOME_LABELS = OUTCOMES.map((outcome) => MetricLabel.make("outcome", outcome))
const REASON_LABELS = REASONS.map((reason) => MetricLabel.make("reason", reason))

const RUNS_KEY = MetricKey.counter(RUNS.name, { description: RUNS.description })
const SKIPS_KEY = MetricKey.counter(SKIPS.name, { description: SKIPS.description })
const LOCK_RENEWALS_KEY = MetricKey.counter(LOCK_RENEWALS.name, { description: LOCK_RENEWALS.description })
const LOCK_LOSSES_KEY = MetricKey.counter(LOCK_LOSSES.name, { description: LOCK_LOSSES.description })

/** Jobs whose series share one `Float64Array` (128 x 58 doubles, 58 KB). */
const JOBS_PER_CHUNK = 128

/**
 * Every job's series in this process, by job name, and the chunk new jobs take their slots from; shared by every
 * copy of this module, as effect's registry is. The key's version changes with the layout of the slots.
 */
const registry: { readonly jobs: Map<string, JobMetrics>; chunk: Float64Array; used: number } = globalValue(
  Symbol.for("effect-job-scheduler/JobMetrics/registry/v1"),
  () => ({ jobs: new Map<string, JobMetrics>(), chunk: new Float64Array(0), used: 0 })
)

/** One job's metric series: `SLOTS` doubles from `base` in a chunk shared with other jobs. */
export class JobMetrics {
  /** This job's series, made and registered on first use. */
  static forJob(job: string): JobMetrics {
    let metrics = registry.jobs.get(job)
    if (metrics === undefined) {
      if (registry.used + SLOTS > registry.chunk.length) {
        registry.chunk = new Float64Array(SLOTS * JOBS_PER_CHUNK)
        registry.used = 0
      }
      metrics = new JobMetrics(job, registry.chunk, registry.used)
      registry.used += SLOTS
      registry.jobs.set(job, metrics)
    }
    return metrics
  }

  /**
   * Counters for outcomes and skip reasons outside the `Outcome` and `SkipReason` literals (none from the
   * scheduler), by `outcome\0value` / `reason\0value`; made on first use.
   */
  private extra: Map<string, number> | undefined = undefined

  private constructor(readonly job: string, private readonly values: Float64Array, private readonly base: number) {
    // effect's histogram starts min and max at these values.
    for (const layout of [DURATION_LAYOUT, LATENESS_LAYOUT]) {
      values[base + layout.offset + layout.bounds.length + MIN] = Number.MAX_VALUE
      values[base + layout.offset + layout.bounds.length + MAX] = Number.MIN_VALUE
    }
  }

  /** The semantics of effect's histogram: the first bucket whose boundary is >= value (none for NaN). */
  private observe(layout: HistogramLayout, value: number): void {
    const values = this.values
    const bounds = layout.bounds
    const offset = this.base + layout.offset
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        values[offset + i]!++
        break
      }
    }
    const at = offset + bounds.length
    values[at + COUNT]!++
    values[at + SUM] = values[at + SUM]! + value
    if (value < values[at + MIN]!) values[at + MIN] = value
    if (value > values[at + MAX]!) values[at + MAX] = value
  }

  private count(slots: ReadonlyMap<string, number>, label: string, value: string): void {
    const slot = slots.get(value)
    if (slot !== undefined) {
      this.values[this.base + slot]!++
      return
    }
    const extra = this.extra ??= new Map()
    const key = `${label}\0${value}`
    extra.set(key, (extra.get(key) ?? 0) + 1)
  }

  /** A finished run: its outcome and duration. */
  run(outcome: string, durationMs: number): void {
    this.count(OUTCOME_SLOT, "outcome", outcome)
    this.observe(DURATION_LAYOUT, durationMs / 1000)
  }

  skip(reason: string): void {
    this.count(REASON_SLOT, "reason", reason)
  }

  lateness(ms: number): void {
    this.observe(LATENESS_LAYOUT, Math.max(0, ms) / 1000)
  }

  lockRenewed(): void {
    this.values[this.base + LOCK_RENEWALS_SLOT]!++
  }

  lockLost(): void {
    this.values[this.base + LOCK_LOSSES_SLOT]!++
  }

  /** This job's updated series as effect metric pairs, appended to `out`. */
  pairs(out: Array<MetricPair.MetricPair.Untyped>): void {
    const values = this.values
    const base = this.base
    const job = MetricLabel.make("job", this.job)
    const counter = (key: MetricKey.MetricKey.Counter<number>, labels: Array<MetricLabel.MetricLabel>, n: number) =>
      out.push(MetricPair.unsafeMake(MetricKey.taggedWithLabels(key, labels), MetricState.counter(n)))
    const histogram = (layout: HistogramLayout) => {
      const offset = base + layout.offset
      const at = offset + layout.bounds.length
      const count = values[at + COUNT]!
      if (count === 0) return
      const buckets: Array<readonly [number, number]> = []
      let cumulative = 0
      for (let i = 0; i < layout.bounds.length; i++) {
        cumulative += values[offset + i]!
        buckets.push([layout.bounds[i]!, cumulative])
      }
      out.push(MetricPair.unsafeMake(
        MetricKey.taggedWithLabels(layout.baseKey, [job]),
        MetricState.histogram({
          buckets,
          count,
          sum: values[at + SUM]!,
          min: values[at + MIN]!,
          max: values[at + MAX]!
        })
      ))
    }
    for (let i = 0; i < OUTCOMES.length; i++) {
      const n = values[base + RUNS_OFFSET + i]!
      if (n > 0) counter(RUNS_KEY, [job, OUTCOME_LABELS[i]!], n)
    }
    histogram(DURATION_LAYOUT)
    histogram(LATENESS_LAYOUT)
    for (let i = 0; i < REASONS.length; i++) {
      const n = values[base + SKIPS_OFFSET + i]!
      if (n > 0) counter(SKIPS_KEY, [job, REASON_LABELS[i]!], n)
    }
    const renewals = values[base + LOCK_RENEWALS_SLOT]!
    if (renewals > 0) counter(LOCK_RENEWALS_KEY, [job], renewals)
    const losses = values[base + LOCK_LOSSES_SLOT]!
    if (losses > 0) counter(LOCK_LOSSES_KEY, [job], losses)
    if (this.extra !== undefined) {
      for (const [key, n] of this.extra) {
        const at = key.indexOf("\0")
        const label = key.slice(0, at)
        const value = key.slice(at + 1)
        counter(label === "outcome" ? RUNS_KEY : SKIPS_KEY, [job, MetricLabel.make(label, value)], n)
      }
    }
  }
}

/** Every job's updated series in this process, as effect metric pairs built now. */
export const unsafeSnapshot = (): Array<MetricPair.MetricPair.Untyped> => {
  const out: Array<MetricPair.MetricPair.Untyped> = []
  for (const metrics of registry.jobs.values()) metrics.pairs(out)
  return out
}
