/**
 * Safety under crashes and lost Redis data, on real etcd + Redis with separate OS processes:
 *
 * 1. `kill -9` of the leader in the middle of a run (nodes of `test/fixtures/workerNode.ts`: one job on a cron, every
 *    other option at its default, whose run lasts 3 s): the new leader takes over the dead run's lock (held under
 *    the dead leader's term), so its first run starts within lease TTL + 1 s of the kill, not after the lock TTL.
 * 2. Redis restarted without persistence, and 3. FLUSHALL, under a running cluster of the reference service: fences
 *    after the loss are all greater than every fence before it, the loss is logged at ERROR and counted in
 *    `job_store_data_loss_total`, and the job keeps running.
 *
 * Every time compared is one the code recorded (a run's start read from the clock by the handler or the scheduler, a
 * fire time) or the test's own clock at the moment it acted (the kill, the FLUSHALL); never when a line was written.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { startEtcd } from "../harness/etcd.js"
import { type LogLine, poll, type ServiceNode, startNode, tempDir } from "../harness/node.js"
import { startRedis, uniquePrefix } from "../harness/redis.js"

const root = path.join(__dirname, "../..")

/** The lease TTL of every scenario (the shortest etcd honours with its default timers). */
const TTL_MS = 2_000

/** How long a run of the worker's job lasts: long enough to kill the leader in its middle. */
const WORK_MS = 3_000

/** Node start-up (esbuild bundle + module loading) takes 1-3 s per process on a busy machine. */
const START_TIMEOUT = Duration.seconds(60)

/** Bound on waits for something that normally takes a second or two. */
const EVENT_TIMEOUT = Duration.seconds(30)

const iso = (ms: number) => new Date(ms).toISOString()

/** A Redis client for the test's own reads and faults, closed with the scope. */
const redisClient = (url: string): Effect.Effect<Redis, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const client = new Redis(url, { maxRetriesPerRequest: 1 })
      // The restart scenario takes the server away under it: its reconnect errors are expected.
      client.on("error", () => undefined)
      return client
    }),
    (client) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
  )

const redisCall = <A>(what: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (error) => new Error(`${what}: ${String(error)}`) }).pipe(
    Effect.timeout(Duration.seconds(5)),
    Effect.orDie
  )

// ---------------------------------------------------------------------------------------------------------------
// Worker processes (test/fixtures/workerNode.ts)
// ---------------------------------------------------------------------------------------------------------------

interface Worker {
  readonly id: string
  readonly process: ChildProcess
  readonly lines: () => ReadonlyArray<LogLine>
  readonly output: () => string
  readonly exited: Promise<void>
}

/** Starts a worker node; SIGKILLed when the scope closes (or when the test process exits). */
const startWorker = (id: string, env: Record<string, string>): Effect.Effect<Worker, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync((): Worker => {
      const child = spawn(process.execPath, [
        path.join(root, "scripts/run.mjs"),
        path.join(root, "test/fixtures/workerNode.ts")
      ], { cwd: root, env: { ...process.env, ...env, NODE_ID: id }, stdio: ["ignore", "pipe", "pipe"] })
      const killOnExit = () => child.kill("SIGKILL")
      process.once("exit", killOnExit)
      let output = ""
      let partial = ""
      const parsed: Array<LogLine> = []
      child.stdout!.on("data", (chunk: Buffer) => {
        const text = chunk.toString("utf8")
        output += text
        const pieces = (partial + text).split("\n")
        partial = pieces.pop() ?? ""
        for (const piece of pieces) {
          try {
            const value: unknown = JSON.parse(piece)
            if (typeof value === "object" && value !== null) parsed.push(value as LogLine)
          } catch {
            // not a JSON line
          }
        }
      })
      child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")))
      const exited = new Promise<void>((resolve) =>
        child.once("exit", () => {
          process.removeListener("exit", killOnExit)
          resolve()
        })
      )
      return { id, process: child, lines: () => parsed, output: () => output, exited }
    }),
    (worker) =>
      Effect.promise(async () => {
        if (worker.process.exitCode === null && worker.process.signalCode === null) worker.process.kill("SIGKILL")
        await worker.exited
        fs.rmSync(path.join(root, ".tmp", "run", `workerNode-${worker.process.pid}.mjs`), { force: true })
      })
  )

/** One started run, from the handler's `work started` line: the times are the handler's own clock reads. */
interface Started {
  readonly node: string
  readonly runId: string
  readonly fireTime: number
  readonly startedAt: number
  readonly fence: number
}

const startedRuns = (workers: ReadonlyArray<Worker>): ReadonlyArray<Started> =>
  workers.flatMap((worker) =>
    worker.lines().filter((l) => l.message === "work started").map((l): Started => ({
      node: worker.id,
      runId: String(l.run_id),
      fireTime: Date.parse(l.fire_time),
      startedAt: Date.parse(l.started_at),
      fence: Number(l.fence)
    }))
  ).sort((a, b) => a.fireTime - b.fireTime)

const describeStarted = (run: Started) =>
  `${iso(run.fireTime)} ${run.node} fence=${run.fence} started=${iso(run.startedAt)}`

const describeWorkers = (workers: ReadonlyArray<Worker>) =>
  workers.map((w) => `--- ${w.id} (exit ${w.process.exitCode ?? w.process.signalCode}):\n${w.output().slice(-5000)}`)
    .join("\n")

const withWorkerOutputs = (workers: ReadonlyArray<Worker>) => <A>(effect: Effect.Effect<A>) =>
  Effect.catchAllDefect(effect, (defect) => Effect.dieMessage(`${String(defect)}\n${describeWorkers(workers)}`))

/** No fire time ran twice, and fences grow strictly in fire-time order. */
const expectFencesAndFires = (
  runs: ReadonlyArray<{ readonly fireTime: number; readonly fence: number }>,
  table: string
) => {
  const fires = runs.map((run) => run.fireTime)
  expect(fires.filter((fire, i) => fires.indexOf(fire) !== i).map(iso), `fire times run twice:\n${table}`).toEqual([])
  for (let i = 1; i < runs.length; i++) {
    expect(runs[i]!.fence, `fence order at ${iso(runs[i]!.fireTime)}:\n${table}`).toBeGreaterThan(runs[i - 1]!.fence)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Service nodes with sync_user every second
// ---------------------------------------------------------------------------------------------------------------

/** One finished run of `sync_user` from its `job finished` line (start = fire time + lateness, as the code records). */
interface Finished {
  readonly node: string
  readonly fireTime: number
  readonly startedAt: number
  readonly fence: number
  readonly outcome: string
}

const finishedOf = (nodes: ReadonlyArray<ServiceNode>): ReadonlyArray<Finished> =>
  nodes.flatMap((node) =>
    node.lines().filter((l) => l.message === "job finished" && l.job === "sync_user").map((l): Finished => {
      const fireTime = Date.parse(l.fire_time)
      return {
        node: node.id,
        fireTime,
        startedAt: fireTime + Number(l.lateness_ms),
        fence: Number(l.fence),
        outcome: String(l.outcome)
      }
    })
  ).sort((a, b) => a.fireTime - b.fireTime)

const describeFinished = (run: Finished) =>
  `${iso(run.fireTime)} ${run.node} fence=${run.fence} ${run.outcome} started=${iso(run.startedAt)}`

const describeNodes = (nodes: ReadonlyArray<ServiceNode>) =>
  nodes.map((n) => `--- ${n.id} (exit ${n.process.exitCode ?? n.process.signalCode}):\n${n.output().slice(-5000)}`)
    .join("\n")

const withNodeOutputs = (nodes: ReadonlyArray<ServiceNode>) => <A>(effect: Effect.Effect<A>) =>
  Effect.catchAllDefect(effect, (defect) => Effect.dieMessage(`${String(defect)}\n${describeNodes(nodes)}`))

/** The ERROR lines of `node` reporting a store data loss. */
const dataLossLines = (node: ServiceNode) =>
  node.lines().filter((l) => l.level === "ERROR" && l.reason === "marker" && l.key !== undefined)

/** The sum of `job_store_data_loss_total` series with `reason="marker"` in a node's `/metrics`. */
const dataLossMetric = async (node: ServiceNode): Promise<number> => {
  const response = await fetch(`http://127.0.0.1:${node.port}/metrics`, { signal: AbortSignal.timeout(5_000) })
  const text = await response.text()
  return text.split("\n")
    .filter((line) => line.startsWith("job_store_data_loss_total{") && line.includes(`reason="marker"`))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0)
}

/**
 * Redis + etcd + two job nodes of the reference service, `sync_user` every second on its default options otherwise;
 * returns once three runs were logged.
 */
const startServiceCluster = (label: string) =>
  Effect.gen(function*() {
    const redis = yield* startRedis()
    const etcd = yield* startEtcd()
    const dir = yield* tempDir(`svc-safety-${label}`)
    const prefix = uniquePrefix(label)
    const config = path.join(dir, "cluster.yaml")
    fs.writeFileSync(
      config,
      `
redis: { url: "${redis.url}", keyPrefix: ${prefix} }
etcd: { endpoints: ["${etcd.endpoint}"], leaseTtl: 2 seconds, electionKey: ${prefix}/scheduler }
shutdownGrace: 5 seconds
jobs:
  sync_user: { cron: "* * * * * *" }
`
    )
    const nodes = yield* Effect.forEach(["node-a", "node-b"], (id) => startNode({ id, mode: "job", config, dir }))
    yield* poll("three runs", START_TIMEOUT, () => finishedOf(nodes).length >= 3 || undefined).pipe(
      withNodeOutputs(nodes)
    )
    const client = yield* redisClient(redis.url)
    return { redis, etcd, prefix, nodes, client }
  })

/**
 * The checks after a data loss between `lostAt` and `backAt` (test clock, ms): runs go on, every run begun after the
 * loss has a fence above every fence begun before it, fences grow in fire-time order overall, no fire time ran
 * twice, and a node logged the loss at ERROR and counts it in its metrics.
 */
const expectRecovered = (nodes: ReadonlyArray<ServiceNode>, lostAt: number, backAt: number, scenario: string) =>
  Effect.gen(function*() {
    const all = yield* poll("three runs begun after the loss", EVENT_TIMEOUT, () => {
      const runs = finishedOf(nodes)
      return runs.filter((run) => run.startedAt > backAt && run.outcome === "success").length >= 3 ? runs : undefined
    }).pipe(withNodeOutputs(nodes))
    const table = all.map(describeFinished).join("\n")
    const before = all.filter((run) => run.startedAt < lostAt)
    const after = all.filter((run) => run.startedAt > backAt)
    expect(before.length, table).toBeGreaterThanOrEqual(3)
    expect(Math.min(...after.map((run) => run.fence)), `fences after the loss vs before:\n${table}`).toBeGreaterThan(
      Math.max(...before.map((run) => run.fence))
    )
    expectFencesAndFires(all, table)
    const reporters = yield* poll("the loss logged at ERROR", EVENT_TIMEOUT, () => {
      const found = nodes.filter((node) => dataLossLines(node).length > 0)
      return found.length > 0 ? found : undefined
    }).pipe(withNodeOutputs(nodes))
    for (const node of reporters) {
      const counted = yield* Effect.promise(() => dataLossMetric(node))
      expect(counted, `${node.id} job_store_data_loss_total{reason="marker"}`).toBeGreaterThanOrEqual(1)
    }
    console.log(`[safety] ${scenario}: ${
      JSON.stringify({
        runs_before: before.length,
        runs_after: after.length,
        last_fence_before: Math.max(...before.map((run) => run.fence)),
        first_fence_after: Math.min(...after.map((run) => run.fence)),
        first_run_after_ms: Math.min(...after.map((run) => run.startedAt)) - backAt,
        reported_by: reporters.map((node) => node.id)
      })
    }`)
  })

// ---------------------------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------------------------

describe("safety under crashes and lost Redis data (real etcd + Redis, separate processes)", () => {
  it.live(
    "kill -9 of the leader mid-run: the new leader takes over the lock, its first run within TTL + 1 s (+1 s for load)",
    () =>
      Effect.gen(function*() {
        const redis = yield* startRedis()
        const etcd = yield* startEtcd()
        const prefix = uniquePrefix("kill9run")
        const env = {
          REDIS_URL: redis.url,
          REDIS_KEY_PREFIX: prefix,
          ETCD_ENDPOINT: etcd.endpoint,
          ELECTION_KEY: `${prefix}/scheduler`,
          LEASE_TTL_MS: String(TTL_MS),
          WORK_CRON: "* * * * * *",
          WORK_MS: String(WORK_MS)
        }
        const workers = yield* Effect.forEach(["node-a", "node-b"], (id) => startWorker(id, env))
        const client = yield* redisClient(redis.url)
        const lockKey = `${prefix}:job:lock:work`

        // A run in progress: its handler started 0.5-1.5 s ago (of 3 s), so the kill lands in its middle.
        const victim = yield* poll("a run in progress", START_TIMEOUT, () => {
          const runs = startedRuns(workers)
          const newest = runs[runs.length - 1]
          const age = newest === undefined ? -1 : Date.now() - newest.startedAt
          return age >= 500 && age <= 1_500 ? newest : undefined
        }).pipe(withWorkerOutputs(workers))
        const leader = workers.find((w) => w.id === victim.node)!
        const successor = workers.find((w) => w !== leader)!
        const held = yield* redisCall("GET lock", () => client.get(lockKey))
        const killedAt = Date.now()
        leader.process.kill("SIGKILL")
        yield* Effect.promise(() => leader.exited)
        // The kill was mid-run: the run had not ended, and its lock (under the leader's term) was held.
        expect(killedAt - victim.startedAt, "the kill came before the run's end").toBeLessThan(WORK_MS)
        expect(leader.lines().some((l) => l.message === "job finished" && l.run_id === victim.runId)).toBe(false)
        expect(held, "the lock held by the run at the kill").toMatch(/^term:\d+:/)
        const lockTtl = yield* redisCall("PTTL lock", () => client.pttl(lockKey))

        const first = yield* poll("the successor's first run", EVENT_TIMEOUT, () =>
          startedRuns([successor]).find((run) =>
            run.startedAt >= killedAt
          )).pipe(withWorkerOutputs(workers))
        // It finishes normally on the lock it took over, and the next one starts too.
        yield* poll("the successor's first run finished", EVENT_TIMEOUT, () =>
          successor.lines().find((l) =>
            l.message === "job finished" && l.run_id === first.runId
          )).pipe(
            withWorkerOutputs(workers)
          )
        yield* poll("a second run on the successor", EVENT_TIMEOUT, () =>
          startedRuns([successor]).filter((run) =>
              run.startedAt >= killedAt
            ).length >= 2 || undefined).pipe(
            withWorkerOutputs(workers)
          )

        const runs = startedRuns(workers)
        const table = runs.map(describeStarted).join("\n")
        const takeoverMs = first.startedAt - killedAt
        const finishedFirst = successor.lines().find((l) =>
          l.message === "job finished" && l.run_id === first.runId
        )!
        console.log(`[safety] kill -9 mid-run: ${
          JSON.stringify({
            takeover_ms: takeoverMs,
            killed_ms_into_run: killedAt - victim.startedAt,
            lock_ttl_left_at_kill_ms: lockTtl,
            first_run_outcome: finishedFirst.outcome,
            successor_skips: successor.lines().filter((l) => l.message === "job skipped").map((l) =>
              l.reason
            )
          })
        }`)
        // The goal is TTL + 1 s (2.1-2.2 s measured on a quiet machine, printed above); the bound has one more second
        // for a loaded CI machine, where etcd's expiry check and the processes run late (3.4 s seen at a load of 15).
        expect(takeoverMs, `kill -9 -> the successor's first run starts (goal TTL ${TTL_MS} ms + 1 s)\n${table}`)
          .toBeLessThanOrEqual(TTL_MS + 2_000)
        // The lock it took over had far longer to live: without the takeover the run would have waited for it.
        expect(lockTtl).toBeGreaterThan(TTL_MS + 1_000)
        expect(finishedFirst.outcome).toBe("success")
        // The dead run's fire time was not run again, and fences grow.
        expectFencesAndFires(runs, table)
        expect(first.fireTime).toBeGreaterThan(victim.fireTime)
        // Nothing was skipped as lock_held on the way.
        expect(
          successor.lines().filter((l) => l.message === "job skipped" && l.reason === "lock_held")
        ).toEqual([])
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "Redis restarted without persistence under the cluster: fences keep growing, loss logged and counted",
    () =>
      Effect.gen(function*() {
        const { nodes, redis } = yield* startServiceCluster("restart")
        const lostAt = Date.now()
        yield* redis.restart()
        const backAt = Date.now()
        yield* expectRecovered(nodes, lostAt, backAt, "redis restart")
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "FLUSHALL under the cluster: fences keep growing, the leader logs and counts the loss",
    () =>
      Effect.gen(function*() {
        const { client, nodes, prefix } = yield* startServiceCluster("flushall")
        const epochBefore = yield* redisCall("GET epoch", () => client.get(`${prefix}:job:epoch`))
        expect(epochBefore).not.toBeNull()
        const lostAt = Date.now()
        yield* redisCall("FLUSHALL", () => client.flushall())
        const backAt = Date.now()
        yield* expectRecovered(nodes, lostAt, backAt, "flushall")
        const epochAfter = yield* redisCall("GET epoch", () => client.get(`${prefix}:job:epoch`))
        expect(epochAfter).not.toBeNull()
        expect(epochAfter).not.toBe(epochBefore)
      }).pipe(Effect.scoped),
    120_000
  )
})
