/**
 * Schedules across a real cluster: two job nodes of the reference service and one rpc node as separate OS processes
 * on one real etcd (lease TTL 2 s) and one real Redis. Schedules upserted through the rpc node run on the leader; an
 * `at` schedule survives kill -9 of the leader and runs exactly once; a removal stops further runs cluster-wide.
 * Runs are judged from the Redis run records and the `job finished` lines of every node.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import * as fs from "node:fs"
import * as path from "node:path"
import { startEtcd } from "../harness/etcd.js"
import { type LogLine, metricValue, poll, rpc, type ServiceNode, startNode, tempDir } from "../harness/node.js"
import { startRedis, uniquePrefix } from "../harness/redis.js"

/** Node start-up (esbuild bundle + module loading) takes 1-3 s per process on a busy machine. */
const START_TIMEOUT = Duration.seconds(60)
/** Bound on waits for something that normally takes a second or two. */
const EVENT_TIMEOUT = Duration.seconds(20)

const describeNodes = (nodes: ReadonlyArray<ServiceNode>) =>
  nodes.map((node) => `--- ${node.id}\n${node.output().split("\n").slice(-30).join("\n")}`).join("\n")

const redisClient = (url: string): Effect.Effect<Redis, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => new Redis(url, { maxRetriesPerRequest: 1 })),
    (client) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
  )

/** `job finished` lines of `job` on every node, with the node that logged them. */
const finished = (nodes: ReadonlyArray<ServiceNode>, job: string) =>
  nodes.flatMap((node) =>
    node.lines().filter((l: LogLine) => l.message === "job finished" && l.job === job).map((l) => ({
      logged: node.id,
      node: String(l.node),
      fireTime: Date.parse(String(l.fire_time)),
      outcome: String(l.outcome)
    }))
  )

/** Call an RPC and give its success value; a failure fails the test with the exit. */
const call = (port: number, tag: string, payload: unknown) =>
  Effect.promise(async () => {
    const exit = await rpc(port, tag, payload)
    if (exit?._tag !== "Success") throw new Error(`${tag} failed: ${JSON.stringify(exit)}`)
    return exit.value
  })

describe("schedules in a cluster (redis + etcd, separate processes)", () => {
  it.live(
    "schedules upserted through the rpc node run on the leader; an at schedule survives kill -9 of the leader and " +
      "runs once; a removal stops further runs",
    () =>
      Effect.gen(function*() {
        const redis = yield* startRedis()
        const etcd = yield* startEtcd()
        const dir = yield* tempDir("svc-schedules")
        const prefix = uniquePrefix("sched")
        const config = path.join(dir, "cluster.yaml")
        // The configured jobs stay out of the way (yearly); the schedules under test are made at runtime.
        fs.writeFileSync(
          config,
          `
redis: { url: "${redis.url}", keyPrefix: ${prefix} }
etcd: { endpoints: ["${etcd.endpoint}"], leaseTtl: 2 seconds, electionKey: ${prefix}/scheduler }
shutdownGrace: 5 seconds
jobs:
  sync_user: { cron: "0 0 0 1 1 *" }
  archive_user: { cron: "0 0 0 1 1 *" }
`
        )
        const jobNodes = yield* Effect.forEach(
          ["node-a", "node-b"],
          (id) => startNode({ id, mode: "job", config, dir })
        )
        const rpcNode = yield* startNode({ id: "node-r", mode: "rpc", config, dir })
        const nodes = [...jobNodes, rpcNode]
        const client = yield* redisClient(redis.url)
        const withOutputs = <A>(effect: Effect.Effect<A>) =>
          Effect.catchAllDefect(effect, (defect) => Effect.dieMessage(`${String(defect)}\n${describeNodes(nodes)}`))

        const leaderOf = async () => {
          const values = await Promise.all(jobNodes.map((node) => metricValue(node.port, "scheduler_leader", 2_000)))
          const leading = jobNodes.filter((_, i) => values[i] === 1)
          return leading.length === 1 ? leading[0] : undefined
        }
        const first = yield* poll("a leader", START_TIMEOUT, leaderOf).pipe(withOutputs)
        yield* poll("the rpc node", START_TIMEOUT, async () => {
          const response = await fetch(`http://127.0.0.1:${rpcNode.port}/healthz`)
          return response.ok || undefined
        }).pipe(withOutputs)

        // A schedule every second, upserted through the rpc node: it runs on the leader only.
        yield* call(rpcNode.port, "UpsertSchedule", {
          id: "every-second",
          handler: "sync_user",
          trigger: { cron: "* * * * * *" }
        })
        yield* poll(
          "runs of every-second",
          EVENT_TIMEOUT,
          () => finished(nodes, "every-second").length >= 2 || undefined
        )
          .pipe(withOutputs)
        expect(new Set(finished(nodes, "every-second").map((r) => r.node))).toEqual(new Set([first.id]))

        // An `at` schedule 6 s ahead; the leader is killed before it fires: the new leader runs it, once. Its handler
        // is archive_user: sync_user takes a logic lock (15 s) that every-second's runs hold for a moment each second,
        // and that a leader killed in such a moment leaves held, so a sync_user run of `once` could end
        // `sync_in_progress` (a business error), as it did once in CI.
        const at = Date.now() + 6_000
        yield* call(rpcNode.port, "UpsertSchedule", {
          id: "once",
          handler: "archive_user",
          trigger: { at: new Date(at).toISOString() }
        })
        // The leader has applied it (it plans its fire) before it is killed.
        yield* poll("the leader plans once", EVENT_TIMEOUT, async () => {
          const exit = await rpc(first.port, "GetSchedule", { id: "once" })
          return exit?._tag === "Success" && exit.value.nextFire !== null ? true : undefined
        }).pipe(withOutputs)
        yield* first.signal("SIGKILL")
        const second = yield* poll("a new leader", EVENT_TIMEOUT, async () => {
          const leader = jobNodes.find((node) => node !== first)!
          return (await metricValue(leader.port, "scheduler_leader", 2_000)) === 1 ? leader : undefined
        }).pipe(withOutputs)
        yield* poll("the run of once", EVENT_TIMEOUT, () => finished(nodes, "once").length >= 1 || undefined).pipe(
          withOutputs
        )
        // Well past its fire time and a reconcile or two: still one run, in the records and the logs.
        yield* Effect.sleep("3 seconds")
        const onceRuns = finished(nodes, "once")
        expect(onceRuns.map((r) => [r.node, r.fireTime, r.outcome])).toEqual([[second.id, at, "success"]])
        expect(yield* Effect.promise(() => client.llen(`${prefix}:job:runs:once`))).toBe(1)
        const info = yield* call(rpcNode.port, "GetSchedule", { id: "once" })
        expect(info.state).toBe("finished")

        // every-second moved to the new leader; then it is removed through the rpc node and runs no more.
        yield* poll(
          "every-second on the new leader",
          EVENT_TIMEOUT,
          () => finished(nodes, "every-second").some((r) => r.node === second.id) || undefined
        ).pipe(withOutputs)
        const removed = yield* call(rpcNode.port, "RemoveSchedule", { id: "every-second" })
        expect(removed).toEqual({ removed: true })
        const removedAt = Date.now()
        yield* Effect.sleep("3 seconds")
        // A fire due within a second of the removal may have begun before the leader applied it; none after.
        const late = finished(nodes, "every-second").filter((r) => r.fireTime > removedAt + 1_000)
        expect(late).toEqual([])
        const list = yield* call(rpcNode.port, "ListSchedules", {})
        expect(list.schedules.map((s: { spec: { id: string } }) => s.spec.id)).toEqual(["once"])
      }).pipe(Effect.scoped),
    { timeout: 180_000 }
  )
})
