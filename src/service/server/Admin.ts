/**
 * Admin endpoints, all JSON except `/metrics`:
 *
 * - `GET /healthz`: the process is alive and serving (no I/O; never fails while the event loop turns).
 * - `GET /readyz`: the config is loaded (it is, or the process would have exited 2) and every readiness check passes
 *   (Redis `PING`, etcd status, when configured); 503 with the failing checks otherwise.
 * - `GET /ui`: the web dashboard (`Dashboard`), which calls the node's RPC endpoint.
 * - `GET /metrics`: every effect metric of the process in Prometheus text format, then the families computed at
 *   scrape time (`OperatorMetrics`).
 *
 * @since 0.1.0
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Dashboard from "./Dashboard.js"
import * as Prometheus from "./Prometheus.js"

/**
 * One readiness check: `check` succeeds when the dependency answers.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadinessCheck {
  readonly name: string
  readonly check: Effect.Effect<void, unknown>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ReadinessReport {
  readonly ready: boolean
  /** `ok`, or why the check failed, by check name; `config` is always `ok` (a bad config never gets this far). */
  readonly checks: Readonly<Record<string, string>>
}

/**
 * Bound on one readiness check. Probes (Kubernetes' default timeout is 1 s, the period 10 s) need an answer even
 * from a hung dependency; the Redis and etcd clients bound their own calls to 2 s, and this bound keeps a probe from
 * waiting on anything slower.
 *
 * @since 0.1.0
 * @category constants
 */
export const CHECK_TIMEOUT = Duration.seconds(2)

const describe = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"
    ? error.message
    : String(error)

/**
 * Run every check concurrently, each bounded by `CHECK_TIMEOUT`.
 *
 * @since 0.1.0
 * @category readiness
 */
export const readiness = (checks: ReadonlyArray<ReadinessCheck>): Effect.Effect<ReadinessReport> =>
  Effect.forEach(checks, ({ check, name }) =>
    check.pipe(
      Effect.timeoutFail({
        duration: CHECK_TIMEOUT,
        onTimeout: () => `no answer within ${Duration.format(CHECK_TIMEOUT)}`
      }),
      Effect.match({ onFailure: (error) => [name, describe(error)] as const, onSuccess: () => [name, "ok"] as const })
    ), { concurrency: "unbounded" }).pipe(
      Effect.map((results) => {
        const report: Record<string, string> = { config: "ok" }
        for (const [name, result] of results) report[name] = result
        return { ready: results.every(([, result]) => result === "ok"), checks: report }
      })
    )

/**
 * The admin routes.
 *
 * @since 0.1.0
 * @category routes
 */
export const router = (options: {
  readonly checks: ReadonlyArray<ReadinessCheck>
  /** Static facts shown by `/healthz` (node id, mode). */
  readonly info?: Readonly<Record<string, string>> | undefined
  /** Families computed at each scrape, rendered after the effect metrics. */
  readonly computed?: Effect.Effect<ReadonlyArray<Prometheus.ComputedFamily>> | undefined
}): HttpRouter.HttpRouter =>
  HttpRouter.empty.pipe(
    HttpRouter.get(
      "/healthz",
      Effect.map(Clock.currentTimeMillis, (now) =>
        HttpServerResponse.unsafeJson({
          status: "ok",
          ...options.info,
          uptime_s: Math.round(process.uptime()),
          time: new Date(now).toISOString()
        }))
    ),
    HttpRouter.get(
      "/readyz",
      Effect.map(readiness(options.checks), (report) =>
        HttpServerResponse.unsafeJson(
          { status: report.ready ? "ready" : "not_ready", checks: report.checks },
          { status: report.ready ? 200 : 503 }
        ))
    ),
    HttpRouter.get("/ui", Effect.succeed(Dashboard.pageResponse)),
    HttpRouter.get("/ui/app.js", Effect.succeed(Dashboard.scriptResponse)),
    HttpRouter.get(
      "/metrics",
      Effect.map(
        Prometheus.scrapeWith(options.computed ?? Effect.succeed([])),
        (text) => HttpServerResponse.text(text, { contentType: Prometheus.CONTENT_TYPE })
      )
    )
  )
