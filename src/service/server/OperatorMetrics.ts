/**
 * The metrics an operator alerts on, computed at scrape time (so that the run path does nothing for them) and
 * appended to `/metrics` after the effect metrics:
 *
 * - per known job, present from start-up: `job_last_success_timestamp_seconds`, `job_last_failure_timestamp_seconds`
 *   (0 = none among the newest records), `job_next_fire_timestamp_seconds` (0 = none planned on this node: it does
 *   not lead, or the job is disabled), `job_paused`, `job_running`, and `job_interval_seconds` (the gap between two
 *   fires: the interval, or for a cron job the gap between its next two fires), from the job status and run records
 *   (the store's, so every node answers for the whole cluster);
 * - `store_up`, `election_up`: 1 when the store / the election backend answers its readiness check now;
 * - `build_info{version, node, mode}` 1;
 * - the process: `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_heap_bytes`,
 *   `process_start_time_seconds`, `process_open_fds`; the event loop: `nodejs_eventloop_lag_seconds` (mean),
 *   `nodejs_eventloop_lag_p99_seconds`, `nodejs_eventloop_lag_max_seconds` since the previous scrape.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as Cron from "../../Cron.js"
import type * as Job from "../../Job.js"
import { readiness, type ReadinessCheck } from "./Admin.js"
import type { JobControl } from "./JobControl.js"
import type { ComputedFamily, Sample } from "./Prometheus.js"
import { MAX_RUNS } from "./Rpcs.js"

/**
 * Everything the computed families read.
 *
 * @since 0.1.0
 * @category models
 */
export interface Sources {
  readonly jobs: ReadonlyArray<Job.Job<unknown>>
  readonly control: JobControl["Type"]
  /** The readiness check of the store (none in memory: `store_up` is then 1). */
  readonly store: Option.Option<ReadinessCheck>
  /** The readiness check of the election backend (none for a single node, or on an rpc node: no `election_up`). */
  readonly election: Option.Option<ReadinessCheck>
  readonly build: { readonly version: string; readonly node: string; readonly mode: string }
}

/**
 * The gap between two fires of a job, in seconds, when it has a fixed one (not for an effect `Schedule`).
 *
 * @since 0.1.0
 * @category utils
 */
export const intervalSeconds = (trigger: Job.Trigger, now: number): Option.Option<number> => {
  switch (trigger._tag) {
    case "FixedDelay":
    case "FixedRate":
      return Option.some(Duration.toSeconds(trigger.every))
    case "Cron": {
      const first = Cron.next(trigger.cron, now)
      const second = Number.isFinite(first) ? Cron.next(trigger.cron, first) : Number.NaN
      return Number.isFinite(second) ? Option.some((second - first) / 1000) : Option.none()
    }
    case "Schedule":
    case "At":
      return Option.none()
  }
}

const seconds = (ms: number | undefined): number => (ms === undefined ? 0 : ms / 1000)

const FAILURES: ReadonlySet<string> = new Set([
  "business_error",
  "system_error",
  "timeout",
  "interrupted",
  "lock_lost",
  "leadership_lost",
  "defect"
])

/** Samples of the five per-job gauges (empty when the store does not answer: `store_up 0` says why). */
const jobFamilies = (sources: Sources, now: number) =>
  Effect.gen(function*() {
    const byJob = yield* Effect.either(
      Effect.flatMap(sources.control.status, (statuses) =>
        Effect.forEach(statuses, (status) =>
          Effect.map(
            Effect.orElseSucceed(sources.control.runs(status.name, MAX_RUNS), () => []),
            (runs) => ({ status, runs })
          ), { concurrency: "unbounded" }))
    )
    const rows = byJob._tag === "Right" ? byJob.right : []
    const label = (job: string): ReadonlyArray<readonly [string, string]> => [["job", job]]
    const family = (name: string, help: string, value: (row: typeof rows[number]) => number): ComputedFamily => ({
      name,
      help,
      type: "gauge",
      samples: rows.map((row) => ({ labels: label(row.status.name), value: value(row) }))
    })
    const intervals: Array<Sample> = []
    for (const job of sources.jobs) {
      const interval = intervalSeconds(job.trigger, now)
      if (Option.isSome(interval)) intervals.push({ labels: label(job.name), value: interval.value })
    }
    return [
      family(
        "job_last_success_timestamp_seconds",
        "End of the newest successful run (0 = none among the newest records)",
        (row) => seconds(row.runs.find((run) => run.outcome === "success")?.finishedAt.getTime())
      ),
      family(
        "job_last_failure_timestamp_seconds",
        "End of the newest failed run: business or system error, timeout, defect, lost lock or leadership (0 = none)",
        (row) => seconds(row.runs.find((run) => FAILURES.has(run.outcome))?.finishedAt.getTime())
      ),
      family(
        "job_next_fire_timestamp_seconds",
        "Next planned fire on this node (0 = none: not leading, or disabled)",
        (row) => Option.match(row.status.nextFire, { onNone: () => 0, onSome: (date) => date.getTime() / 1000 })
      ),
      family("job_paused", "1 while the job is paused cluster-wide", (row) => (row.status.paused ? 1 : 0)),
      family("job_running", "Runs of the job in progress on this node", (row) => row.status.running),
      { name: "job_interval_seconds", help: "Gap between two fires of the job", type: "gauge", samples: intervals }
    ] satisfies ReadonlyArray<ComputedFamily>
  })

const up = (name: string, help: string, check: ReadinessCheck) =>
  Effect.map(readiness([check]), (report): ComputedFamily => ({
    name,
    help,
    type: "gauge",
    samples: [{ value: report.ready ? 1 : 0 }]
  }))

const openFds = (): number | undefined => {
  try {
    return fs.readdirSync("/proc/self/fd").length
  } catch {
    return undefined
  }
}

/**
 * The computed families, for `Prometheus.scrapeWith`. Scoped: the event-loop monitor runs until the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  sources: Sources
): Effect.Effect<Effect.Effect<ReadonlyArray<ComputedFamily>>, never, Scope.Scope> =>
  Effect.gen(function*() {
    // 10 ms resolution: lag below that is noise for a scheduler whose fires are second-scale.
    const loop = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const histogram = monitorEventLoopDelay({ resolution: 10 })
        histogram.enable()
        return histogram
      }),
      (histogram) => Effect.sync(() => histogram.disable())
    )
    const startedAt = Date.now() - process.uptime() * 1000
    return Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const [jobs, store, election] = yield* Effect.all([
        jobFamilies(sources, now),
        Option.match(sources.store, {
          onNone: () =>
            Effect.succeed<ComputedFamily>({
              name: "store_up",
              help: "1 when the store answers (memory: always)",
              type: "gauge",
              samples: [{ value: 1 }]
            }),
          onSome: (check) => up("store_up", `1 when the store (${check.name}) answers`, check)
        }),
        Option.match(sources.election, {
          onNone: () => Effect.succeed(undefined),
          onSome: (check) => up("election_up", `1 when the election backend (${check.name}) answers`, check)
        })
      ], { concurrency: "unbounded" })
      const memory = process.memoryUsage()
      const cpu = process.cpuUsage()
      const fds = openFds()
      // Nanoseconds in the histogram; NaN (no sample yet) is rendered as 0.
      const lag = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0)
      const families: Array<ComputedFamily> = [
        ...jobs,
        store,
        ...(election === undefined ? [] : [election]),
        {
          name: "build_info",
          help: "The build of this node (value 1)",
          type: "gauge",
          samples: [{
            labels: [["mode", sources.build.mode], ["node", sources.build.node], ["version", sources.build.version]],
            value: 1
          }]
        },
        {
          name: "process_cpu_seconds_total",
          help: "User and system CPU time of this process",
          type: "counter",
          samples: [{ value: (cpu.user + cpu.system) / 1e6 }]
        },
        {
          name: "process_resident_memory_bytes",
          help: "Resident set size",
          type: "gauge",
          samples: [{ value: memory.rss }]
        },
        {
          name: "process_heap_bytes",
          help: "V8 heap in use",
          type: "gauge",
          samples: [{ value: memory.heapUsed }]
        },
        {
          name: "process_start_time_seconds",
          help: "Start of this process, seconds since the epoch",
          type: "gauge",
          samples: [{ value: Math.round(startedAt / 10) / 100 }]
        },
        ...(fds === undefined ? [] : [{
          name: "process_open_fds",
          help: "Open file descriptors",
          type: "gauge" as const,
          samples: [{ value: fds }]
        }]),
        {
          name: "nodejs_eventloop_lag_seconds",
          help: "Mean event-loop delay since the previous scrape",
          type: "gauge",
          samples: [{ value: lag(loop.mean) }]
        },
        {
          name: "nodejs_eventloop_lag_p99_seconds",
          help: "99th percentile of the event-loop delay since the previous scrape",
          type: "gauge",
          samples: [{ value: lag(loop.percentile(99)) }]
        },
        {
          name: "nodejs_eventloop_lag_max_seconds",
          help: "Longest event-loop delay since the previous scrape",
          type: "gauge",
          samples: [{ value: lag(loop.max) }]
        }
      ]
      loop.reset()
      return families
    })
  })
