/**
 * The schedulers compared by the lateness and idle benchmarks, behind one shape: register `n` jobs on a cron
 * expression (or an interval, for toad-scheduler's SimpleIntervalJob), each calling `fired(job, fireTime)` when it
 * starts, and resolve once every job is registered and planned (so that setup time covers the planning).
 *
 * Fire times: ours gives the handler its fire time (`RunContext.fireTime`), node-cron passes the slot it runs
 * (`ctx.date`), effect's `Schedule.cron` outputs the window it waits for (read with `Schedule.tapOutput`). croner and
 * toad-scheduler's CronJob (croner 8 inside) do not say which time they fire for; both check `now >= target` before
 * running, so the fire time is the whole second at or before the start. toad-scheduler's SimpleIntervalJob has no
 * fire times: its k-th fire is due `k` intervals after the job was added (so drift of its `setInterval` counts as
 * lateness).
 *
 * @since 0.1.0
 */
import { Cron as Croner } from "croner"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as nodeCron from "node-cron"
import { CronJob, SimpleIntervalJob, Task, ToadScheduler } from "toad-scheduler"
import * as Job from "../../src/Job.js"
import * as JobStore from "../../src/JobStore.js"
import * as LeaderElection from "../../src/LeaderElection.js"
import { RunContext } from "../../src/Run.js"
import * as Scheduler from "../../src/Scheduler.js"
import { sleep } from "./common.js"

/**
 * @since 0.1.0
 */
export interface StartOptions {
  readonly n: number
  /** A 6-field cron expression (cron contenders). */
  readonly expr: string
  /** IANA zone for the expression; `undefined` = the library's default (UTC for ours, process-local for peers). */
  readonly timezone: string | undefined
  /** The interval of interval contenders, in milliseconds (1000 for every second, 3,600,000 for hourly). */
  readonly intervalMs: number
  /** Called by job `job` when it starts, with the epoch-ms fire time it runs for. */
  readonly fired: (job: number, fireTime: number) => void
}

/**
 * @since 0.1.0
 */
export interface Contender {
  /** Short id, for `BENCH_ONLY` filters and child-process arguments. */
  readonly id: string
  /** Name in the tables. */
  readonly name: string
  /** Ours or a peer: ratios are against the best peer. */
  readonly peer: boolean
  readonly start: (options: StartOptions) => Promise<void>
}

/** The whole second at or before now: the fire time of a cron that fires once `now >= target`. */
const currentSecond = () => Math.floor(Date.now() / 1000) * 1000

/** A logger for node-cron that prints nothing (its default logs every missed execution to the console). */
const silent = { info() {}, warn() {}, error() {}, debug() {} }

/** Logs are dropped (not formatted, not written) so that stdout is not what is measured. */
const quiet = Logger.replace(Logger.defaultLogger, Logger.none)

const ours = (lock: boolean): Contender => ({
  id: lock ? "ours-lock" : "ours",
  name: lock ? "ours (memory lock)" : "ours (no lock)",
  peer: false,
  start: async ({ expr, fired, n, timezone }) => {
    const jobs = Array.from({ length: n }, (_, i) =>
      Job.unsafeMake({
        name: `job-${i}`,
        cron: expr,
        timezone,
        lock: { enabled: lock },
        handler: Effect.flatMap(RunContext, (ctx) => Effect.sync(() => fired(i, ctx.fireTime.getTime())))
      }))
    const scheduler = await new Promise<Scheduler.Scheduler["Type"]>((resolve) => {
      Effect.runFork(
        Effect.scoped(
          Effect.flatMap(Scheduler.make(jobs), (s) => Effect.zipRight(Effect.sync(() => resolve(s)), Effect.never))
        )
          .pipe(
            Effect.provide(Layer.mergeAll(JobStore.layerMemory, LeaderElection.layerSingleNode("bench"), quiet))
          )
      )
    })
    // Planning is done in one pass over all jobs once leading starts: the last job planned means all are.
    const last = `job-${n - 1}`
    while (Option.isNone((await Effect.runPromise(scheduler.jobStatus(last))).nextFire)) await sleep(2)
  }
})

const croner: Contender = {
  id: "croner",
  name: "croner 11",
  peer: true,
  start: async ({ expr, fired, n, timezone }) => {
    for (let i = 0; i < n; i++) new Croner(expr, { timezone }, () => fired(i, currentSecond()))
  }
}

const nodeCronContender: Contender = {
  id: "node-cron",
  name: "node-cron 4",
  peer: true,
  start: async ({ expr, fired, n, timezone }) => {
    for (let i = 0; i < n; i++) {
      nodeCron.schedule(expr, (ctx) => fired(i, ctx.date.getTime()), {
        timezone,
        logger: silent,
        suppressMissedWarning: true
      })
    }
  }
}

const toadCron: Contender = {
  id: "toad-cron",
  name: "toad-scheduler 3 CronJob (croner 8)",
  peer: true,
  start: async ({ expr, fired, n, timezone }) => {
    const scheduler = new ToadScheduler()
    for (let i = 0; i < n; i++) {
      scheduler.addCronJob(
        new CronJob({ cronExpression: expr, timezone }, new Task(`t${i}`, () => fired(i, currentSecond())))
      )
    }
  }
}

const toadInterval: Contender = {
  id: "toad-interval",
  name: "toad-scheduler 3 SimpleIntervalJob",
  peer: true,
  start: async ({ fired, intervalMs, n }) => {
    const scheduler = new ToadScheduler()
    for (let i = 0; i < n; i++) {
      const addedAt = Date.now()
      const task = new Task(`t${i}`, () => {
        const k = Math.max(1, Math.round((Date.now() - addedAt) / intervalMs))
        fired(i, addedAt + k * intervalMs)
      })
      scheduler.addSimpleIntervalJob(new SimpleIntervalJob({ milliseconds: intervalMs }, task))
    }
  }
}

const effectFiber: Contender = {
  id: "effect-fiber",
  name: "effect fiber per job (Schedule.cron)",
  peer: true,
  start: async ({ expr, fired, n, timezone }) => {
    const planned = new Float64Array(n)
    let plannedJobs = 0
    await Effect.runPromise(Effect.forEach(
      Array.from({ length: n }, (_, i) => i),
      (i) =>
        Effect.forkDaemon(Effect.schedule(
          Effect.sync(() => fired(i, planned[i]!)),
          Schedule.cron(expr, timezone).pipe(Schedule.tapOutput(([start]) =>
            Effect.sync(() => {
              if (planned[i] === 0) plannedJobs++
              planned[i] = start
            })
          ))
        )),
      { discard: true }
    ))
    while (plannedJobs < n) await sleep(2)
  }
}

/**
 * Every contender, ours first.
 *
 * @since 0.1.0
 */
export const contenders: ReadonlyArray<Contender> = [
  ours(false),
  ours(true),
  croner,
  nodeCronContender,
  toadCron,
  toadInterval,
  effectFiber
]

/**
 * @since 0.1.0
 */
export const contender = (id: string): Contender => {
  const found = contenders.find((c) => c.id === id)
  if (found === undefined) {
    throw new Error(`unknown contender "${id}"; one of ${contenders.map((c) => c.id).join(", ")}`)
  }
  return found
}
