/**
 * Test harness: Redis with Sentinel on loopback. A primary and a replica (`redis-server`, persistence off, from
 * `startRedis`) and three sentinels (`redis-sentinel`, or `redis-server --sentinel` when that binary is missing) on
 * free 127.0.0.1 ports, with short failover timings: the primary is subjectively down after `downAfter` (default 1 s),
 * a quorum of two agrees, one sentinel promotes the replica. Everything is killed and the directories removed when
 * the scope closes.
 *
 * `startSentinels` returns once the sentinels know the replica and each other (they find each other through the
 * primary's hello channel, every 2 s) and the replica is in sync, so that a failover can happen at once.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { findExecutable, freePort, type RedisServer, spawnManaged, startRedis, waitUntil } from "./redis.js"

const INSTALL_HINT = "install it with `apt-get update && apt-get install -y redis-sentinel redis-server`"

/** Sentinels find each other every 2 s (hello messages) and the replica within a second; 20 s covers a loaded CI. */
const DISCOVERY_TIMEOUT = Duration.seconds(20)

/** The name the sentinels monitor the primary under. */
export const PRIMARY_NAME = "ejs-primary"

/**
 * @since 0.1.0
 * @category harness
 */
export interface SentinelSetup {
  readonly name: string
  /** The sentinels' addresses, for `redis.sentinels`. */
  readonly sentinels: ReadonlyArray<{ readonly host: string; readonly port: number }>
  /** The primary and the replica as started (the roles change on a failover; see `primaryPort`). */
  readonly primary: RedisServer
  readonly replica: RedisServer
  /** `down-after-milliseconds` and `failover-timeout` the sentinels were started with. */
  readonly downAfter: Duration.Duration
  readonly failoverTimeout: Duration.Duration
  /** The primary's port as the first sentinel that answers reports it now. */
  readonly primaryPort: () => Effect.Effect<number | undefined>
  /**
   * The failovers announced so far (`+switch-master` on any sentinel, each subscribed from the start), in order, each
   * with the wall time its first announcement arrived: `{ at, from, to }` ports.
   */
  readonly switches: () => ReadonlyArray<{ readonly at: number; readonly from: number; readonly to: number }>
  /** Until the replica's replication offset equals the primary's (nothing written to one is missing on the other). */
  readonly waitInSync: (timeout?: Duration.DurationInput) => Effect.Effect<void>
}

/** A short-lived client for one query; `lazyConnect` so that a dead server is one failed command, not a retry loop. */
const query = <A>(port: number, f: (client: Redis) => Promise<A>): Effect.Effect<A | undefined> =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const client = new Redis({
        host: "127.0.0.1",
        port,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null
      })
      // A refused connection is the answer "not up" here, not an event worth printing.
      client.on("error", () => undefined)
      return client
    }),
    (client) =>
      Effect.tryPromise(() => client.connect().then(() => f(client))).pipe(
        Effect.timeout("1 second"),
        Effect.orElseSucceed(() => undefined)
      ),
    (client) => Effect.sync(() => client.disconnect())
  )

const replicationOffset = (port: number) =>
  query(port, async (client) => {
    const info = await client.info("replication")
    const role = /role:(\w+)/.exec(info)?.[1]
    const offset = /master_repl_offset:(\d+)/.exec(info)?.[1]
    const link = /master_link_status:(\w+)/.exec(info)?.[1]
    return { role, offset: offset === undefined ? undefined : Number(offset), link }
  })

/**
 * Starts a primary, a replica and three sentinels; returns once they are ready to fail over.
 *
 * @since 0.1.0
 * @category harness
 */
export const startSentinels = (options: {
  readonly downAfter?: Duration.DurationInput
  readonly failoverTimeout?: Duration.DurationInput
} = {}): Effect.Effect<SentinelSetup, never, Scope.Scope> =>
  Effect.gen(function*() {
    const downAfter = Duration.decode(options.downAfter ?? Duration.seconds(1))
    const failoverTimeout = Duration.decode(options.failoverTimeout ?? Duration.seconds(3))
    const sentinelBinary = yield* findExecutable("redis-sentinel", INSTALL_HINT).pipe(
      Effect.map((bin) => ({ bin, args: [] as ReadonlyArray<string> })),
      Effect.catchAllDefect(() =>
        Effect.map(findExecutable("redis-server", INSTALL_HINT), (bin) => ({ bin, args: ["--sentinel"] }))
      )
    )
    const primary = yield* startRedis()
    const replica = yield* startRedis({ extraArgs: ["--replicaof", "127.0.0.1", String(primary.port)] })
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ejs-sentinel-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )

    const sentinels: Array<{ host: string; port: number }> = []
    for (let i = 0; i < 3; i++) {
      const port = yield* freePort
      const file = path.join(dir, `sentinel-${i}.conf`)
      // The sentinel rewrites its config file (known replicas, sentinels, epochs), so each has its own, writable.
      fs.writeFileSync(
        file,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          "protected-mode no",
          `sentinel monitor ${PRIMARY_NAME} 127.0.0.1 ${primary.port} 2`,
          `sentinel down-after-milliseconds ${PRIMARY_NAME} ${Duration.toMillis(downAfter)}`,
          `sentinel failover-timeout ${PRIMARY_NAME} ${Duration.toMillis(failoverTimeout)}`,
          `sentinel parallel-syncs ${PRIMARY_NAME} 1`,
          ""
        ].join("\n")
      )
      const proc = yield* spawnManaged(sentinelBinary.bin, [file, ...sentinelBinary.args], dir)
      yield* Effect.addFinalizer(() => proc.terminate())
      yield* waitUntil(
        `sentinel on port ${port}`,
        async () => proc.hasExited() || (await Effect.runPromise(query(port, (c) => c.ping()))) === "PONG",
        { timeout: DISCOVERY_TIMEOUT }
      )
      if (proc.hasExited()) return yield* Effect.dieMessage(`sentinel on port ${port} exited:\n${proc.output()}`)
      sentinels.push({ host: "127.0.0.1", port })
    }

    // Ready when every sentinel knows the replica and the two other sentinels, and the replica is in sync.
    yield* waitUntil("sentinels discovering each other and the replica", async () => {
      const views = await Promise.all(sentinels.map(({ port }) =>
        Effect.runPromise(query(port, async (client) => {
          const replicas = (await client.call("SENTINEL", "REPLICAS", PRIMARY_NAME)) as ReadonlyArray<unknown>
          const peers = (await client.call("SENTINEL", "SENTINELS", PRIMARY_NAME)) as ReadonlyArray<unknown>
          return replicas.length === 1 && peers.length === 2
        }))
      ))
      const link = await Effect.runPromise(replicationOffset(replica.port))
      return views.every((ok) => ok === true) && link?.link === "up"
    }, { timeout: DISCOVERY_TIMEOUT, interval: Duration.millis(100) })

    // Watch the failovers from every sentinel: the one that leads the failover announces +switch-master when the
    // promotion is decided, the others only when its hello messages reach them (up to 2 s later), after a client may
    // already have moved. The first announcement of a switch is when it was decided.
    const switches: Array<{ at: number; from: number; to: number }> = []
    yield* Effect.forEach(sentinels, ({ port }) =>
      Effect.gen(function*() {
        const watcher = yield* Effect.acquireRelease(
          Effect.sync(() => new Redis({ host: "127.0.0.1", port, lazyConnect: true })),
          (client) => Effect.sync(() => client.disconnect())
        )
        watcher.on("error", () => undefined)
        watcher.on("message", (_channel: string, message: string) => {
          // "<name> <old ip> <old port> <new ip> <new port>"
          const parts = message.split(" ")
          const from = Number(parts[2])
          const to = Number(parts[4])
          if (!switches.some((s) => s.from === from && s.to === to)) switches.push({ at: Date.now(), from, to })
        })
        yield* Effect.promise(() => watcher.connect().then(() => watcher.subscribe("+switch-master")))
      }))

    const primaryPort = () =>
      Effect.gen(function*() {
        for (const { port } of sentinels) {
          const address = yield* query(
            port,
            (client) =>
              client.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", PRIMARY_NAME) as Promise<ReadonlyArray<string> | null>
          )
          if (address !== undefined && address !== null) return Number(address[1])
        }
        return undefined
      })

    const waitInSync = (timeout: Duration.DurationInput = Duration.seconds(5)) =>
      waitUntil("the replica in sync with the primary", async () => {
        const [p, r] = await Promise.all([
          Effect.runPromise(replicationOffset(primary.port)),
          Effect.runPromise(replicationOffset(replica.port))
        ])
        return p?.offset !== undefined && p.offset === r?.offset && r.link === "up"
      }, { timeout, interval: Duration.millis(5) })

    return {
      name: PRIMARY_NAME,
      sentinels,
      primary,
      replica,
      downAfter,
      failoverTimeout,
      primaryPort,
      switches: () => switches,
      waitInSync
    } satisfies SentinelSetup
  })
