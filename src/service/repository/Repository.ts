/**
 * One layer with every model of the service (the Go pattern's `ServiceContext` models): the `UserModel` on SQLite or
 * PostgreSQL, and the `JobLockModel` (with the scheduler's `JobStore` on the same backend) from `xredis`.
 *
 * @since 0.1.0
 */
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type { StoreError } from "../../Errors.js"
import type { JobLockModel } from "../../JobLockModel.js"
import type { JobStore } from "../../JobStore.js"
import type { RepositoryError } from "../Errors.js"
import * as UserModel from "./UserModel.js"
import * as xredis from "./xredis.js"

/**
 * Every model the service's handlers, logic and servers use.
 *
 * @since 0.1.0
 * @category models
 */
export type Models = UserModel.UserModel | JobLockModel | JobStore | xredis.StoreHealth

/**
 * The models for the given settings: the users on PostgreSQL when `databaseUrl` is set (shared by every node), else
 * SQLite at `sqlite` (schema migrated and demo users seeded on first start either way); Redis when `redis` is set,
 * else memory.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (settings: {
  readonly sqlite: string
  readonly databaseUrl?: Option.Option<Redacted.Redacted<string>> | undefined
  readonly redis: Option.Option<xredis.RedisSettings>
}): Layer.Layer<Models, RepositoryError | StoreError> =>
  Layer.merge(
    settings.databaseUrl !== undefined && Option.isSome(settings.databaseUrl)
      ? UserModel.layerPg({ url: settings.databaseUrl.value })
      : UserModel.layerSqlite({ filename: settings.sqlite }),
    xredis.layer(settings.redis)
  )

/**
 * Memory models for tests: the given users, in-memory locks, statuses and records.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (users: Iterable<UserModel.User> = []): Layer.Layer<Models> =>
  Layer.merge(UserModel.layerMemory(users), xredis.layerMemory)
