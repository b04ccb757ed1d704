/**
 * Test harness: a real single-member `etcd` (`startEtcd`), or a three- or five-member cluster (`startEtcdCluster`), on
 * free 127.0.0.1 ports with fresh data dirs and fast raft timers, killed (and the data dirs removed) when the scope
 * closes. Faults per member: `kill` (SIGKILL), `restart` (same ports and data dir), `pause` (SIGSTOP), `resume`
 * (SIGCONT).
 *
 * Generic on purpose: the in-process election tests, the multi-process tests and the benchmark all use it.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

/** A running test etcd. */
export interface EtcdServer {
  /** Client URL, e.g. `http://127.0.0.1:40123`. */
  readonly endpoint: string
  readonly clientPort: number
  readonly peerPort: number
  readonly dataDir: string
  /** The current process id (changes on `restart`), for tests that signal it themselves. */
  readonly pid: () => number | undefined
  /** SIGKILL, then wait for the process to exit. A no-op when it is not running. */
  readonly kill: () => Effect.Effect<void>
  /** Kill (if running), then start again on the same ports and data dir and wait until healthy. */
  readonly restart: () => Effect.Effect<void>
  /** SIGSTOP: the process keeps its sockets open but answers nothing (a frozen etcd). */
  readonly pause: () => Effect.Effect<void>
  /** SIGCONT. */
  readonly resume: () => Effect.Effect<void>
}

const INSTALL_HINT = "etcd not found: install it with `apt-get update && apt-get install -y etcd-server`"

/** etcd with a fresh data dir is healthy in ~80 ms here; 15 s leaves room for a loaded 2-core CI machine. */
const HEALTH_TIMEOUT = Duration.seconds(15)
const HEALTH_POLL_MS = 20
/** Lines of etcd's output kept for the error message when it does not become healthy. */
const LOG_TAIL_LINES = 40

const findOnPath = (name: string): string | undefined => {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue
    const candidate = path.join(dir, name)
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      return candidate
    } catch {
      // not in this directory
    }
  }
  return undefined
}

/**
 * A port that was free a moment ago: listen on port 0, read the port, close. Another process could take it before
 * etcd binds it; the window is tiny and a clash shows up as etcd failing to start, with its log in the message.
 */
export const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.once("error", (error) => resume(Effect.die(error)))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const isHealthy = (endpoint: string): Effect.Effect<boolean> =>
  Effect.tryPromise(async (signal) => {
    const response = await fetch(`${endpoint}/health`, { signal })
    if (!response.ok) return false
    const body = await response.json() as { health?: unknown }
    return body.health === "true" || body.health === true
  }).pipe(
    // A single probe must not hang on a frozen or half-started process.
    Effect.timeout("1 second"),
    Effect.orElseSucceed(() => false)
  )

const waitExit = (child: ChildProcess): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    const onExit = () => resume(Effect.void)
    child.once("exit", onExit)
    return Effect.sync(() => child.off("exit", onExit))
  })

/** Options for `startEtcd`. */
export interface EtcdServerOptions {
  /** More command-line flags, e.g. `["--auto-compaction-retention", "1"]`. */
  readonly extraArgs?: ReadonlyArray<string>
}

/** One member to launch: its name, ports, data dir and the whole cluster's peer list. */
interface MemberSpec {
  readonly binary: string
  readonly name: string
  readonly clientPort: number
  readonly peerPort: number
  readonly dataDir: string
  /** `name=peerUrl,...` of every member. */
  readonly initialCluster: string
  readonly clusterToken: string
  /** Raft timers, ms. */
  readonly heartbeatMs: number
  readonly electionMs: number
  readonly extraArgs: ReadonlyArray<string>
}

/**
 * Spawns one member and returns its handle once healthy (`/health` is true only once the member sees a raft leader,
 * so the members of a cluster must all be launched before any of them is waited for: launch them concurrently). Its
 * process is killed when the scope closes.
 */
const launchMember = (spec: MemberSpec): Effect.Effect<EtcdServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const endpoint = `http://127.0.0.1:${spec.clientPort}`
    const peerUrl = `http://127.0.0.1:${spec.peerPort}`
    const args = [
      "--name",
      spec.name,
      "--data-dir",
      spec.dataDir,
      "--listen-client-urls",
      endpoint,
      "--advertise-client-urls",
      endpoint,
      "--listen-peer-urls",
      peerUrl,
      "--initial-advertise-peer-urls",
      peerUrl,
      "--initial-cluster",
      spec.initialCluster,
      "--initial-cluster-token",
      spec.clusterToken,
      "--initial-cluster-state",
      "new",
      "--heartbeat-interval",
      String(spec.heartbeatMs),
      "--election-timeout",
      String(spec.electionMs),
      ...spec.extraArgs
    ]
    let child: ChildProcess | undefined
    const logTail: Array<string> = []
    const remember = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim() === "") continue
        logTail.push(line)
        if (logTail.length > LOG_TAIL_LINES) logTail.shift()
      }
    }

    const kill = () =>
      Effect.suspend(() => {
        const running = child
        if (running === undefined || running.exitCode !== null || running.signalCode !== null) return Effect.void
        running.kill("SIGKILL")
        return waitExit(running)
      })

    const start = Effect.gen(function*() {
      logTail.length = 0
      const spawned = spawn(spec.binary, args, { stdio: ["ignore", "pipe", "pipe"] })
      child = spawned
      spawned.stdout?.on("data", remember)
      spawned.stderr?.on("data", remember)
      spawned.on("error", (error) => logTail.push(`spawn error: ${error.message}`))
      const deadline = Date.now() + Duration.toMillis(HEALTH_TIMEOUT)
      while (Date.now() < deadline) {
        if (spawned.exitCode !== null || spawned.signalCode !== null) break
        if (yield* isHealthy(endpoint)) return
        yield* Effect.sleep(HEALTH_POLL_MS)
      }
      const status = spawned.exitCode !== null || spawned.signalCode !== null
        ? `exited (${spawned.exitCode ?? spawned.signalCode})`
        : `not healthy within ${Duration.format(HEALTH_TIMEOUT)}`
      yield* kill()
      return yield* Effect.dieMessage(`etcd on ${endpoint} ${status}; last output:\n${logTail.join("\n")}`)
    })

    const signal = (name: NodeJS.Signals) => () =>
      Effect.sync(() => {
        if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill(name)
      })

    // Registered after the data dir, so it runs first: the process dies before its directory is removed. A paused
    // process dies on SIGKILL too.
    yield* Effect.addFinalizer(() => kill())
    yield* start

    return {
      endpoint,
      clientPort: spec.clientPort,
      peerPort: spec.peerPort,
      dataDir: spec.dataDir,
      pid: () => child?.pid,
      kill,
      restart: () => Effect.zipRight(kill(), start),
      pause: signal("SIGSTOP"),
      resume: signal("SIGCONT")
    } satisfies EtcdServer
  })

/** `count` distinct ports that were free a moment ago. */
const freePorts = (count: number): Effect.Effect<ReadonlyArray<number>> =>
  Effect.gen(function*() {
    const ports = new Set<number>()
    // Two listens on port 0 in a row can, rarely, return the same port.
    while (ports.size < count) ports.add(yield* freePort)
    return [...ports]
  })

const dataDirIn = (label: string) =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), `ejs-etcd-${label}-`))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

/**
 * Starts etcd and returns its handle; the process is killed and its data dir removed when the scope closes. Fails
 * (as a defect, with a message saying how to install it) when `etcd` is not on PATH.
 */
export const startEtcd = (options: EtcdServerOptions = {}): Effect.Effect<EtcdServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const binary = findOnPath("etcd")
    if (binary === undefined) return yield* Effect.dieMessage(INSTALL_HINT)
    const [clientPort, peerPort] = yield* freePorts(2)
    const dataDir = yield* dataDirIn("t")
    return yield* launchMember({
      binary,
      name: "t",
      clientPort: clientPort!,
      peerPort: peerPort!,
      dataDir,
      initialCluster: `t=http://127.0.0.1:${peerPort}`,
      clusterToken: `t-${path.basename(dataDir)}`,
      // Fast raft timers: a single member elects itself in ~100 ms instead of ~1 s.
      heartbeatMs: 10,
      electionMs: 100,
      extraArgs: options.extraArgs ?? []
    })
  })

/**
 * A running etcd cluster.
 *
 * @since 0.1.0
 * @category harness
 */
export interface EtcdCluster {
  /** Every member, in order (`m0`, `m1`, ...). */
  readonly members: ReadonlyArray<EtcdServer>
  /** Every member's client URL, for `etcd.endpoints`. */
  readonly endpoints: ReadonlyArray<string>
  /**
   * The index of the member that is raft leader now, asked of the members that answer (a member that is killed or
   * stopped is skipped); `undefined` when none of them knows a leader.
   */
  readonly leader: () => Effect.Effect<number | undefined>
}

/**
 * Raft timers of a cluster: 50 ms heartbeats and a 500 ms election timeout. Fast enough that losing the raft leader
 * costs well under a second (a new one is elected within 1-2 election timeouts), and slow enough that a loaded
 * 2-core machine, where a member can be descheduled for tens of milliseconds, does not trigger spurious elections
 * (10 ms heartbeats did here).
 */
const CLUSTER_HEARTBEAT_MS = 50
const CLUSTER_ELECTION_MS = 500

/** Bound on one status probe of a member: a stopped member answers nothing. */
const STATUS_TIMEOUT = Duration.seconds(1)

/** A member's own id and the leader id it knows, from `/v3/maintenance/status` (ids as decimal strings). */
const memberStatus = (endpoint: string): Effect.Effect<{ readonly id: string; readonly leader: string } | undefined> =>
  Effect.tryPromise(async (signal) => {
    const response = await fetch(`${endpoint}/v3/maintenance/status`, { method: "POST", body: "{}", signal })
    const body = await response.json() as { header?: { member_id?: string }; leader?: string }
    return body.header?.member_id === undefined || body.leader === undefined
      ? undefined
      : { id: body.header.member_id, leader: body.leader }
  }).pipe(Effect.timeout(STATUS_TIMEOUT), Effect.orElseSucceed(() => undefined))

/**
 * Starts an etcd cluster of `size` members (default 3) on loopback, waits until every member is healthy (a raft
 * leader is elected), and returns it; every member is killed and its data dir removed when the scope closes.
 *
 * @since 0.1.0
 * @category harness
 */
export const startEtcdCluster = (
  options: EtcdServerOptions & { readonly size?: number } = {}
): Effect.Effect<EtcdCluster, never, Scope.Scope> =>
  Effect.gen(function*() {
    const binary = findOnPath("etcd")
    if (binary === undefined) return yield* Effect.dieMessage(INSTALL_HINT)
    const size = options.size ?? 3
    const ports = yield* freePorts(2 * size)
    const names = Array.from({ length: size }, (_, i) => `m${i}`)
    const initialCluster = names.map((name, i) => `${name}=http://127.0.0.1:${ports[2 * i + 1]}`).join(",")
    const dataDirs = yield* Effect.forEach(names, dataDirIn)
    const token = `c-${path.basename(dataDirs[0]!)}`
    const members = yield* Effect.forEach(names, (name, i) =>
      launchMember({
        binary,
        name,
        clientPort: ports[2 * i]!,
        peerPort: ports[2 * i + 1]!,
        dataDir: dataDirs[i]!,
        initialCluster,
        clusterToken: token,
        heartbeatMs: CLUSTER_HEARTBEAT_MS,
        electionMs: CLUSTER_ELECTION_MS,
        extraArgs: options.extraArgs ?? []
      }), { concurrency: "unbounded" })
    const leader = () =>
      Effect.gen(function*() {
        const statuses = yield* Effect.forEach(members, (member) => memberStatus(member.endpoint), {
          concurrency: "unbounded"
        })
        const known = statuses.find((status) => status !== undefined && status.leader !== "0")
        if (known === undefined) return undefined
        const index = statuses.findIndex((status) => status?.id === known.leader)
        return index < 0 ? undefined : index
      })
    return { members, endpoints: members.map((member) => member.endpoint), leader } satisfies EtcdCluster
  })
