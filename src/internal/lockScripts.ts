/**
 * The lock scripts and owner tokens shared by the Redis `JobLockModel` and the Redis `JobStore`. Not part of the
 * public API.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import type * as JobLockModel from "../JobLockModel.js"
import * as Redis from "../Redis.js"
import * as RedisScript from "./redisScript.js"

/**
 * Delete the lock only if its value is our token. `KEYS[1]` lock, `ARGV[1]` token. Returns 1 when deleted.
 */
export const releaseScript = RedisScript.script(
  "release",
  `if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`
)

/**
 * Reset the lock's expiry only if its value is our token. `KEYS[1]` lock, `ARGV[1]` token, `ARGV[2]` TTL in ms.
 * Returns 1 when extended.
 */
export const renewScript = RedisScript.script(
  "renew",
  `if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`
)

/**
 * A fresh owner token: 128 random bits, so two owners (processes, runs, Go services) never share one.
 */
export const newToken = (): string => randomBytes(16).toString("hex")

/**
 * Compare-and-delete through the given client (shared with `JobStore/Redis.ts`).
 */
export const releaseWith = (redis: Redis.RedisClientService) => (lock: JobLockModel.LockHandle) =>
  redis.run(
    "releaseLock",
    (client) =>
      RedisScript.evalScript(client, releaseScript, [Redis.keys(redis.keyPrefix).lock(lock.key)], [lock.token])
  ).pipe(Effect.map((deleted) => deleted === 1))

/**
 * Compare-and-extend through the given client (shared with `JobStore/Redis.ts`).
 */
export const renewWith =
  (redis: Redis.RedisClientService) => (lock: JobLockModel.LockHandle, ttl: Duration.DurationInput) =>
    redis.run("renewLock", (client) =>
      RedisScript.evalScript(
        client,
        renewScript,
        [Redis.keys(redis.keyPrefix).lock(lock.key)],
        [lock.token, RedisScript.ttlMillis(ttl)]
      )).pipe(Effect.map((extended) => extended === 1))
