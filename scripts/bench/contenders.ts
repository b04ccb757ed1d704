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
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as nodeCron from "node-cron"
import { CronJob, SimpleIntervalJob, Task, ToadScheduler } from "toad-scheduler"
import * as Job from "../../src/Job.js"
import * as JobStore from "../../src/JobStore.js"
import * as JobStoreRedis from "../../src/JobStore/Redis.js"
import * as LeaderElection from "../../src/LeaderElection.js"
import * as Logging from "../../src/Logging.js"
import * as Redis from "../../src/Redis.js"
import { RunContext } from "../../src/Run.js"
import * as Scheduler from "../../src/Scheduler.js"
import { startRedis } from "../../test/harness/redis.js"
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
  /** Resolves once every job is planned; with `stats`, figures the contender counts itself (Redis round trips). */
  readonly start: (options: StartOptions) => Promise<void | ContenderStats>
}

/**
 * Figures a contender counts about itself while it runs, read after the window (cumulative since setup).
 *
 * @since 0.1.0
 */
export interface ContenderStats {
  readonly read: () => Record<string, number>
}

/** The whole second at or before now: the fire time of a cron that fires once `now >= target`. */
const currentSecond = () => Math.floor(Date.now() / 1000) * 1000

/** A logger for node-cron that prints nothing (its default logs every missed execution to the console). */
const silent = { info() {}, warn() {}, error() {}, debug() {} }

/** Logs are dropped (not formatted, not written) so that stdout is not what is measured. */
const quiet = Logger.replace(Logger.defaultLogger, Logger.none)

/**
 * Log lines built at info into a JSON sink that discards them: every line of a run is made and serialised (what a
 * service logging JSON pays), but nothing is written, so that the pipe to the parent is not what is measured.
 */
const jsonDiscarded = (write: (line: string) => void = () => {}) =>
  Layer.merge(
    Logger.replace(Logger.defaultLogger, Logging.makeJsonLogger(write)),
    Logger.minimumLogLevel(LogLevel.Info)
  )

/** The Redis contender's sink: discards lines too, but counts the fires skipped (a store error shows there). */
const skipCounts = { skipped: 0, storeErrors: 0 }
let firstSkip: string | undefined
const countSkips = (line: string) => {
  if (!line.includes("\"job skipped\"")) return
  skipCounts.skipped++
  if (line.includes("\"store_error\"")) skipCounts.storeErrors++
  if (firstSkip === undefined) {
    firstSkip = line
    process.stderr.write(`  first skip: ${line.slice(0, 600)}\n`)
  }
}

interface OursOptions {
  readonly id: string
  readonly name: string
  readonly lock: boolean
  readonly logs: "none" | "json"
  readonly store: "memory" | "redis"
}

/**
 * The Redis store on a `redis-server` of its own (started for the child, stopped with it), with the commands the
 * client sends counted: a pipeline is one round trip, a command sent alone is another.
 */
const redisStore = Effect.gen(function*() {
  const server = yield* startRedis()
  const context = yield* Layer.build(
    JobStoreRedis.layer.pipe(Layer.provideMerge(Redis.layer({ url: server.url, keyPrefix: "bench" })))
  )
  const { client } = Context.get(context, Redis.RedisClient)
  const counts = { pipelines: 0, pipelinedCommands: 0, singleCommands: 0 }
  const sendCommand = client.sendCommand.bind(client)
  // A command queued in a pipeline is sent with the pipeline as its stream; one sent alone has none.
  client.sendCommand = (command, stream) => {
    if (stream === undefined) counts.singleCommands++
    else counts.pipelinedCommands++
    return sendCommand(command, stream)
  }
  const pipeline = client.pipeline.bind(client)
  client.pipeline = (...args: Parameters<typeof client.pipeline>) => {
    const made = pipeline(...args)
    const exec = made.exec.bind(made)
    made.exec = (...execArgs: Parameters<typeof made.exec>) => {
      counts.pipelines++
      return exec(...execArgs)
    }
    return made
  }
  return { context: Context.pick(JobStore.JobStore)(context), counts }
})

const ours = (options: OursOptions): Contender => ({
  id: options.id,
  name: options.name,
  peer: false,
  start: ({ expr, fired, n, timezone }) =>
    new Promise((resolve, reject) => {
      const jobs = Array.from({ length: n }, (_, i) =>
        Job.unsafeMake({
          name: `job-${i}`,
          cron: expr,
          timezone,
          lock: { enabled: options.lock },
          handler: Effect.flatMap(RunContext, (ctx) => Effect.sync(() => fired(i, ctx.fireTime.getTime())))
        }))
      const program = Effect.gen(function*() {
        const store = options.store === "redis" ? yield* redisStore : undefined
        const scheduler = yield* Scheduler.make(jobs).pipe(
          Effect.provide(Layer.mergeAll(
            store === undefined ? JobStore.layerMemory : Layer.succeedContext(store.context),
            LeaderElection.layerSingleNode("bench"),
            options.logs === "json" ? jsonDiscarded(store === undefined ? undefined : countSkips) : quiet
          ))
        )
        // Planning is done in one pass over all jobs once leading starts: the last job planned means all are.
        const last = `job-${n - 1}`
        while (Option.isNone((yield* scheduler.jobStatus(last)).nextFire)) yield* Effect.sleep(2)
        const counts = store?.counts
        resolve(counts === undefined ? undefined : { read: () => ({ ...counts, ...skipCounts }) })
        return yield* Effect.never
      })
      Effect.runFork(Effect.scoped(program)).addObserver((exit) => reject(new Error(String(exit))))
    })
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
  ours({ id: "ours", name: "ours (no lock)", lock: false, logs: "none", store: "memory" }),
  ours({ id: "ours-lock", name: "ours (memory lock)", lock: true, logs: "none", store: "memory" }),
  ours({ id: "ours-json", name: "ours (memory lock, JSON logs at info)", lock: true, logs: "json", store: "memory" }),
  ours({ id: "ours-redis", name: "ours (Redis store, JSON logs at info)", lock: true, logs: "json", store: "redis" }),
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
