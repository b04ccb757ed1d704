/**
 * The production backends in the config: Redis through Sentinel (`redis.sentinels` + `redis.name`) and the shared
 * PostgreSQL user store (`database.url`), from the file and from the environment, and every invalid combination as
 * a `ConfigInvalid` naming the field.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Config from "../../src/service/config/Config.js"

const decode = (text: string | undefined, env: Record<string, string> = {}) =>
  Config.decode({ text, source: "test.yaml", env, defaultNodeId: "test-node" })

const ok = (text: string | undefined, env: Record<string, string> = {}) =>
  Either.getOrThrowWith(decode(text, env), (error) => new Error(error.message))

const failure = (text: string | undefined, env: Record<string, string> = {}) => {
  const result = decode(text, env)
  if (Either.isRight(result)) throw new Error(`expected ConfigInvalid, decoded ${JSON.stringify(result.right)}`)
  return result.left
}

describe("Config redis.sentinels", () => {
  it("decodes the sentinels, the primary's name and the secrets", () => {
    const config = ok(`
redis:
  sentinels: [127.0.0.1:26379, "sentinel-b:26380", "[::1]:26381"]
  name: mymaster
  sentinelPassword: sent-pw
  password: data-pw
  db: 3
  keyPrefix: svc
`)
    const redis = Option.getOrThrow(config.redis)
    expect(redis.url).toBeUndefined()
    expect(redis.keyPrefix).toBe("svc")
    const sentinel = redis.sentinel!
    expect(sentinel.sentinels).toEqual([
      { host: "127.0.0.1", port: 26379 },
      { host: "sentinel-b", port: 26380 },
      { host: "::1", port: 26381 }
    ])
    expect(sentinel.name).toBe("mymaster")
    expect(sentinel.db).toBe(3)
    expect(Redacted.value(sentinel.sentinelPassword as Redacted.Redacted<string>)).toBe("sent-pw")
    expect(Redacted.value(sentinel.password as Redacted.Redacted<string>)).toBe("data-pw")
    const printed = JSON.stringify(Config.describe(config)) + JSON.stringify(config)
    expect(printed).not.toContain("sent-pw")
    expect(printed).not.toContain("data-pw")
    expect(Config.describe(config).redis).toBe(
      "sentinel mymaster via 127.0.0.1:26379,sentinel-b:26380,::1:26381 prefix svc"
    )
  })

  it("takes REDIS_SENTINELS (comma-separated), REDIS_SENTINEL_NAME and the passwords from the environment", () => {
    const config = ok(undefined, {
      REDIS_SENTINELS: "10.0.0.1:26379, 10.0.0.2:26379",
      REDIS_SENTINEL_NAME: "primary",
      REDIS_SENTINEL_PASSWORD: "s",
      REDIS_PASSWORD: "p"
    })
    const sentinel = Option.getOrThrow(config.redis).sentinel!
    expect(sentinel.sentinels.map((s) => s.host)).toEqual(["10.0.0.1", "10.0.0.2"])
    expect(sentinel.name).toBe("primary")
    expect(Redacted.value(sentinel.password as Redacted.Redacted<string>)).toBe("p")
  })

  it("a standalone url stays as it was", () => {
    const redis = Option.getOrThrow(ok(`redis: { url: "redis://127.0.0.1:6379/0" }`).redis)
    expect(Redacted.value(redis.url!)).toBe("redis://127.0.0.1:6379/0")
    expect(redis.sentinel).toBeUndefined()
  })

  const cases: ReadonlyArray<readonly [string, string, Record<string, string>, string, RegExp]> = [
    ["sentinels without a name", "redis: { sentinels: [h:26379] }", {}, "redis.name", /missing/],
    ["a sentinel without a port", "redis: { sentinels: [h], name: m }", {}, "redis.sentinels[0]", /host:port/],
    ["a sentinel port out of range", "redis: { sentinels: [h:70000], name: m }", {}, "redis.sentinels[0]", /host:port/],
    ["no sentinel", "redis: { sentinels: [], name: m }", {}, "redis.sentinels", /at least one/],
    [
      "both url and sentinels",
      "redis: { url: redis://h:6379, sentinels: [h:26379], name: m }",
      {},
      "redis.sentinels",
      /either/
    ],
    [
      "url from the env and sentinels in the file",
      "redis: { sentinels: [h:26379], name: m }",
      {
        REDIS_URL: "redis://h:6379"
      },
      "redis.sentinels",
      /either/
    ],
    ["a name without sentinels", "redis: { url: redis://h:6379, name: m }", {}, "redis.name", /only applies/],
    ["neither url nor sentinels", "redis: { keyPrefix: x }", {}, "redis.url", /missing/],
    ["a bad db", "redis: { sentinels: [h:1], name: m, db: -1 }", {}, "redis.db", /database number/]
  ]
  for (const [name, text, env, path, reason] of cases) {
    it(`${name} -> ${path}`, () => {
      const error = failure(text, env)
      expect(error.path).toBe(path)
      expect(error.reason).toMatch(reason)
    })
  }
})

describe("Config database.url", () => {
  it("SQLite stays the default; a postgres URL (file or DATABASE_URL) selects PostgreSQL, its password hidden", () => {
    expect(Option.isNone(ok(undefined).database.url)).toBe(true)
    expect(Config.describe(ok(undefined)).database).toBe("sqlite ./data/user.db")
    const fromFile = ok(`database: { url: "postgres://app:pg-secret@db:5432/users" }`)
    expect(Redacted.value(Option.getOrThrow(fromFile.database.url))).toBe("postgres://app:pg-secret@db:5432/users")
    const printed = JSON.stringify(Config.describe(fromFile)) + JSON.stringify(fromFile)
    expect(printed).not.toContain("pg-secret")
    expect(Config.describe(fromFile).database).toBe("postgresql postgres://app:***@db:5432/users")
    const fromEnv = ok(undefined, { DATABASE_URL: "postgresql://db/users" })
    expect(Redacted.value(Option.getOrThrow(fromEnv.database.url))).toBe("postgresql://db/users")
  })

  it("a URL that is not postgres:// is refused with its path, without echoing it", () => {
    const error = failure(`database: { url: "mysql://u:topsecret@h/db" }`)
    expect(error.path).toBe("database.url")
    expect(error.reason).toMatch(/postgres:\/\//)
    expect(error.reason).not.toContain("topsecret")
    expect(failure(undefined, { DATABASE_URL: "nonsense" }).reason).toContain("DATABASE_URL")
  })
})
