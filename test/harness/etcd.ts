/**
 * Test harness: a real single-member `etcd` on free 127.0.0.1 ports with a fresh data dir and fast raft timers,
 * killed (and its data dir removed) when the scope closes. Faults: `kill` (SIGKILL), `restart` (same ports and data
 * dir), `pause` (SIGSTOP), `resume` (SIGCONT).
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

/**
 * Starts etcd and returns its handle; the process is killed and its data dir removed when the scope closes. Fails
 * (as a defect, with a message saying how to install it) when `etcd` is not on PATH.
 */
export const startEtcd = (options: EtcdServerOptions = {}): Effect.Effect<EtcdServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const binary = findOnPath("etcd")
    if (binary === undefined) return yield* Effect.dieMessage(INSTALL_HINT)
    const clientPort = yield* freePort
    // Two listens on port 0 in a row can, rarely, return the same port.
    let peerPort = yield* freePort
    while (peerPort === clientPort) peerPort = yield* freePort
    const dataDir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ejs-etcd-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    const endpoint = `http://127.0.0.1:${clientPort}`
    const peerUrl = `http://127.0.0.1:${peerPort}`
    const args = [
      "--name", "t",
      "--data-dir", dataDir,
      "--listen-client-urls", endpoint,
      "--advertise-client-urls", endpoint,
      "--listen-peer-urls", peerUrl,
      "--initial-advertise-peer-urls", peerUrl,
      "--initial-cluster", `t=${peerUrl}`,
      // Fast raft timers: a single member elects itself in ~100 ms instead of ~1 s.
      "--heartbeat-interval", "10",
      "--election-timeout", "100",
      ...(options.extraArgs ?? [])
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
      const spawned = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] })
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
      clientPort,
      peerPort,
      dataDir,
      pid: () => child?.pid,
      kill,
      restart: () => Effect.zipRight(kill(), start),
      pause: signal("SIGSTOP"),
      resume: signal("SIGCONT")
    } satisfies EtcdServer
  })
