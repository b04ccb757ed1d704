/**
 * The reference service as one Layer per mode (the Go pattern's `ServiceContext` + `main`):
 *
 * - `job`: the scheduler running `sync_user` and `archive_user`, plus the admin endpoints (`/healthz`, `/readyz`,
 *   `/metrics`: a job node needs probes and its scheduler metrics too).
 * - `rpc`: the RPC server (user + job services) and the admin endpoints; no scheduler (job status and pause/resume
 *   from the shared store, trigger refused).
 * - `all`: both in one process (the Go pattern's merged deployment, and `npm start`).
 *
 * Backends follow the config: Redis -> `JobStore/Redis` (store + `JobLockModel`), else memory; etcd ->
 * `LeaderElection/Etcd`, else single-node. Nothing connects before the config is decoded, and a bad config never
 * builds a layer. Every node serves the job RPCs (a trigger made on a node that does not lead is forwarded to the
 * leader, found through the leader record in the store) and compares its job definitions with the leader's.
 *
 * @since 0.1.0
 */
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { ConfigInvalid, ElectionError, StoreError } from "../Errors.js"
import * as Etcd from "../Etcd.js"
import type * as Job from "../Job.js"
import * as LeaderElection from "../LeaderElection.js"
import * as EtcdElection from "../LeaderElection/Etcd.js"
import * as Logging from "../Logging.js"
import * as Redis from "../Redis.js"
import * as Scheduler from "../Scheduler.js"
import * as Cli from "./cli/Cli.js"
import { CliFailure } from "./cli/Client.js"
import * as Config from "./config/Config.js"
import * as Jobs from "./job/Jobs.js"
import * as ScheduleHandlers from "./job/ScheduleHandlers.js"
import * as Repository from "./repository/Repository.js"
import { StoreHealth } from "./repository/xredis.js"
import type { ReadinessCheck } from "./server/Admin.js"
import * as ClusterInfo from "./server/ClusterInfo.js"
import * as Directory from "./server/Directory.js"
import * as JobControl from "./server/JobControl.js"
import * as OperatorMetrics from "./server/OperatorMetrics.js"
import * as Server from "./server/Server.js"
import * as Version from "./Version.js"

/**
 * Whether the leader election backend answers (etcd status), when there is one.
 *
 * @since 0.1.0
 * @category tags
 */
export class LeaderHealth extends Context.Tag("effect-job-scheduler/service/LeaderHealth")<LeaderHealth, {
  readonly backend: "single-node" | "etcd"
  readonly check: Effect.Effect<void, ElectionError>
}>() {}

/**
 * Leadership for the config: etcd when configured (one client, closed after the election resigns), else this node
 * always leads.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLeadership = (
  config: Config.ServiceConfig
): Layer.Layer<LeaderElection.LeaderElection | LeaderHealth, ElectionError> =>
  Option.match(config.etcd, {
    onNone: () =>
      Layer.merge(
        LeaderElection.layerSingleNode(config.nodeId),
        Layer.succeed(LeaderHealth, { backend: "single-node", check: Effect.void })
      ),
    onSome: (etcd) =>
      Layer.merge(
        EtcdElection.layer({ nodeId: config.nodeId, electionKey: etcd.electionKey, leaseTtl: etcd.leaseTtl }),
        Layer.effect(LeaderHealth, Effect.map(Etcd.EtcdClient, (client) => ({ backend: "etcd", check: client.status })))
      ).pipe(Layer.provide(Etcd.layer({
        endpoints: etcd.endpoints,
        auth: etcd.username === undefined
          ? undefined
          : { username: etcd.username, password: Option.getOrElse(etcd.password, () => Redacted.make("")) }
      })))
  })

/** The readiness check of the store (memory has nothing to check). */
const storeCheck = Effect.map(
  StoreHealth,
  (store): Option.Option<ReadinessCheck> =>
    store.backend === "memory" ? Option.none() : Option.some({ name: store.backend, check: store.check })
)

/** The readiness check of the leader election (single-node has nothing to check). */
const electionCheck = Effect.map(
  LeaderHealth,
  (leader): Option.Option<ReadinessCheck> =>
    leader.backend === "single-node" ? Option.none() : Option.some({ name: leader.backend, check: leader.check })
)

/**
 * The servers of a node: `serve` (admin + RPC routes) with its readiness checks and the scrape-time metrics, over
 * the `JobControl` in context.
 */
const servers = <R, RS>(
  config: Config.ServiceConfig,
  jobs: ReadonlyArray<Job.Job<unknown>>,
  checks: Effect.Effect<
    {
      readonly store: Option.Option<ReadinessCheck>
      readonly election: Option.Option<ReadinessCheck>
    },
    never,
    R
  >,
  serve: (options: Server.RpcOptions) => Layer.Layer<never, never, RS>
) =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const { election, store } = yield* checks
    const control = yield* JobControl.JobControl
    const computed = yield* OperatorMetrics.make({
      jobs,
      control,
      store,
      election,
      build: { version: Version.version, node: config.nodeId, mode: config.mode }
    })
    return serve({
      checks: [...Option.toArray(store), ...Option.toArray(election)],
      info: { node: config.nodeId, mode: config.mode },
      token: config.http.token,
      readToken: config.http.readToken,
      maxBodySize: config.http.maxBodySize,
      computed
    })
  }))

const noElection = Effect.succeed(Option.none<ReadinessCheck>())

/**
 * The leader record's directory for the config: on Redis when configured (its own connection, closed with the
 * layer), else in this process.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDirectory = (config: Config.ServiceConfig): Layer.Layer<Directory.LeaderDirectory, StoreError> =>
  Option.match(config.redis, {
    onNone: () => Directory.layerMemory,
    onSome: (redis) =>
      Directory.layerRedis.pipe(Layer.provide(Redis.layer({
        url: redis.url,
        sentinel: redis.sentinel,
        keyPrefix: redis.keyPrefix,
        waitForConnection: false
      })))
  })

/**
 * This node's `NodeInfo` for the config.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNodeInfo = (config: Config.ServiceConfig): Layer.Layer<ClusterInfo.NodeInfo> =>
  Layer.succeed(ClusterInfo.NodeInfo, {
    nodeId: config.nodeId,
    mode: config.mode,
    version: Version.version,
    configHash: ClusterInfo.configHash(config.jobs),
    advertiseUrl: config.http.advertiseUrl
  })

/**
 * The whole service for a decoded config.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: Config.ServiceConfig): Layer.Layer<never, unknown> => {
  const jobs = Either.getOrThrowWith(Jobs.make(config), (error) => error)
  const models = Repository.layer({
    sqlite: config.database.sqlite,
    databaseUrl: config.database.url,
    redis: config.redis
  })
  const http = Server.layerHttp(config.http)
  const scheduler = Scheduler.layer(jobs, { shutdownGrace: config.shutdownGrace })
  const cluster = Layer.merge(layerDirectory(config), layerNodeInfo(config))
  // Built first, released last: "service stopped" is logged once every other layer has shut down.
  const starting = Layer.scopedDiscard(
    Effect.logInfo("service starting").pipe(
      Effect.annotateLogs({ ...Config.describe(config), version: Version.version }),
      Effect.zipRight(Effect.addFinalizer(() => Effect.logInfo("service stopped")))
    )
  )

  let app: Layer.Layer<never, unknown>
  switch (config.mode) {
    case "job": {
      const checks = Effect.all({ store: storeCheck, election: electionCheck })
      app = Layer.mergeAll(
        servers(config, jobs, checks, Server.serveJobs),
        ClusterInfo.layerPublisher,
        ClusterInfo.layerDriftWatch,
        Server.logAddress
      ).pipe(
        // Schedules is built after JobControl, so that the jobs JobControl lists as defined in code are those alone
        // (Schedules registers the stored schedules into the same scheduler when it is built).
        Layer.provide(ScheduleHandlers.layer),
        Layer.provide(JobControl.layerScheduler),
        Layer.provide(http),
        Layer.provide(cluster),
        Layer.provideMerge(scheduler),
        Layer.provideMerge(layerLeadership(config)),
        Layer.provide(models)
      )
      break
    }
    case "rpc": {
      const checks = Effect.all({ store: storeCheck, election: noElection })
      app = Layer.mergeAll(
        servers(config, jobs, checks, Server.serveAll),
        ClusterInfo.layerDriftWatch,
        Server.logAddress
      ).pipe(
        Layer.provide(JobControl.layerStore(jobs)),
        Layer.provide(ScheduleHandlers.layerStore),
        Layer.provide(http),
        Layer.provide(cluster),
        Layer.provide(models)
      )
      break
    }
    case "all": {
      const checks = Effect.all({ store: storeCheck, election: electionCheck })
      app = Layer.mergeAll(
        servers(config, jobs, checks, Server.serveAll),
        ClusterInfo.layerPublisher,
        ClusterInfo.layerDriftWatch,
        Server.logAddress
      ).pipe(
        // Schedules is built after JobControl, so that the jobs JobControl lists as defined in code are those alone
        // (Schedules registers the stored schedules into the same scheduler when it is built).
        Layer.provide(ScheduleHandlers.layer),
        Layer.provide(JobControl.layerScheduler),
        Layer.provide(http),
        Layer.provide(cluster),
        Layer.provideMerge(scheduler),
        Layer.provideMerge(layerLeadership(config)),
        Layer.provide(models)
      )
      break
    }
  }
  // `starting` is built before the rest and so released after it: its "service stopped" line comes last.
  return Layer.provide(app, starting).pipe(
    Layer.provide(Logging.layer({ format: config.log.format, level: config.log.level }))
  )
}

/**
 * The program behind `main.ts`: an operator command (`jobs ...`, `leader`, `config check`, `--version`: see
 * `cli/Cli.ts`) when the first argument names one; else parse the start-up flags, print `--help`, load the config
 * (a bad one fails with `ConfigInvalid` before anything is built), then run the service until interrupted.
 *
 * @since 0.1.0
 * @category program
 */
export const main = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>
): Effect.Effect<void, ConfigInvalid | unknown> =>
  Effect.gen(function*() {
    if (argv[0] !== undefined && Cli.VERBS.has(argv[0])) {
      return yield* Cli.run(argv).pipe(Effect.provide(NodeContext.layer))
    }
    const cli = yield* Config.parseArgs(argv)
    if (cli.help) {
      yield* Effect.sync(() => process.stdout.write(Config.USAGE + "\n"))
      return
    }
    const config = yield* Config.load({ cli, env })
    return yield* Layer.launch(layer(config)).pipe(
      Effect.catchAll((error: unknown) => Effect.fail(explainStartFailure(config, error)))
    )
  })

/**
 * The exit code for `main`'s exit: 0 on success or interruption (a signal), 2 for a bad config (after printing
 * its one line on stderr), 1 for anything else (after logging it).
 *
 * @since 0.1.0
 * @category program
 */
export const teardown = <E, A>(exit: Exit.Exit<E, A>, onExit: (code: number) => void): void => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return onExit(0)
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure) && isConfigInvalid(failure.value)) {
    process.stderr.write(`effect-job-scheduler: ${failure.value.message}\n`)
    return onExit(2)
  }
  if (Option.isSome(failure) && (failure.value instanceof CliFailure || failure.value instanceof StartFailure)) {
    process.stderr.write(`effect-job-scheduler: ${failure.value.message}\n`)
    return onExit(1)
  }
  const listen = Option.isSome(failure) ? listenFailure(failure.value) : undefined
  if (listen !== undefined) {
    process.stderr.write(`effect-job-scheduler: ${listen}\n`)
    return onExit(2)
  }
  // @effect/cli has printed what is wrong with the arguments, with the usage.
  if (Option.isSome(failure) && ValidationError.isValidationError(failure.value)) return onExit(2)
  const details = Cause.pretty(exit.cause, { renderErrorCause: true })
  process.stderr.write(`effect-job-scheduler: start-up or run failed\n${details}\n`)
  onExit(1)
}

/**
 * A dependency that failed at start-up, as one line naming the server, its address and what to check.
 *
 * @since 0.1.0
 * @category program
 */
export class StartFailure extends Error {
  readonly _tag = "StartFailure"
}

/**
 * A start-up failure of the store (Redis) or the election (etcd) as a `StartFailure` that names the server and
 * what to check; anything else unchanged.
 *
 * @since 0.1.0
 * @category program
 */
export const explainStartFailure = (config: Config.ServiceConfig, error: unknown): unknown => {
  if (typeof error !== "object" || error === null || !("_tag" in error)) return error
  const reason = "reason" in error && typeof error.reason === "string" ? error.reason : String(error)
  if (error._tag === "StoreError" && Option.isSome(config.redis)) {
    return new StartFailure(
      `cannot use Redis at ${Redis.describeOptions(config.redis.value)}: ${reason}; check that it runs and that ` +
        (config.redis.value.sentinel === undefined
          ? "redis.url / REDIS_URL (host, port, password, TLS) is right"
          : "redis.sentinels / redis.name (the sentinels' addresses, the primary's name, passwords) are right")
    )
  }
  if (error._tag === "ElectionError" && Option.isSome(config.etcd)) {
    return new StartFailure(
      `cannot use etcd at ${config.etcd.value.endpoints.join(",")}: ${reason}; check that it runs and that ` +
        "etcd.endpoints / ETCD_ENDPOINTS (and the credentials) are right"
    )
  }
  return error
}

/** What the operator must fix when the HTTP server cannot listen (`ServeError` from a Node `listen` error). */
const LISTEN_ERRORS: Readonly<Record<string, string>> = {
  EADDRINUSE: "the address is in use (another process listens there); choose another http.port / HTTP_PORT",
  EADDRNOTAVAIL: "the address is not on this machine; check http.host / HTTP_HOST",
  ENOTFOUND: "the host name does not resolve; check http.host / HTTP_HOST",
  EAI_AGAIN: "the host name does not resolve (DNS not answering); check http.host / HTTP_HOST",
  EACCES: "permission denied (ports below 1024 need privileges); choose another http.port / HTTP_PORT"
}

/**
 * The one line for a failure to listen, or `undefined` when the failure is something else.
 *
 * @since 0.1.0
 * @category program
 */
export const listenFailure = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null || !("_tag" in error) || error._tag !== "ServeError") return undefined
  const cause: unknown = "cause" in error ? error.cause : undefined
  if (typeof cause !== "object" || cause === null) return undefined
  const fields = cause as {
    readonly code?: unknown
    readonly address?: unknown
    readonly port?: unknown
    readonly hostname?: unknown
  }
  const code = typeof fields.code === "string" ? fields.code : undefined
  if (code === undefined || LISTEN_ERRORS[code] === undefined) return undefined
  const host = typeof fields.address === "string"
    ? fields.address
    : typeof fields.hostname === "string"
    ? fields.hostname
    : "?"
  const where = typeof fields.port === "number" ? `${host}:${fields.port}` : host
  return `cannot listen on ${where}: ${LISTEN_ERRORS[code]} (${code})`
}

const isConfigInvalid = (u: unknown): u is ConfigInvalid =>
  typeof u === "object" && u !== null && "_tag" in u && u._tag === "ConfigInvalid"
