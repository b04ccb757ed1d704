/**
 * The Redis client shared by the Redis backends (`JobLockModel/Redis.ts`, `JobStore/Redis.ts`): one ioredis
 * connection as a scoped resource, to a standalone server (`url`) or to the primary named by Redis Sentinel
 * (`sentinel`, following failovers by itself), every command bounded in time and failing with a typed `StoreError`,
 * and the key layout of the whole scheduler in one place.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import { Redis as IORedis } from "ioredis"
import { StoreError } from "./Errors.js"

/**
 * The ioredis client class, re-exported so that callers need no direct ioredis import for types.
 *
 * @since 0.1.0
 * @category models
 */
export type Client = IORedis

/**
 * The connected Redis client as a service: the ioredis client, the key prefix, the command bound, and `run`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisClientService {
  /** The underlying ioredis client. Call it through `run`, which bounds the time and types the error. */
  readonly client: Client
  /** The key prefix (`c.Redis.Key` in Go services using `xredis`): every key of the scheduler starts with `{keyPrefix}:job:`. */
  readonly keyPrefix: string
  /** The bound on one command (ioredis `commandTimeout`, and a deadline timer around every call). */
  readonly commandTimeout: Duration.Duration
  /**
   * Run one client call as an effect: a rejected promise or a call that outlives the bound becomes a
   * `StoreError { backend: "redis", operation }`.
   */
  readonly run: <A>(operation: string, f: (client: Client) => Promise<A>) => Effect.Effect<A, StoreError>
}

/**
 * The Redis client service tag: provided by `layer`, used by the Redis `JobStore` and `JobLockModel`.
 *
 * @since 0.1.0
 * @category tags
 */
export class RedisClient extends Context.Tag("effect-job-scheduler/RedisClient")<RedisClient, RedisClientService>() {}

/**
 * How to reach Redis (a URL, or the sentinels of a primary) and the bounds on connecting and on every command.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisOptions {
  /**
   * `redis://[[user]:password@]host[:port][/db]`, or `rediss://...` for TLS. Pass a `Redacted` when the URL holds a
   * password: it is never logged either way (logs show the URL with the password masked). Required unless `sentinel`
   * is given; with `sentinel` it is ignored.
   */
  readonly url?: Redacted.Redacted<string> | string | undefined
  /**
   * Find the primary through Redis Sentinel instead of a fixed address: the client asks the sentinels for the
   * primary of `name`, connects to it, checks that it is a primary, and after a failover (the connection to the old
   * primary is lost, or closed by the sentinels when they demote it) asks them again at its next reconnect attempt and
   * continues on the promoted replica by itself.
   */
  readonly sentinel?: SentinelOptions | undefined
  /** The key prefix (`c.Redis.Key` in Go services using `xredis`), e.g. `user`: keys are `user:job:lock:{key}`, ... */
  readonly keyPrefix: string
  /** Bound on every command. Default 2 seconds. */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /** Bound on the first connection (until the server answers the ready check). Default 5 seconds. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /**
   * Default true: building the layer waits until Redis is ready and fails with a `StoreError` after
   * `connectTimeout`. False: a Redis that is not ready within `connectTimeout` is logged at WARN and the layer is
   * built anyway; the client keeps connecting in the background, and until it is ready every command fails at once
   * with a `StoreError` (a service then runs, not ready, and recovers by itself when Redis comes).
   */
  readonly waitForConnection?: boolean | undefined
}

/**
 * How to reach a primary through Redis Sentinel.
 *
 * @since 0.1.0
 * @category models
 */
export interface SentinelOptions {
  /** Some or all of the sentinels (the client learns the others from them). At least one. */
  readonly sentinels: ReadonlyArray<{ readonly host: string; readonly port: number }>
  /** The name the sentinels monitor the primary under (`sentinel monitor <name> ...`). */
  readonly name: string
  /** The sentinels' own password (`requirepass` in sentinel.conf), if any. */
  readonly sentinelPassword?: Redacted.Redacted<string> | string | undefined
  /** The data nodes' user and password (`requirepass` / ACL of the primary and replicas), if any. */
  readonly username?: string | undefined
  readonly password?: Redacted.Redacted<string> | string | undefined
  /** Database number. Default 0. */
  readonly db?: number | undefined
}

/**
 * How the connection is described in logs and errors: the URL with its password masked, or the sentinels and the
 * primary's name.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeOptions = (options: Pick<RedisOptions, "url" | "sentinel">): string =>
  options.sentinel !== undefined
    ? `sentinel ${options.sentinel.name} via ${options.sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(",")}`
    : options.url === undefined
    ? "redis (no url)"
    : describeUrl(options.url)

const reveal = (secret: Redacted.Redacted<string> | string | undefined): string | undefined =>
  secret === undefined ? undefined : Redacted.isRedacted(secret) ? Redacted.value(secret) : secret

/**
 * Default bound on one command. A Redis round trip is ~20 us hot and well under 1 ms after idle (docs/design.md §8), so
 * 2 s only trips on a server that is down, frozen or saturated, while staying far below lock TTLs (renewals must
 * fail fast enough to still matter).
 */
const DEFAULT_COMMAND_TIMEOUT = Duration.seconds(2)

/** Default bound on start-up: room for a Redis that starts a moment after us (compose, systemd ordering). */
const DEFAULT_CONNECT_TIMEOUT = Duration.seconds(5)

/**
 * Extra time the deadline timer around a call gives ioredis' own `commandTimeout`, so that ioredis' error (more
 * precise: "Command timed out", "Connection is closed") normally wins and ours only catches its gaps.
 */
const TIMEOUT_SLACK = Duration.millis(100)

/**
 * Reconnect delay after the n-th failed attempt: 100 ms, 200 ms, 400 ms, 800 ms, then every 1 s for ever. The
 * client never gives up (a restarted Redis is picked up within about a second), and a dead one costs one connect
 * attempt per second.
 */
const reconnectDelayMillis = (attempt: number): number => Math.min(50 * 2 ** attempt, 1000)

/**
 * Redis I/O deadlines are wall-clock deadlines: a `TestClock` in the caller's context must not stop them from
 * firing (a test on `TestClock` that talks to a real Redis would otherwise hang on a frozen server).
 */
const liveClock = Clock.make()

/**
 * The URL with its password masked, for logs and error messages.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeUrl = (url: Redacted.Redacted<string> | string): string => {
  const raw = Redacted.isRedacted(url) ? Redacted.value(url) : url
  try {
    const parsed = new URL(raw)
    if (parsed.password !== "") parsed.password = "***"
    return parsed.toString()
  } catch {
    // Not a URL (ioredis also accepts `host:port`); anything after an `@` could be a secret, so drop it.
    return raw.includes("@") ? "redis (unparsable url)" : raw
  }
}

const messageOf = (cause: unknown): string => {
  // With `maxRetriesPerRequest: 0` a command in flight when the connection drops fails with this error, whose
  // message talks about retries; what happened is the connection loss.
  if (cause instanceof Error && cause.name === "MaxRetriesPerRequestError") return "connection lost before the reply"
  const text = cause instanceof Error ? cause.message : typeof cause === "string" ? cause : "unknown error"
  // ioredis' wording for "not connected" names its own options; say what is wrong and what to check instead.
  if (text.startsWith("Stream isn't writeable")) {
    return "not connected to Redis (the client keeps reconnecting; check that the server runs and is reachable)"
  }
  if (text.startsWith("Connection is closed")) {
    return "the connection to Redis is closed (the client keeps reconnecting)"
  }
  return text
}

/**
 * Build the service over an already created ioredis client (used by `layer`; also handy to wrap a client for a
 * test or a script).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromClient = (
  client: Client,
  options: { readonly keyPrefix: string; readonly commandTimeout?: Duration.DurationInput | undefined }
): RedisClientService => {
  const commandTimeout = Duration.decode(options.commandTimeout ?? DEFAULT_COMMAND_TIMEOUT)
  const bound = Duration.sum(commandTimeout, TIMEOUT_SLACK)
  const boundMillis = Duration.toMillis(bound)
  return {
    client,
    keyPrefix: options.keyPrefix,
    commandTimeout,
    run: <A>(operation: string, f: (client: Client) => Promise<A>) =>
      // The promise and its deadline timer race by hand rather than with `Effect.timeoutFail`, which forks a fiber
      // per call: measured 50-160 us per call against ~1 us here, on a path whose Redis round trip is ~70 us. A plain
      // `setTimeout` is also what we want: wall-clock (a `TestClock` cannot stop it), and it fires even when the
      // caller is uninterruptible (a lock release in a finalizer), so no call ever outlives the bound.
      Effect.async<A, StoreError>((resume) => {
        let settled = false
        const settle = (effect: Effect.Effect<A, StoreError>) => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          resume(effect)
        }
        const failWith = (cause: unknown) =>
          settle(Effect.fail(new StoreError({ backend: "redis", operation, reason: messageOf(cause), cause })))
        const timer = setTimeout(
          () =>
            settle(Effect.fail(
              new StoreError({ backend: "redis", operation, reason: `no reply within ${Duration.format(bound)}` })
            )),
          boundMillis
        )
        try {
          // A late settlement after the deadline is ignored (and a late rejection is handled, never unhandled).
          f(client).then((value) => settle(Effect.succeed(value)), failWith)
        } catch (cause) {
          failWith(cause)
        }
        // Interrupted: drop the timer and abandon the promise; ioredis settles it later on its own.
        return Effect.sync(() => {
          settled = true
          clearTimeout(timer)
        })
      })
  }
}

/**
 * Create the client (not connected yet) and register its release in the scope first, so that whatever happens while
 * connecting (failure, timeout, interruption) the client is closed and stops reconnecting in the background. Then
 * connect and wait until the server answers, bounded by `connectTimeout`, in an interruptible region (an
 * `acquireRelease` acquisition is uninterruptible, and a timeout cannot cut an uninterruptible wait).
 */
const makeClient = (options: RedisOptions): Effect.Effect<RedisClientService, StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const where = describeOptions(options)
    const commandTimeout = Duration.decode(options.commandTimeout ?? DEFAULT_COMMAND_TIMEOUT)
    const connectTimeout = Duration.decode(options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT)
    const runtime = yield* Effect.runtime<never>()
    const log = (effect: Effect.Effect<void>) => Runtime.runFork(runtime)(Effect.annotateLogs(effect, { redis: where }))

    const common = {
      lazyConnect: true,
      // A down Redis fails a command at once instead of queueing it until the server is back.
      enableOfflineQueue: false,
      commandTimeout: Duration.toMillis(commandTimeout),
      connectTimeout: Duration.toMillis(connectTimeout),
      // Commands in flight when the connection drops fail at once (0 reconnect attempts kept for them)...
      maxRetriesPerRequest: 0,
      // ...and are never re-sent after a reconnect: a `begin` whose caller already saw a StoreError must not
      // claim a slot and take a lock later, owned by nobody.
      autoResendUnfulfilledCommands: false,
      retryStrategy: reconnectDelayMillis
    }
    const sentinel = options.sentinel
    const client = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          if (sentinel !== undefined) {
            return new IORedis({
              ...common,
              sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port })),
              name: sentinel.name,
              role: "master",
              sentinelPassword: reveal(sentinel.sentinelPassword),
              username: sentinel.username,
              password: reveal(sentinel.password),
              db: sentinel.db ?? 0,
              // A sentinel that does not answer must not stall the reconnect: bounded like any command, then the
              // next sentinel is asked.
              sentinelCommandTimeout: Duration.toMillis(commandTimeout),
              // Rounds over all sentinels when none answered: the same delays as a reconnect.
              sentinelRetryStrategy: reconnectDelayMillis,
              // No `+switch-master` subscription (ioredis' failover detector): its handler closes the connector, and
              // when that happens while a reconnect attempt is resolving the primary, ioredis 5.11 ends the client
              // for good (the connector's promise rejects -> status `end`, no more reconnects); seen here as a client
              // that never came back after a failover. Without it the client still follows a failover: a dead
              // primary drops the connection, and sentinels close the clients of an instance they demote (`CLIENT
              // KILL TYPE normal`); either way the next reconnect (within 1 s) asks the sentinels again, and a node
              // that is not a primary any more is refused by the role check.
              failoverDetector: false
            })
          }
          if (options.url === undefined) throw new Error("neither url nor sentinel given")
          return new IORedis(reveal(options.url)!, common)
        },
        catch: (cause) =>
          new StoreError({
            backend: "redis",
            operation: "connect",
            reason: `invalid options ${where}: ${messageOf(cause)}`
          })
      }),
      (client) => close(client, commandTimeout)
    )

    // Connection state changes are logged once per outage, not once per reconnect attempt.
    let lastError = "no answer"
    let lost = false
    let ready = false
    client.on("error", (error: unknown) => {
      lastError = messageOf(error)
      if (ready && !lost) {
        lost = true
        log(Effect.logWarning("redis connection lost").pipe(Effect.annotateLogs({ error: lastError })))
      }
    })
    client.on("ready", () => {
      if (lost) {
        lost = false
        log(Effect.logInfo("redis reconnected"))
      }
      ready = true
    })

    yield* Effect.async<void>((resume) => {
      if (client.status === "ready") return resume(Effect.void)
      const onReady = () => resume(Effect.void)
      client.once("ready", onReady)
      // The first attempt may fail (server not up yet); the retry strategy keeps trying until the deadline.
      client.connect().catch(() => undefined)
      return Effect.sync(() => client.removeListener("ready", onReady))
    }).pipe(
      Effect.interruptible,
      Effect.timeoutFail({
        duration: connectTimeout,
        onTimeout: () =>
          new StoreError({
            backend: "redis",
            operation: "connect",
            reason: `${where} not ready within ${Duration.format(connectTimeout)}: ${lastError}`
          })
      }),
      Effect.withClock(liveClock),
      (connecting) =>
        options.waitForConnection === false
          ? Effect.catchAll(connecting, (error) =>
            Effect.logWarning("redis not ready at start; connecting in the background").pipe(
              Effect.annotateLogs({ redis: where, error: error.reason })
            ))
          : connecting
    )
    yield* Effect.logDebug("redis connected").pipe(Effect.annotateLogs({ redis: where }))
    return fromClient(client, { keyPrefix: options.keyPrefix, commandTimeout })
  })

/**
 * `QUIT` (lets the server finish our replies), bounded; then drop the socket whatever happened. A finalizer runs
 * uninterruptibly, so the wait itself is made interruptible for the timeout to cut it.
 */
const close = (client: Client, bound: Duration.Duration): Effect.Effect<void> =>
  Effect.tryPromise(() => client.quit()).pipe(
    Effect.interruptible,
    Effect.timeout(bound),
    Effect.withClock(liveClock),
    Effect.ignore,
    Effect.ensuring(Effect.sync(() => client.disconnect()))
  )

/**
 * The client as a scoped resource: connected when the layer is built (failing with a `StoreError` if Redis does not
 * answer within `connectTimeout`), closed with `QUIT` when the layer's scope closes. After start-up the client
 * reconnects by itself for ever (see `reconnectDelayMillis`); while it is disconnected every command fails at once.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: RedisOptions): Layer.Layer<RedisClient, StoreError> =>
  Layer.scoped(RedisClient, make(options))

/**
 * The scoped constructor behind `layer`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: RedisOptions): Effect.Effect<RedisClientService, StoreError, Scope.Scope> =>
  makeClient(options)

/**
 * Run one client call through the `RedisClient` in context (see `RedisClientService.run`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const run = <A>(
  operation: string,
  f: (client: Client) => Promise<A>
): Effect.Effect<A, StoreError, RedisClient> => Effect.flatMap(RedisClient, (redis) => redis.run(operation, f))

// ---------------------------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------------------------

/**
 * Every key the scheduler writes, under the key prefix. `lock` and `status` are the `JobLockModel` keys of `xredis`
 * (shared with Go services using `xredis`); the others are this project's.
 *
 * @since 0.1.0
 * @category keys
 */
export const keys = (prefix: string) => ({
  /** The lock key (shared with `xredis`): value = owner token, expiry = lock TTL. */
  lock: (key: string) => `${prefix}:job:lock:${key}`,
  /** The status key (shared with `xredis`): value = status string, expiry = status TTL. */
  status: (jobName: string) => `${prefix}:job:status:${jobName}`,
  /** Slot claim for one fire time (epoch ms): at most one run per `(job, fireTime)` cluster-wide. */
  tick: (job: string, fireTime: number) => `${prefix}:job:tick:${job}:${fireTime}`,
  /** Newest claimed fire time (epoch ms), for misfire handling after a leader change. No expiry. */
  last: (job: string) => `${prefix}:job:last:${job}`,
  /** Fencing counter (INCR per started run). No expiry. */
  fence: (job: string) => `${prefix}:job:fence:${job}`,
  /** Run records, newest first (LPUSH + LTRIM), JSON of `RunRecord`. */
  runs: (job: string) => `${prefix}:job:runs:${job}`,
  /** Present while the job is paused cluster-wide. */
  paused: (job: string) => `${prefix}:job:paused:${job}`,
  /** The stored schedules: a hash of id -> spec JSON. */
  schedules: `${prefix}:job:schedules`,
  /** Each stored schedule's revision: a hash of id -> the version counter when it was written. */
  scheduleRevisions: `${prefix}:job:schedules:rev`,
  /** The ids of the stored schedules, a sorted set (score 0) read in id order for paging. */
  scheduleIds: `${prefix}:job:schedules:ids`,
  /** The schedules' version counter (INCR per change). */
  scheduleVersion: `${prefix}:job:schedules:version`,
  /** Scheduled runs counted per schedule (run limits): a hash of id -> count. */
  scheduleRuns: `${prefix}:job:schedules:runs`,
  /** The pub/sub channel on which the id of every changed schedule is published. */
  scheduleChannel: `${prefix}:job:schedules:changes`
})
