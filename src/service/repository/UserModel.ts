/**
 * The user store of the reference service (`UserModel` in the Go pattern) through `@effect/sql`: SQLite (the embedded
 * default, one file per process), PostgreSQL (the shared store of a cluster), and a memory model for tests. The SQL
 * schema is applied by numbered migrations at start-up (`migrations.ts`). Every method fails with a typed
 * `RepositoryError`; times are epoch milliseconds.
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Str from "effect/String"
import * as fs from "node:fs"
import * as path from "node:path"
import { RepositoryError } from "../Errors.js"
import { migrate } from "./migrations.js"

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
// SQL (SQLite, PostgreSQL)
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

/**
 * Columns stored as 64-bit integers (epoch milliseconds, fences). PostgreSQL's driver returns `BIGINT` as a string
 * (it may exceed 2^53); these values stay far below 2^53 (epoch ms until the year 287,396; a fence per run), so they
 * are read back as numbers.
 */
const BIGINT_FIELDS = ["lastActiveAt", "updatedAt", "syncedAt", "syncFence", "archivedAt"] as const

const numericRow = (row: unknown): unknown => {
  if (typeof row !== "object" || row === null) return row
  const record = { ...(row as Record<string, unknown>) }
  for (const field of BIGINT_FIELDS) {
    const value = record[field]
    if (typeof value === "string" && /^-?\d+$/.test(value)) record[field] = Number(value)
  }
  return record
}

const decodeUsers = Schema.decodeUnknown(Schema.Array(User))

/**
 * Bound on one statement of the PostgreSQL model: a statement here is a keyset page or an update of one page (well
 * under 100 ms on a healthy server), so 10 s only trips on a server that is down, partitioned or locked up, and the
 * caller (a job) gets a typed, retryable error instead of waiting for its own timeout.
 *
 * @since 0.1.0
 * @category defaults
 */
export const DEFAULT_STATEMENT_TIMEOUT = Duration.seconds(10)

/**
 * The SQL model over the `SqlClient` in context (SQLite or PostgreSQL): applies the schema migrations (see
 * `migrations.ts`), and seeds the demo users when `seed` is true and the table is empty. Every statement is bounded
 * by `statementTimeout` (a `RepositoryError` when it passes).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSql = (options: {
  readonly seed?: boolean | undefined
  readonly statementTimeout?: Duration.DurationInput | undefined
} = {}): Effect.Effect<UserModel["Type"], RepositoryError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const timeout = Duration.decode(options.statementTimeout ?? DEFAULT_STATEMENT_TIMEOUT)
    const bounded = (operation: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      effect.pipe(
        Effect.mapError(repositoryError(operation)),
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new RepositoryError({ operation, reason: `no reply within ${Duration.format(timeout)}` })
        })
      )

    const applied = yield* migrate(sql).pipe(bounded("migrate"))
    if (applied.length > 0) {
      yield* Effect.logInfo("user store schema migrated").pipe(Effect.annotateLogs({ applied: applied.join(",") }))
    }

    const rows = <E, R>(operation: string, query: Effect.Effect<ReadonlyArray<unknown>, E, R>) =>
      query.pipe(Effect.flatMap((found) => decodeUsers(found.map(numericRow))), bounded(operation))
    const count = (operation: string) =>
      sql<{ readonly n: number | string }>`SELECT COUNT(*) AS n FROM users`.pipe(
        // COUNT(*) is a BIGINT on PostgreSQL: a string.
        Effect.map((result) => Number(result[0]?.n ?? 0)),
        bounded(operation)
      )

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
      }`.pipe(Effect.asVoid, bounded("insert"))

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
          total: count("list")
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
          bounded("markSynced")
        ),
      archive: (id, at) =>
        sql<{ readonly id: number }>`UPDATE users SET status = 'archived', archived_at = ${at}
          WHERE id = ${id} AND status = 'active' RETURNING id`.pipe(
          Effect.map((updated) => updated.length > 0),
          bounded("archive")
        ),
      insert,
      transaction: (effect) =>
        sql.withTransaction(effect).pipe(Effect.mapError((error) =>
          // Errors of `effect` pass through; only the transaction's own SqlError becomes a RepositoryError.
          error instanceof RepositoryError || !isSqlError(error) ? error : repositoryError("transaction")(error)
        ))
    }

    if (options.seed ?? true) {
      // Seeding is one transaction, and on PostgreSQL it holds a table lock, so that nodes starting together on one
      // database seed it once (the others find the users there).
      yield* Effect.gen(function*() {
        yield* sql.onDialectOrElse({
          pg: () => sql`LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE`.pipe(bounded("seed")),
          orElse: () => Effect.void
        })
        if ((yield* count("seed")) > 0) return
        const now = yield* Clock.currentTimeMillis
        yield* insert(demoUsers(now))
        yield* Effect.logInfo("user store seeded").pipe(Effect.annotateLogs({ users: DEMO_USERS }))
      }).pipe(service.transaction)
    }
    return service
  })

const isSqlError = (u: unknown): u is SqlError =>
  typeof u === "object" && u !== null && "_tag" in u && u._tag === "SqlError"

/**
 * The SQLite model on a file (its directory is created), schema migrated at start, demo users seeded into an empty
 * table unless `seed` is false. The embedded default: one process, one file.
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

/**
 * @since 0.1.0
 * @category models
 */
export interface PgOptions {
  /** `postgres://[user[:password]@]host[:port]/database[?sslmode=...]`. A password in it is never logged. */
  readonly url: Redacted.Redacted<string> | string
  readonly seed?: boolean | undefined
  /** Bound on connecting (the first `SELECT 1`). Default 5 seconds. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Bound on one statement. Default `DEFAULT_STATEMENT_TIMEOUT`. */
  readonly statementTimeout?: Duration.DurationInput | undefined
  /** Pool size. Default 10: the sync and archive jobs use one connection each, the RPCs a few. */
  readonly maxConnections?: number | undefined
}

/** Default bound on connecting: room for a database that starts a moment after us, as for Redis. */
const DEFAULT_PG_CONNECT_TIMEOUT = Duration.seconds(5)

/**
 * The URL with its password masked, for logs and error messages.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeDatabaseUrl = (url: Redacted.Redacted<string> | string): string => {
  const raw = Redacted.isRedacted(url) ? Redacted.value(url) : url
  try {
    const parsed = new URL(raw)
    if (parsed.password !== "") parsed.password = "***"
    return parsed.toString()
  } catch {
    return "postgres (unparsable url)"
  }
}

/**
 * The PostgreSQL model (a cluster's shared user store): a connection pool checked at start (`SELECT 1` within
 * `connectTimeout`), schema migrated once per database whatever the number of nodes starting together, demo users
 * seeded into an empty table unless `seed` is false. The pool closes with the layer's scope.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPg = (options: PgOptions): Layer.Layer<UserModel, RepositoryError> =>
  Layer.effect(UserModel, makeSql(options)).pipe(
    Layer.provide(
      Layer.scopedContext(
        Effect.gen(function*() {
          const where = describeDatabaseUrl(options.url)
          const client = yield* PgClient.make({
            url: Redacted.isRedacted(options.url) ? options.url : Redacted.make(options.url),
            connectTimeout: options.connectTimeout ?? DEFAULT_PG_CONNECT_TIMEOUT,
            maxConnections: options.maxConnections ?? 10,
            transformResultNames: Str.snakeToCamel
          }).pipe(
            Effect.mapError((error) =>
              new RepositoryError({
                operation: "connect",
                reason: `${where}: ${repositoryError("connect")(error).reason}`
              })
            ),
            // A malformed URL throws inside the driver: a typed error, not a crash.
            Effect.catchAllDefect((defect) => Effect.fail(repositoryError("connect")(defect)))
          )
          yield* Effect.logDebug("user store connected").pipe(Effect.annotateLogs({ database: where }))
          return Context.make(PgClient.PgClient, client).pipe(Context.add(SqlClient.SqlClient, client))
        })
      ).pipe(Layer.provide(Reactivity.layer))
    )
  )
