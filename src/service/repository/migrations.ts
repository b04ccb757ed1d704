/**
 * The user store's schema as numbered migrations, applied at start-up by `migrate` on SQLite and PostgreSQL alike.
 * Each migration runs once per database: the applied ones are recorded in `user_schema_migrations`, and on
 * PostgreSQL the whole run holds a transaction-scoped advisory lock, so that the nodes of a cluster starting together
 * on one database apply each migration exactly once (the others wait, then find it applied).
 *
 * A new migration is appended with the next id; an applied one is never edited.
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

/**
 * One schema change: its DDL for each dialect (SQL text, run as is).
 *
 * @since 0.1.0
 * @category models
 */
export interface Migration {
  readonly id: number
  readonly name: string
  readonly sqlite: ReadonlyArray<string>
  readonly pg: ReadonlyArray<string>
}

/**
 * The migrations, in order. The first is written `IF NOT EXISTS` so that a SQLite file created before migrations
 * existed (same table) is adopted as is.
 *
 * Times are epoch milliseconds: `INTEGER` on SQLite (64-bit), `BIGINT` on PostgreSQL (read back as numbers, see
 * `UserModel.ts`).
 *
 * @since 0.1.0
 * @category migrations
 */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: 1,
    name: "create_users",
    sqlite: [`CREATE TABLE IF NOT EXISTS users (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      email TEXT NOT NULL,
      status TEXT NOT NULL DEFAULT 'active',
      last_active_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      synced_at INTEGER,
      sync_fence INTEGER NOT NULL DEFAULT 0,
      archived_at INTEGER
    )`],
    pg: [`CREATE TABLE IF NOT EXISTS users (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      email TEXT NOT NULL,
      status TEXT NOT NULL DEFAULT 'active',
      last_active_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL,
      synced_at BIGINT,
      sync_fence BIGINT NOT NULL DEFAULT 0,
      archived_at BIGINT
    )`]
  },
  {
    id: 2,
    name: "users_sync_fence_index",
    // The sync's `markSynced ... WHERE sync_fence <= fence` and an operator's "who synced what" both read by fence.
    sqlite: ["CREATE INDEX IF NOT EXISTS users_sync_fence ON users (sync_fence)"],
    pg: ["CREATE INDEX IF NOT EXISTS users_sync_fence ON users (sync_fence)"]
  }
]

/**
 * The key of the advisory lock a PostgreSQL migration run holds: a fixed number (ASCII "ejsu"); nothing else in the
 * service takes advisory locks, so it only excludes other migration runs.
 */
const PG_MIGRATION_LOCK = 0x656a7375

/**
 * Apply the migrations not applied yet, in one transaction; returns the ids applied by this call (none when the
 * schema is current).
 *
 * @since 0.1.0
 * @category migrations
 */
export const migrate = (
  sql: SqlClient.SqlClient,
  list: ReadonlyArray<Migration> = migrations
): Effect.Effect<ReadonlyArray<number>, SqlError> =>
  Effect.gen(function*() {
    const dialect = sql.onDialectOrElse({ pg: () => "pg" as const, orElse: () => "sqlite" as const })
    if (dialect === "pg") yield* sql`SELECT pg_advisory_xact_lock(${PG_MIGRATION_LOCK})`
    yield* sql`CREATE TABLE IF NOT EXISTS user_schema_migrations (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      applied_at BIGINT NOT NULL
    )`
    const rows = yield* sql<{ readonly id: number }>`SELECT id FROM user_schema_migrations`
    const done = new Set(rows.map((row) => Number(row.id)))
    const applied: Array<number> = []
    for (const migration of list) {
      if (done.has(migration.id)) continue
      for (const statement of migration[dialect]) yield* sql.unsafe(statement)
      const now = yield* Clock.currentTimeMillis
      yield* sql`INSERT INTO user_schema_migrations ${
        sql.insert({ id: migration.id, name: migration.name, applied_at: now })
      }`
      applied.push(migration.id)
    }
    return applied
  }).pipe(sql.withTransaction)
