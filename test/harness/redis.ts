/**
 * Test harness: a real `redis-server` per test file (or per test) on a free loopback port, persistence off, killed
 * when its scope closes; plus the generic pieces (find a binary, pick a free port, manage a child process, poll until
 * ready) that the etcd and multi-process harnesses reuse.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

// ---------------------------------------------------------------------------------------------------------------
// Generic process helpers
// ---------------------------------------------------------------------------------------------------------------

/**
 * The absolute path of `name` on `PATH`, or a defect whose message says how to install it (tests that cannot find
 * their server fail, they never skip).
 *
 * @since 0.1.0
 * @category harness
 */
export const findExecutable = (name: string, installHint: string): Effect.Effect<string> =>
  Effect.suspend(() => {
    for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
      if (dir === "") continue
      const candidate = path.join(dir, name)
      try {
        fs.accessSync(candidate, fs.constants.X_OK)
        return Effect.succeed(candidate)
      } catch {
        // not in this directory
      }
    }
    return Effect.dieMessage(`${name} not found: ${installHint}`)
  })

/**
 * A port free on 127.0.0.1 right now (the kernel picks it). Another process may take it before we bind it; callers
 * that spawn a server retry with a new port when the server fails to start.
 *
 * @since 0.1.0
 * @category harness
 */
export const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.unref()
  server.once("error", (error) => resume(Effect.die(error)))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(port === 0 ? Effect.dieMessage("no free port") : Effect.succeed(port)))
  })
})

/**
 * A key prefix unique to one test, so that tests sharing a server never see each other's keys.
 *
 * @since 0.1.0
 * @category harness
 */
export const uniquePrefix = (label = "test"): string => `${label}-${randomBytes(6).toString("hex")}`

/**
 * Poll `check` every `interval` until it returns true; a defect naming `what` after `timeout`. Real time.
 *
 * @since 0.1.0
 * @category harness
 */
export const waitUntil = (
  what: string,
  check: () => Promise<boolean>,
  options: { readonly timeout: Duration.DurationInput; readonly interval?: Duration.DurationInput }
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(options.timeout)
    const interval = Duration.toMillis(options.interval ?? Duration.millis(10))
    while (true) {
      const ok = yield* Effect.promise(() => check().catch(() => false))
      if (ok) return
      if (Date.now() >= deadline) {
        return yield* Effect.dieMessage(`${what}: not ready within ${Duration.format(options.timeout)}`)
      }
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, interval)))
    }
  })

/** Children still running, killed if the test process exits without closing their scopes (a crashed worker). */
const liveChildren = new Set<ChildProcess>()
let exitHookInstalled = false
const trackChild = (child: ChildProcess): void => {
  liveChildren.add(child)
  child.once("exit", () => liveChildren.delete(child))
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.once("exit", () => {
      for (const live of liveChildren) live.kill("SIGKILL")
    })
  }
}

/**
 * A tiny shell loop that SIGKILLs `child` if this test process dies without cleaning up (a vitest worker killed on a
 * timeout runs no exit hooks). It checks every second and ends by itself once either process is gone; it is also
 * killed as soon as the child exits, so it can never signal a recycled pid of a long-gone child.
 */
const watchdog = (child: ChildProcess): ChildProcess | undefined => {
  if (child.pid === undefined) return undefined
  const script = `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${child.pid} 2>/dev/null; do sleep 1; done; ` +
    `kill -0 ${process.pid} 2>/dev/null || kill -9 ${child.pid} 2>/dev/null`
  const guard = spawn("sh", ["-c", script], { stdio: "ignore" })
  guard.on("error", () => undefined)
  guard.unref()
  return guard
}

/** Keep this much of a child's output, to explain a failed start. */
const OUTPUT_TAIL_CHARS = 4000

/**
 * A child process with its recent output and an exit the caller can wait for.
 *
 * @since 0.1.0
 * @category harness
 */
export interface ManagedProcess {
  readonly child: ChildProcess
  readonly output: () => string
  readonly hasExited: () => boolean
  /** Wait up to `timeout` for the process to exit; true when it did. */
  readonly waitExit: (timeout: Duration.DurationInput) => Effect.Effect<boolean>
  readonly signal: (signal: NodeJS.Signals) => Effect.Effect<void>
  /** SIGCONT (in case it is stopped), SIGTERM, then SIGKILL if it has not exited after `grace`. */
  readonly terminate: (grace?: Duration.DurationInput) => Effect.Effect<void>
}

/**
 * Spawn `command` with `args`; output is captured (tail only), the child is killed if the test process exits.
 *
 * @since 0.1.0
 * @category harness
 */
export const spawnManaged = (
  command: string,
  args: ReadonlyArray<string>,
  cwd?: string
): Effect.Effect<ManagedProcess> =>
  Effect.sync(() => {
    const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] })
    trackChild(child)
    const guard = watchdog(child)
    let output = ""
    const append = (chunk: Buffer) => {
      output = (output + chunk.toString("utf8")).slice(-OUTPUT_TAIL_CHARS)
    }
    child.stdout?.on("data", append)
    child.stderr?.on("data", append)
    // A spawn failure (ENOENT, EACCES) shows up as an exit without a code; keep it for the message.
    child.once("error", (error) => append(Buffer.from(`\nspawn error: ${error.message}\n`)))
    let exited = false
    const exitPromise = new Promise<void>((resolve) => {
      child.once("exit", () => {
        exited = true
        guard?.kill("SIGKILL")
        resolve()
      })
      child.once("error", () => {
        exited = true
        resolve()
      })
    })
    const waitExit = (timeout: Duration.DurationInput) =>
      Effect.promise(() =>
        exited ? Promise.resolve(true) : Promise.race([
          exitPromise.then(() => true),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(exited), Duration.toMillis(timeout)))
        ])
      )
    const signal = (name: NodeJS.Signals) =>
      Effect.sync(() => {
        if (!exited) child.kill(name)
      })
    return {
      child,
      output: () => output,
      hasExited: () => exited,
      waitExit,
      signal,
      terminate: (grace = Duration.seconds(2)) =>
        Effect.gen(function*() {
          if (exited) return
          yield* signal("SIGCONT")
          yield* signal("SIGTERM")
          if (yield* waitExit(grace)) return
          yield* signal("SIGKILL")
          yield* waitExit(Duration.seconds(5))
        })
    }
  })

// ---------------------------------------------------------------------------------------------------------------
// redis-server
// ---------------------------------------------------------------------------------------------------------------

const REDIS_INSTALL_HINT = "install it with `apt-get update && apt-get install -y redis-server`"

/** A fresh server answers in ~10 ms (docs/design.md §8); 10 s covers a loaded CI machine. */
const READY_TIMEOUT = Duration.seconds(10)

/** Attempts at a fresh port when the one picked was taken between `freePort` and the server's bind. */
const START_ATTEMPTS = 5

/** One PING over a raw socket: true when the server answers within 250 ms. */
const ping = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    let answer = ""
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(250, () => done(false))
    socket.once("error", () => done(false))
    socket.once("connect", () => socket.write("PING\r\n"))
    socket.on("data", (chunk) => {
      answer += chunk.toString("utf8")
      // A server started with `--requirepass` answers NOAUTH: it is up all the same.
      if (answer.includes("\r\n")) done(answer.startsWith("+PONG") || answer.startsWith("-NOAUTH"))
    })
  })

/**
 * A running test `redis-server`. Every control is an effect that returns once the change is done (the process exited,
 * or the restarted server answers PING).
 *
 * @since 0.1.0
 * @category harness
 */
export interface RedisServer {
  /** `redis://127.0.0.1:{port}` */
  readonly url: string
  readonly host: string
  readonly port: number
  /** The current process id (changes on restart); undefined while stopped. */
  readonly pid: () => number | undefined
  /** SIGKILL: the server vanishes at once, connections are reset. */
  readonly kill: () => Effect.Effect<void>
  /** SIGTERM (SIGKILL after 2 s). */
  readonly stop: () => Effect.Effect<void>
  /** Stop if running, then start again on the same port and wait until it answers. Data is gone (no persistence). */
  readonly restart: () => Effect.Effect<void>
  /** SIGSTOP: the server keeps its sockets open but answers nothing (a frozen server). */
  readonly pause: () => Effect.Effect<void>
  /** SIGCONT after `pause`. */
  readonly resume: () => Effect.Effect<void>
}

/**
 * Start a `redis-server` on a free 127.0.0.1 port with persistence off and a fresh working directory; it is killed
 * and its directory removed when the scope closes. `extraArgs` are appended to the command line (e.g.
 * `["--requirepass", "secret"]`), and kept on restart.
 *
 * @since 0.1.0
 * @category harness
 */
export const startRedis = (
  options: { readonly extraArgs?: ReadonlyArray<string> } = {}
): Effect.Effect<RedisServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const bin = yield* findExecutable("redis-server", REDIS_INSTALL_HINT)
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ejs-redis-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    const args = (port: number) => [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--loglevel",
      "warning",
      ...(options.extraArgs ?? [])
    ]

    /** Spawn on `port` and wait for PING; `undefined` when the process died first (port taken). */
    const launch = (port: number) =>
      Effect.gen(function*() {
        const proc = yield* spawnManaged(bin, args(port), dir)
        // A process that exited ends the wait too: its port was probably taken, the caller tries another one.
        yield* waitUntil(
          `redis-server on port ${port}`,
          async () => proc.hasExited() || ping(port),
          { timeout: READY_TIMEOUT }
        ).pipe(
          Effect.catchAllDefect((defect) =>
            Effect.zipRight(proc.terminate(), Effect.die(new Error(`${String(defect)}\n${proc.output()}`)))
          )
        )
        return proc.hasExited() ? { proc: undefined, output: proc.output() } : { proc, output: "" }
      })

    let current: ManagedProcess | undefined
    let port = 0
    let lastOutput = ""
    for (let attempt = 1; attempt <= START_ATTEMPTS && current === undefined; attempt++) {
      port = yield* freePort
      const started = yield* launch(port)
      current = started.proc
      lastOutput = started.output
    }
    if (current === undefined) {
      return yield* Effect.dieMessage(`redis-server did not start after ${START_ATTEMPTS} attempts:\n${lastOutput}`)
    }
    yield* Effect.addFinalizer(() => current === undefined ? Effect.void : current.terminate())

    const kill = () =>
      Effect.gen(function*() {
        if (current === undefined) return
        yield* current.signal("SIGKILL")
        yield* current.waitExit(Duration.seconds(5))
        current = undefined
      })
    const stop = () =>
      Effect.gen(function*() {
        if (current === undefined) return
        yield* current.terminate()
        current = undefined
      })
    const restart = () =>
      Effect.gen(function*() {
        yield* stop()
        const started = yield* launch(port)
        if (started.proc === undefined) {
          return yield* Effect.dieMessage(`redis-server did not restart on port ${port}:\n${started.output}`)
        }
        current = started.proc
      })
    const signal = (name: NodeJS.Signals) => () => current === undefined ? Effect.void : current.signal(name)

    return {
      url: `redis://127.0.0.1:${port}`,
      host: "127.0.0.1",
      port,
      pid: () => current?.child.pid,
      kill,
      stop,
      restart,
      pause: signal("SIGSTOP"),
      resume: signal("SIGCONT")
    }
  })

/**
 * The server as a service, for `layer(TestRedis.layer)` in `@effect/vitest`.
 *
 * @since 0.1.0
 * @category harness
 */
export class TestRedis extends Context.Tag("test/TestRedis")<TestRedis, RedisServer>() {
  static readonly layer: Layer.Layer<TestRedis> = Layer.scoped(TestRedis, startRedis())
}
