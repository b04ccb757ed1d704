/**
 * Leader election on etcd, with self-fencing.
 *
 * Each node holds one lease and, under it, one key `{electionKey}/{leaseId hex}` whose value is its node id; the key
 * with the lowest create revision leads and that revision is its term. The campaign is written on etcd's KV, lease
 * and watch primitives rather than etcd3's `Election`, which tells a leader it lost only 2 x TTL after its last
 * acknowledged keepalive, hides its lease and emits each error twice (docs/design.md §8).
 *
 * Safety: the lease's expiry on the server is at least (send time of the last acknowledged grant or keepalive) + TTL,
 * because etcd starts the TTL when it handles the request, after we sent it. So this node treats itself as leader
 * only until `sentAt + TTL - margin`, measured on the monotonic clock; `isLeader` checks that deadline itself, so a
 * node that wakes from SIGSTOP answers `false` before any background fiber runs, and a fence fiber publishes the
 * step-down when the deadline passes even if etcd says nothing. Another node can lead only after the lease expired
 * (or was revoked), hence after this node stopped leading.
 *
 * The layer is **real-time only**: the deadline is read from `performance.now()`, not from effect's `Clock`, so that
 * wall-clock jumps do not matter; it does not follow a `TestClock`.
 *
 * Recovery: after a lost lease, a passed deadline or an etcd outage the node steps down, revokes its old lease
 * (retrying until etcd answers, so that a lease restored by an etcd restart does not block the election for a TTL),
 * takes a new lease and campaigns again, forever, with a bounded backoff. On scope close it resigns (revokes the
 * lease) so that a follower leads within about one round trip.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { EtcdLeaseInvalidError } from "etcd3"
import type { Etcd3, IKeyValue, Lease, Watcher } from "etcd3"
import { performance } from "node:perf_hooks"
import { ElectionError } from "../Errors.js"
import { EtcdClient } from "../Etcd.js"
import { follower, leader, LeaderElection, type Leadership } from "../LeaderElection.js"

/**
 * The options of the etcd election: this node's id, the election key prefix, the lease TTL and the step-down margin.
 *
 * @since 0.1.0
 * @category models
 */
export interface EtcdElectionOptions {
  /** This node's id, stored as the value of its election key (what followers report as `leader`). */
  readonly nodeId: string
  /** Key prefix of the election (default `user/scheduler`); nodes campaign under `{electionKey}/`. */
  readonly electionKey?: string | undefined
  /**
   * Lease TTL (default 10 seconds, at least 2 seconds, rounded up to whole seconds: etcd leases have a 1-second
   * resolution, and with etcd's default timers a shorter TTL is silently raised to about 2 s anyway). A leader that
   * stops (crash, freeze, partition) is replaced within about one TTL.
   */
  readonly leaseTtl?: Duration.DurationInput | undefined
  /**
   * How long before the earliest possible lease expiry the leader steps down (default max(500 ms, TTL / 5)); must
   * be more than zero and at most TTL / 2.
   */
  readonly margin?: Duration.DurationInput | undefined
}

/**
 * Options after defaults and validation.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolvedEtcdElectionOptions {
  readonly nodeId: string
  readonly electionKey: string
  readonly ttlSeconds: number
  readonly margin: Duration.Duration
  readonly keepaliveInterval: Duration.Duration
}

/** The shortest lease TTL accepted: etcd raises shorter ones to ~2 s with its default timers (docs/design.md §8). */
const MIN_TTL = Duration.seconds(2)

/**
 * The default margin: max(500 ms, TTL / 5). The margin is the time the node has, between stopping to lead and the
 * earliest moment its lease can expire on the server, to notice the deadline and let the scheduler interrupt its
 * running jobs. 500 ms covers a busy event loop or a GC pause delaying the fence fiber and the jobs' interruption;
 * TTL / 5 scales it with the TTL (2 s at the default 10 s TTL). It also absorbs any rate difference between this
 * host's monotonic clock and etcd's, which is orders of magnitude smaller.
 */
const defaultMargin = (ttl: Duration.Duration): Duration.Duration =>
  Duration.max(Duration.millis(500), Duration.divide(ttl, 5).pipe(Option.getOrElse(() => Duration.zero)))

/**
 * Resolves defaults and validates: `Left(reason)` for a TTL below 2 seconds, a margin out of range, or an empty node
 * id or election key. The service config calls this to report a field error before anything connects.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveOptions = (options: EtcdElectionOptions): Either.Either<ResolvedEtcdElectionOptions, string> => {
  if (options.nodeId === "") return Either.left("nodeId must not be empty")
  const electionKey = (options.electionKey ?? "user/scheduler").replace(/\/+$/, "")
  if (electionKey === "") return Either.left("electionKey must not be empty")
  const requested = Duration.decodeUnknown(options.leaseTtl ?? "10 seconds")
  if (Option.isNone(requested) || !Duration.isFinite(requested.value)) {
    return Either.left(`leaseTtl must be a finite duration, got ${String(options.leaseTtl)}`)
  }
  if (Duration.lessThan(requested.value, MIN_TTL)) {
    return Either.left(`leaseTtl must be at least 2 seconds, got ${Duration.format(requested.value)}`)
  }
  const ttlSeconds = Math.ceil(Duration.toSeconds(requested.value))
  const ttl = Duration.seconds(ttlSeconds)
  const margin = options.margin === undefined ? defaultMargin(ttl) : Duration.decodeUnknown(options.margin).pipe(
    Option.getOrElse(() => Duration.infinity)
  )
  if (Duration.isZero(margin) || Duration.greaterThan(margin, Duration.unsafeDivide(ttl, 2))) {
    return Either.left(`margin must be more than zero and at most leaseTtl / 2, got ${Duration.format(margin)}`)
  }
  return Either.right({
    nodeId: options.nodeId,
    electionKey,
    ttlSeconds,
    margin,
    // etcd's own clients renew every TTL / 3: two renewals can fail before the deadline passes.
    keepaliveInterval: Duration.unsafeDivide(ttl, 3)
  })
}

/** After a failed keepalive, retry this soon instead of waiting a whole interval: the deadline is near. */
const KEEPALIVE_RETRY = Duration.millis(100)
/** Pause before the watch + range loop retries after an error (etcd unreachable): short, the fence guards safety. */
const OBSERVE_RETRY = Duration.millis(200)
/**
 * Backoff between failed revokes of an old lease: 100 ms doubling to at most 1 s, jittered so that nodes do not retry
 * in lockstep. 1 s caps how long recovery waits after etcd comes back.
 */
const revokeBackoff = Schedule.exponential("100 millis").pipe(
  Schedule.union(Schedule.spaced("1 second")),
  Schedule.jittered
)

const now = (): number => performance.now()

const isLeaseInvalid = (error: ElectionError): boolean => error.cause instanceof EtcdLeaseInvalidError

const sameLeadership = (a: Leadership, b: Leadership): boolean =>
  a._tag === "Leader"
    ? b._tag === "Leader" && a.term === b.term
    : b._tag === "Follower" && Option.getEquivalence((x: string, y: string) => x === y)(a.leader, b.leader)

/** Why a session (one lease) ended. */
type SessionEnd = "lease lost" | "deadline passed"

/**
 * Builds the election in the current scope: background fibers are forked in it and it resigns when it closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: ResolvedEtcdElectionOptions
): Effect.Effect<LeaderElection["Type"], never, EtcdClient | Scope.Scope> =>
  Effect.gen(function*() {
    const etcd = yield* EtcdClient
    const { electionKey, keepaliveInterval, margin, nodeId, ttlSeconds } = options
    const prefix = `${electionKey}/`
    const ttlMs = ttlSeconds * 1000
    const marginMs = Duration.toMillis(margin)

    // The mutable state behind `isLeader` and `changes`. Plain fields, changed only in synchronous steps, so that a
    // fiber never sees "leading" together with a passed deadline or a finished session.
    const state = {
      leading: false,
      term: 0,
      leader: Option.none<string>(),
      /** Monotonic ms after which this node must not act as leader. */
      deadline: 0,
      /** The session (lease) whose loops may still step up; 0 when none. */
      session: 0,
      stopped: false
    }
    /** The latest lease not known to be revoked: the one to revoke on resign. */
    let currentLease: Lease | undefined
    /** Our campaign key in the current session, if it was written. */
    let currentKey: string | undefined
    let sessions = 0

    const ref = yield* SubscriptionRef.make<Leadership>(follower())
    const publishLock = yield* Effect.makeSemaphore(1)
    /** Publishes the state as it is now (never a stale decision), and only when it differs from the last one. */
    const publish = publishLock.withPermits(1)(Effect.gen(function*() {
      const next = state.leading ? leader(state.term) : follower(Option.getOrUndefined(state.leader))
      const previous = yield* SubscriptionRef.get(ref)
      if (sameLeadership(previous, next)) return
      yield* SubscriptionRef.set(ref, next)
      if (next._tag === "Leader") {
        yield* Effect.logInfo("leadership acquired").pipe(Effect.annotateLogs("term", next.term))
      } else if (previous._tag === "Leader") {
        yield* Effect.logInfo("leadership released").pipe(
          Effect.annotateLogs("leader", Option.getOrElse(next.leader, () => "unknown"))
        )
      }
    }))

    const stepDown = (session: number) =>
      Effect.suspend(() => {
        if (state.session === session) state.session = 0
        state.leading = false
        state.leader = Option.none()
        return publish
      })

    const revokeOnce = (lease: Lease, timeout?: Duration.DurationInput) =>
      etcd.call("revoke", () => lease.revoke(), timeout)

    /**
     * Revokes `lease`, retrying until etcd answers: a lease that outlived a failed revoke (etcd down, or restored by
     * an etcd restart) would otherwise hold the election for a whole TTL after etcd is back.
     */
    const revokeUntilDone = (lease: Lease) =>
      revokeOnce(lease).pipe(
        Effect.tapError((error) => Effect.logDebug("revoking the old lease failed; retrying", error.message)),
        Effect.retry(revokeBackoff),
        Effect.tap(() => Effect.sync(() => currentLease === lease ? currentLease = undefined : undefined))
      )

    /** Renews the lease every interval, moving the deadline; ends the session when etcd says the lease is gone. */
    const keepaliveLoop = (session: number, lease: Lease): Effect.Effect<SessionEnd> =>
      Effect.gen(function*() {
        let wait: Duration.Duration = keepaliveInterval
        while (true) {
          // Never wait past half of what is left before the deadline: a grant answered late (etcd slow or just back
          // from a partition) leaves less than a whole interval, and renewing only after the deadline would step a
          // fresh leader down at once.
          const halfLeft = Duration.millis(Math.max(0, (state.deadline - now()) / 2))
          yield* Effect.sleep(Duration.min(wait, halfLeft))
          const sentAt = now()
          const result = yield* Effect.either(etcd.call("keepalive", () => lease.keepaliveOnce(), keepaliveInterval))
          if (Either.isRight(result)) {
            // etcd reports the TTL it renewed to; never trust more than we asked for.
            const renewedMs = Math.min(ttlMs, Number(result.right.TTL) * 1000)
            state.deadline = Math.max(state.deadline, sentAt + renewedMs - marginMs)
            wait = keepaliveInterval
          } else if (isLeaseInvalid(result.left)) {
            yield* stepDown(session)
            return "lease lost" as const
          } else {
            yield* Effect.logDebug("lease keepalive failed", result.left.message)
            wait = KEEPALIVE_RETRY
          }
        }
      })

    /** Wakes at the deadline; ends the session if it was not moved (no acknowledged keepalive in time). */
    const fenceLoop = (session: number): Effect.Effect<SessionEnd> =>
      Effect.gen(function*() {
        while (true) {
          const remaining = state.deadline - now()
          if (remaining <= 0) {
            // `isLeader` already answers false; publish at once, before the session's other fibers are torn down.
            yield* stepDown(session)
            return "deadline passed" as const
          }
          yield* Effect.sleep(Duration.millis(remaining))
        }
      })

    /**
     * A prefix watcher whose every event, reconnection or error wakes the observer through `wake`. The deletion of our
     * own key stops us leading right in the event callback, before any round trip: stepping down early is always safe.
     */
    const watchPrefix = (client: Etcd3, session: number, key: string) =>
      Effect.acquireRelease(
        Effect.gen(function*() {
          const wake = yield* Queue.sliding<void>(1)
          const poke = () => Queue.unsafeOffer(wake, undefined)
          const watcher: Watcher = client.watch().prefix(prefix).watcher()
          const status = { broken: false, connected: false }
          // Listeners go on before anything can be emitted: an unheard "error" event would crash the process.
          watcher.on("error", () => {
            status.broken = true
            poke()
          })
          watcher.on("data", poke)
          watcher.on("delete", (kv: IKeyValue) => {
            if (kv.key.toString() !== key) return
            if (state.session === session) state.session = 0
            state.leading = false
          })
          watcher.on("connected", () => {
            status.connected = true
            poke()
          })
          watcher.on("disconnected", poke)
          return { watcher, wake, status }
        }),
        ({ watcher }) =>
          Effect.sync(() => {
            for (const event of ["data", "delete", "connected", "disconnected"]) watcher.removeAllListeners(event)
            // Not awaited: on a frozen etcd the cancel waits for an answer, and the session must end (and step down)
            // now. The promise settles when etcd answers or the client closes; the "error" listener stays on.
            watcher.cancel().catch(() => undefined)
          })
      ).pipe(
        Effect.tap(({ status, wake }) =>
          // Wait for the watch to be established, so that the first range below cannot miss a change.
          Queue.take(wake).pipe(
            Effect.repeat({ until: () => status.connected || status.broken }),
            Effect.timeoutFail({
              duration: etcd.commandTimeout,
              onTimeout: () => new ElectionError({ operation: "watch", reason: "watch not established in time" })
            }),
            Effect.zipRight(Effect.suspend(() =>
              status.broken ? new ElectionError({ operation: "watch", reason: "watch cancelled by etcd" }) : Effect.void
            ))
          )
        )
      )

    /**
     * Ranges the prefix (lowest create revision first) on every watch event and at least every keepalive interval
     * (a watch on a cut connection may stay silent), steps up when our key is first, and ends the session when our
     * key is gone.
     *
     * A follower steps up after a range, not on the delete event itself, while a leader steps down on the event (see
     * `watchPrefix`): when a leader's lease is revoked behind its back (an operator, a test) both learn it from the
     * same event, and the follower's extra round trip (~1 ms on loopback) is what lets the old leader stop first.
     * That case is outside the fencing guarantee (its window is one event delivery); resign, expiry, freeze and
     * partition are inside it.
     */
    const observeLoop = (session: number, key: string, campaigned: { value: boolean }): Effect.Effect<SessionEnd> =>
      Effect.scoped(Effect.gen(function*() {
        const { status, wake } = yield* watchPrefix(etcd.client, session, key)
        while (true) {
          const range = yield* etcd.call(
            "range",
            (client) =>
              client.getAll().prefix(prefix).sort("Create", "Ascend").exec()
          )
          campaigned.value = true
          const mine = range.kvs.find((kv) => kv.key.toString() === key)
          const first = range.kvs[0]
          if (mine === undefined || first === undefined) {
            yield* stepDown(session)
            return "lease lost" as const
          }
          if (first === mine) {
            const term = Number(mine.create_revision)
            // Step up only within a live session and before the deadline (checked in the same synchronous step).
            if (state.session === session && now() < state.deadline) {
              state.leading = true
              state.term = term
              state.leader = Option.some(nodeId)
            }
          } else {
            state.leading = false
            state.leader = Option.some(first.value.toString())
          }
          yield* publish
          yield* Effect.raceFirst(Queue.take(wake), Effect.sleep(keepaliveInterval))
          if (status.broken) {
            return yield* new ElectionError({ operation: "watch", reason: "watch cancelled by etcd" })
          }
        }
      })).pipe(
        Effect.tapError((error) => Effect.logDebug("election watch failed; retrying", error.message)),
        Effect.retry(Schedule.spaced(OBSERVE_RETRY)),
        // The schedule never ends, so no error comes out; this only tells the compiler.
        Effect.orDie
      )

    /** One lease: grant, put our key, then keep it alive and watch the election until the session ends. */
    const runSession = (session: number, lease: Lease, sentAt: number, campaigned: { value: boolean }) =>
      Effect.gen(function*() {
        const id = yield* etcd.call("grant", () => lease.grant())
        const key = `${prefix}${BigInt(id).toString(16)}`
        state.deadline = sentAt + ttlMs - marginMs
        state.session = session
        currentKey = key
        yield* etcd.call(
          "campaign",
          (client) => client.if(key, "Create", "==", 0).then(client.put(key).value(nodeId).lease(id)).commit()
        )
        return yield* Effect.raceAll([
          keepaliveLoop(session, lease),
          fenceLoop(session),
          observeLoop(session, key, campaigned)
        ])
      })

    const campaignForever = Effect.gen(function*() {
      let failures = 0
      while (!state.stopped) {
        const session = ++sessions
        const campaigned = { value: false }
        const sentAt = now()
        // No etcd3 auto keepalive: we renew ourselves and remember when each renewal was sent.
        const lease = etcd.client.lease(ttlSeconds, { autoKeepAlive: false })
        currentLease = lease
        const end = yield* Effect.either(runSession(session, lease, sentAt, campaigned))
        yield* stepDown(session)
        if (state.stopped) break
        if (Either.isLeft(end)) {
          // Once per outage at warning level; the retries after it (every second at most) at debug level.
          yield* (failures === 0 ? Effect.logWarning : Effect.logDebug)("election session failed", end.left.message)
        } else {
          yield* Effect.logWarning(`election session ended: ${end.right}; campaigning again`)
        }
        yield* revokeUntilDone(lease)
        if (campaigned.value && Either.isRight(end)) {
          failures = 0
        } else {
          // Nothing worked (etcd down or refusing): back off, 100 ms doubling up to 1 s (recovery within a second of
          // etcd coming back, without hammering it meanwhile).
          failures++
          yield* Effect.sleep(Duration.millis(Math.min(1000, 100 * 2 ** Math.min(failures - 1, 4))))
        }
      }
    })

    /**
     * Resign: stop leading, then delete our key, then revoke the lease, each in bounded time; if etcd is down, log
     * and go on. The delete is what followers wait for: etcd answers a plain key delete sooner than a lease revoke
     * (measured on loopback: 3-7 ms, against 10-14 ms for the revoke, and 5-12 ms for the delete when both are sent
     * at once), so it goes out alone first; the revoke follows so that nothing of the session outlives it.
     */
    const resign = Effect.suspend(() => {
      state.stopped = true
      state.session = 0
      state.leading = false
      state.leader = Option.none()
      const lease = currentLease
      const key = currentKey
      const warn = (error: ElectionError) =>
        Effect.logWarning(
          "resign failed: the lease expires after its TTL (or, if etcd restarts first, a TTL after that)",
          error.message
        )
      // `isLeader` is false from here on: the delete need not wait for the published change (nor its log line).
      const deleteKey = key === undefined
        ? Effect.void
        : etcd.call("resign", (client) => client.delete().key(key).exec()).pipe(
          Effect.asVoid,
          Effect.catchAll((error) => Effect.logDebug("deleting the election key failed", error.message))
        )
      const revoke = lease === undefined ? Effect.void : revokeOnce(lease).pipe(
        Effect.tap(() => Effect.logInfo("resigned")),
        Effect.catchAll(warn)
      )
      return Effect.zip(Effect.zipRight(deleteKey, revoke), publish, { concurrent: true })
    })

    yield* Effect.forkScoped(campaignForever.pipe(Effect.catchAllCause((cause) =>
      // Not expected (every failure above is retried); if it happens the node stays a follower, loudly.
      Effect.logError("election loop died", cause)
    )))
    // Added after the fork, so it runs before the campaign fiber is interrupted (finalizers run in reverse order):
    // the revoke goes out first, without waiting for the session's fibers to be torn down, and `state.stopped`
    // keeps the campaign loop from taking a new lease meanwhile.
    yield* Effect.addFinalizer(() => resign)

    return LeaderElection.of({
      nodeId,
      changes: ref.changes,
      isLeader: Effect.sync(() => state.leading && !state.stopped && now() < state.deadline)
    })
  }).pipe(Effect.annotateLogs({ nodeId: options.nodeId, electionKey: options.electionKey }))

/**
 * The etcd election as a layer. Invalid options (a TTL below 2 seconds, a bad margin) make the layer die with an
 * `ElectionError` naming the problem; call `resolveOptions` first to report them as configuration errors.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: EtcdElectionOptions): Layer.Layer<LeaderElection, never, EtcdClient> =>
  Layer.scoped(
    LeaderElection,
    Either.match(resolveOptions(options), {
      onLeft: (reason) => Effect.die(new ElectionError({ operation: "configure", reason })),
      onRight: make
    })
  )
