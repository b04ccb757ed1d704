import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Config from "../../src/service/config/Config.js"
import * as ClusterInfo from "../../src/service/server/ClusterInfo.js"

const decode = (text: string, env: Record<string, string> = {}) =>
  Config.decode({ text, source: "test.yaml", env, defaultNodeId: "test-node" })

const error = (text: string, env: Record<string, string> = {}) => {
  const result = decode(text, env)
  if (Either.isRight(result)) throw new Error("expected a ConfigInvalid")
  return { path: result.left.path, reason: result.left.reason }
}

describe("the http config of the operator's side", () => {
  it("defaults: no tokens, no advertised URL, a 1 MiB body limit", () => {
    const config = Either.getOrThrow(decode(""))
    expect(config.http.maxBodySize).toBe(1024 * 1024)
    expect(Option.isNone(config.http.readToken)).toBe(true)
    expect(Option.isNone(config.http.advertiseUrl)).toBe(true)
  })

  it("maxBodySize takes a size with a unit or a byte count, from the file or HTTP_MAX_BODY_SIZE", () => {
    const size = (value: string, env: Record<string, string> = {}) =>
      Either.getOrThrow(decode(value === "" ? "" : `http: { maxBodySize: ${value} }`, env)).http.maxBodySize
    expect(size("512 KiB")).toBe(512 * 1024)
    expect(size("\"2 MiB\"")).toBe(2 * 1024 * 1024)
    expect(size("100 kB")).toBe(100_000)
    expect(size("4096")).toBe(4096)
    expect(size("", { HTTP_MAX_BODY_SIZE: "64 KiB" })).toBe(64 * 1024)
    expect(size("", { HTTP_MAX_BODY_SIZE: "8192" })).toBe(8192)
    expect(error("http: { maxBodySize: lots }")).toEqual({
      path: "http.maxBodySize",
      reason: "expected a size such as \"1 MiB\" or \"512 KiB\", got \"lots\""
    })
    expect(error("http: { maxBodySize: 10 }")).toEqual({
      path: "http.maxBodySize",
      reason: "expected at least 1024 bytes, got 10"
    })
  })

  it("readToken needs token; tokens are redacted; advertiseUrl must be an http(s) URL", () => {
    expect(error("http: { readToken: r }")).toEqual({
      path: "http.token",
      reason: "is missing (required when http.readToken is set)"
    })
    const config = Either.getOrThrow(decode("", { HTTP_TOKEN: "w-secret", HTTP_READ_TOKEN: "r-secret" }))
    expect(Option.map(config.http.readToken, Redacted.value)).toEqual(Option.some("r-secret"))
    expect(JSON.stringify(Config.describe(config))).not.toContain("secret")
    expect(Config.describe(config).http).toContain("(read token set)")
    expect(Either.getOrThrow(decode("http: { advertiseUrl: \"http://10.0.0.7:8080\" }")).http.advertiseUrl)
      .toEqual(Option.some("http://10.0.0.7:8080"))
    expect(error("", { HTTP_ADVERTISE_URL: "10.0.0.7:8080" }).path).toBe("http.advertiseUrl")
  })
})

describe("the hash of the job definitions", () => {
  it("is the same however the file spells the same jobs, and differs when a trigger or option differs", () => {
    const jobs = (text: string) => Either.getOrThrow(decode(text)).jobs
    const a = ClusterInfo.configHash(jobs("jobs:\n  sync_user: { every: 5 seconds, timeout: 5 minutes }\n"))
    const b = ClusterInfo.configHash(jobs("jobs:\n  sync_user: { timeout: 300 seconds, every: 5000 millis }\n"))
    const defaults = ClusterInfo.configHash(jobs(""))
    const other = ClusterInfo.configHash(jobs("jobs:\n  sync_user: { every: 6 seconds, timeout: 5 minutes }\n"))
    const disabled = ClusterInfo.configHash(jobs("jobs:\n  archive_user: { enabled: false, cron: \"0 0 2 * * *\" }\n"))
    expect(a).toMatch(/^[0-9a-f]{16}$/)
    expect(b).toBe(a)
    expect(defaults).toBe(a)
    expect(other).not.toBe(a)
    expect(disabled).not.toBe(a)
  })
})
