import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { startEtcd } from "../harness/etcd.js"
import { finishedRuns as finished, getJson, poll, rpc, type ServiceNode, startNode, tempDir } from "../harness/node.js"
import { startPostgres } from "../harness/postgres.js"
import { startRedis, uniquePrefix } from "../harness/redis.js"

describe("the service as a cluster (Redis + etcd + PostgreSQL, three processes)", () => {
  it.live(
    "2 job nodes + 1 rpc node: one leader runs the jobs, rpc reads the shared stores, failover on SIGTERM",
    () =>
      Effect.gen(function*() {
        const redis = yield* startRedis()
        const etcd = yield* startEtcd()
        const postgres = yield* startPostgres
        const database = yield* postgres.database("cluster")
        const dir = yield* tempDir("svc-cluster")
        const prefix = uniquePrefix("svc")
        const config = path.join(dir, "cluster.yaml")
        fs.writeFileSync(
          config,
          `
redis: { url: "${redis.url}", keyPrefix: ${prefix} }
etcd: { endpoints: ["${etcd.endpoint}"], leaseTtl: 2 seconds, electionKey: ${prefix}/scheduler }
database: { url: "${database}" }
shutdownGrace: 5 seconds
jobs:
  sync_user: { every: 1 second, timeout: 30 seconds }
`
        )
        const a = yield* startNode({ id: "node-a", mode: "job", config, dir })
        const b = yield* startNode({ id: "node-b", mode: "job", config, dir })
        const r = yield* startNode({ id: "node-r", mode: "rpc", config, dir })
        for (const node of [a, b, r]) {
          yield* poll(
            `${node.id} /healthz`,
            "60 seconds",
            async () => (await getJson(node.port, "/healthz")).status === 200 || undefined
          )
        }

        // Readiness names the configured backends.
        expect((yield* Effect.promise(() => getJson(a.port, "/readyz"))).body).toEqual({
          status: "ready",
          checks: { config: "ok", redis: "ok", etcd: "ok" }
        })
        const rpcReady = yield* Effect.promise(() => getJson(r.port, "/readyz"))
        expect(rpcReady.body.checks).toEqual({ config: "ok", redis: "ok" })

        // Exactly one job node runs sync_user.
        const leader = yield* poll(
          "a first run",
          "30 seconds",
          async () => finished(a).length > 0 ? a : finished(b).length > 0 ? b : undefined
        )
        const follower = leader === a ? b : a
        yield* Effect.sleep("3 seconds")
        expect(finished(leader).length).toBeGreaterThanOrEqual(2)
        expect(finished(follower)).toEqual([])
        const metrics = (node: ServiceNode) =>
          Effect.promise(() => fetch(`http://127.0.0.1:${node.port}/metrics`).then((x) => x.text()))
        expect(yield* metrics(leader)).toContain("scheduler_leader 1")
        expect(yield* metrics(follower)).toContain("scheduler_leader 0")

        // The rpc node sees the leader's runs in Redis; its trigger is forwarded to the leader; pause there reaches it.
        const jobs = yield* Effect.promise(() => rpc(r.port, "ListJobs", {}))
        const sync = jobs.value.find((job: any) => job.name === "sync_user")
        expect(sync.lastRun.node).toBe(leader.id)
        const runs = yield* Effect.promise(() => rpc(r.port, "JobRuns", { job: "sync_user", limit: 5 }))
        expect(runs.value.length).toBeGreaterThan(0)
        expect(runs.value.every((run: any) => run.node === leader.id)).toBe(true)
        // ...and serves the users the leader synced: one shared database, not a file per node.
        const leaderFences = new Set(finished(leader).map((l) => Number(l.fence)))
        const users = yield* Effect.promise(() => rpc(r.port, "ListUsers", { page: 1, pageSize: 100 }))
        expect(users.value.users.length).toBeGreaterThan(0)
        expect(users.value.users.filter((u: any) => !leaderFences.has(u.syncFence))).toEqual([])
        // sync_user also runs every second: a trigger that arrives while a scheduled run holds the job's lock is
        // Skipped (lock_held, or overlap while that run is still counted), so it is tried until one starts.
        const trigger = yield* poll("a manual trigger that starts", "20 seconds", async () => {
          const exit = await rpc(r.port, "TriggerJob", { job: "sync_user" })
          const busy = exit._tag === "Success" && exit.value._tag === "Skipped" &&
            (exit.value.reason === "lock_held" || exit.value.reason === "overlap")
          return busy ? undefined : exit
        })
        expect(trigger, JSON.stringify(trigger)).toMatchObject({ _tag: "Success", value: { _tag: "Started" } })
        expect((yield* Effect.promise(() => rpc(r.port, "PauseJob", { job: "sync_user" })))._tag).toBe("Success")
        yield* poll("a paused skip on the leader", "15 seconds", async () =>
          leader.lines().some((l) =>
            l.message === "job skipped" && l.reason === "paused"
          ) || undefined)
        yield* Effect.promise(() => rpc(r.port, "ResumeJob", { job: "sync_user" }))

        // SIGTERM the leader: it exits 0, the follower takes over and its fences continue the leader's.
        const lastFence = Math.max(...finished(leader).map((l) => Number(l.fence)))
        leader.process.kill("SIGTERM")
        expect(yield* Effect.promise(() => leader.exited)).toBe(0)
        yield* poll("the follower's first run", "20 seconds", async () => finished(follower).length > 0 || undefined)
        expect(Math.min(...finished(follower).map((l) => Number(l.fence)))).toBeGreaterThan(lastFence)

        for (const node of [follower, r]) {
          node.process.kill("SIGTERM")
          expect(yield* Effect.promise(() => node.exited)).toBe(0)
        }
      }).pipe(Effect.scoped),
    120_000
  )
})
