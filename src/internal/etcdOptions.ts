/**
 * The `etcd3` client options of the `Etcd` module: its tuned fault handling and gRPC keepalive. Not part of the
 * public API.
 *
 * @internal
 */
import { circuitBreaker, ConsecutiveBreaker, ConstantBackoff, ExponentialBackoff, handleWhen, retry } from "cockatiel"
import * as Duration from "effect/Duration"
import * as Redacted from "effect/Redacted"
import { isRecoverableError } from "etcd3"
import type { IOptions } from "etcd3"
import type { EtcdClientOptions } from "../Etcd.js"

// Why each fault-handling constant (etcd3's defaults: docs/design.md §8):
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

/**
 * The `etcd3` options for `options`: endpoints, auth, TLS, per-call deadline, tuned fault handling and gRPC
 * keepalive. The leadership benchmark builds stock etcd3 clients with the same transport settings from it.
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
