import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { startEtcd } from "../harness/etcd.js"
import { getJson, metricValue, poll, rpc, startNode, tempDir } from "../harness/node.js"
import { startRedis, uniquePrefix } from "../harness/redis.js"

const healthy = (port: number) => async () => (await getJson(port, "/healthz")).status === 200 || undefined

describe("control from any node (Redis + etcd, four processes)", () => {
  it.live(
    "a trigger on the rpc node or on a follower runs on the leader; Leader answers alike everywhere; drift",
    () =>
      Effect.gen(function*() {
        const redis = yield* startRedis()
        const etcd = yield* startEtcd()
        const dir = yield* tempDir("svc-operator")
        const prefix = uniquePrefix("op")
        const base = `
redis: { url: "${redis.url}", keyPrefix: ${prefix} }
etcd: { endpoints: ["${etcd.endpoint}"], leaseTtl: 2 seconds, electionKey: ${prefix}/scheduler }
shutdownGrace: 5 seconds
`
        const config = path.join(dir, "cluster.yaml")
        // An interval long enough that every run in the test is a manual one (a fixed-delay job first fires `every`
        // after start).
        fs.writeFileSync(config, base + "jobs:\n  sync_user: { every: 1 hour, timeout: 30 seconds }\n")
        const drifted = path.join(dir, "drifted.yaml")
        fs.writeFileSync(drifted, base + "jobs:\n  sync_user: { every: 2 hours, timeout: 30 seconds }\n")

        const a = yield* startNode({ id: "node-a", mode: "job", config, dir })
        const r = yield* startNode({ id: "node-r", mode: "rpc", config, dir })
        yield* poll("node-a /healthz", "60 seconds", healthy(a.port))
        yield* poll("node-r /healthz", "60 seconds", healthy(r.port))
        // node-a leads before node-b starts, so node-b (and the drifted node-c) are followers.
        yield* poll(
          "node-a leading",
          "30 seconds",
          async () => (await metricValue(a.port, "scheduler_leader")) === 1 || undefined
        )
        const b = yield* startNode({ id: "node-b", mode: "job", config, dir })
        yield* poll("node-b /healthz", "60 seconds", healthy(b.port))

        // Every node names node-a, with its build and config hash.
        const views = []
        for (const node of [a, b, r]) {
          const view = yield* poll(`Leader on ${node.id}`, "20 seconds", async () => {
            const exit = await rpc(node.port, "Leader", {})
            return exit._tag === "Success" && exit.value.leader !== null ? exit.value : undefined
          })
          views.push(view)
        }
        for (const view of views) {
          expect(view.leader).toMatchObject({ nodeId: "node-a", url: `http://127.0.0.1:${a.port}`, version: "0.1.0" })
          expect(view.leader.configHash).toBe(views[0].node.configHash)
          expect(view.node.configDrift).toBe(false)
          expect(Date.parse(view.leader.since)).not.toBeNaN()
        }
        expect(views.map((v) => [v.node.nodeId, v.node.mode, v.node.leading])).toEqual([
          ["node-a", "job", true],
          ["node-b", "job", false],
          ["node-r", "rpc", false]
        ])

        // A trigger on the rpc node and one on the follower: both answer a run id, and both runs ran on node-a. Each
        // waits for the run before it to finish: the job's overlap rule is `skip`, and a run still going (the first
        // trigger's, on a loaded machine) would make the next trigger `Skipped` with `overlap`.
        const finished = (runId: string) =>
          poll(`run ${runId} finished`, "30 seconds", async () => {
            const exit = await rpc(r.port, "JobRuns", { job: "sync_user", limit: 20 })
            const runs: ReadonlyArray<{ readonly runId: string; readonly finishedAt?: unknown }> = exit.value
            return runs.some((run) => run.runId === runId && run.finishedAt !== undefined) || undefined
          })
        const runIds: Array<string> = []
        for (const node of [r, b]) {
          const exit = yield* Effect.promise(() => rpc(node.port, "TriggerJob", { job: "sync_user" }))
          expect(exit, `TriggerJob on ${node.id}: ${JSON.stringify(exit)}`).toMatchObject({
            _tag: "Success",
            value: { _tag: "Started" }
          })
          runIds.push(exit.value.runId)
          yield* finished(exit.value.runId)
        }
        const records = yield* poll("both manual runs recorded", "30 seconds", async () => {
          const exit = await rpc(r.port, "JobRuns", { job: "sync_user", limit: 20 })
          const found = exit.value.filter((run: any) => runIds.includes(run.runId) && run.finishedAt !== undefined)
          return found.length === 2 ? found : undefined
        })
        for (const record of records) {
          expect(record).toMatchObject({ node: "node-a", kind: "manual", outcome: "success" })
        }
        // The followers ran nothing themselves.
        for (const node of [b]) {
          expect(node.lines().filter((l) => l.message === "job finished")).toEqual([])
        }

        // An unknown job is UnknownJob from the node asked, without a trip to the leader.
        const unknown = yield* Effect.promise(() => rpc(r.port, "TriggerJob", { job: "nope" }))
        expect(JSON.stringify(unknown)).toContain("UnknownJob")

        // A node whose job definitions differ from the leader's says so once, at WARN, and in its metrics.
        const c = yield* startNode({ id: "node-c", mode: "job", config: drifted, dir })
        yield* poll("node-c /healthz", "60 seconds", healthy(c.port))
        const warning = yield* poll("the drift warning", "30 seconds", async () =>
          c.lines().find((l) =>
            l.message === "job definitions differ from the leader's"
          ))
        expect(warning).toMatchObject({ level: "WARN", leader: "node-a", leader_config_hash: views[0].node.configHash })
        expect(warning.config_hash).not.toBe(views[0].node.configHash)
        expect(
          yield* Effect.promise(() => metricValue(c.port, "scheduler_config_drift"))
        ).toBe(1)
        const cView = yield* Effect.promise(() => rpc(c.port, "Leader", {}))
        expect(cView.value.node.configDrift).toBe(true)
        for (const node of [a, b, r]) {
          expect(yield* Effect.promise(() => metricValue(node.port, "scheduler_config_drift"))).toBe(0)
          expect(node.lines().some((l) => l.message === "job definitions differ from the leader's")).toBe(false)
        }
        expect(yield* Effect.promise(() => metricValue(a.port, "leader_changes_total"))).toBe(1)

        // SIGTERM the leader: it clears its record; a trigger on the rpc node reaches whichever node leads next.
        a.process.kill("SIGTERM")
        expect(yield* Effect.promise(() => a.exited)).toBe(0)
        const next = yield* poll("a new leader published", "30 seconds", async () => {
          const exit = await rpc(r.port, "Leader", {})
          return exit._tag === "Success" && exit.value.leader !== null && exit.value.leader.nodeId !== "node-a"
            ? exit.value.leader
            : undefined
        })
        const after = yield* poll("a trigger on the rpc node after the failover", "30 seconds", async () => {
          const exit = await rpc(r.port, "TriggerJob", { job: "sync_user" })
          return exit._tag === "Success" ? exit.value : undefined
        })
        expect(after._tag).toBe("Started")
        const afterRun = yield* poll("the run after the failover", "30 seconds", async () => {
          const exit = await rpc(r.port, "JobRuns", { job: "sync_user", limit: 20 })
          return exit.value.find((run: any) => run.runId === after.runId)
        })
        expect(afterRun.node).toBe(next.nodeId)
      }).pipe(Effect.scoped),
    180_000
  )
})
