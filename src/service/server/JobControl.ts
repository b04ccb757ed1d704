/**
 * What the job RPC service needs from the scheduler: status, recent runs, trigger, pause, resume.
 *
 * - `layerScheduler`: on a node that runs the scheduler (`job` and `all` modes), straight through to `Scheduler`.
 * - `layerStore`: on an `rpc`-mode node, which runs no scheduler: status, runs and pause/resume come from the shared
 *   `JobStore` (meaningful with Redis, where every node's runs and pause flags live), next fire times of cron jobs
 *   are computed from their expressions, and it never leads (a trigger is forwarded to the leader, see `Forward`).
 *
 * `leading` says whether a trigger made here may run here; the job service forwards it to the leader otherwise.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Cron from "../../Cron.js"
import { type StoreError, UnknownJob } from "../../Errors.js"
import * as Job from "../../Job.js"
import { JobStore } from "../../JobStore.js"
import { LeaderElection } from "../../LeaderElection.js"
import type { RunRecord } from "../../Run.js"
import { Scheduler } from "../../Scheduler.js"
import type { JobStatus, TriggerResult } from "../../Scheduler.js"
import { NoLeader } from "../Errors.js"

/**
 * @since 0.1.0
 * @category tags
 */
export class JobControl extends Context.Tag("effect-job-scheduler/service/JobControl")<JobControl, {
  /** The names of the jobs this node knows, in definition order. */
  readonly jobs: ReadonlyArray<string>
  /** Whether this node leads now (runs its scheduler's fires, and its own manual triggers). */
  readonly leading: Effect.Effect<boolean>
  readonly status: Effect.Effect<ReadonlyArray<JobStatus>, StoreError>
  readonly runs: (name: string, limit: number) => Effect.Effect<ReadonlyArray<RunRecord>, UnknownJob | StoreError>
  readonly trigger: (name: string) => Effect.Effect<TriggerResult, UnknownJob | StoreError | NoLeader>
  readonly pause: (name: string) => Effect.Effect<void, UnknownJob | StoreError>
  readonly resume: (name: string) => Effect.Effect<void, UnknownJob | StoreError>
}>() {}

/**
 * Through the `Scheduler` of this process.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerScheduler: Layer.Layer<JobControl, never, Scheduler | LeaderElection> = Layer.effect(
  JobControl,
  Effect.zipWith(Scheduler, LeaderElection, (scheduler, election) => ({
    jobs: scheduler.jobs,
    leading: election.isLeader,
    // Per job rather than `scheduler.status`: that effect iterates a Map iterator created once, so it answers [] from
    // its second run on (reported to the lead); `jobs` is an array and `jobStatus` is fresh on every run.
    status: Effect.forEach(
      scheduler.jobs,
      (name) => scheduler.jobStatus(name).pipe(Effect.catchTag("UnknownJob", (error) => Effect.die(error)))
    ),
    runs: (name, limit) => scheduler.runs(name, limit),
    trigger: scheduler.trigger,
    pause: scheduler.pause,
    resume: scheduler.resume
  }))
)

/**
 * From the shared store, for a node that runs no scheduler (see the module doc).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerStore = (jobs: ReadonlyArray<Job.Job<unknown>>): Layer.Layer<JobControl, never, JobStore> =>
  Layer.effect(
    JobControl,
    Effect.map(JobStore, (store) => {
      const known = (name: string) =>
        jobs.some((job) => job.name === name) ? Effect.void : Effect.fail(new UnknownJob({ job: name }))
      const statusOf = (job: Job.Job<unknown>) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const paused = yield* store.isPaused(job.name)
          const last = yield* store.recentRuns(job.name, 1)
          const next = job.enabled && job.trigger._tag === "Cron" ? Cron.next(job.trigger.cron, now) : Number.NaN
          const nextFire = Number.isFinite(next) ? Option.some(new Date(next)) : Option.none<Date>()
          const status: JobStatus = {
            name: job.name,
            trigger: Job.describeTrigger(job.trigger),
            enabled: job.enabled,
            paused,
            nextFire,
            running: 0,
            lastRun: Option.fromNullable(last[0]),
            // Counters are per scheduler node; this node runs none.
            counters: { runs: 0, success: 0, failures: 0, skips: 0 }
          }
          return status
        })
      return {
        jobs: jobs.map((job) => job.name),
        leading: Effect.succeed(false),
        status: Effect.forEach(jobs, statusOf),
        runs: (name, limit) => Effect.zipRight(known(name), store.recentRuns(name, limit)),
        trigger: (name) =>
          Effect.zipRight(
            known(name),
            Effect.fail(new NoLeader({ operation: "trigger", reason: "this node runs no scheduler (rpc mode)" }))
          ),
        pause: (name) => Effect.zipRight(known(name), store.setPaused(name, true)),
        resume: (name) => Effect.zipRight(known(name), store.setPaused(name, false))
      }
    })
  )
