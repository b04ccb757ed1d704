import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Metric, MetricState, TestClock } from "effect"
import type * as MetricPair from "effect/MetricPair"
import { JobMetrics } from "../src/internal/jobMetrics.js"
import * as Job from "../src/Job.js"
import * as JobStore from "../src/JobStore.js"
import * as LeaderElection from "../src/LeaderElection.js"
import * as Metrics from "../src/Metrics.js"
import * as Scheduler from "../src/Scheduler.js"
import * as Prometheus from "../src/service/server/Prometheus.js"
import { promtool } from "./harness/tools.js"

// The per-job series live in a compact process-global store, not in effect's metric registry. Both registries are
// process-wide, so every test uses job names of its own.

const jobLabel = (pair: MetricPair.MetricPair.Untyped) => pair.metricKey.tags.find((tag) => tag.key === "job")?.value

/** The Prometheus text of the series of `job` in `pairs`. */
const textOf = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>, job: string) =>
  Prometheus.render(pairs.filter((pair) => jobLabel(pair) === job))

/** The pairs of `job` in `Metrics.snapshot`. */
const pairsOf = (job: string) => Effect.map(Metrics.snapshot, (pairs) => pairs.filter((pair) => jobLabel(pair) === job))

/**
 * The updates `JobMetrics` made before it had a store of its own, on effect's metrics: the reference the compact
 * series must render the same as.
 */
const reference = (job: string) => ({
  run: (outcome: string, durationMs: number) =>
    Effect.zipRight(
      Metric.update(Metrics.runs.pipe(Metric.tagged("job", job), Metric.tagged("outcome", outcome)), 1),
      Metric.update(Metrics.runDuration.pipe(Metric.tagged("job", job)), durationMs / 1000)
    ),
  lateness: (ms: number) => Metric.update(Metrics.lateness.pipe(Metric.tagged("job", job)), Math.max(0, ms) / 1000),
  skip: (reason: string) =>
    Metric.update(Metrics.skips.pipe(Metric.tagged("job", job), Metric.tagged("reason", reason)), 1),
  lockRenewed: () => Metric.update(Metrics.lockRenewals.pipe(Metric.tagged("job", job)), 1),
  lockLost: () => Metric.update(Metrics.lockLosses.pipe(Metric.tagged("job", job)), 1)
})

// Boundary values (exactly 1 ms, 2 ms, 0.5 ms), below the first bucket, past the last finite one (+Inf only),
// negative lateness (counted as 0), fractions whose sum is not exact in binary.
const DURATIONS_MS = [0, 0.3, 1, 1.5, 2, 3, 250, 999.9, 1000, 65_536, 70_000, 3_600_000, 0.1, 0.2]
const LATENESS_MS = [-5, 0, 0.5, 0.50001, 1, 7.3, 16_384, 20_000, 0.1, 0.2]
const OUTCOMES = ["success", "timeout", "success", "defect", "business_error", "success", "lock_lost"]
const REASONS = ["lock_held", "overlap", "lock_held", "paused", "shutting_down"]

describe("JobMetrics: the compact per-job series", () => {
  it.effect("render the same Prometheus text, and hold the same histogram states, as effect's metrics fed alike", () =>
    Effect.gen(function*() {
      const ours = JobMetrics.forJob("jm-same-ours")
      const ref = reference("jm-same-ref")
      for (const [i, ms] of DURATIONS_MS.entries()) {
        const outcome = OUTCOMES[i % OUTCOMES.length]!
        ours.run(outcome, ms)
        yield* ref.run(outcome, ms)
      }
      for (const ms of LATENESS_MS) {
        ours.lateness(ms)
        yield* ref.lateness(ms)
      }
      for (const reason of REASONS) {
        ours.skip(reason)
        yield* ref.skip(reason)
      }
      for (let i = 0; i < 3; i++) {
        ours.lockRenewed()
        yield* ref.lockRenewed()
      }
      ours.lockLost()
      yield* ref.lockLost()
      // Only zero lateness: min and max keep effect's starting values where no sample passes them.
      const zero = JobMetrics.forJob("jm-zero-ours")
      const zeroRef = reference("jm-zero-ref")
      for (const ms of [-1, 0]) {
        zero.lateness(ms)
        yield* zeroRef.lateness(ms)
      }

      const pairs = yield* Metrics.snapshot
      const expected = textOf(pairs, "jm-same-ref").replaceAll("jm-same-ref", "jm-same-ours")
      const actual = textOf(pairs, "jm-same-ours")
      expect(actual).toBe(expected)
      // Every family is there: 4 outcomes, 2 histograms, 4 reasons, renewals, losses.
      expect(actual.split("\n").filter((line) => line.startsWith("# TYPE")).sort()).toEqual([
        "# TYPE job_fire_lateness_seconds histogram",
        "# TYPE job_lock_losses_total counter",
        "# TYPE job_lock_renewals_total counter",
        "# TYPE job_run_duration_seconds histogram",
        "# TYPE job_runs_total counter",
        "# TYPE job_skips_total counter"
      ])
      // The states themselves, min and max included (the text has no min/max).
      const histograms = (job: string) =>
        pairs.filter((pair) => jobLabel(pair) === job && MetricState.isHistogramState(pair.metricState))
          .map((pair) => [pair.metricKey.name, pair.metricState] as const)
          .sort(([a], [b]) => (a < b ? -1 : 1))
      expect(histograms("jm-same-ours")).toEqual(histograms("jm-same-ref"))
      expect(histograms("jm-same-ours")).toHaveLength(2)
      expect(histograms("jm-zero-ours")).toEqual(histograms("jm-zero-ref"))
      expect(histograms("jm-zero-ours")).toHaveLength(1)
    }))

  it.effect("give the expected cumulative buckets, +Inf, _sum and _count for known durations", () =>
    Effect.gen(function*() {
      const metrics = JobMetrics.forJob("jm-buckets")
      // 0.5 ms and 1 ms in le=0.001; 3 ms in le=0.004; 100 s only in +Inf.
      for (const ms of [0.5, 1, 3, 100_000]) metrics.run("success", ms)
      const lines = textOf(yield* Metrics.snapshot, "jm-buckets").split("\n")
      const bucket = (le: string) =>
        lines.find((line) => line.startsWith(`job_run_duration_seconds_bucket{job="jm-buckets",le="${le}"}`))
      expect(bucket("0.001")).toMatch(/ 2$/)
      expect(bucket("0.002")).toMatch(/ 2$/)
      expect(bucket("0.004")).toMatch(/ 3$/)
      expect(bucket("32.768")).toMatch(/ 3$/)
      expect(bucket("+Inf")).toMatch(/ 4$/)
      expect(lines.filter((line) => line.startsWith("job_run_duration_seconds_bucket"))).toHaveLength(17)
      expect(lines).toContain("job_run_duration_seconds_sum{job=\"jm-buckets\"} 100.0045")
      expect(lines).toContain("job_run_duration_seconds_count{job=\"jm-buckets\"} 4")
      expect(lines).toContain("job_runs_total{job=\"jm-buckets\",outcome=\"success\"} 4")
      // Never updated: no lateness, skip or lock series for this job.
      expect(lines.filter((line) => /^job_(fire_lateness|skips|lock)/.test(line))).toEqual([])
    }))

  it.effect("keep one series per job name: two handles add up, outcomes and reasons stay apart", () =>
    Effect.gen(function*() {
      const first = JobMetrics.forJob("jm-shared")
      const second = JobMetrics.forJob("jm-shared")
      expect(second).toBe(first)
      first.run("success", 10)
      second.run("success", 20)
      second.run("timeout", 30)
      first.skip("lock_held")
      second.skip("overlap")
      second.skip("overlap")
      // A label outside the Outcome / SkipReason literals still gets its own series.
      first.run("cancelled_by_operator", 1)
      JobMetrics.forJob("jm-other").run("success", 5)
      const lines = textOf(yield* Metrics.snapshot, "jm-shared").split("\n")
      expect(lines.filter((line) => line.startsWith("job_runs_total") || line.startsWith("job_skips_total")).sort())
        .toEqual([
          "job_runs_total{job=\"jm-shared\",outcome=\"cancelled_by_operator\"} 1",
          "job_runs_total{job=\"jm-shared\",outcome=\"success\"} 2",
          "job_runs_total{job=\"jm-shared\",outcome=\"timeout\"} 1",
          "job_skips_total{job=\"jm-shared\",reason=\"lock_held\"} 1",
          "job_skips_total{job=\"jm-shared\",reason=\"overlap\"} 2"
        ])
      expect(lines).toContain("job_run_duration_seconds_count{job=\"jm-shared\"} 4")
      expect(lines).toContain("job_run_duration_seconds_sum{job=\"jm-shared\"} 0.061")
    }))

  it.effect("are in Metrics.snapshot, not in effect's registry, and the scrape passes promtool check metrics", () =>
    Effect.gen(function*() {
      const metrics = JobMetrics.forJob("jm-where")
      metrics.lateness(2)
      metrics.run("success", 4)
      metrics.lockRenewed()
      expect(Metric.unsafeSnapshot().filter((pair) => jobLabel(pair) === "jm-where")).toEqual([])
      expect((yield* pairsOf("jm-where")).map((pair) => pair.metricKey.name).sort()).toEqual([
        "job_fire_lateness_seconds",
        "job_lock_renewals_total",
        "job_run_duration_seconds",
        "job_runs_total"
      ])
      // effect's own metrics are still in the snapshot.
      expect((yield* Metrics.snapshot).some((pair) => pair.metricKey.name === "effect_fiber_started")).toBe(true)
      const check = promtool(["check", "metrics"], yield* Prometheus.scrape)
      expect(check.output).toBe("")
      expect(check.status).toBe(0)
    }))

  it.scoped("two schedulers in one process with the same job name count into one series", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-05-01T00:00:00Z"))
      const layers = Layer.mergeAll(
        JobStore.layerMemory,
        LeaderElection.layerSingleNode("test"),
        Logger.remove(
          Logger.defaultLogger
        )
      )
      const runOnce = Effect.gen(function*() {
        const scheduler = yield* Scheduler.make([
          Job.unsafeMake({ name: "jm-two-schedulers", cron: "@daily", handler: Effect.sleep("3 seconds") })
        ])
        const result = yield* scheduler.trigger("jm-two-schedulers")
        if (result._tag !== "Started") throw new Error(`expected Started, got ${result.reason}`)
        const waiting = yield* Effect.fork(result.await)
        yield* TestClock.adjust("3 seconds")
        yield* waiting.await
      }).pipe(Effect.scoped, Effect.provide(layers))
      yield* runOnce
      yield* runOnce
      const lines = textOf(yield* Metrics.snapshot, "jm-two-schedulers").split("\n")
      expect(lines).toContain("job_runs_total{job=\"jm-two-schedulers\",outcome=\"success\"} 2")
      expect(lines).toContain("job_run_duration_seconds_count{job=\"jm-two-schedulers\"} 2")
      expect(lines).toContain("job_run_duration_seconds_sum{job=\"jm-two-schedulers\"} 6")
      expect(lines).toContain("job_run_duration_seconds_bucket{job=\"jm-two-schedulers\",le=\"2.048\"} 0")
      expect(lines).toContain("job_run_duration_seconds_bucket{job=\"jm-two-schedulers\",le=\"4.096\"} 2")
      expect(lines).toContain("job_fire_lateness_seconds_count{job=\"jm-two-schedulers\"} 2")
    }))
})
