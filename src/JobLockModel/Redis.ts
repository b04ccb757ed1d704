/**
 * The seed's `JobLockModel` on Redis, with the seed's keys (`{prefix}:job:lock:{key}`, `{prefix}:job:status:{job}`)
 * so that a Go service using `xredis` and this service exclude each other on the same Redis. Beyond the seed, the
 * lock value is a random owner token and release/renew are compare-and-act Lua scripts: a late release never deletes
 * a newer owner's lock.
 *
 * @since 0.1.0
 */
import { randomBytes } from "node:crypto"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as JobLockModel from "../JobLockModel.js"
import * as Redis from "../Redis.js"

/**
 * Delete the lock only if its value is our token. `KEYS[1]` lock, `ARGV[1]` token. Returns 1 when deleted.
 *
 * @since 0.1.0
 * @category scripts
 */
export const releaseScript = Redis.script(
  "release",
  `if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`
)

/**
 * Reset the lock's expiry only if its value is our token. `KEYS[1]` lock, `ARGV[1]` token, `ARGV[2]` TTL in ms.
 * Returns 1 when extended.
 *
 * @since 0.1.0
 * @category scripts
 */
export const renewScript = Redis.script(
  "renew",
  `if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`
)

/**
 * A fresh owner token: 128 random bits, so two owners (processes, runs, Go services) never share one.
 *
 * @since 0.1.0
 * @category utils
 */
export const newToken = (): string => randomBytes(16).toString("hex")

/**
 * Compare-and-delete through the given client (shared with `JobStore/Redis.ts`).
 *
 * @since 0.1.0
 * @category operations
 */
export const releaseWith = (redis: Redis.RedisClientService) => (lock: JobLockModel.LockHandle) =>
  redis.run(
    "releaseLock",
    (client) => Redis.evalScript(client, releaseScript, [Redis.keys(redis.keyPrefix).lock(lock.key)], [lock.token])
  ).pipe(Effect.map((deleted) => deleted === 1))

/**
 * Compare-and-extend through the given client (shared with `JobStore/Redis.ts`).
 *
 * @since 0.1.0
 * @category operations
 */
export const renewWith =
  (redis: Redis.RedisClientService) => (lock: JobLockModel.LockHandle, ttl: Duration.DurationInput) =>
    redis.run("renewLock", (client) =>
      Redis.evalScript(
        client,
        renewScript,
        [Redis.keys(redis.keyPrefix).lock(lock.key)],
        [lock.token, Redis.ttlMillis(ttl)]
      )).pipe(Effect.map((extended) => extended === 1))

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
        return redis.run("acquireLock", (client) => client.set(keys.lock(key), token, "PX", Redis.ttlMillis(ttl), "NX"))
          .pipe(Effect.map((reply) => reply === "OK" ? Option.some({ key, token }) : Option.none()))
      }),
    releaseLock: releaseWith(redis),
    renewLock: renewWith(redis),
    setJobStatus: (jobName, status, ttl) =>
      redis.run("setJobStatus", (client) => client.set(keys.status(jobName), status, "PX", Redis.ttlMillis(ttl)))
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
export const layerRedis: Layer.Layer<JobLockModel.JobLockModel, never, Redis.RedisClient> = Layer.effect(
  JobLockModel.JobLockModel,
  make
)
