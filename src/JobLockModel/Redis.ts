/**
 * The `JobLockModel` on Redis, with the key layout of Go services using `xredis` (`{prefix}:job:lock:{key}`, `{prefix}:job:status:{job}`)
 * so that a Go service using `xredis` and this service exclude each other on the same Redis. Beyond that layout, the
 * lock value is a random owner token and release/renew are compare-and-act Lua scripts: a late release never deletes
 * a newer owner's lock.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { newToken, releaseWith, renewWith } from "../internal/lockScripts.js"
import * as RedisScript from "../internal/redisScript.js"
import * as JobLockModel from "../JobLockModel.js"
import * as Redis from "../Redis.js"

/**
 * The model over a connected client.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromClient = (redis: Redis.RedisClientService): JobLockModel.JobLockModel["Type"] => {
  const keys = Redis.keys(redis.keyPrefix)
  return {
    acquireLock: (key, ttl) =>
      Effect.suspend(() => {
        const token = newToken()
        return redis.run("acquireLock", (client) =>
          client.set(keys.lock(key), token, "PX", RedisScript.ttlMillis(ttl), "NX"))
          .pipe(Effect.map((reply) =>
            reply === "OK" ? Option.some({ key, token }) : Option.none()
          ))
      }),
    releaseLock: releaseWith(redis),
    renewLock: renewWith(redis),
    setJobStatus: (jobName, status, ttl) =>
      redis.run("setJobStatus", (client) => client.set(keys.status(jobName), status, "PX", RedisScript.ttlMillis(ttl)))
        .pipe(Effect.asVoid),
    getJobStatus: (jobName) =>
      redis.run("getJobStatus", (client) => client.get(keys.status(jobName))).pipe(Effect.map(Option.fromNullable))
  }
}

/**
 * The model over the `RedisClient` in context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.map(Redis.RedisClient, fromClient)

/**
 * Locks and statuses in Redis.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<JobLockModel.JobLockModel, never, Redis.RedisClient> = Layer.effect(
  JobLockModel.JobLockModel,
  make
)
