/**
 * Test harness: a real PostgreSQL (`initdb` + `postgres` from /usr/lib/postgresql/<version>/bin) in a fresh temporary
 * directory on a free 127.0.0.1 port, trust authentication, durability off (fsync, synchronous commit) for speed; the
 * server is stopped with `pg_ctl stop -m immediate` (SIGKILL as a last resort) and its directory removed when the scope
 * closes. PostgreSQL refuses to run as root, so when this process is root the server runs as `nobody` and the
 * directory is handed to that user.
 *
 * `database()` creates a fresh, empty database per call (a contract test gets its own).
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { freePort } from "./redis.js"

const INSTALL_HINT = "install it with `apt-get update && apt-get install -y postgresql`"

/** initdb takes 1-3 s here (it writes the template databases); 60 s covers a loaded 2-core CI machine. */
const INITDB_TIMEOUT = Duration.seconds(60)

/** A fresh cluster accepts connections ~0.3 s after start; 30 s covers a loaded machine. */
const READY_TIMEOUT = Duration.seconds(30)

/** Attempts at a fresh port when the one picked was taken between `freePort` and the server's bind. */
const START_ATTEMPTS = 4

/** The user that owns the server's files and process when we are root (PostgreSQL refuses to run as root). */
const UNPRIVILEGED = { uid: 65534, gid: 65534, name: "nobody" }

/**
 * A running test PostgreSQL.
 *
 * @since 0.1.0
 * @category harness
 */
export interface PostgresServer {
  readonly host: string
  readonly port: number
  /** `postgres://postgres@127.0.0.1:{port}/postgres` (trust authentication, no password). */
  readonly url: string
  /** The URL of database `name` on this server. */
  readonly urlOf: (name: string) => string
  /** Create a fresh, empty database (unique name, `label` as its prefix) and return its URL. */
  readonly database: (label?: string) => Effect.Effect<string>
  /** SIGKILL of the postmaster (a crash). */
  readonly kill: () => Effect.Effect<void>
}

/** The newest PostgreSQL version's bin directory, or a defect naming the package to install. */
const binDir: Effect.Effect<string> = Effect.suspend(() => {
  const base = "/usr/lib/postgresql"
  const versions = fs.existsSync(base)
    ? fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, "bin", "initdb"))).sort((a, b) =>
      Number(b) - Number(a)
    )
    : []
  return versions.length === 0
    ? Effect.dieMessage(`PostgreSQL not found (no ${base}/<version>/bin/initdb): ${INSTALL_HINT}`)
    : Effect.succeed(path.join(base, versions[0]!, "bin"))
})

const asRoot = () => typeof process.getuid === "function" && process.getuid() === 0

/** Spawn options that drop to the unprivileged user when we are root. */
const userOptions = () => asRoot() ? { uid: UNPRIVILEGED.uid, gid: UNPRIVILEGED.gid } : {}

/** Run a program to its end (bounded); its output in the defect when it fails. */
const runToEnd = (file: string, args: ReadonlyArray<string>, timeout: Duration.Duration, cwd: string) =>
  Effect.async<string>((resume) => {
    const child = execFile(
      file,
      [...args],
      { ...userOptions(), cwd, timeout: Duration.toMillis(timeout), env: { ...process.env, LC_ALL: "C" } },
      (error, stdout, stderr) => {
        if (error === null) resume(Effect.succeed(stdout))
        else resume(Effect.dieMessage(`${path.basename(file)} failed: ${error.message}\n${stdout}\n${stderr}`))
      }
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** SIGKILLs the server if this test process dies without closing its scope (see the same guard in redis.ts). */
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
 * Start PostgreSQL; stopped and removed when the scope closes. Fails (a defect saying how to install it) when the
 * binaries are missing.
 *
 * @since 0.1.0
 * @category harness
 */
export const startPostgres: Effect.Effect<PostgresServer, never, Scope.Scope> = Effect.gen(function*() {
  const bin = yield* binDir
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => {
      // The unprivileged server user must reach the directory: under a private TMPDIR (mode 0700, root's) use /tmp.
      const base = asRoot() && (fs.statSync(os.tmpdir()).mode & 0o001) === 0 ? "/tmp" : os.tmpdir()
      const dir = fs.mkdtempSync(path.join(base, "ejs-pg-"))
      if (asRoot()) fs.chownSync(dir, UNPRIVILEGED.uid, UNPRIVILEGED.gid)
      return dir
    }),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const data = path.join(dir, "data")
  yield* runToEnd(
    path.join(bin, "initdb"),
    ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
    INITDB_TIMEOUT,
    dir
  )

  let child: ChildProcess | undefined
  let output = ""
  const launch = (port: number) =>
    Effect.gen(function*() {
      output = ""
      const spawned = spawn(path.join(bin, "postgres"), [
        "-D",
        data,
        "-p",
        String(port),
        "-k",
        dir, // the Unix socket lives in our directory, not in /var/run/postgresql
        "-c",
        "listen_addresses=127.0.0.1",
        // A test database needs no durability: these make commits and CREATE DATABASE fast.
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200"
      ], { ...userOptions(), cwd: dir, stdio: ["ignore", "pipe", "pipe"] })
      child = spawned
      watchdog(spawned)
      const append = (chunk: Buffer) => (output = (output + chunk.toString("utf8")).slice(-4000))
      spawned.stdout?.on("data", append)
      spawned.stderr?.on("data", append)
      spawned.on("error", (error) => append(Buffer.from(`spawn error: ${error.message}\n`)))
      const deadline = Date.now() + Duration.toMillis(READY_TIMEOUT)
      while (Date.now() < deadline && !exited(spawned)) {
        const ready = yield* runToEnd(
          path.join(bin, "pg_isready"),
          ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-t", "1"],
          Duration.seconds(5),
          dir
        ).pipe(Effect.as(true), Effect.catchAllDefect(() => Effect.succeed(false)))
        if (ready) return true
        yield* Effect.sleep("50 millis")
      }
      if (!exited(spawned)) {
        spawned.kill("SIGKILL")
        return yield* Effect.dieMessage(`postgres on port ${port} not ready within 30 s:\n${output}`)
      }
      return false
    })

  let port = 0
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    port = yield* freePort
    if (yield* launch(port)) break
    if (attempt === START_ATTEMPTS) {
      return yield* Effect.dieMessage(`postgres did not start after ${START_ATTEMPTS} attempts:\n${output}`)
    }
  }

  const kill = () =>
    Effect.async<void>((resume) => {
      const running = child
      if (running === undefined || exited(running)) return resume(Effect.void)
      running.once("exit", () => resume(Effect.void))
      running.kill("SIGKILL")
    })
  // Runs before the directory is removed: an immediate shutdown ends the backends too; SIGKILL if it hangs.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      if (child === undefined || exited(child)) return
      yield* runToEnd(
        path.join(bin, "pg_ctl"),
        ["stop", "-D", data, "-m", "immediate", "-w", "-t", "10"],
        Duration
          .seconds(15),
        dir
      ).pipe(Effect.catchAllDefect(() => Effect.void))
      yield* kill()
    })
  )

  const urlOf = (name: string) => `postgres://postgres@127.0.0.1:${port}/${name}`
  const database = (label = "test") =>
    Effect.gen(function*() {
      const name = `${label.replace(/[^a-z0-9_]/gi, "_").toLowerCase()}_${randomBytes(5).toString("hex")}`
      yield* Effect.scoped(
        Effect.gen(function*() {
          const sql = yield* PgClient.make({ url: undefined, host: "127.0.0.1", port, username: "postgres" })
          // CREATE DATABASE cannot run in a transaction block; a plain statement is its own.
          yield* sql.unsafe(`CREATE DATABASE "${name}"`)
        })
      ).pipe(Effect.provide(Reactivity.layer), Effect.orDie)
      return urlOf(name)
    })

  return {
    host: "127.0.0.1",
    port,
    url: urlOf("postgres"),
    urlOf,
    database,
    kill
  } satisfies PostgresServer
})

/** Name of the unprivileged user the server runs as when the tests run as root (for messages). */
export const serverUser = (): string => asRoot() ? UNPRIVILEGED.name : os.userInfo().username
