/**
 * The etcd client as a scoped service: one `etcd3` client per layer, closed when the layer's scope closes, with its
 * fault handling tuned so that recovery after an etcd outage takes seconds, not tens of seconds (DESIGN.md 12), and a
 * `call` helper that turns every promise into a bounded `Effect` failing with `ElectionError`.
 *
 * @since 0.1.0
 */
import { circuitBreaker, ConsecutiveBreaker, ConstantBackoff, ExponentialBackoff, handleWhen, retry } from "cockatiel"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { Etcd3, isRecoverableError } from "etcd3"
import type { IOptions } from "etcd3"
import { ElectionError } from "./Errors.js"

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

// Why each fault-handling constant (etcd3's defaults are in DESIGN.md 12):
/** A host's breaker opens after this many consecutive recoverable failures (etcd3's default, kept). */
const BREAKER_CONSECUTIVE_FAILURES = 3
/**
 * How long an open breaker refuses calls to that host before letting one probe through. etcd3 uses 5 s, which adds
 * up to 5 s to every recovery; 500 ms still spares a dead host a flood of calls while keeping recovery well under a
 * second.
 */
const BREAKER_HALF_OPEN_AFTER_MS = 500
/**
 * Pause between the global retries. A retry moves the call to another host and, with one host, reopens a fresh
 * channel after etcd3 reset the broken one (the first call after an etcd restart often fails on the dead socket).
 */
const RETRY_BACKOFF_MS = 50
/** Watch stream reconnection backoff: from 50 ms up to 1 s (etcd3's default grows to 30 s). */
const WATCH_BACKOFF_INITIAL_MS = 50
const WATCH_BACKOFF_MAX_MS = 1_000
/**
 * gRPC subchannel reconnection backoff: grpc-js starts at 1 s and grows to 120 s, so after a long outage the client
 * could wait two minutes before even trying again; 100 ms to 1 s keeps recovery within a second of etcd coming back.
 */
const GRPC_RECONNECT_BACKOFF_INITIAL_MS = 100
const GRPC_RECONNECT_BACKOFF_MAX_MS = 1_000

const describe = (cause: unknown): string => cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)

/**
 * The `etcd3` options for `options`: endpoints, auth, TLS, per-call deadline, tuned fault handling and gRPC
 * keepalive. Exported for the benchmark, which builds stock etcd3 clients with the same transport settings.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeEtcd3Options = (options: EtcdClientOptions): IOptions => {
  const commandTimeoutMs = Duration.toMillis(options.commandTimeout ?? "2 seconds")
  return {
    hosts: [...options.endpoints],
    ...(options.auth === undefined ? {} : {
      auth: { username: options.auth.username, password: Redacted.value(options.auth.password) }
    }),
    ...(options.tls === undefined ? {} : {
      credentials: {
        rootCertificate: options.tls.rootCertificate,
        ...(options.tls.privateKey === undefined ? {} : { privateKey: options.tls.privateKey }),
        ...(options.tls.certChain === undefined ? {} : { certChain: options.tls.certChain })
      }
    }),
    // A gRPC deadline on every unary call, so a call the caller stopped waiting for is also cancelled on the wire.
    // Streams (watch, lease keepalive) stay open-ended: their liveness is the keepalive pings' job.
    defaultCallOptions: (context) => context.isStream ? {} : { deadline: Date.now() + commandTimeoutMs },
    faultHandling: {
      host: () =>
        circuitBreaker(handleWhen(isRecoverableError), {
          halfOpenAfter: BREAKER_HALF_OPEN_AFTER_MS,
          breaker: new ConsecutiveBreaker(BREAKER_CONSECUTIVE_FAILURES)
        }),
      // One retry per other host (at least one, see RETRY_BACKOFF_MS); the caller's timeout bounds them all.
      global: retry(handleWhen(isRecoverableError), {
        maxAttempts: Math.max(1, options.endpoints.length - 1),
        backoff: new ConstantBackoff(RETRY_BACKOFF_MS)
      }),
      // etcd3 types this slot as a backoff *state* and calls `next()` on it to get the first delay, so pass the
      // factory's initial state rather than the factory itself (which is what its own default does, untyped).
      watchBackoff: new ExponentialBackoff({ initialDelay: WATCH_BACKOFF_INITIAL_MS, maxDelay: WATCH_BACKOFF_MAX_MS })
        .next()
    },
    grpcOptions: {
      "grpc.keepalive_time_ms": Duration.toMillis(options.keepaliveTime ?? "5 seconds"),
      "grpc.keepalive_timeout_ms": Duration.toMillis(options.keepaliveTimeout ?? "2 seconds"),
      // Ping only while a call or stream is open (a watch always is): etcd's enforcement policy does not permit
      // pings without streams and answers a few of them with GOAWAY "too_many_pings". An idle connection that died
      // is noticed by the next call's deadline instead.
      "grpc.keepalive_permit_without_calls": 0,
      "grpc.initial_reconnect_backoff_ms": GRPC_RECONNECT_BACKOFF_INITIAL_MS,
      "grpc.max_reconnect_backoff_ms": GRPC_RECONNECT_BACKOFF_MAX_MS,
      ...options.grpcOptions
    }
  }
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
