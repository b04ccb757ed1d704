/**
 * Test harness: service processes (`node scripts/run.mjs src/service/main.ts --mode ... --config ...`) with their
 * JSON log lines collected, for the multi-process tests (`test/service/Cluster.test.ts`,
 * `test/service/Failover.test.ts`). Each process is SIGKILLed when its scope closes (a stopped one too), and by a
 * watchdog if the test process itself dies first.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { freePort } from "./redis.js"

const root = path.join(__dirname, "../..")

/**
 * One JSON log line of a service process, as parsed (`timestamp`, `level`, `message` and the annotations as fields).
 * Fields are `any`: each test reads the few it knows (`job`, `fire_time`, `fence`...) without a schema per message.
 *
 * @since 0.1.0
 * @category harness
 */
export type LogLine = Record<string, any>

/**
 * A running service process.
 *
 * @since 0.1.0
 * @category harness
 */
export interface ServiceNode {
  readonly id: string
  /** Its HTTP port (admin endpoints, and RPC in `rpc`/`all` mode). */
  readonly port: number
  readonly process: ChildProcess
  /** Every JSON log line so far, in order. */
  readonly lines: () => ReadonlyArray<LogLine>
  /** Everything it wrote on stdout and stderr (JSON or not), for failure messages. */
  readonly output: () => string
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>
  /** Send a signal if it is still running. */
  readonly signal: (signal: NodeJS.Signals) => Effect.Effect<void>
}

/**
 * A shell loop that SIGKILLs `child` if this test process dies without cleaning up (a vitest worker killed on a
 * timeout runs no exit hooks). It checks every second, ends by itself once either process is gone, and is killed as
 * soon as the child exits, so that it can never signal a recycled pid.
 */
const watchdog = (child: ChildProcess): void => {
  if (child.pid === undefined) return
  const script = `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${child.pid} 2>/dev/null; do sleep 1; done; ` +
    `kill -0 ${process.pid} 2>/dev/null || kill -9 ${child.pid} 2>/dev/null`
  const guard = spawn("sh", ["-c", script], { stdio: "ignore" })
  guard.on("error", () => undefined)
  guard.unref()
  child.once("exit", () => guard.kill("SIGKILL"))
}

/**
 * Starts a service process with `LOG_FORMAT=json` on a free HTTP port, its SQLite file in `dir`. Returns at once
 * (start-up takes 1-3 s on a busy machine): wait for a log line or `/healthz`, never a fixed sleep.
 *
 * @since 0.1.0
 * @category harness
 */
export const startNode = (options: {
  readonly id: string
  readonly mode: "job" | "rpc" | "all"
  readonly config: string
  readonly dir: string
}): Effect.Effect<ServiceNode, never, Scope.Scope> =>
  Effect.gen(function*() {
    const port = yield* freePort
    return yield* Effect.acquireRelease(
      Effect.sync((): ServiceNode => {
        const child = spawn(process.execPath, [
          path.join(root, "scripts/run.mjs"),
          path.join(root, "src/service/main.ts"),
          "--mode",
          options.mode,
          "--config",
          options.config
        ], {
          cwd: options.dir,
          env: {
            ...process.env,
            MODE: "", // vitest sets MODE=test; the service would read it
            NODE_ID: options.id,
            HTTP_PORT: String(port),
            LOG_FORMAT: "json",
            SQLITE_PATH: path.join(options.dir, `${options.id}.db`)
          },
          stdio: ["ignore", "pipe", "pipe"]
        })
        watchdog(child)
        let output = ""
        // stdout is parsed line by line as it arrives (once per line, not on every read).
        let partial = ""
        const parsed: Array<LogLine> = []
        child.stdout!.on("data", (chunk: Buffer) => {
          const text = chunk.toString("utf8")
          output += text
          const pieces = (partial + text).split("\n")
          partial = pieces.pop() ?? ""
          for (const piece of pieces) {
            try {
              const value: unknown = JSON.parse(piece)
              if (typeof value === "object" && value !== null) parsed.push(value as LogLine)
            } catch {
              // not a JSON log line (a stack trace, esbuild's output)
            }
          }
        })
        child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")))
        const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
        return {
          id: options.id,
          port,
          process: child,
          lines: () => parsed,
          output: () => output,
          exited,
          signal: (name) =>
            Effect.sync(() => {
              if (child.exitCode === null && child.signalCode === null) child.kill(name)
            })
        }
      }),
      (node) =>
        Effect.promise(async () => {
          // SIGKILL also ends a stopped (SIGSTOP) process.
          if (node.process.exitCode === null && node.process.signalCode === null) node.process.kill("SIGKILL")
          await node.exited
          // scripts/run.mjs bundles into .tmp/run/{entry}-{its pid}.mjs (~0.5 MB) and leaves it there: one per
          // process adds up over a test run.
          fs.rmSync(path.join(root, ".tmp", "run", `main-${node.process.pid}.mjs`), { force: true })
        })
    )
  })

/**
 * A fresh temporary directory, removed with its content when the scope closes.
 *
 * @since 0.1.0
 * @category harness
 */
export const tempDir = (label: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

/** Pause between two probes of `poll`: short next to the second-scale events the tests wait for. */
const POLL_INTERVAL_MS = 50

/**
 * Probes every 50 ms until `probe` gives a value (not `undefined`; a rejected probe counts as not yet); a defect
 * naming `what` after `timeout`. Real time.
 *
 * @since 0.1.0
 * @category harness
 */
export const poll = <A>(
  what: string,
  timeout: Duration.DurationInput,
  probe: () => Promise<A | undefined> | A | undefined
): Effect.Effect<A> =>
  Effect.promise(async () => {
    const deadline = Date.now() + Duration.toMillis(timeout)
    for (;;) {
      const value = await Promise.resolve().then(probe).catch(() => undefined)
      if (value !== undefined) return value
      if (Date.now() > deadline) throw new Error(`timed out after ${Duration.format(timeout)} waiting for ${what}`)
      await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS))
    }
  })

/**
 * Bound on one HTTP request to a node: a stopped (SIGSTOP) node answers nothing, and the caller must not hang.
 */
const HTTP_TIMEOUT_MS = 5_000

/**
 * GET a JSON endpoint of a node (`/healthz`, `/readyz`).
 *
 * @since 0.1.0
 * @category harness
 */
export const getJson = async (port: number, urlPath: string, timeoutMs = HTTP_TIMEOUT_MS) => {
  const response = await fetch(`http://127.0.0.1:${port}${urlPath}`, { signal: AbortSignal.timeout(timeoutMs) })
  // `any`: each test reads the fields it checks.
  return { status: response.status, body: (await response.json()) as any }
}

/**
 * The value of a gauge or counter without labels in a node's `/metrics` (e.g. `scheduler_leader`), or `undefined`
 * when the node does not answer within `timeoutMs`.
 *
 * @since 0.1.0
 * @category harness
 */
export const metricValue = async (
  port: number,
  name: string,
  timeoutMs = HTTP_TIMEOUT_MS
): Promise<number | undefined> => {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(timeoutMs) })
    const text = await response.text()
    const line = text.split("\n").find((l) => l.startsWith(`${name} `))
    return line === undefined ? undefined : Number(line.slice(name.length + 1))
  } catch {
    return undefined
  }
}

/**
 * Calls an RPC of a node (`POST /rpc`, @effect/rpc JSON), with a bearer token when given, and returns the exit of
 * the first response message.
 *
 * @since 0.1.0
 * @category harness
 */
export const rpc = async (port: number, tag: string, payload: unknown, token?: string) => {
  const response = await fetch(`http://127.0.0.1:${port}/rpc`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` })
    },
    body: JSON.stringify({ _tag: "Request", id: "1", tag, payload, headers: [] }),
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS)
  })
  // `any`: the exit's shape depends on the RPC.
  const [message] = (await response.json()) as ReadonlyArray<{ exit: any }>
  return message!.exit
}

/**
 * The `job finished` log lines of `job` on a node.
 *
 * @since 0.1.0
 * @category harness
 */
export const finishedRuns = (node: ServiceNode, job = "sync_user"): ReadonlyArray<LogLine> =>
  node.lines().filter((l) => l.message === "job finished" && l.job === job)
