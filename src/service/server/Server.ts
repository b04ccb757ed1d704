/**
 * The service's HTTP server, on one port bound to 127.0.0.1 by default: admin endpoints (`/healthz`, `/readyz`,
 * `/metrics`) and the RPC endpoint (`POST /rpc`, JSON) on every node. Job nodes serve the job service (so that any
 * node answers who leads and takes a trigger); `rpc` and `all` nodes serve the user service too.
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import type { Schedules } from "../../Schedules.js"
import { DEFAULT_MAX_BODY_SIZE } from "../config/Config.js"
import type { UserModel } from "../repository/UserModel.js"
import * as Admin from "./Admin.js"
import type * as Auth from "./Auth.js"
import type { NodeInfo } from "./ClusterInfo.js"
import type { LeaderDirectory } from "./Directory.js"
import * as Edge from "./Edge.js"
import type { JobControl } from "./JobControl.js"
import * as JobService from "./JobService.js"
import type * as Prometheus from "./Prometheus.js"
import { JobRpcs, RPC_PATH, ServiceRpcs } from "./Rpcs.js"
import * as UserService from "./UserService.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface AdminOptions {
  readonly checks: ReadonlyArray<Admin.ReadinessCheck>
  readonly info?: Readonly<Record<string, string>> | undefined
  /** Families computed at each scrape of `/metrics` (`OperatorMetrics.make`). */
  readonly computed?: Effect.Effect<ReadonlyArray<Prometheus.ComputedFamily>> | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RpcOptions extends AdminOptions, Auth.Tokens {
  /** The largest request body read (default `Config.DEFAULT_MAX_BODY_SIZE`). */
  readonly maxBodySize?: number | undefined
}

/**
 * Answer a request whose handling died (a bug) with a 500 JSON body, and log the defect at ERROR with the request's
 * method and URL (the platform would answer an empty 500 and log nothing).
 *
 * @since 0.1.0
 * @category middleware
 */
export const logDefects = <E, R>(
  app: HttpApp.Default<E, R>
): HttpApp.Default<E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.catchAllDefect(
    app,
    (defect) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        Effect.logError("request failed", Cause.die(defect)).pipe(
          Effect.annotateLogs({ method: request.method, url: Edge.excerpt(request.url, 200) }),
          Effect.as(HttpServerResponse.unsafeJson(
            { error: "InternalError", message: "the request failed on the server (see its log: request failed)" },
            { status: 500 }
          ))
        ))
  )

const edge = <E, R>(group: Edge.RpcCatalog, app: HttpApp.Default<E, R>, options: RpcOptions) =>
  Edge.guard(group, app, { maxBodySize: options.maxBodySize ?? DEFAULT_MAX_BODY_SIZE })

/**
 * Serve the admin routes and the job service (job mode).
 *
 * @since 0.1.0
 * @category layers
 */
export const serveJobs = (
  options: RpcOptions
): Layer.Layer<never, never, HttpServer.HttpServer | JobControl | Schedules | LeaderDirectory | NodeInfo> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const rpc = yield* RpcServer.toHttpApp(JobRpcs)
    return HttpServer.serve(
      logDefects(Admin.router(options).pipe(HttpRouter.post(RPC_PATH, edge(JobRpcs, rpc, options))))
    )
  })).pipe(Layer.provide(Layer.merge(JobService.layer(options), RpcSerialization.layerJson)))

/**
 * Serve the admin routes and both services (rpc and all modes).
 *
 * @since 0.1.0
 * @category layers
 */
export const serveAll = (
  options: RpcOptions
): Layer.Layer<
  never,
  never,
  HttpServer.HttpServer | UserModel | JobControl | Schedules | LeaderDirectory | NodeInfo
> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const rpc = yield* RpcServer.toHttpApp(ServiceRpcs)
    return HttpServer.serve(
      logDefects(Admin.router(options).pipe(HttpRouter.post(RPC_PATH, edge(ServiceRpcs, rpc, options))))
    )
  })).pipe(
    Layer.provide(Layer.mergeAll(UserService.layer(options), JobService.layer(options), RpcSerialization.layerJson))
  )

/**
 * A Node HTTP server listening on `host:port` (port 0 = any free port; the address is logged either way).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerHttp = (options: { readonly host: string; readonly port: number }) =>
  NodeHttpServer.layer(createServer, { host: options.host, port: options.port })

/**
 * Log `Listening on http://host:port` once the server is up.
 *
 * @since 0.1.0
 * @category layers
 */
export const logAddress: Layer.Layer<never, never, HttpServer.HttpServer> = Layer.effectDiscard(
  HttpServer.addressFormattedWith((address) => Effect.logInfo(`listening on ${address}`))
)
