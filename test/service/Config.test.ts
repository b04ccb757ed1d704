import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Config from "../../src/service/config/Config.js"

const decode = (text: string | undefined, env: Record<string, string> = {}, mode?: string) =>
  Config.decode({ text, source: "test.yaml", env, cli: { mode }, defaultNodeId: "test-node" })

/** The ConfigInvalid of a bad input, as `path: reason`; fails the test when the input decodes. */
const failure = (text: string | undefined, env: Record<string, string> = {}, mode?: string) => {
  const result = decode(text, env, mode)
  if (Either.isRight(result)) throw new Error(`expected ConfigInvalid, decoded ${JSON.stringify(result.right)}`)
  expect(result.left._tag).toBe("ConfigInvalid")
  return result.left
}

const ok = (text: string | undefined, env: Record<string, string> = {}, mode?: string) =>
  Either.getOrThrowWith(decode(text, env, mode), (error) => new Error(error.message))

describe("Config defaults", () => {
  it("gives the embedded mode when there is no file", () => {
    const config = ok(undefined)
    expect(config.mode).toBe("all")
    expect(config.nodeId).toBe("test-node")
    expect(config.log).toEqual({ format: "pretty", level: "info" })
    expect(config.http.host).toBe("127.0.0.1")
    expect(config.http.port).toBe(8080)
    expect(Option.isNone(config.http.token)).toBe(true)
    expect(Option.isNone(config.redis)).toBe(true)
    expect(Option.isNone(config.etcd)).toBe(true)
    expect(config.database.sqlite).toBe("./data/user.db")
    expect(Duration.toMillis(config.shutdownGrace)).toBe(30_000)
    expect(Duration.toMillis(config.jobs.sync_user.every!)).toBe(5_000)
    expect(config.jobs.archive_user.cron).toBe("0 0 2 * * *")
    expect(config.jobs.archive_user.timezone).toBe("Asia/Shanghai")
  })

  it("decodes the shipped config/default.yaml", () => {
    const text = fs.readFileSync(path.join(__dirname, "../../config/default.yaml"), "utf8")
    const config = ok(text)
    expect(config.mode).toBe("all")
    expect(Option.isNone(config.redis)).toBe(true)
    expect(Option.isNone(config.etcd)).toBe(true)
    expect(Duration.toMillis(config.jobs.sync_user.every!)).toBe(5_000)
  })

  it("decodes the full example of the documented configuration shape", () => {
    const config = ok(`
mode: job
nodeId: node-1
log: { format: json, level: debug }
http: { host: 0.0.0.0, port: 9090, token: s3cret }
shutdownGrace: 10 seconds
redis:
  url: redis://:pw@127.0.0.1:6379/0
  keyPrefix: user
etcd:
  endpoints: [http://127.0.0.1:2379]
  leaseTtl: 10 seconds
  electionKey: user/scheduler
database: { sqlite: ./data/user.db }
jobs:
  sync_user:    { every: 5 seconds, timeout: 5 minutes, retry: { times: 2, delay: 1 second } }
  archive_user:
    { cron: "0 0 2 * * *", timezone: Asia/Shanghai, timeout: 1 hour, misfire: runOnce, lock: { ttl: 2 hours } }
`)
    expect(config.mode).toBe("job")
    expect(config.log).toEqual({ format: "json", level: "debug" })
    expect(config.http.port).toBe(9090)
    expect(Redacted.value(Option.getOrThrow(config.http.token))).toBe("s3cret")
    const redis = Option.getOrThrow(config.redis)
    expect(Redacted.value(redis.url!)).toBe("redis://:pw@127.0.0.1:6379/0")
    expect(redis.keyPrefix).toBe("user")
    const etcd = Option.getOrThrow(config.etcd)
    expect(etcd.endpoints).toEqual(["http://127.0.0.1:2379"])
    expect(Duration.toMillis(etcd.leaseTtl)).toBe(10_000)
    expect(config.jobs.sync_user.retry?.times).toBe(2)
    expect(Duration.toMillis(config.jobs.archive_user.lock!.ttl!)).toBe(7_200_000)
  })

  it("keeps the defaults of a known job absent from the file and replaces a given one as a whole", () => {
    const config = ok(`jobs: { sync_user: { cron: "*/10 * * * * *" } }`)
    expect(config.jobs.sync_user.cron).toBe("*/10 * * * * *")
    expect(config.jobs.sync_user.every).toBeUndefined()
    expect(config.jobs.archive_user.cron).toBe("0 0 2 * * *")
  })

  it("never shows secrets when the config is printed", () => {
    const config = ok(`http: { token: tok-123 }\nredis: { url: "redis://:hunter2@127.0.0.1:6379" }`)
    const printed = JSON.stringify(Config.describe(config)) + String(config.http.token) + JSON.stringify(config)
    expect(printed).not.toContain("tok-123")
    expect(printed).not.toContain("hunter2")
  })
})

describe("Config environment overrides", () => {
  it("applies every documented environment override over the file", () => {
    const config = ok(`mode: rpc\nhttp: { port: 1 }`, {
      MODE: "job",
      NODE_ID: "env-node",
      LOG_FORMAT: "json",
      LOG_LEVEL: "warn",
      HTTP_HOST: "0.0.0.0",
      HTTP_PORT: "9191",
      HTTP_TOKEN: "env-token",
      REDIS_URL: "redis://127.0.0.1:6380/1",
      REDIS_KEY_PREFIX: "svc",
      ETCD_ENDPOINTS: "http://a:2379, http://b:2379",
      ETCD_LEASE_TTL: "4 seconds",
      SQLITE_PATH: "/tmp/x.db"
    })
    expect(config.mode).toBe("job")
    expect(config.nodeId).toBe("env-node")
    expect(config.log).toEqual({ format: "json", level: "warn" })
    expect(config.http.host).toBe("0.0.0.0")
    expect(config.http.port).toBe(9191)
    expect(Redacted.value(Option.getOrThrow(config.http.token))).toBe("env-token")
    const redis = Option.getOrThrow(config.redis)
    expect(Redacted.value(redis.url!)).toBe("redis://127.0.0.1:6380/1")
    expect(redis.keyPrefix).toBe("svc")
    const etcd = Option.getOrThrow(config.etcd)
    expect(etcd.endpoints).toEqual(["http://a:2379", "http://b:2379"])
    expect(Duration.toMillis(etcd.leaseTtl)).toBe(4_000)
    expect(config.database.sqlite).toBe("/tmp/x.db")
  })

  it("lets --mode win over MODE and the file", () => {
    expect(ok(`mode: rpc`, { MODE: "job" }, "all").mode).toBe("all")
  })

  it("names the environment variable when an override is invalid", () => {
    const error = failure(undefined, { HTTP_PORT: "eighty" })
    expect(error.path).toBe("http.port")
    expect(error.reason).toContain("HTTP_PORT")
  })

  it("rejects an override that needs a key nobody gave (REDIS_KEY_PREFIX without a URL)", () => {
    expect(failure(undefined, { REDIS_KEY_PREFIX: "x" }).path).toBe("redis.url")
  })
})

describe("Config every invalid input is a ConfigInvalid with its field path", () => {
  const cases: ReadonlyArray<readonly [string, string, string, RegExp?]> = [
    ["bad YAML", "http: { port: 1\nmode: job", "test.yaml:", /bad YAML/],
    ["duplicate key", "mode: job\nmode: rpc", "test.yaml:", /bad YAML/],
    ["not a mapping", "- a\n- b", "(root)"],
    ["unknown top-level key", "colour: blue", "colour", /unknown key/],
    ["unknown nested key", "http: { prot: 1 }", "http.prot", /unknown key/],
    ["unknown job key", "jobs: { sync_user: { every: 5 seconds, evry: 1 } }", "jobs.sync_user.evry", /unknown key/],
    ["unknown job name", "jobs: { send_mail: { every: 5 seconds } }", "jobs.send_mail", /unknown job/],
    ["bad cron", `jobs: { archive_user: { cron: "0 0 25 * * *" } }`, "jobs.archive_user.cron"],
    ["cron that never fires", `jobs: { archive_user: { cron: "0 0 0 30 2 *" } }`, "jobs.archive_user.cron"],
    [
      "unknown zone",
      `jobs: { archive_user: { cron: "0 0 2 * * *", timezone: Mars/Olympus } }`,
      "jobs.archive_user.timezone"
    ],
    ["zone without cron", `jobs: { sync_user: { every: 5 seconds, timezone: UTC } }`, "jobs.sync_user.timezone"],
    ["two triggers", `jobs: { sync_user: { every: 5 seconds, cron: "* * * * * *" } }`, "jobs.sync_user", /exactly one/],
    ["no trigger", `jobs: { sync_user: { timeout: 5 seconds } }`, "jobs.sync_user", /exactly one/],
    ["bad duration", "jobs: { sync_user: { every: 5 parsecs } }", "jobs.sync_user.every", /duration/],
    [
      "negative duration",
      "jobs: { sync_user: { every: 5 seconds, timeout: -5 seconds } }",
      "jobs.sync_user.timeout",
      /non-negative/
    ],
    ["bare number duration", "shutdownGrace: 30", "shutdownGrace", /duration string/],
    ["negative shutdownGrace", "shutdownGrace: -1 seconds", "shutdownGrace", /non-negative/],
    ["zero interval", "jobs: { sync_user: { every: 0 seconds } }", "jobs.sync_user.every", /greater than zero/],
    ["bad lock ttl", "jobs: { sync_user: { every: 5 seconds, lock: { ttl: soon } } }", "jobs.sync_user.lock.ttl"],
    [
      "negative retry times",
      "jobs: { sync_user: { every: 5 seconds, retry: { times: -1 } } }",
      "jobs.sync_user.retry.times"
    ],
    [
      "retry factor below 1",
      "jobs: { sync_user: { every: 5 seconds, retry: { factor: 0.5 } } }",
      "jobs.sync_user.retry.factor"
    ],
    [
      "bad overlap",
      "jobs: { sync_user: { every: 5 seconds, overlap: queue } }",
      "jobs.sync_user.overlap",
      /skip, allow/
    ],
    ["bad misfire", "jobs: { sync_user: { every: 5 seconds, misfire: all } }", "jobs.sync_user.misfire"],
    ["bad enabled", "jobs: { sync_user: { every: 5 seconds, enabled: maybe } }", "jobs.sync_user.enabled"],
    ["bad redis URL", "redis: { url: http://127.0.0.1:6379 }", "redis.url", /redis:\/\//],
    ["unparseable redis URL", "redis: { url: not a url }", "redis.url"],
    ["missing redis URL", "redis: { keyPrefix: user }", "redis.url", /missing/],
    ["bad etcd endpoint", "etcd: { endpoints: [ftp://x:2379] }", "etcd.endpoints[0]", /http/],
    ["empty etcd endpoints", "etcd: { endpoints: [] }", "etcd.endpoints"],
    ["etcd lease below 2 s", "etcd: { endpoints: [http://x:2379], leaseTtl: 1 second }", "etcd.leaseTtl", /at least/],
    ["etcd password without user", "etcd: { endpoints: [http://x:2379], password: pw }", "etcd.username", /missing/],
    ["etcd election key empty", `etcd: { endpoints: [http://x:2379], electionKey: "" }`, "etcd.electionKey"],
    ["port out of range", "http: { port: 70000 }", "http.port", /0-65535/],
    ["negative port", "http: { port: -1 }", "http.port"],
    ["fractional port", "http: { port: 80.5 }", "http.port"],
    ["wrong mode", "mode: batch", "mode", /job, rpc, all/],
    ["wrong log format", "log: { format: xml }", "log.format"],
    ["wrong log level", "log: { level: loud }", "log.level"],
    ["empty sqlite path", `database: { sqlite: "" }`, "database.sqlite"]
  ]
  for (const [name, text, expectedPath, reason] of cases) {
    it(`${name} -> ${expectedPath}`, () => {
      const error = failure(text)
      if (expectedPath.endsWith(":")) expect(error.path.startsWith(expectedPath)).toBe(true)
      else expect(error.path).toBe(expectedPath)
      expect(error.reason.length).toBeGreaterThan(0)
      if (reason !== undefined) expect(error.reason).toMatch(reason)
    })
  }

  it("wrong mode from --mode names the flag", () => {
    const error = failure(undefined, {}, "batch")
    expect(error.path).toBe("mode")
    expect(error.reason).toContain("--mode")
  })

  it("a bad Redis URL is not echoed (it may hold a password)", () => {
    const error = failure("redis: { url: http://:hunter2@host:6379 }")
    expect(error.message).not.toContain("hunter2")
  })
})

describe("Config command line and file loading", () => {
  it("parses --mode, --config in both forms and --help", () => {
    expect(Config.parseArgs(["--mode", "job", "--config=x.yaml"])).toEqual(
      Either.right({ mode: "job", config: "x.yaml", help: false })
    )
    expect(Either.getOrThrow(Config.parseArgs(["--help"])).help).toBe(true)
    expect(Either.getLeft(Config.parseArgs(["--verbose"])).pipe(Option.map((e) => e.path))).toEqual(Option.some("argv"))
    expect(Either.isLeft(Config.parseArgs(["--mode"]))).toBe(true)
  })

  it.effect("a config file named explicitly but missing is an error; a missing default file gives defaults", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.flip(
        Config.load({ cli: { help: false, config: "/nonexistent/x.yaml" }, env: {} })
      )
      expect(missing.path).toBe("/nonexistent/x.yaml")
      const fromEnv = yield* Effect.flip(Config.load({ cli: { help: false }, env: { CONFIG: "/nonexistent/y.yaml" } }))
      expect(fromEnv.path).toBe("/nonexistent/y.yaml")
      const cwd = process.cwd()
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cfg-"))
      try {
        process.chdir(dir)
        const config = yield* Config.load({ cli: { help: false }, env: {} })
        expect(config.source).toBe("built-in defaults")
      } finally {
        process.chdir(cwd)
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }))

  it("a started service with a bad config exits 2 printing one line with the path and reason", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cfg-"))
    try {
      const file = path.join(dir, "bad.yaml")
      fs.writeFileSync(file, `jobs: { archive_user: { cron: "0 0 2 * * *", timezone: Mars/Olympus } }\n`)
      const root = path.join(__dirname, "../..")
      const run = spawnSync(
        process.execPath,
        [path.join(root, "scripts/run.mjs"), path.join(root, "src/service/main.ts"), "--config", file],
        // vitest sets MODE=test in its own environment; the service reads MODE, so it is dropped here.
        {
          cwd: dir,
          encoding: "utf8",
          timeout: 60_000,
          env: { ...process.env, MODE: "", SQLITE_PATH: path.join(dir, "u.db") }
        }
      )
      expect(run.status).toBe(2)
      const lines = run.stderr.trim().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain("jobs.archive_user.timezone")
      // Nothing was started: no database file was created.
      expect(fs.existsSync(path.join(dir, "u.db"))).toBe(false)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
