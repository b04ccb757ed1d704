/**
 * Where the leader says who it is: one record `{nodeId, url, since, term, version, configHash}` in the shared store,
 * written by the leader with a TTL it refreshes, read by every node (to forward a trigger, to answer who leads, to
 * compare its own job definitions with the leader's).
 *
 * - `layerRedis`: the key `{prefix}:scheduler:leader` (a string holding the record as JSON, with a TTL). A write
 *   never replaces a record of a higher term, so an old leader that has not yet noticed its loss cannot hide the new
 *   one; a clear deletes only the record this node wrote.
 * - `layerMemory`: the same in this process (single-node mode, tests).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { StoreError } from "../../Errors.js"
import * as RedisScript from "../../internal/redisScript.js"
import * as Redis from "../../Redis.js"

/**
 * What the leader publishes about itself.
 *
 * @since 0.1.0
 * @category models
 */
export class LeaderRecord extends Schema.Class<LeaderRecord>("LeaderRecord")({
  nodeId: Schema.String,
  /** Where its HTTP API answers (`http.advertiseUrl`, else the bound address). */
  url: Schema.String,
  /** When it became the leader (ISO). */
  since: Schema.String,
  /** Its leadership term (etcd: the create revision of its election key; single node: 1). */
  term: Schema.Number,
  /** Its package version. */
  version: Schema.String,
  /** The hash of its job definitions (see `ClusterInfo.configHash`). */
  configHash: Schema.String
}) {}

/**
 * @since 0.1.0
 * @category tags
 */
export class LeaderDirectory extends Context.Tag("effect-job-scheduler/service/LeaderDirectory")<LeaderDirectory, {
  /** Write (or refresh) the record for `ttl`, unless a record of a higher term is there. */
  readonly publish: (record: LeaderRecord, ttl: Duration.Duration) => Effect.Effect<void, StoreError>
  /** Delete the record if it is this one (same JSON as written). */
  readonly clear: (record: LeaderRecord) => Effect.Effect<void, StoreError>
  /** The current record, if one is there and not expired. */
  readonly current: Effect.Effect<Option.Option<LeaderRecord>, StoreError>
}>() {}

const encode = (record: LeaderRecord): string => JSON.stringify(Schema.encodeSync(LeaderRecord)(record))

const decode = (text: string): Option.Option<LeaderRecord> => {
  try {
    return Schema.decodeUnknownOption(LeaderRecord)(JSON.parse(text))
  } catch {
    return Option.none()
  }
}

/**
 * The in-process directory: a record and its expiry on the effect `Clock`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (): LeaderDirectory["Type"] => {
  let entry: { readonly record: LeaderRecord; readonly json: string; readonly expiresAt: number } | undefined
  const live = (now: number) => (entry !== undefined && entry.expiresAt > now ? entry : undefined)
  return {
    publish: (record, ttl) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const existing = live(now)
        if (existing !== undefined && existing.record.term > record.term) return
        entry = { record, json: encode(record), expiresAt: now + Duration.toMillis(ttl) }
      }),
    clear: (record) =>
      Effect.sync(() => {
        if (entry !== undefined && entry.json === encode(record)) entry = undefined
      }),
    current: Effect.map(Clock.currentTimeMillis, (now) => Option.fromNullable(live(now)?.record))
  }
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<LeaderDirectory> = Layer.sync(LeaderDirectory, makeMemory)

/**
 * Write unless the record there has a higher term (`cjson` is part of Redis' Lua). KEYS[1] = the key; ARGV = the
 * JSON, its term, the TTL in ms.
 */
const publishScript = RedisScript.script(
  "leader_publish",
  `local old = redis.call('get', KEYS[1])
if old then
  local ok, decoded = pcall(cjson.decode, old)
  if ok and type(decoded) == 'table' and tonumber(decoded.term) and tonumber(decoded.term) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1`
)

/** Compare-and-delete: KEYS[1] = the key, ARGV[1] = the JSON this node wrote. */
const clearScript = RedisScript.script(
  "leader_clear",
  `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0`
)

/**
 * The key of the leader record under a prefix.
 *
 * @since 0.1.0
 * @category keys
 */
export const leaderKey = (prefix: string): string => `${prefix}:scheduler:leader`

/**
 * The directory on the `RedisClient` in context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRedis = (redis: Redis.RedisClientService): LeaderDirectory["Type"] => {
  const key = leaderKey(redis.keyPrefix)
  return {
    publish: (record, ttl) =>
      Effect.asVoid(
        redis.run("leader publish", (client) =>
          RedisScript.evalScript(client, publishScript, [key], [
            encode(record),
            record.term,
            RedisScript.ttlMillis(ttl)
          ]))
      ),
    clear: (record) =>
      Effect.asVoid(
        redis.run("leader clear", (client) => RedisScript.evalScript(client, clearScript, [key], [encode(record)]))
      ),
    current: Effect.map(
      redis.run("leader get", (client) => client.get(key)),
      (text) => (text === null ? Option.none() : decode(text))
    )
  }
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layerRedis: Layer.Layer<LeaderDirectory, never, Redis.RedisClient> = Layer.effect(
  LeaderDirectory,
  Effect.map(Redis.RedisClient, makeRedis)
)
