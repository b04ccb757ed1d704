import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { RepositoryError } from "../../src/service/Errors.js"
import { migrations } from "../../src/service/repository/migrations.js"
import * as UserModel from "../../src/service/repository/UserModel.js"
import { type PostgresServer, startPostgres } from "../harness/postgres.js"

const NOW = Date.UTC(2026, 0, 15)

/** Every database of this file lives under one temporary directory, removed at the end. */
const root = fs.mkdtempSync(path.join(os.tmpdir(), "usermodel-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))
const tempDir = () => fs.mkdtempSync(path.join(root, "t-"))

/** One PostgreSQL for the whole file (started before the first test, stopped after the last); a database per test. */
let postgres: PostgresServer
const postgresScope = Effect.runSync(Scope.make())
beforeAll(async () => {
  postgres = await Effect.runPromise(Scope.extend(startPostgres, postgresScope))
}, 120_000)
afterAll(() => Effect.runPromise(Scope.close(postgresScope, Exit.void)), 60_000)

/** A PostgreSQL model on a fresh database. */
const pgLayer = (options: { readonly seed?: boolean } = {}) =>
  Layer.unwrapEffect(
    Effect.map(postgres.database("usermodel"), (url) => UserModel.layerPg({ url, seed: options.seed ?? false }))
  )

/** The contract every backend keeps; `layer` gives a fresh, empty model. */
const contract = (name: string, layer: () => Layer.Layer<UserModel.UserModel, RepositoryError>) =>
  describe(`UserModel contract (${name})`, () => {
    const withModel = <A, E>(f: (model: UserModel.UserModel["Type"]) => Effect.Effect<A, E>) =>
      Effect.flatMap(UserModel.UserModel, f).pipe(Effect.provide(layer()))

    it.effect("findByPage walks every user once, in id order, by last id", () =>
      withModel((model) =>
        Effect.gen(function*() {
          // Inserted out of order, with gaps, to prove the keyset paging orders by id.
          const users = UserModel.demoUsers(NOW, 25).filter((u) => u.id % 4 !== 0).reverse()
          yield* model.insert(users)
          const seen: Array<number> = []
          let lastId = 0
          for (;;) {
            const page = yield* model.findByPage(lastId, 7)
            if (page.length === 0) break
            expect(page.length).toBeLessThanOrEqual(7)
            for (const user of page) seen.push(user.id)
            lastId = page[page.length - 1]!.id
          }
          expect(seen).toEqual(users.map((u) => u.id).sort((a, b) => a - b))
        })
      ))

    it.effect("findById finds a user and returns None for a missing id", () =>
      withModel((model) =>
        Effect.gen(function*() {
          yield* model.insert(UserModel.demoUsers(NOW, 3))
          const found = yield* model.findById(2)
          expect(Option.map(found, (u) => u.email)).toEqual(Option.some("user2@example.com"))
          expect(Option.isNone(yield* model.findById(99))).toBe(true)
        })
      ))

    it.effect("list returns the requested page and the total", () =>
      withModel((model) =>
        Effect.gen(function*() {
          yield* model.insert(UserModel.demoUsers(NOW, 12))
          const page2 = yield* model.list(2, 5)
          expect(page2.total).toBe(12)
          expect(page2.users.map((u) => u.id)).toEqual([6, 7, 8, 9, 10])
          expect((yield* model.list(3, 5)).users.map((u) => u.id)).toEqual([11, 12])
        })
      ))

    it.effect("markSynced clears users from findUnsynced and refuses writes from an older fence", () =>
      withModel((model) =>
        Effect.gen(function*() {
          yield* model.insert(UserModel.demoUsers(NOW, 5))
          expect((yield* model.findUnsynced(0, 10)).map((u) => u.id)).toEqual([1, 2, 3, 4, 5])
          expect((yield* model.findUnsynced(2, 2)).map((u) => u.id)).toEqual([3, 4])
          expect(yield* model.markSynced([1, 2, 3], { at: NOW + 1, fence: 7 })).toBe(3)
          expect((yield* model.findUnsynced(0, 10)).map((u) => u.id)).toEqual([4, 5])
          // A stale run (fence 6) cannot overwrite the rows written by fence 7.
          expect(yield* model.markSynced([1, 4], { at: NOW + 2, fence: 6 })).toBe(1)
          const one = Option.getOrThrow(yield* model.findById(1))
          expect(one.syncedAt).toBe(NOW + 1)
          expect(one.syncFence).toBe(7)
          expect(yield* model.markSynced([], { at: NOW, fence: 9 })).toBe(0)
        })
      ))

    it.effect("archive changes an active user once and reports false on a re-run or a missing id", () =>
      withModel((model) =>
        Effect.gen(function*() {
          yield* model.insert(UserModel.demoUsers(NOW, 2))
          expect(yield* model.archive(1, NOW)).toBe(true)
          expect(yield* model.archive(1, NOW + 5)).toBe(false)
          expect(yield* model.archive(42, NOW)).toBe(false)
          const user = Option.getOrThrow(yield* model.findById(1))
          expect(user.status).toBe("archived")
          expect(user.archivedAt).toBe(NOW)
        })
      ))
  })

contract("memory", () => UserModel.layerMemory())
contract("sqlite", () => UserModel.layerSqlite({ filename: path.join(tempDir(), "u.db"), seed: false }))
contract("postgresql", () => pgLayer())

describe("UserModel on SQLite", () => {
  it.effect("a file made before migrations existed is adopted: its users kept, the migrations recorded", () =>
    Effect.gen(function*() {
      const filename = path.join(tempDir(), "old.db")
      const raw = <A>(effect: Effect.Effect<A, unknown, SqlClient.SqlClient>) =>
        effect.pipe(Effect.provide(SqliteClient.layer({ filename })), Effect.orDie)
      // The table as the service created it before it had migrations, with one user in it.
      yield* raw(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.zipRight(
          sql.unsafe(migrations[0]!.sqlite[0]!),
          sql`INSERT INTO users (id, name, email, last_active_at, updated_at) VALUES (7, 'Old', 'o@x', 1, 2)`
        )))
      const user = yield* Effect.flatMap(UserModel.UserModel, (model) => model.findById(7)).pipe(
        Effect.provide(UserModel.layerSqlite({ filename }))
      )
      expect(Option.map(user, (u) => u.name)).toEqual(Option.some("Old"))
      const applied = yield* raw(
        Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql<{ readonly id: number }>`SELECT id FROM user_schema_migrations ORDER BY id`
        )
      )
      expect(applied.map((row) => row.id)).toEqual(migrations.map((m) => m.id))
    }))

  it.effect("creates the directory, the schema and the demo seed on first start, and does not seed twice", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const filename = path.join(dir, "nested", "data", "user.db")
      const count = Effect.flatMap(UserModel.UserModel, (model) => model.list(1, 1)).pipe(
        Effect.map((page) => page.total)
      )
      const first = yield* count.pipe(Effect.provide(UserModel.layerSqlite({ filename })))
      expect(first).toBeGreaterThan(0)
      expect(fs.existsSync(filename)).toBe(true)
      // A second start over the same file finds the users and adds none.
      const second = yield* Effect.gen(function*() {
        const model = yield* UserModel.UserModel
        yield* model.archive(1, NOW)
        return yield* count
      }).pipe(Effect.provide(UserModel.layerSqlite({ filename })))
      expect(second).toBe(first)
      const archived = yield* Effect.flatMap(UserModel.UserModel, (model) => model.findById(1)).pipe(
        Effect.provide(UserModel.layerSqlite({ filename }))
      )
      expect(Option.getOrThrow(archived).status).toBe("archived")
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.effect("transaction rolls back every write when the effect fails", () =>
    Effect.gen(function*() {
      const model = yield* UserModel.UserModel
      yield* model.insert(UserModel.demoUsers(NOW, 3))
      const exit = yield* model.transaction(
        Effect.zipRight(model.archive(1, NOW), Effect.fail("boom" as const))
      ).pipe(Effect.exit)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(Option.getOrThrow(yield* model.findById(1)).status).toBe("active")
    }).pipe(Effect.provide(UserModel.layerSqlite({ filename: path.join(tempDir(), "tx.db"), seed: false }))))

  it.effect("a database path that cannot be opened is a RepositoryError, not a crash", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const blocker = path.join(dir, "file")
      fs.writeFileSync(blocker, "not a directory")
      const error = yield* Effect.flip(
        Effect.provide(UserModel.UserModel, UserModel.layerSqlite({ filename: path.join(blocker, "user.db") }))
      )
      expect(error).toBeInstanceOf(RepositoryError)
      const garbage = path.join(dir, "garbage.db")
      fs.writeFileSync(garbage, "this is not a SQLite database, just text that is long enough to be read".repeat(20))
      const notDb = yield* Effect.flip(
        Effect.provide(UserModel.UserModel, UserModel.layerSqlite({ filename: garbage }))
      )
      expect(notDb).toBeInstanceOf(RepositoryError)
      fs.rmSync(dir, { recursive: true, force: true })
    }))
})

describe("UserModel on PostgreSQL", () => {
  /** The rows of `user_schema_migrations` and the number of users, read with a client of the test's own. */
  const inspect = (url: string) =>
    Effect.gen(function*() {
      const sql = yield* PgClient.make({ url: Redacted.make(url) })
      const applied = yield* sql<{ readonly id: number }>`SELECT id FROM user_schema_migrations ORDER BY id`
      const users = yield* sql<{ readonly n: string }>`SELECT COUNT(*) AS n FROM users`
      return { applied: applied.map((row) => Number(row.id)), users: Number(users[0]!.n) }
    }).pipe(Effect.scoped, Effect.provide(Reactivity.layer), Effect.orDie)

  it.live("nodes starting together on one database migrate and seed it once", () =>
    Effect.gen(function*() {
      const url = yield* postgres.database("together")
      // Five models built at the same moment, as the nodes of a cluster starting together: each migrates and seeds
      // under its lock, so every migration is recorded once and the demo users are written once.
      const totals = yield* Effect.forEach(
        Array.from({ length: 5 }),
        () =>
          Effect.flatMap(UserModel.UserModel, (model) => model.list(1, 1)).pipe(
            Effect.map((page) => page.total),
            Effect.provide(UserModel.layerPg({ url }))
          ),
        { concurrency: "unbounded" }
      )
      const state = yield* inspect(url)
      expect(state.applied).toEqual(migrations.map((m) => m.id))
      expect(state.users).toBe(UserModel.demoUsers(NOW).length)
      expect(totals).toEqual(totals.map(() => state.users))
      // A restart finds the schema current and the users there: nothing applied, nothing added.
      yield* Effect.provide(UserModel.UserModel, UserModel.layerPg({ url }))
      expect(yield* inspect(url)).toEqual(state)
    }), 60_000)

  it.live("epoch-millisecond columns (BIGINT) read back as numbers", () =>
    Effect.gen(function*() {
      const model = yield* UserModel.UserModel
      const far = Date.UTC(2200, 0, 1)
      yield* model.insert([new UserModel.User({ ...UserModel.demoUsers(far, 1)[0]!, syncFence: 2 ** 40 })])
      const user = Option.getOrThrow(yield* model.findById(1))
      expect(user.updatedAt).toBe(far)
      expect(user.syncFence).toBe(2 ** 40)
      expect((yield* model.list(1, 10)).total).toBe(1)
    }).pipe(Effect.provide(pgLayer())))

  it.live("transaction rolls back every write when the effect fails", () =>
    Effect.gen(function*() {
      const model = yield* UserModel.UserModel
      yield* model.insert(UserModel.demoUsers(NOW, 3))
      const exit = yield* model.transaction(
        Effect.zipRight(model.archive(1, NOW), Effect.fail("boom" as const))
      ).pipe(Effect.exit)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(Option.getOrThrow(yield* model.findById(1)).status).toBe("active")
    }).pipe(Effect.provide(pgLayer())))

  it.live(
    "a server that dies under the model: the next call is a RepositoryError, within the statement bound",
    () =>
      Effect.gen(function*() {
        // A server of its own: this test kills it.
        const server = yield* startPostgres
        const url = yield* server.database("dies")
        yield* Effect.gen(function*() {
          const model = yield* UserModel.UserModel
          expect((yield* model.list(1, 1)).total).toBe(UserModel.demoUsers(NOW).length)
          yield* server.kill()
          const started = Date.now()
          const error = yield* Effect.flip(model.findById(1))
          expect(error).toBeInstanceOf(RepositoryError)
          expect(error.operation).toBe("findById")
          expect(Date.now() - started).toBeLessThan(2_000 + 1_000)
        }).pipe(Effect.provide(UserModel.layerPg({ url, statementTimeout: "2 seconds" })))
      }).pipe(Effect.scoped),
    60_000
  )

  it.live("a server that does not answer is a RepositoryError within the connect bound, without the password", () =>
    Effect.gen(function*() {
      // A port nothing listens on: the connection is refused at once.
      const url = `postgres://postgres:s3cret@127.0.0.1:1/postgres`
      const started = Date.now()
      const error = yield* Effect.flip(
        Effect.provide(UserModel.UserModel, UserModel.layerPg({ url: Redacted.make(url), connectTimeout: "2 seconds" }))
      )
      expect(error).toBeInstanceOf(RepositoryError)
      expect(error.operation).toBe("connect")
      expect(error.message).toContain("127.0.0.1:1")
      expect(error.message).not.toContain("s3cret")
      expect(Date.now() - started).toBeLessThan(10_000)
    }))
})
