import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { finishedRuns, getJson, poll, startNode, tempDir } from "../harness/node.js"
import { startRedis, uniquePrefix } from "../harness/redis.js"

describe("start-up with the store down", () => {
  it.scopedLive(
    "Redis down at start: the node runs not ready, skips fires as store_error, and recovers when Redis comes",
    () =>
      Effect.gen(function*() {
        // A Redis whose port we know, stopped before the node starts; restarted later on the same port.
        const redis = yield* startRedis()
        yield* redis.stop()
        const dir = yield* tempDir("svc-startup")
        const config = path.join(dir, "startup.yaml")
        fs.writeFileSync(
          config,
          `
redis: { url: "${redis.url}", keyPrefix: ${uniquePrefix("startup")} }
jobs:
  sync_user: { every: 1 second, timeout: 30 seconds }
`
        )
        const node = yield* startNode({ id: "node-s", mode: "job", config, dir })
        yield* poll("/healthz while Redis is down", "60 seconds", async () =>
          (await getJson(node.port, "/healthz")).status === 200 || undefined)
        const notReady = yield* Effect.promise(() =>
          getJson(node.port, "/readyz")
        )
        expect(notReady.status).toBe(503)
        expect(notReady.body.checks.redis).not.toBe("ok")
        expect(node.lines().some((l) => l.message === "redis not ready at start; connecting in the background"))
          .toBe(true)
        // The scheduler runs: its fires are skipped with a store error, not lost in a crash loop.
        yield* poll("a store_error skip", "30 seconds", async () =>
          node.lines().some((l) =>
            l.message === "job skipped" && l.reason === "store_error"
          ) || undefined)
        expect(node.process.exitCode).toBeNull()
        expect(finishedRuns(node)).toEqual([])

        yield* redis.restart()
        yield* poll("/readyz once Redis is up", "30 seconds", async () =>
          (await getJson(node.port, "/readyz")).status === 200 || undefined)
        const runs = yield* poll("a successful run after Redis came", "30 seconds", async () => {
          const ok = finishedRuns(node).filter((l) =>
            l.outcome === "success"
          )
          return ok.length > 0 ? ok : undefined
        })
        expect(runs.length).toBeGreaterThan(0)
        expect(node.process.exitCode).toBeNull()
      }),
    120_000
  )
})
