/**
 * What this node knows about the cluster, beyond its own scheduler:
 *
 * - `NodeInfo`: this node's identity as the operator sees it (node id, mode, build, the hash of its job definitions,
 *   the URL its HTTP API answers on).
 * - `layerPublisher` (nodes that take part in the election): while this node leads, it keeps a `LeaderRecord` in the
 *   `LeaderDirectory` (refreshed every `PUBLISH_EVERY`, kept `RECORD_TTL`), and deletes it when it stops leading or
 *   shuts down. Counts `leader_changes_total`.
 * - `layerDriftWatch` (every node): compares its job definitions' hash with the leader's record every `DRIFT_EVERY`;
 *   a difference is one WARN line when it starts (and one INFO line when it ends) and `scheduler_config_drift 1`.
 *
 * @since 0.1.0
 */
import * as HttpServer from "@effect/platform/HttpServer"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberHandle from "effect/FiberHandle"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as os from "node:os"
import { LeaderElection } from "../../LeaderElection.js"
import { LeaderDirectory, LeaderRecord } from "./Directory.js"

/**
 * This node, as the Leader RPC, the leader record and `build_info` show it.
 *
 * @since 0.1.0
 * @category tags
 */
export class NodeInfo extends Context.Tag("effect-job-scheduler/service/NodeInfo")<NodeInfo, {
  readonly nodeId: string
  readonly mode: string
  readonly version: string
  /** The hash of this node's job definitions (`configHash`). */
  readonly configHash: string
  /** `http.advertiseUrl` when configured; else the URL is made from the bound address. */
  readonly advertiseUrl: Option.Option<string>
}>() {}

/**
 * How often the leader rewrites its record. Short next to `RECORD_TTL`, so that two missed writes in a row (a slow
 * store) do not let the record lapse while the leader is alive.
 *
 * @since 0.1.0
 * @category constants
 */
export const PUBLISH_EVERY = Duration.seconds(2)

/**
 * How long a record outlives its last write: a leader that died without clearing it (kill -9) is forgotten after
 * this, and forwarding to it fails with `NoLeader` until the new leader writes its own (at once when it takes over).
 *
 * @since 0.1.0
 * @category constants
 */
export const RECORD_TTL = Duration.seconds(10)

/**
 * How often a node compares its job definitions with the leader's.
 *
 * @since 0.1.0
 * @category constants
 */
export const DRIFT_EVERY = Duration.seconds(5)

/**
 * Times this node became the leader.
 *
 * @since 0.1.0
 * @category metrics
 */
export const leaderChanges = Metric.counter("leader_changes_total", {
  description: "Times this node became the scheduler leader"
})

/**
 * 1 while this node's job definitions differ from the leader's (their hashes), else 0.
 *
 * @since 0.1.0
 * @category metrics
 */
export const configDrift = Metric.gauge("scheduler_config_drift", {
  description: "1 while this node's job definitions differ from the leader's"
})

/** JSON with object keys sorted and Durations as milliseconds, so that equal definitions hash equally. */
const canonical = (value: unknown): unknown => {
  if (Duration.isDuration(value)) return { ms: Duration.toMillis(value) }
  if (Array.isArray(value)) return value.map(canonical)
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(value).sort()) {
      const field = (value as Record<string, unknown>)[key]
      if (field !== undefined) out[key] = canonical(field)
    }
    return out
  }
  return value
}

/**
 * The hash of a set of job definitions (as decoded from the config): the first 16 hex digits of the SHA-256 of their
 * canonical JSON. Two nodes with the same jobs, triggers and options have the same hash, whatever the key order or
 * duration spelling in their files.
 *
 * @since 0.1.0
 * @category utils
 */
export const configHash = (jobs: Readonly<Record<string, unknown>>): string =>
  createHash("sha256").update(JSON.stringify(canonical(jobs))).digest("hex").slice(0, 16)

/**
 * The URL of this node's HTTP API: the advertised one, else `http://<bound host>:<bound port>` (a wildcard host is
 * replaced by the machine's host name, which other nodes can resolve more often than `0.0.0.0`).
 *
 * @since 0.1.0
 * @category utils
 */
export const selfUrl: Effect.Effect<string, never, NodeInfo | HttpServer.HttpServer> = Effect.flatMap(
  NodeInfo,
  (info) =>
    Option.match(info.advertiseUrl, {
      onSome: Effect.succeed,
      onNone: () =>
        HttpServer.addressWith((address) =>
          Effect.succeed(
            address._tag === "UnixAddress"
              ? `http+unix://${address.path}`
              : `http://${urlHost(address.hostname)}:${address.port}`
          )
        )
    })
)

const urlHost = (host: string): string =>
  host === "0.0.0.0" || host === "::" || host === "" ? os.hostname() : host.includes(":") ? `[${host}]` : host

/**
 * While this node leads, keep its record in the directory (see the module doc).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPublisher: Layer.Layer<
  never,
  never,
  LeaderElection | LeaderDirectory | NodeInfo | HttpServer.HttpServer
> = Layer.scopedDiscard(Effect.gen(function*() {
  const election = yield* LeaderElection
  const directory = yield* LeaderDirectory
  const info = yield* NodeInfo
  const url = yield* selfUrl
  const handle = yield* FiberHandle.make<void, never>()
  let current: LeaderRecord | undefined

  const refresh = (record: LeaderRecord) =>
    directory.publish(record, RECORD_TTL).pipe(
      Effect.catchAll((error) =>
        Effect.logWarning("leader record not written").pipe(
          Effect.annotateLogs({ node: info.nodeId, error: error.message })
        )
      ),
      Effect.repeat(Schedule.spaced(PUBLISH_EVERY))
    )
  const clear = Effect.suspend(() => {
    const record = current
    current = undefined
    return record === undefined ? Effect.void : directory.clear(record).pipe(Effect.ignore)
  })

  yield* Effect.addFinalizer(() => Effect.zipRight(FiberHandle.clear(handle), clear))
  yield* election.changes.pipe(
    Stream.runForEach((state) =>
      state._tag === "Leader"
        ? Effect.gen(function*() {
          if (current !== undefined && current.term === state.term) return
          const now = yield* Clock.currentTimeMillis
          current = new LeaderRecord({
            nodeId: info.nodeId,
            url,
            since: new Date(now).toISOString(),
            term: state.term,
            version: info.version,
            configHash: info.configHash
          })
          yield* Metric.increment(leaderChanges)
          yield* FiberHandle.run(handle, refresh(current))
        })
        : Effect.zipRight(FiberHandle.clear(handle), clear)
    ),
    Effect.forkScoped
  )
}))

/**
 * Compare this node's job definitions with the leader's, all the time (see the module doc).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDriftWatch: Layer.Layer<never, never, LeaderDirectory | NodeInfo> = Layer.scopedDiscard(
  Effect.gen(function*() {
    const directory = yield* LeaderDirectory
    const info = yield* NodeInfo
    let drifting = false
    yield* Metric.set(configDrift, 0)
    const check = Effect.flatMap(directory.current, (record) =>
      Effect.gen(function*() {
        const differs = Option.isSome(record) && record.value.configHash !== info.configHash
        if (differs && !drifting) {
          yield* Effect.logWarning("job definitions differ from the leader's").pipe(
            Effect.annotateLogs({
              node: info.nodeId,
              config_hash: info.configHash,
              leader: record.value.nodeId,
              leader_config_hash: record.value.configHash
            })
          )
        } else if (!differs && drifting && Option.isSome(record)) {
          yield* Effect.logInfo("job definitions match the leader's again").pipe(
            Effect.annotateLogs({ node: info.nodeId, leader: record.value.nodeId, config_hash: info.configHash })
          )
        }
        // No record (no leader, or the store down): the last answer stands.
        if (Option.isSome(record)) {
          drifting = differs
          yield* Metric.set(configDrift, differs ? 1 : 0)
        }
      }))
    yield* check.pipe(
      Effect.catchAll(() => Effect.void),
      Effect.repeat(Schedule.spaced(DRIFT_EVERY)),
      Effect.forkScoped
    )
  })
)
