/**
 * Smoke test of the built artifacts (run `scripts/build.ts` first): each artifact is copied into an empty temporary
 * directory (no node_modules, no config file) and started in each mode on a free port. It must serve `/healthz`,
 * run a job (a `job finished` log line for `sync_user`) in `job` and `all` modes, serve the RPC in `rpc` and `all`
 * modes, exit 0 on SIGTERM, and exit 2 with one line on a bad config.
 *
 * - `bundle`: `node effect-job-scheduler.cjs` with the addon and protos copied beside it.
 * - `sea`: the single executable copied alone (the addon and protos come from its embedded assets).
 *
 * Usage: node scripts/run.mjs scripts/smoke-binary.ts [bundle|sea ...]   (default: both)
 *
 * @since 0.1.0
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { root } from "./root.js"

const dist = path.join(root, "dist", "service")

/** Start-up bound: the SEA extracts its assets on first start; a busy 2-core machine is slow. */
const START_TIMEOUT_MS = 30_000
/** `sync_user` fires 5 s after start (fixed delay); this leaves room for a slow start. */
const JOB_TIMEOUT_MS = 30_000
/** The service drains within shutdownGrace (30 s by default); the smoke jobs finish in milliseconds. */
const EXIT_TIMEOUT_MS = 35_000

interface Artifact {
  readonly name: string
  /** Copy the artifact into `dir`; returns the command that starts it. */
  readonly install: (dir: string) => ReadonlyArray<string>
}

const artifacts: Record<string, Artifact> = {
  bundle: {
    name: "bundle",
    install: (dir) => {
      for (const entry of ["effect-job-scheduler.cjs", "better_sqlite3.node", "proto"]) {
        fs.cpSync(path.join(dist, entry), path.join(dir, entry), { recursive: true })
      }
      return [process.execPath, path.join(dir, "effect-job-scheduler.cjs")]
    }
  },
  sea: {
    name: "sea",
    install: (dir) => {
      fs.copyFileSync(path.join(dist, "effect-job-scheduler"), path.join(dir, "effect-job-scheduler"))
      fs.chmodSync(path.join(dir, "effect-job-scheduler"), 0o755)
      return [path.join(dir, "effect-job-scheduler")]
    }
  }
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address() as net.AddressInfo
      server.close(() => resolve(address.port))
    })
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const waitFor = async <A>(what: string, timeoutMs: number, probe: () => Promise<A | undefined>): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(200)
  }
}

const exitOf = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode)
    child.once("exit", (code) => resolve(code))
  })

const rpc = async (port: number, tag: string, payload: unknown) => {
  const response = await fetch(`http://127.0.0.1:${port}/rpc`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ _tag: "Request", id: "1", tag, payload, headers: [] }),
    signal: AbortSignal.timeout(5_000)
  })
  const [message] = (await response.json()) as ReadonlyArray<{ exit: { _tag: string; value: any } }>
  if (message?.exit._tag !== "Success") throw new Error(`${tag} failed: ${JSON.stringify(message)}`)
  return message.exit.value
}

const runMode = async (artifact: Artifact, mode: "job" | "rpc" | "all"): Promise<string> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `smoke-${artifact.name}-${mode}-`))
  const [command, ...args] = artifact.install(dir)
  const port = await freePort()
  const child = spawn(command!, [...args, "--mode", mode], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TMPDIR: os.tmpdir(),
      HTTP_PORT: String(port),
      LOG_FORMAT: "json"
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout!.on("data", (chunk) => (output += chunk))
  child.stderr!.on("data", (chunk) => (output += chunk))
  const checks: Array<string> = []
  try {
    await waitFor("/healthz", START_TIMEOUT_MS, async () => {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) })
      if (response.status !== 200) return undefined
      return ((await response.json()) as { status: string }).status === "ok" ? true : undefined
    })
    checks.push("healthz")
    if (mode !== "rpc") {
      await waitFor("a job finished line", JOB_TIMEOUT_MS, async () =>
        output.split("\n").some((line) => {
          try {
            const entry = JSON.parse(line)
            return entry.message === "job finished" && entry.job === "sync_user" && entry.outcome === "success"
          } catch {
            return false
          }
        }) || undefined)
      checks.push("job finished")
    }
    if (mode !== "job") {
      const users = await rpc(port, "ListUsers", { page: 1, pageSize: 5 })
      if (users.users.length !== 5) throw new Error(`ListUsers returned ${JSON.stringify(users)}`)
      const jobs = await rpc(port, "ListJobs", {})
      if (jobs.length !== 2) throw new Error(`ListJobs returned ${JSON.stringify(jobs)}`)
      checks.push("rpc")
    }
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    if (mode !== "rpc" && !metrics.includes("job_runs_total{")) throw new Error("/metrics has no job_runs_total")
    checks.push("metrics")
    child.kill("SIGTERM")
    const code = await Promise.race([exitOf(child), sleep(EXIT_TIMEOUT_MS).then(() => "timeout" as const)])
    if (code !== 0) throw new Error(`SIGTERM: expected exit 0, got ${code}`)
    checks.push("SIGTERM exit 0")
    return checks.join(", ")
  } catch (error) {
    child.kill("SIGKILL")
    const tail = output.slice(-4000)
    throw new Error(`${artifact.name} --mode ${mode}: ${(error as Error).message}\n--- output ---\n${tail}`)
  } finally {
    await exitOf(child)
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const badConfig = (artifact: Artifact): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `smoke-${artifact.name}-bad-`))
  try {
    const [command, ...args] = artifact.install(dir)
    fs.writeFileSync(path.join(dir, "bad.yaml"), "http: { port: 70000 }\n")
    const run = spawnSync(command!, [...args, "--config", "bad.yaml"], {
      cwd: dir,
      env: { PATH: process.env.PATH, TMPDIR: os.tmpdir() },
      encoding: "utf8",
      timeout: START_TIMEOUT_MS
    })
    const lines = run.stderr.trim().split("\n")
    if (run.status !== 2 || lines.length !== 1 || !lines[0]!.includes("http.port")) {
      throw new Error(`${artifact.name} bad config: exit ${run.status}, stderr ${JSON.stringify(run.stderr)}`)
    }
    return "bad config exit 2"
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const selected = process.argv.slice(2).length === 0 ? Object.keys(artifacts) : process.argv.slice(2)
let failed = false
for (const name of selected) {
  const artifact = artifacts[name]
  if (artifact === undefined) throw new Error(`unknown artifact ${name} (bundle | sea)`)
  const file = name === "sea" ? path.join(dist, "effect-job-scheduler") : path.join(dist, "effect-job-scheduler.cjs")
  if (!fs.existsSync(file)) {
    const relative = path.relative(root, file)
    console.error(`FAIL ${name}: ${relative} not found; build it with: node scripts/run.mjs scripts/build.ts`)
    failed = true
    continue
  }
  for (const mode of ["job", "rpc", "all"] as const) {
    try {
      console.log(`ok   ${name} --mode ${mode}: ${await runMode(artifact, mode)}`)
    } catch (error) {
      console.error(`FAIL ${(error as Error).message}`)
      failed = true
    }
  }
  try {
    console.log(`ok   ${name}: ${badConfig(artifact)}`)
  } catch (error) {
    console.error(`FAIL ${(error as Error).message}`)
    failed = true
  }
}
process.exit(failed ? 1 : 0)
