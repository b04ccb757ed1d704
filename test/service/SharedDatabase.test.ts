/**
 * The cluster's shared user store: two job nodes of the reference service on one PostgreSQL (`database.url`,
 * test/harness/postgres.ts), one Redis and one etcd, `sync_user` firing every second, while the test keeps adding
 * users. The leader is killed with SIGKILL; the other node takes over and must continue the sync where the old one
 * stopped.
 *
 * What the sync wrote is read from an audit table that a trigger fills on every `synced_at` update (test
 * instrumentation in the test's database, not part of the service's schema): each user synced exactly once (so never
 * twice under one fence), by a run of the fence it carries, within that run's start and end; the successor synced
 * exactly the users the old leader had left; every user ends synced. Figures print as `[shared-db] ...`.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import { Redis } from "ioredis"
import * as fs from "node:fs"
import * as path from "node:path"
import * as UserModel from "../../src/service/repository/UserModel.js"
import { startEtcd } from "../harness/etcd.js"
import { type LogLine, poll, type ServiceNode, startNode, tempDir } from "../harness/node.js"
import { startPostgres } from "../harness/postgres.js"
import { startRedis, uniquePrefix } from "../harness/redis.js"

const EVENT_TIMEOUT = Duration.seconds(30)
const START_TIMEOUT = Duration.seconds(60)

/** Users the test adds per batch, and how often: a few batches land between two runs (one per second). */
const BATCH = 5
const BATCH_EVERY = Duration.millis(200)

/** First id of the users the test adds (the demo seed takes 1-200). */
const FIRST_ADDED_ID = 10_000

interface RunRecord {
  readonly runId: string
  readonly node: string
  readonly fence: number
  readonly startedAt: number
  readonly finishedAt: number
  readonly outcome: string
}

const outputs = (nodes: ReadonlyArray<ServiceNode>) =>
  nodes.map((node) => `--- ${node.id}\n${node.output().slice(-5_000)}`).join("\n")

describe("the shared PostgreSQL user store under a leader failover", () => {
  it.live(
    "kill -9 of the leader: the successor syncs exactly what the old leader left, no user twice",
    () =>
      Effect.gen(function*() {
        const postgres = yield* startPostgres
        const url = yield* postgres.database("shared")
        const redis = yield* startRedis()
        const etcd = yield* startEtcd()
        const dir = yield* tempDir("svc-shared-db")
        const prefix = uniquePrefix("shared")

        const sql = yield* PgClient.make({ url: Redacted.make(url) }).pipe(
          Effect.provide(Reactivity.layer),
          Effect.orDie
        )
        // The service's schema (its migrations), then the audit trigger on top of it, before any node starts.
        yield* Effect.provide(UserModel.UserModel, UserModel.layerPg({ url, seed: false })).pipe(Effect.orDie)
        for (
          const statement of [
            `CREATE TABLE sync_audit (seq BIGSERIAL PRIMARY KEY, user_id INTEGER NOT NULL, fence BIGINT NOT NULL,
            synced_at BIGINT NOT NULL)`,
            `CREATE FUNCTION audit_sync() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
            INSERT INTO sync_audit (user_id, fence, synced_at) VALUES (NEW.id, NEW.sync_fence, NEW.synced_at);
            RETURN NEW; END $$`,
            `CREATE TRIGGER users_sync_audit AFTER UPDATE OF synced_at ON users
            FOR EACH ROW EXECUTE FUNCTION audit_sync()`
          ]
        ) yield* sql.unsafe(statement).pipe(Effect.orDie)

        const config = path.join(dir, "cluster.yaml")
        fs.writeFileSync(
          config,
          `
redis: { url: "${redis.url}", keyPrefix: ${prefix} }
etcd: { endpoints: ["${etcd.endpoint}"], leaseTtl: 2 seconds, electionKey: ${prefix}/scheduler }
database: { url: "${url}" }
shutdownGrace: 5 seconds
jobs:
  sync_user: { cron: "* * * * * *", timeout: 2 seconds, lock: { ttl: 3 seconds }, misfire: runOnce }
`
        )
        // Both nodes start together on the empty table: the demo users are seeded once (seeding takes a table lock).
        const nodes = yield* Effect.forEach(["node-a", "node-b"], (id) => startNode({ id, mode: "job", config, dir }))
        const finished = () =>
          nodes.flatMap((node) => node.lines().filter((l) => l.message === "job finished" && l.job === "sync_user"))
        const waitFinished = (
          what: string,
          predicate: (lines: ReadonlyArray<LogLine>) => boolean,
          timeout: Duration.DurationInput = EVENT_TIMEOUT
        ) =>
          poll(what, timeout, () => predicate(finished()) || undefined).pipe(
            Effect.catchAllDefect((defect) => Effect.dieMessage(`${String(defect)}\n${outputs(nodes)}`))
          )
        yield* waitFinished("2 runs", (lines) => lines.length >= 2, START_TIMEOUT)

        // The test adds users all along, as an application would.
        let nextId = FIRST_ADDED_ID
        const inserted = new Map<number, number>()
        const adder = yield* Effect.fork(Effect.forever(Effect.gen(function*() {
          const now = Date.now()
          const batch = UserModel.demoUsers(now, BATCH).map((u) => new UserModel.User({ ...u, id: nextId + u.id - 1 }))
          yield* sql`INSERT INTO users ${
            sql.insert(batch.map((u) => ({
              id: u.id,
              name: u.name,
              email: u.email,
              status: u.status,
              last_active_at: u.lastActiveAt,
              updated_at: u.updatedAt,
              sync_fence: 0
            })))
          }`.pipe(Effect.orDie)
          for (const u of batch) inserted.set(u.id, now)
          nextId += BATCH
          yield* Effect.sleep(BATCH_EVERY)
        })))

        // Kill the leader 900 ms after a fire whose run has finished (its `job finished` line is there, so it holds no
        // lock), before the next fire: several batches are then waiting for the next run.
        yield* waitFinished("3 more runs", (lines) => lines.length >= 5)
        let last = finished()[finished().length - 1]!
        for (;;) {
          const seen = Date.parse(last.fire_time)
          last = yield* poll(
            "the next run",
            EVENT_TIMEOUT,
            () => finished().find((l) => Date.parse(l.fire_time) > seen)
          )
          if (Date.now() - Date.parse(last.fire_time) < 800) {
            break
          }
        }
        const leader = nodes.find((node) => node.id === last.node)!
        const successor = nodes.find((node) => node !== leader)!
        yield* Effect.sleep(Duration.millis(Date.parse(last.fire_time) + 900 - Date.now()))
        const killedAt = Date.now()
        yield* leader.signal("SIGKILL")
        yield* Effect.promise(() => leader.exited)

        yield* waitFinished(
          "3 runs on the successor",
          (lines) => lines.filter((l) => l.node === successor.id && l.outcome === "success").length >= 3
        )
        yield* Fiber.interrupt(adder)
        const stoppedAddingAt = Date.now()
        // Every user synced, by a run that started after the last insert.
        yield* waitFinished(
          "a run after the last insert",
          (lines) => lines.some((l) => Date.parse(l.fire_time) > stoppedAddingAt && l.outcome === "success")
        )

        const audit = (yield* sql<{ userId: number; fence: string; syncedAt: string }>`
        SELECT user_id AS "userId", fence, synced_at AS "syncedAt" FROM sync_audit ORDER BY seq`.pipe(Effect.orDie))
          .map((row) => ({ userId: Number(row.userId), fence: Number(row.fence), syncedAt: Number(row.syncedAt) }))
        const users = (yield* sql<{ id: number }>`SELECT id FROM users ORDER BY id`.pipe(Effect.orDie)).map((r) =>
          Number(r.id)
        )
        const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
        const records = (yield* Effect.promise(() =>
          client.connect().then(() => client.lrange(`${prefix}:job:runs:sync_user`, 0, -1)).finally(() =>
            client.disconnect()
          )
        )).map((json) => JSON.parse(json) as RunRecord)
        const runOf = new Map(records.map((r) => [Number(r.fence), r]))

        const byUser = new Map<number, Array<{ fence: number; syncedAt: number }>>()
        for (const row of audit) {
          byUser.set(row.userId, [...(byUser.get(row.userId) ?? []), row])
        }
        const twice = [...byUser.entries()].filter(([, rows]) =>
          rows.length > 1
        )
        const fences = [...new Set(audit.map((row) => row.fence))]
        const unrecorded = fences.filter((fence) => !runOf.has(fence))
        const syncedBy = (node: string) => audit.filter((row) => runOf.get(row.fence)?.node === node)
        const successorRuns = records.filter((r) => r.node === successor.id).sort((a, b) => a.startedAt - b.startedAt)
        const firstSync = successorRuns.find((r) => syncedBy(successor.id).some((row) => row.fence === Number(r.fence)))
        // The users the old leader left: added before the kill and not synced by it.
        const oldSynced = new Set(
          audit.filter((row) => runOf.get(row.fence)?.node !== successor.id).map((r) => r.userId)
        )
        const left = [...inserted.entries()].filter(([id, at]) => at < killedAt && !oldSynced.has(id)).map(([id]) => id)
        const firstSynced = firstSync === undefined
          ? []
          : audit.filter((row) => row.fence === Number(firstSync.fence)).map((row) => row.userId)
        console.log(`[shared-db] kill -9 of the leader: ${
          JSON.stringify({
            users: users.length,
            audit_rows: audit.length,
            synced_by_old_leader: syncedBy(leader.id).length,
            synced_by_successor: syncedBy(successor.id).length,
            left_by_old_leader: left.length,
            successor_first_sync_ms_after_kill: firstSync === undefined ? "none" : firstSync.startedAt - killedAt,
            fences_without_record: unrecorded
          })
        }`)

        // No user synced twice (under one fence or any other), and every user synced.
        expect(twice.map(([id, rows]) => `${id}: ${JSON.stringify(rows)}`)).toEqual([])
        expect([...byUser.keys()].sort((a, b) => a - b)).toEqual(users)
        // Each write belongs to a successful run of its fence and happened while that run ran.
        expect(unrecorded).toEqual([])
        for (const row of audit) {
          const run = runOf.get(row.fence)!
          expect(run.outcome).toBe("success")
          expect(row.syncedAt).toBeGreaterThanOrEqual(run.startedAt)
          expect(row.syncedAt).toBeLessThanOrEqual(run.finishedAt)
        }
        // Writes carry growing fences: a later write never has an older fence.
        for (let i = 1; i < audit.length; i++) expect(audit[i]!.fence).toBeGreaterThanOrEqual(audit[i - 1]!.fence)
        // Both leaders did part of the work; the successor's first sync took exactly what the old leader had left
        // (plus what was added since), nothing the old leader had done.
        expect(syncedBy(leader.id).length).toBeGreaterThan(0)
        expect(left.length).toBeGreaterThan(0)
        expect(firstSynced.filter((id) => oldSynced.has(id))).toEqual([])
        expect(left.filter((id) => !firstSynced.includes(id))).toEqual([])
      }).pipe(Effect.scoped),
    120_000
  )
})
