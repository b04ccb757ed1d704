/**
 * The published package as an application installs it: `npm pack` of this checkout (which builds the library
 * through `prepack`), the tarball installed into a fresh project outside the checkout with only its required peer
 * (`effect`, from the local npm cache), and consumers that type-check, run, bundle, and use the Redis backend.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Redis as IORedis } from "ioredis"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { startRedis, uniquePrefix } from "./harness/redis.js"

const root = path.resolve(import.meta.dirname, "..")
const require = createRequire(path.join(root, "package.json"))
const npm = process.platform === "win32" ? "npm.cmd" : "npm"

const exec = promisify(execFile)

/**
 * npm with the local cache first: the suite must not depend on the registry for packages `npm ci` already fetched.
 * Asynchronous, so that the test worker keeps answering vitest while npm works.
 */
const npmRun = async (cwd: string, args: ReadonlyArray<string>): Promise<string> =>
  (await exec(npm, [...args, "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd,
    encoding: "utf8",
    timeout: 180_000,
    maxBuffer: 64 * 1024 * 1024
  })).stdout

/** Runs a program to its end; a non-zero exit is returned, not thrown, so that the assertion shows the output. */
const runProgram = async (cwd: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  try {
    const { stderr, stdout } = await exec(process.execPath, args, {
      cwd,
      encoding: "utf8",
      timeout: 120_000,
      env: { ...process.env, ...env }
    })
    return { status: 0, output: `${stdout}${stderr}`, stdout }
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string; message: string }
    return {
      status: typeof failed.code === "number" ? failed.code : -1,
      output: `${failed.message}\n${failed.stdout ?? ""}${failed.stderr ?? ""}`,
      stdout: failed.stdout ?? ""
    }
  }
}

/** The last line of `stdout` that is a JSON object: what a consumer reports. */
const report = (stdout: string): Record<string, unknown> => {
  const line = stdout.trim().split("\n").reverse().find((l) => l.startsWith("{"))
  if (line === undefined) throw new Error(`no JSON report in:\n${stdout}`)
  return JSON.parse(line)
}

// A memory-only application: the root and two subpaths, one job every second plus a manual trigger. It also checks
// that internals are closed and that the backends' clients are not installed.
const memoryConsumer = `
import { Effect } from "effect"
import { Job, RunContext, Scheduler } from "effect-job-scheduler"
import * as Cron from "effect-job-scheduler/Cron"
import * as JobStore from "effect-job-scheduler/JobStore"

const closed = async (specifier) => {
  try {
    await import(specifier)
    return "importable"
  } catch (error) {
    return error.code
  }
}

const fences = []
const tick = Job.unsafeMake({
  name: "tick",
  cron: "* * * * * *",
  timeout: "5 seconds",
  handler: Effect.flatMap(RunContext, (run) => Effect.sync(() => { fences.push(run.fence) }))
})

const program = Effect.gen(function*() {
  const scheduler = yield* Scheduler.Scheduler
  const triggered = yield* scheduler.trigger("tick")
  yield* Effect.sleep("3 seconds")
  const runs = yield* scheduler.runs("tick")
  return { triggered: triggered._tag, runs: runs.map((r) => ({ kind: r.kind, outcome: r.outcome })) }
}).pipe(Effect.provide(Scheduler.layerMemory([tick])))

const result = await Effect.runPromise(program)
const cron = Cron.parse("0 0 2 * * *", { timezone: "Asia/Shanghai" })
console.log(JSON.stringify({
  ...result,
  fences,
  nextNightly: new Date(Cron.next(cron.right, Date.UTC(2026, 0, 1))).toISOString(),
  memoryLayer: typeof JobStore.layerMemory,
  internal: await closed("effect-job-scheduler/internal/timer"),
  testing: typeof (await import("effect-job-scheduler/Testing")).layerFastTestClock,
  ioredis: await closed("ioredis"),
  etcd3: await closed("etcd3")
}))
`

// The same application type-checked: the root and three subpaths, with the types the package declares.
const typedConsumer = `
import { Effect, Either, Layer } from "effect"
import { BusinessError, Job, RunContext, Scheduler } from "effect-job-scheduler"
import * as Cron from "effect-job-scheduler/Cron"
import * as JobStore from "effect-job-scheduler/JobStore"
import * as Testing from "effect-job-scheduler/Testing"

const job: Job.Job<never> = Job.unsafeMake({
  name: "typed",
  every: "5 seconds",
  handler: Effect.flatMap(RunContext, (run) =>
    run.fence < 0 ? Effect.fail(new BusinessError({ code: "NEGATIVE", message: "no" })) : Effect.void)
})
const cron: Either.Either<Cron.Cron, unknown> = Cron.parse("0 0 2 * * *", { timezone: "UTC" })
const layer = Scheduler.layerMemory([job])
const program: Effect.Effect<ReadonlyArray<Scheduler.JobStatus>, unknown, Scheduler.Scheduler> = Effect.flatMap(
  Scheduler.Scheduler,
  (scheduler) => scheduler.status
)
export const main = program.pipe(Effect.provide(layer))
export const store = JobStore.layerMemory
export const fastTestClock: Layer.Layer<never> = Testing.layerFastTestClock
export { cron }
`

// A Redis-backed application: the backend's subpaths, ioredis installed next to the package.
const redisConsumer = `
import { Effect, Layer } from "effect"
import { Job, RunContext, Scheduler, LeaderElection } from "effect-job-scheduler"
import * as Redis from "effect-job-scheduler/Redis"
import * as JobStoreRedis from "effect-job-scheduler/JobStore/Redis"

const fences = []
const tick = Job.unsafeMake({
  name: "tick",
  cron: "* * * * * *",
  timeout: "5 seconds",
  handler: Effect.flatMap(RunContext, (run) => Effect.sync(() => { fences.push(run.fence) }))
})
const store = JobStoreRedis.layer.pipe(
  Layer.provideMerge(Redis.layer({ url: process.env.REDIS_URL, keyPrefix: process.env.REDIS_KEY_PREFIX }))
)
const program = Effect.gen(function*() {
  const scheduler = yield* Scheduler.Scheduler
  yield* Effect.sleep("3 seconds")
  return (yield* scheduler.runs("tick")).map((r) => ({ runId: r.runId, outcome: r.outcome, fence: r.fence }))
}).pipe(
  Effect.provide(Scheduler.layer([tick]).pipe(Layer.provide(LeaderElection.layerSingleNode("consumer")), Layer.provideMerge(store)))
)
console.log(JSON.stringify({ runs: await Effect.runPromise(program), fences }))
`

describe("the npm package", () => {
  let work: string
  let app: string
  let files: ReadonlyArray<string>
  let added: ReadonlyArray<string>

  beforeAll(async () => {
    // Outside the checkout: node and tsc must resolve everything from the consumer's own node_modules.
    work = fs.mkdtempSync(path.join(os.tmpdir(), "ejs-package-"))
    const packed = JSON.parse(await npmRun(root, ["pack", "--json", "--pack-destination", work]))
    files = packed[0].files.map((file: { path: string }) => file.path)
    const tarball = path.join(work, packed[0].filename)
    app = path.join(work, "app")
    fs.mkdirSync(app)
    fs.writeFileSync(
      path.join(app, "package.json"),
      JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" })
    )
    await npmRun(app, ["install", tarball])
    added = fs.readdirSync(path.join(app, "node_modules")).filter((name) => !name.startsWith("."))
  }, 240_000)

  afterAll(() => {
    if (work !== undefined) fs.rmSync(work, { recursive: true, force: true })
  })

  it("the tarball holds the built library and its sources, no tests, benches, service, CI or config", () => {
    expect(files).toContain("dist/lib/index.js")
    expect(files).toContain("dist/lib/index.d.ts")
    expect(files).toContain("dist/lib/Scheduler.js.map")
    expect(files).toContain("dist/lib/JobStore/Redis.js")
    expect(files).toContain("src/Scheduler.ts")
    const unwanted = files.filter((file) =>
      /^(test|scripts|config|\.ci|dist\/service|src\/service|dist\/lib\/service)\//.test(file) ||
      file === "src/main.ts" || file === "vitest.config.ts" || file === "tsconfig.json"
    )
    expect(unwanted).toEqual([])
  })

  it("a memory-only install brings effect and nothing of the backends or the service", () => {
    expect(added).toContain("effect")
    expect(added).toContain("effect-job-scheduler")
    for (const absent of ["ioredis", "etcd3", "cockatiel", "@grpc", "@effect", "better-sqlite3", "yaml"]) {
      expect(added).not.toContain(absent)
    }
    console.log(`[package] a memory-only install holds ${added.length} top-level packages: ${added.join(", ")}`)
  })

  it("tsc type-checks a consumer of the root and three subpaths against the declared types", async () => {
    fs.writeFileSync(path.join(app, "typed.ts"), typedConsumer)
    fs.writeFileSync(
      path.join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmit: true,
          types: [],
          // The consumer's own dependencies are checked too: the package's .d.ts must resolve against them alone.
          skipLibCheck: false
        },
        files: ["typed.ts"]
      })
    )
    const result = await runProgram(app, [require.resolve("typescript/bin/tsc"), "-p", app])
    expect(result.status, result.output).toBe(0)
  }, 150_000)

  it("node runs a memory-only consumer: jobs fire, internals are closed, ioredis and etcd3 are not there", async () => {
    fs.writeFileSync(path.join(app, "memory.mjs"), memoryConsumer)
    const run = await runProgram(app, ["memory.mjs"])
    expect(run.status, run.output).toBe(0)
    const result = report(run.stdout)
    expect(result.triggered).toBe("Started")
    const runs = result.runs as ReadonlyArray<{ kind: string; outcome: string }>
    expect(runs.filter((r) => r.kind === "manual" && r.outcome === "success")).toHaveLength(1)
    expect(runs.filter((r) => r.kind === "scheduled" && r.outcome === "success").length).toBeGreaterThanOrEqual(1)
    expect(result.nextNightly).toBe("2026-01-01T18:00:00.000Z")
    expect(result.memoryLayer).toBe("object")
    expect(result.internal).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED")
    expect(result.testing).toBe("object")
    expect(result.ioredis).toBe("ERR_MODULE_NOT_FOUND")
    expect(result.etcd3).toBe("ERR_MODULE_NOT_FOUND")
  }, 90_000)

  it("esbuild bundles the memory-only consumer and the bundle runs from another directory", async () => {
    const { build } = await import("esbuild")
    const bundle = path.join(work, "bundle.mjs")
    fs.writeFileSync(path.join(app, "memory.mjs"), memoryConsumer)
    await build({
      entryPoints: [path.join(app, "memory.mjs")],
      absWorkingDir: app,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      outfile: bundle,
      // The consumer probes these on purpose; in a bundle they stay unresolved imports that fail at run time.
      external: ["ioredis", "etcd3", "effect-job-scheduler/internal/*"],
      logLevel: "error"
    })
    const elsewhere = fs.mkdtempSync(path.join(work, "elsewhere-"))
    fs.copyFileSync(bundle, path.join(elsewhere, "bundle.mjs"))
    const run = await runProgram(elsewhere, ["bundle.mjs"])
    expect(run.status, run.output).toBe(0)
    const runs = report(run.stdout).runs as ReadonlyArray<{ kind: string; outcome: string }>
    expect(runs.some((r) => r.kind === "scheduled" && r.outcome === "success"), run.output).toBe(true)
  }, 90_000)

  it("esbuild leaves the test helpers out of a bundle that does not import /Testing", async () => {
    const { build } = await import("esbuild")
    // The memory consumer as it is (it imports /Testing) and without that import: the root does not reach it.
    fs.writeFileSync(path.join(app, "memory.mjs"), memoryConsumer)
    fs.writeFileSync(
      path.join(app, "root-only.mjs"),
      memoryConsumer.replace(/^.*effect-job-scheduler\/Testing.*$/m, "")
    )
    const bundles = Object.fromEntries(
      await Promise.all(["memory.mjs", "root-only.mjs"].map(async (entry) => {
        const outfile = path.join(work, `bundled-${entry}`)
        await build({
          entryPoints: [path.join(app, entry)],
          absWorkingDir: app,
          bundle: true,
          platform: "node",
          format: "esm",
          target: "node20",
          outfile,
          external: ["ioredis", "etcd3", "effect-job-scheduler/internal/*"],
          logLevel: "error"
        })
        return [entry, fs.readFileSync(outfile, "utf8")] as const
      }))
    )
    expect(bundles["memory.mjs"]).toContain("fastTestClock")
    expect(bundles["root-only.mjs"]).not.toContain("fastTestClock")
  }, 90_000)

  it.scoped("a consumer of the Redis backend runs against a real redis-server", () =>
    Effect.gen(function*() {
      const redis = yield* startRedis()
      yield* Effect.promise(() => npmRun(app, ["install", `ioredis@${require("ioredis/package.json").version}`]))
      fs.writeFileSync(path.join(app, "redis.mjs"), redisConsumer)
      const prefix = uniquePrefix("package")
      const run = yield* Effect.promise(() =>
        runProgram(app, ["redis.mjs"], { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix })
      )
      expect(run.status, run.output).toBe(0)
      const runs = report(run.stdout).runs as ReadonlyArray<{ runId: string; outcome: string; fence: number }>
      expect(runs.length).toBeGreaterThanOrEqual(1)
      expect(runs.every((r) => r.outcome === "success")).toBe(true)
      // The records the consumer read came from Redis: they are there for any other node too.
      const client = new IORedis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
      const stored = yield* Effect.promise(async () => {
        await client.connect()
        try {
          return await client.lrange(`${prefix}:job:runs:tick`, 0, -1)
        } finally {
          client.disconnect()
        }
      })
      // A run that ends while the consumer's scope closes is recorded after the read: Redis may hold more.
      const storedIds = new Set(stored.map((json) => String(JSON.parse(json).runId)))
      expect(runs.filter((r) => !storedIds.has(r.runId))).toEqual([])
    }), 150_000)
})
