/**
 * The etcd client as a scoped service: one `etcd3` client per layer, closed when the layer's scope closes, with its
 * fault handling tuned so that recovery after an etcd outage takes seconds, not tens of seconds (docs/design.md §8), and a
 * `call` helper that turns every promise into a bounded `Effect` failing with `ElectionError`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import { Etcd3 } from "etcd3"
import type { IOptions } from "etcd3"
import { ElectionError } from "./Errors.js"
import { makeEtcd3Options } from "./internal/etcdOptions.js"

/**
 * How to reach etcd.
 *
 * @since 0.1.0
 * @category models
 */
export interface EtcdClientOptions {
  /** etcd client URLs, e.g. `["http://127.0.0.1:2379"]`; `https://` URLs use TLS. */
  readonly endpoints: ReadonlyArray<string>
  /** Password authentication; the password never appears in logs. */
  readonly auth?: {
    readonly username: string
    readonly password: Redacted.Redacted<string>
  } | undefined
  /** TLS material, passed to gRPC's `createSsl` as is (PEM buffers). */
  readonly tls?: {
    readonly rootCertificate: Buffer
    readonly privateKey?: Buffer | undefined
    readonly certChain?: Buffer | undefined
  } | undefined
  /**
   * Bound on every unary call, connection set-up included (default 2 seconds). A healthy etcd answers in about a
   * millisecond on a LAN, so a call slower than this means etcd or the network is unhealthy. (etcd3 1.1.2 declares a
   * `dialTimeout` option but never reads it: connecting is bounded by this deadline instead.)
   */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /**
   * Interval of gRPC keepalive pings on connections with an open stream (default 5 seconds). etcd's
   * `--grpc-keepalive-min-time` (default 5 s) is the floor: a client that pings more often is disconnected with
   * GOAWAY "too_many_pings".
   */
  readonly keepaliveTime?: Duration.DurationInput | undefined
  /** How long a keepalive ping may stay unanswered before the connection is dropped (default 2 seconds). */
  readonly keepaliveTimeout?: Duration.DurationInput | undefined
  /** Extra gRPC channel options, merged over the ones set here. */
  readonly grpcOptions?: IOptions["grpcOptions"] | undefined
}

/**
 * The etcd client as a service: the etcd3 client, the call bound, `call` (a bounded, typed etcd operation) and
 * `status`.
 *
 * @since 0.1.0
 * @category tags
 */
export class EtcdClient extends Context.Tag("effect-job-scheduler/EtcdClient")<EtcdClient, {
  /** The underlying client, for the few operations `call` does not wrap (watchers). */
  readonly client: Etcd3
  /** The bound applied by `call`. */
  readonly commandTimeout: Duration.Duration
  /**
   * Runs one promise-returning etcd operation, bounded by `timeout` (default `commandTimeout`); a rejection or a
   * timeout fails with `ElectionError` naming `operation`.
   */
  readonly call: <A>(
    operation: string,
    f: (client: Etcd3) => PromiseLike<A>,
    timeout?: Duration.DurationInput
  ) => Effect.Effect<A, ElectionError>
  /** Succeeds when the etcd endpoint answers a status request (for readiness probes). */
  readonly status: Effect.Effect<void, ElectionError>
}>() {}

const describe = (cause: unknown): string => {
  if (!(cause instanceof Error)) return String(cause)
  // cockatiel's wording names its own mechanism; say what is wrong and what to check instead.
  if (cause.name === "BrokenCircuitError" || /circuit breaker is open/i.test(cause.message)) {
    return "etcd unreachable: calls to it failed several times in a row and are paused briefly before the next try " +
      "(check that the etcd endpoints run and are reachable)"
  }
  return `${cause.name}: ${cause.message}`
}

/**
 * Builds the service around an existing client (the layer owns the client's lifetime, this does not).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (client: Etcd3, commandTimeout: Duration.DurationInput = "2 seconds"): EtcdClient["Type"] => {
  const defaultTimeout = Duration.decode(commandTimeout)
  const call = <A>(operation: string, f: (client: Etcd3) => PromiseLike<A>, timeout?: Duration.DurationInput) =>
    Effect.tryPromise({
      try: () => Promise.resolve(f(client)),
      catch: (cause) => new ElectionError({ operation, reason: describe(cause), cause })
    }).pipe(
      Effect.timeoutFail({
        duration: timeout ?? defaultTimeout,
        onTimeout: () =>
          new ElectionError({
            operation,
            reason: `no answer within ${Duration.format(Duration.decode(timeout ?? defaultTimeout))}`
          })
      })
    )
  return {
    client,
    commandTimeout: defaultTimeout,
    call,
    status: Effect.asVoid(call("status", (c) => c.maintenance.status()))
  }
}

/**
 * An etcd client for the layer's lifetime, closed on release. Nothing connects here: the first call does, so a
 * node starts even while etcd is down and its election campaigns once etcd is back.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: EtcdClientOptions): Layer.Layer<EtcdClient, ElectionError> =>
  Layer.scoped(
    EtcdClient,
    Effect.map(
      Effect.acquireRelease(
        Effect.try({
          try: () => new Etcd3(makeEtcd3Options(options)),
          catch: (cause) => new ElectionError({ operation: "connect", reason: describe(cause), cause })
        }),
        (client) => Effect.sync(() => client.close())
      ),
      (client) => make(client, options.commandTimeout)
    )
  )
