/**
 * The user store of the reference service (the seed's `UserModel`): SQLite through `@effect/sql` in production, a
 * memory model in tests. Every method fails with a typed `RepositoryError`; times are epoch milliseconds.
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Str from "effect/String"
import * as fs from "node:fs"
import * as path from "node:path"
import { RepositoryError } from "../Errors.js"

/**
 * @since 0.1.0
 * @category models
 */
export const UserStatus = Schema.Literal("active", "archived")

/**
 * One user. `syncFence` is the fencing token of the sync run that last wrote it: a stale run (lower fence) cannot
 * overwrite a newer run's write.
 *
 * @since 0.1.0
 * @category models
 */
export class User extends Schema.Class<User>("User")({
  id: Schema.Int,
  name: Schema.String,
  email: Schema.String,
  status: UserStatus,
  lastActiveAt: Schema.Number,
  updatedAt: Schema.Number,
  syncedAt: Schema.NullOr(Schema.Number),
  syncFence: Schema.Number,
  archivedAt: Schema.NullOr(Schema.Number)
}) {}

/**
 * A page of `list`.
 *
 * @since 0.1.0
 * @category models
 */
export interface UserPage {
  readonly users: ReadonlyArray<User>
  readonly total: number
}

/**
 * @since 0.1.0
 * @category tags
 */
export class UserModel extends Context.Tag("effect-job-scheduler/service/UserModel")<UserModel, {
  /** The user with this id, if any. */
  readonly findById: (id: number) => Effect.Effect<Option.Option<User>, RepositoryError>
  /** Up to `limit` users with `id > lastId`, by id: keyset paging that stays fast on large tables. */
  readonly findByPage: (lastId: number, limit: number) => Effect.Effect<ReadonlyArray<User>, RepositoryError>
  /** Page `page` (1-based) of `pageSize` users by id, with the total count, for the RPC. */
  readonly list: (page: number, pageSize: number) => Effect.Effect<UserPage, RepositoryError>
  /** Up to `limit` users with `id > lastId` whose last change is not synced yet, by id. */
  readonly findUnsynced: (lastId: number, limit: number) => Effect.Effect<ReadonlyArray<User>, RepositoryError>
  /** Mark users synced at `at` by the run with `fence`; rows of a newer fence are left alone. Returns the count. */
  readonly markSynced: (
    ids: ReadonlyArray<number>,
    options: { readonly at: number; readonly fence: number }
  ) => Effect.Effect<number, RepositoryError>
  /** Archive an active user; `false` when it is missing or already archived (so a re-run changes nothing). */
  readonly archive: (id: number, at: number) => Effect.Effect<boolean, RepositoryError>
  /** Add users (demo seed, tests). */
  readonly insert: (users: ReadonlyArray<User>) => Effect.Effect<void, RepositoryError>
  /** Run `effect` in one transaction (a savepoint when nested); the memory model runs it as is. */
  readonly transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | RepositoryError, R>
}>() {}

// ---------------------------------------------------------------------------------------------------------------
// Demo seed
// ---------------------------------------------------------------------------------------------------------------

const DAY_MS = 24 * 60 * 60 * 1000

/**
 * How many users the demo seed writes on first start: enough for the list RPC to page and for the archive job to
 * find inactive users, small enough to be created in milliseconds.
 */
const DEMO_USERS = 200

/**
 * The demo users: user i was last active `i` days ago, so the ones beyond the archive threshold (90 days by default)
 * are archived by the first `archive_user` run.
 *
 * @since 0.1.0
 * @category seed
 */
export const demoUsers = (now: number, count: number = DEMO_USERS): ReadonlyArray<User> =>
  Array.from({ length: count }, (_, i) => {
    const id = i + 1
    return new User({
      id,
      name: `User ${id}`,
      email: `user${id}@example.com`,
      status: "active",
      lastActiveAt: now - id * DAY_MS,
      updatedAt: now,
      syncedAt: null,
      syncFence: 0,
      archivedAt: null
    })
  })

// ---------------------------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------------------------

/**
 * A memory model over the given users: a map plus an id-sorted index, so keyset paging over tens of thousands of
 * users stays linear.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (seed: Iterable<User> = []): Effect.Effect<UserModel["Type"]> =>
  Effect.sync(() => {
    const users = new Map<number, User>()
    let sorted: Array<number> | undefined
    const ids = () => (sorted ??= [...users.keys()].sort((a, b) => a - b))
    const put = (user: User) => {
      if (!users.has(user.id)) sorted = undefined
      users.set(user.id, user)
    }
    for (const user of seed) put(user)
    /** The first index in `ids()` with an id greater than `lastId` (binary search). */
    const after = (lastId: number) => {
      const all = ids()
      let lo = 0
      let hi = all.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (all[mid]! <= lastId) lo = mid + 1
        else hi = mid
      }
      return lo
    }
    const service: UserModel["Type"] = {
      findById: (id) => Effect.sync(() => Option.fromNullable(users.get(id))),
      findByPage: (lastId, limit) =>
        Effect.sync(() => {
          const start = after(lastId)
          return ids().slice(start, start + limit).map((id) => users.get(id)!)
        }),
      list: (page, pageSize) =>
        Effect.sync(() => ({
          users: ids().slice((page - 1) * pageSize, page * pageSize).map((id) => users.get(id)!),
          total: users.size
        })),
      findUnsynced: (lastId, limit) =>
        Effect.sync(() => {
          const found: Array<User> = []
          const all = ids()
          for (let i = after(lastId); i < all.length && found.length < limit; i++) {
            const user = users.get(all[i]!)!
            if (user.syncedAt === null || user.updatedAt > user.syncedAt) found.push(user)
          }
          return found
        }),
      markSynced: (list, { at, fence }) =>
        Effect.sync(() => {
          let count = 0
          for (const id of list) {
            const user = users.get(id)
            if (user === undefined || user.syncFence > fence) continue
            users.set(id, new User({ ...user, syncedAt: at, syncFence: fence }))
            count++
          }
          return count
        }),
      archive: (id, at) =>
        Effect.sync(() => {
          const user = users.get(id)
          if (user === undefined || user.status !== "active") return false
          users.set(id, new User({ ...user, status: "archived", archivedAt: at }))
          return true
        }),
      insert: (list) => Effect.sync(() => list.forEach(put)),
      transaction: (effect) => effect
    }
    return service
  })

/**
 * A memory model with the given users (none by default): for tests and embedders.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (seed: Iterable<User> = []): Layer.Layer<UserModel> =>
  Layer.effect(UserModel, makeMemory(seed))

// ---------------------------------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------------------------------

const repositoryError = (operation: string) => (cause: SqlError | unknown) =>
  new RepositoryError({
    operation,
    // SqlError wraps the driver's error: its message ("Failed to execute statement") says less than the cause's.
    reason: cause instanceof Error
      ? (cause.cause instanceof Error ? cause.cause.message : cause.message)
      : String(cause),
    cause
  })

const decodeUsers = Schema.decodeUnknown(Schema.Array(User))

/**
 * The SQLite model over the `SqlClient` in context. Creates the schema if it is missing, and seeds the demo users
 * when `seed` is true and the table is empty.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSql = (options: { readonly seed?: boolean | undefined } = {}): Effect.Effect<
  UserModel["Type"],
  RepositoryError,
  SqlClient.SqlClient
> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE IF NOT EXISTS users (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      email TEXT NOT NULL,
      status TEXT NOT NULL DEFAULT 'active',
      last_active_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      synced_at INTEGER,
      sync_fence INTEGER NOT NULL DEFAULT 0,
      archived_at INTEGER
    )`.pipe(Effect.mapError(repositoryError("create schema")))

    const rows = <E, R>(operation: string, query: Effect.Effect<ReadonlyArray<unknown>, E, R>) =>
      query.pipe(Effect.flatMap(decodeUsers), Effect.mapError(repositoryError(operation)))

    const insert = (list: ReadonlyArray<User>) =>
      list.length === 0 ? Effect.void : sql`INSERT INTO users ${
        sql.insert(list.map((u) => ({
          id: u.id,
          name: u.name,
          email: u.email,
          status: u.status,
          last_active_at: u.lastActiveAt,
          updated_at: u.updatedAt,
          synced_at: u.syncedAt,
          sync_fence: u.syncFence,
          archived_at: u.archivedAt
        })))
      }`.pipe(Effect.asVoid, Effect.mapError(repositoryError("insert")))

    const service: UserModel["Type"] = {
      findById: (id) =>
        rows("findById", sql`SELECT * FROM users WHERE id = ${id}`).pipe(
          Effect.map((found) => Option.fromNullable(found[0]))
        ),
      findByPage: (lastId, limit) =>
        rows("findByPage", sql`SELECT * FROM users WHERE id > ${lastId} ORDER BY id LIMIT ${limit}`),
      list: (page, pageSize) =>
        Effect.all({
          users: rows("list", sql`SELECT * FROM users ORDER BY id LIMIT ${pageSize} OFFSET ${(page - 1) * pageSize}`),
          total: sql<{ readonly n: number }>`SELECT COUNT(*) AS n FROM users`.pipe(
            Effect.map((result) => Number(result[0]?.n ?? 0)),
            Effect.mapError(repositoryError("list"))
          )
        }),
      findUnsynced: (lastId, limit) =>
        rows(
          "findUnsynced",
          sql`SELECT * FROM users WHERE id > ${lastId} AND (synced_at IS NULL OR updated_at > synced_at)
            ORDER BY id LIMIT ${limit}`
        ),
      markSynced: (ids, { at, fence }) =>
        ids.length === 0 ? Effect.succeed(0) : sql<{ readonly id: number }>`UPDATE users
          SET synced_at = ${at}, sync_fence = ${fence}
          WHERE ${sql.in("id", ids)} AND sync_fence <= ${fence} RETURNING id`.pipe(
          Effect.map((updated) => updated.length),
          Effect.mapError(repositoryError("markSynced"))
        ),
      archive: (id, at) =>
        sql<{ readonly id: number }>`UPDATE users SET status = 'archived', archived_at = ${at}
          WHERE id = ${id} AND status = 'active' RETURNING id`.pipe(
          Effect.map((updated) => updated.length > 0),
          Effect.mapError(repositoryError("archive"))
        ),
      insert,
      transaction: (effect) => sql.withTransaction(effect).pipe(Effect.mapError((error) =>
        // Errors of `effect` pass through; only the transaction's own SqlError becomes a RepositoryError.
        error instanceof RepositoryError || !isSqlError(error) ? error : repositoryError("transaction")(error)
      ))
    }

    if (options.seed ?? true) {
      const count = yield* sql<{ readonly n: number }>`SELECT COUNT(*) AS n FROM users`.pipe(
        Effect.map((result) => Number(result[0]?.n ?? 0)),
        Effect.mapError(repositoryError("seed"))
      )
      if (count === 0) {
        const now = yield* Clock.currentTimeMillis
        yield* insert(demoUsers(now))
        yield* Effect.logInfo("user store seeded").pipe(Effect.annotateLogs({ users: DEMO_USERS }))
      }
    }
    return service
  })

const isSqlError = (u: unknown): u is SqlError =>
  typeof u === "object" && u !== null && "_tag" in u && u._tag === "SqlError"

/**
 * The SQLite model on a file (its directory is created), schema created on first start, demo users seeded into an
 * empty table unless `seed` is false.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSqlite = (options: {
  readonly filename: string
  readonly seed?: boolean | undefined
}): Layer.Layer<UserModel, RepositoryError> =>
  Layer.effect(UserModel, makeSql(options)).pipe(
    Layer.provide(
      Layer.scopedContext(
        Effect.gen(function*() {
          if (options.filename !== ":memory:") {
            yield* Effect.try({
              try: () => fs.mkdirSync(path.dirname(path.resolve(options.filename)), { recursive: true }),
              catch: repositoryError("create database directory")
            })
          }
          // better-sqlite3 throws from its constructor (bad path, not a database, no permission): a typed error here.
          const client = yield* SqliteClient.make({
            filename: options.filename,
            transformResultNames: Str.snakeToCamel
          }).pipe(Effect.catchAllDefect((defect) => Effect.fail(repositoryError("open database")(defect))))
          return Context.make(SqliteClient.SqliteClient, client).pipe(Context.add(SqlClient.SqlClient, client))
        })
      ).pipe(Layer.provide(Reactivity.layer))
    )
  )
