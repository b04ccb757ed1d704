import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { build } from "esbuild"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { getJson, poll, rpc, startNode, tempDir } from "../harness/node.js"

const root = path.join(__dirname, "../..")
const TOKEN = "cli-t0ken"
// One bundle of the program for every CLI call (scripts/run.mjs would bundle on each), beside node_modules.
const bundle = path.join(root, ".tmp", `cli-test-${process.pid}.mjs`)

beforeAll(async () => {
  await build({
    entryPoints: [path.join(root, "src/service/main.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    outfile: bundle,
    logLevel: "error"
  })
}, 60_000)
afterAll(() => fs.rmSync(bundle, { force: true }))

/**
 * Runs the program with `args`; its exit code, stdout and stderr. Asynchronous: a blocked event loop (spawnSync)
 * would keep this process's HTTP client from seeing the node close idle connections, and its next request would
 * fail on a dead socket.
 */
const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.promise(() =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [bundle, ...args], {
        cwd: root,
        env: { ...process.env, MODE: "", NO_COLOR: "1", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
      child.once("close", (status) => {
        clearTimeout(timer)
        resolve({ status, stdout, stderr })
      })
    })
  )

describe("the CLI against a running node", () => {
  it.live(
    "every verb, as a table and as --json; a wrong token, an unknown job and a dead URL fail with one line",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("svc-cli")
        const config = path.join(dir, "node.yaml")
        fs.writeFileSync(
          config,
          `http: { token: ${TOKEN} }\njobs:\n  sync_user: { every: 1 hour, timeout: 30 seconds }\n`
        )
        const node = yield* startNode({ id: "node-cli", mode: "all", config, dir })
        yield* poll(
          "/healthz",
          "60 seconds",
          async () => (await getJson(node.port, "/healthz")).status === 200 || undefined
        )
        const url = `http://127.0.0.1:${node.port}`
        const api = (...args: ReadonlyArray<string>) => cli([...args, "--url", url, "--token", TOKEN])

        // jobs list
        const list = yield* api("jobs", "list")
        expect(list.stderr).toBe("")
        expect(list.status).toBe(0)
        const [header, ...rows] = list.stdout.trimEnd().split("\n")
        expect(header).toMatch(/^JOB\s+TRIGGER\s+ENABLED\s+PAUSED\s+RUNNING\s+NEXT FIRE\s+LAST RUN$/)
        expect(rows.map((row) => row.split(/\s{2,}/)[0])).toEqual(["sync_user", "archive_user"])
        expect(rows[1]).toContain("cron \"0 0 2 * * *\" Asia/Shanghai")
        const listJson = JSON.parse((yield* api("jobs", "list", "--json")).stdout)
        const viaRpc = yield* Effect.promise(() => rpc(node.port, "ListJobs", {}, TOKEN))
        expect(listJson.map((job: any) => [job.name, job.trigger, job.paused])).toEqual(
          viaRpc.value.map((job: any) => [job.name, job.trigger, job.paused])
        )
        expect(rows[1]).toContain(listJson[1].nextFire.replace("T", " ").replace(/\.\d{3}Z$/, "Z"))

        // jobs trigger: the run id printed is a run recorded
        const triggered = yield* api("jobs", "trigger", "sync_user")
        expect(triggered.status).toBe(0)
        const runId = /^started sync_user: run (\S+) \(fence \d+\)$/.exec(triggered.stdout.trim())?.[1]
        expect(runId).toBeDefined()
        const triggeredJson = JSON.parse((yield* api("jobs", "trigger", "sync_user", "--json")).stdout)
        expect(triggeredJson._tag).toBe("Started")

        // jobs runs: both manual runs, newest first
        yield* poll("two manual runs", "30 seconds", async () => {
          const exit = await rpc(node.port, "JobRuns", { job: "sync_user", limit: 10 }, TOKEN)
          return exit.value.filter((run: any) => run.kind === "manual").length >= 2 || undefined
        })
        const runsJson = JSON.parse((yield* api("jobs", "runs", "sync_user", "--json", "--limit", "10")).stdout)
        expect(runsJson.map((run: any) => run.runId)).toEqual(expect.arrayContaining([runId, triggeredJson.runId]))
        const runs = yield* api("jobs", "runs", "sync_user", "--limit", "10")
        expect(runs.status).toBe(0)
        const runLines = runs.stdout.trimEnd().split("\n")
        expect(runLines[0]).toMatch(
          /^RUN ID\s+KIND\s+FIRE TIME\s+DURATION\s+LATENESS\s+NODE\s+FENCE\s+OUTCOME\s+ERROR$/
        )
        const line = runLines.find((l) => l.startsWith(runId!))!
        expect(line).toMatch(/\bmanual\b.*\bnode-cli\b.*\bsuccess\b/)

        // pause / resume, seen through the API
        expect((yield* api("jobs", "pause", "sync_user")).stdout.trim()).toBe("paused sync_user")
        expect((yield* Effect.promise(() => rpc(node.port, "ListJobs", {}, TOKEN))).value[0].paused).toBe(true)
        const resumed = JSON.parse((yield* api("jobs", "resume", "sync_user", "--json")).stdout)
        expect(resumed).toEqual({ job: "sync_user", resumed: true })
        expect((yield* Effect.promise(() => rpc(node.port, "ListJobs", {}, TOKEN))).value[0].paused).toBe(false)
        const paused = JSON.parse((yield* api("jobs", "pause", "archive_user", "--json")).stdout)
        expect(paused).toEqual({ job: "archive_user", paused: true })
        expect((yield* api("jobs", "resume", "archive_user")).stdout.trim()).toBe("resumed archive_user")

        // leader
        const leader = yield* api("leader")
        expect(leader.status).toBe(0)
        expect(leader.stdout).toMatch(/^leader\s+node-cli$/m)
        expect(leader.stdout).toMatch(new RegExp(`^url\\s+${url.replace(/\./g, "\\.")}$`, "m"))
        expect(leader.stdout).toMatch(/^version\s+0\.1\.0$/m)
        const leaderJson = JSON.parse((yield* api("leader", "--json")).stdout)
        expect(leaderJson).toMatchObject({
          leader: { nodeId: "node-cli", url },
          node: { nodeId: "node-cli", leading: true }
        })
        expect(leader.stdout).toContain(leaderJson.leader.configHash)

        // failures: one line on stderr, exit 1
        const noToken = yield* cli(["jobs", "list", "--url", url])
        expect(noToken.status).toBe(1)
        expect(noToken.stderr.trim()).toBe("effect-job-scheduler: unauthorized: missing Authorization: Bearer <token>")
        const wrongToken = yield* cli(["jobs", "trigger", "sync_user", "--url", url, "--token", "nope"])
        expect(wrongToken.status).toBe(1)
        expect(wrongToken.stderr.trim()).toBe("effect-job-scheduler: unauthorized: wrong bearer token")
        // the token from the environment
        expect((yield* cli(["jobs", "list", "--url", url], { SCHEDULER_TOKEN: TOKEN })).status).toBe(0)
        const unknown = yield* api("jobs", "runs", "nope")
        expect(unknown.status).toBe(1)
        expect(unknown.stderr.trim()).toBe("effect-job-scheduler: unknown job \"nope\"")
        const dead = yield* cli(["leader", "--url", "http://127.0.0.1:9"])
        expect(dead.status).toBe(1)
        expect(dead.stderr).toMatch(/^effect-job-scheduler: cannot reach the node at http:\/\/127\.0\.0\.1:9: /)
        expect(dead.stderr.trim().split("\n")).toHaveLength(1)
      }).pipe(Effect.scoped),
    180_000
  )
})

describe("the CLI without a node", () => {
  it.live(
    "npm start's command runs the program (its entry's import of the service is not bundled away)",
    () =>
      Effect.promise(() =>
        new Promise<{ status: number | null; stdout: string }>((resolve) => {
          const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"))
          const [command, ...args] = String(pkg.scripts.start).split(" ")
          expect(command).toBe("node")
          const child = spawn(process.execPath, [...args, "--help"], {
            cwd: root,
            stdio: ["ignore", "pipe", "inherit"]
          })
          let stdout = ""
          child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
          const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
          child.once("close", (status) => {
            clearTimeout(timer)
            resolve({ status, stdout })
          })
        })
      ).pipe(Effect.map(({ status, stdout }) => {
        expect(status).toBe(0)
        expect(stdout).toContain("--mode job|rpc|all")
      })),
    90_000
  )

  it.live(
    "--version prints the package version; config check validates; --help still lists the start-up flags",
    () =>
      Effect.gen(function*() {
        const version = yield* cli(["--version"])
        expect(version.status).toBe(0)
        expect(version.stdout.trim()).toBe("0.1.0")

        const dir = fs.mkdtempSync(path.join(root, ".tmp", "cli-config-"))
        try {
          const good = path.join(dir, "good.yaml")
          fs.writeFileSync(good, "mode: job\njobs:\n  sync_user: { every: 10 seconds }\n")
          const ok = yield* cli(["config", "check", "--config", good])
          expect(ok.stdout.trim()).toBe(`config OK: ${good}, mode job, jobs sync_user, archive_user`)
          expect(ok.status).toBe(0)
          const bad = path.join(dir, "bad.yaml")
          fs.writeFileSync(bad, "jobs:\n  archive_user: { cron: \"0 0 25 * * *\" }\n")
          const invalid = yield* cli(["config", "check", "--config", bad])
          expect(invalid.status).toBe(2)
          expect(invalid.stderr).toMatch(/^effect-job-scheduler: invalid configuration at jobs\.archive_user\.cron: /)
          // The environment is part of what is checked.
          const env = yield* cli(["config", "check", "--config", good], { HTTP_PORT: "eighty" })
          expect(env.status).toBe(2)
          expect(env.stderr).toContain("http.port")
        } finally {
          fs.rmSync(dir, { recursive: true, force: true })
        }

        const help = yield* cli(["--help"])
        expect(help.status).toBe(0)
        expect(help.stdout).toContain("--mode job|rpc|all")
        expect(help.stdout).toContain("jobs list")
        const bogus = yield* cli(["jobs", "bogus"])
        expect(bogus.status).toBe(2)
      }),
    60_000
  )
})
