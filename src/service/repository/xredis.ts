/**
 * The Redis wrapper (`xredis` in the Go pattern): the `JobLockModel` the job logic uses, and the scheduler's
 * `JobStore`, both on Redis when `redis` is configured, else in memory. The two always share one backend (one Redis
 * client, or one memory state), so a lock taken through either excludes the other.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type { StoreError } from "../../Errors.js"
import type * as JobLockModel from "../../JobLockModel.js"
import * as JobStore from "../../JobStore.js"
import * as JobStoreRedis from "../../JobStore/Redis.js"
import * as Redis from "../../Redis.js"

/**
 * The `JobLockModel` and its scoped lock, re-exported for the service's logic.
 *
 * @since 0.1.0
 * @category re-exports
 */
export { JobLockModel, withLock } from "../../JobLockModel.js"

/**
 * Whether the lock/status store answers: a Redis `PING` (bounded, typed), or nothing to check in memory.
 *
 * @since 0.1.0
 * @category tags
 */
export class StoreHealth extends Context.Tag("effect-job-scheduler/service/StoreHealth")<StoreHealth, {
  readonly backend: string
  readonly check: Effect.Effect<void, StoreError>
}>() {}

/**
 * The Redis settings of the service config.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisSettings {
  /** A standalone server; unused when `sentinel` is set. */
  readonly url: Redacted.Redacted<string> | undefined
  /** The primary found through Redis Sentinel (it follows a failover by itself). */
  readonly sentinel?: Redis.SentinelOptions | undefined
  readonly keyPrefix: string
}

/**
 * The in-memory store (embedded default): locks, statuses and run records in this process only.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<JobStore.JobStore | JobLockModel.JobLockModel | StoreHealth> = Layer.merge(
  JobStore.layerMemory,
  Layer.succeed(StoreHealth, { backend: "memory", check: Effect.void })
)

/**
 * The Redis store: one connection (bounded connect, typed errors) to a standalone server or to the primary named by
 * the sentinels, the `xredis` keys under `keyPrefix`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRedis = (
  settings: RedisSettings
): Layer.Layer<JobStore.JobStore | JobLockModel.JobLockModel | StoreHealth, StoreError> =>
  Layer.merge(
    JobStoreRedis.layer,
    Layer.effect(
      StoreHealth,
      Effect.map(Redis.RedisClient, (redis) => ({
        backend: "redis",
        check: Effect.asVoid(redis.run("ping", (client) => client.ping()))
      }))
    )
  ).pipe(Layer.provide(Redis.layer({
    url: settings.url,
    sentinel: settings.sentinel,
    keyPrefix: settings.keyPrefix,
    // A Redis that is down at start leaves a running, not-ready node (`/readyz` 503, fires skipped `store_error`)
    // that picks Redis up when it comes, instead of an exit and a crash loop.
    waitForConnection: false
  })))

/**
 * Redis when configured, else memory.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  redis: Option.Option<RedisSettings>
): Layer.Layer<JobStore.JobStore | JobLockModel.JobLockModel | StoreHealth, StoreError> =>
  Option.match(redis, { onNone: () => layerMemory, onSome: layerRedis })
