/**
 * The scheduler's cluster-wide state on Redis: slot claims, locks, fencing counters, last fire times, run records,
 * statuses and pause flags, all under the seed's prefix (see `Redis.keys`). A run costs two round trips: `begin`
 * (one Lua script: pause check, slot claim, lock, fence, status) and `finish` (one Lua script: release, status,
 * record). Lock renewals run in the background and are not on the run's path.
 *
 * The scripts touch several keys, so this backend targets a single Redis (or a primary with replicas), not Redis
 * Cluster, where keys of one script must share a hash slot and the seed's key layout does not allow it.
 *
 * @since 0.1.0
 */
import * as Arr from "effect/Array"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { StoreError } from "../Errors.js"
import * as JobLockModel from "../JobLockModel.js"
import * as JobLockModelRedis from "../JobLockModel/Redis.js"
import { JobStore } from "../JobStore.js"
import type { BeginRequest, BeginResult, FinishRequest } from "../JobStore.js"
import * as Redis from "../Redis.js"
import { RunRecord } from "../Run.js"

/**
 * One round trip for the start of a run, in the order of `JobStore.begin`: paused? -> claim the slot (and raise the
 * last fire time) -> take the lock -> next fence -> status `running`. A lock not taken leaves the slot claimed: the
 * fire time was handled (skipped with `lock_held`) and must not be run by another node.
 *
 * `KEYS`: 1 paused, 2 tick (slot), 3 last, 4 lock, 5 fence, 6 status.
 * `ARGV`: 1 fire time (ms), 2 slot TTL in ms or "" for no slot, 3 slot value (node id), 4 lock token,
 * 5 lock TTL in ms or "" for no lock, 6 status TTL in ms.
 * Returns `{"paused"}`, `{"slot_taken"}`, `{"lock_held"}` or `{"started", fence}`.
 *
 * @since 0.1.0
 * @category scripts
 */
export const beginScript = Redis.script(
  "begin",
  `if redis.call("EXISTS", KEYS[1]) == 1 then
  return {"paused"}
end
if ARGV[2] ~= "" then
  if not redis.call("SET", KEYS[2], ARGV[3], "NX", "PX", ARGV[2]) then
    return {"slot_taken"}
  end
  local last = tonumber(redis.call("GET", KEYS[3]))
  if last == nil or tonumber(ARGV[1]) > last then
    redis.call("SET", KEYS[3], ARGV[1])
  end
end
if ARGV[5] ~= "" then
  if not redis.call("SET", KEYS[4], ARGV[4], "NX", "PX", ARGV[5]) then
    return {"lock_held"}
  end
end
local fence = redis.call("INCR", KEYS[5])
redis.call("SET", KEYS[6], "running", "PX", ARGV[6])
return {"started", fence}`
)

/**
 * One round trip for the end of a run: compare-and-delete our lock (a lock already lost is left alone), set the
 * status to the outcome, push the record and cap the list.
 *
 * `KEYS`: 1 lock, 2 status, 3 runs. `ARGV`: 1 lock token or "" for no lock, 2 outcome, 3 status TTL in ms,
 * 4 record JSON, 5 records kept.
 *
 * @since 0.1.0
 * @category scripts
 */
export const finishScript = Redis.script(
  "finish",
  `if ARGV[1] ~= "" and redis.call("GET", KEYS[1]) == ARGV[1] then
  redis.call("DEL", KEYS[1])
end
redis.call("SET", KEYS[2], ARGV[2], "PX", ARGV[3])
local keep = tonumber(ARGV[5])
if keep > 0 then
  redis.call("LPUSH", KEYS[3], ARGV[4])
  redis.call("LTRIM", KEYS[3], 0, keep - 1)
else
  redis.call("DEL", KEYS[3])
end
return 1`
)

const RecordJson = Schema.parseJson(RunRecord)
const encodeRecord = Schema.encode(RecordJson)
const encodeRecordEither = Schema.encodeEither(RecordJson)
const decodeRecord = Schema.decodeUnknownEither(RecordJson)

const unexpectedReply = (operation: string, reply: unknown) =>
  new StoreError({ backend: "redis", operation, reason: `unexpected reply ${JSON.stringify(reply)}` })

/** The error Redis answered one call of a pipeline with. */
const replyError = (operation: string, error: Error) =>
  new StoreError({ backend: "redis", operation, reason: error.message, cause: error })

const encodeError = (error: ParseResult.ParseError) =>
  new StoreError({
    backend: "redis",
    operation: "finish",
    reason: `cannot encode the run record: ${ParseResult.TreeFormatter.formatErrorSync(error)}`
  })

/** `beginScript`'s reply as a result: `Skipped` with the script's reason, `Started` with the fence, else an error. */
const parseBegin = (request: BeginRequest, token: string, reply: unknown): Either.Either<BeginResult, StoreError> => {
  if (!Array.isArray(reply)) return Either.left(unexpectedReply("begin", reply))
  switch (reply[0]) {
    case "paused":
    case "slot_taken":
    case "lock_held":
      return Either.right({ _tag: "Skipped", reason: reply[0] })
    case "started":
      if (typeof reply[1] !== "number") return Either.left(unexpectedReply("begin", reply))
      return Either.right({
        _tag: "Started",
        fence: reply[1],
        lock: Option.map(request.lock, (lock) => ({ key: lock.key, token }))
      })
    default:
      return Either.left(unexpectedReply("begin", reply))
  }
}

/**
 * The store over a connected client.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromClient = (redis: Redis.RedisClientService): JobStore["Type"] => {
  const keys = Redis.keys(redis.keyPrefix)

  /** The keys and arguments of `beginScript` for one request, with the lock token it will hold. */
  const beginCall = (request: BeginRequest): Redis.ScriptCall & { readonly token: string } => {
    const lockKey = Option.match(request.lock, { onNone: () => request.job, onSome: (lock) => lock.key })
    const token = JobLockModelRedis.newToken()
    return {
      token,
      keys: [
        keys.paused(request.job),
        keys.tick(request.job, request.fireTime),
        keys.last(request.job),
        keys.lock(lockKey),
        keys.fence(request.job),
        keys.status(request.job)
      ],
      args: [
        String(request.fireTime),
        Option.match(request.slot, { onNone: () => "", onSome: (slot) => String(Redis.ttlMillis(slot.ttl)) }),
        request.nodeId,
        token,
        Option.match(request.lock, { onNone: () => "", onSome: (lock) => String(Redis.ttlMillis(lock.ttl)) }),
        String(Redis.ttlMillis(request.statusTtl))
      ]
    }
  }

  /** The keys and arguments of `finishScript` for one request and its encoded record. */
  const finishCall = (request: FinishRequest, json: string): Redis.ScriptCall => ({
    keys: [
      keys.lock(Option.match(request.lock, { onNone: () => request.record.job, onSome: (lock) => lock.key })),
      keys.status(request.record.job),
      keys.runs(request.record.job)
    ],
    args: [
      Option.match(request.lock, { onNone: () => "", onSome: (lock) => lock.token }),
      request.record.outcome,
      Redis.ttlMillis(request.statusTtl),
      json,
      Math.max(0, Math.floor(request.maxRecords))
    ]
  })

  return {
    backend: "redis",
    begin: (request) =>
      Effect.suspend(() => {
        const call = beginCall(request)
        return redis.run("begin", (client) => Redis.evalScript(client, beginScript, call.keys, call.args)).pipe(
          Effect.flatMap((reply) => Either.match(parseBegin(request, call.token, reply), {
            onLeft: Effect.fail,
            onRight: Effect.succeed
          }))
        )
      }),
    beginMany: (requests) =>
      Effect.suspend(() => {
        if (requests.length === 0) return Effect.succeed([])
        const calls = requests.map(beginCall)
        return redis.run("begin", (client) => Redis.evalMany(client, beginScript, calls)).pipe(
          Effect.map((results) =>
            results.map((result, i) =>
              "error" in result
                ? Either.left(replyError("begin", result.error))
                : parseBegin(requests[i]!, calls[i]!.token, result.reply)
            )
          ),
          Effect.catchAll((error) => Effect.succeed(requests.map(() => Either.left(error))))
        )
      }),
    renewLock: JobLockModelRedis.renewWith(redis),
    finish: (request) =>
      encodeRecord(request.record).pipe(
        Effect.mapError(encodeError),
        Effect.flatMap((json) => {
          const call = finishCall(request, json)
          return redis.run("finish", (client) => Redis.evalScript(client, finishScript, call.keys, call.args))
        }),
        Effect.asVoid
      ),
    finishMany: (requests) =>
      Effect.suspend(() => {
        const encoded = requests.map((request) =>
          Either.mapLeft(encodeRecordEither(request.record), encodeError)
        )
        const sendable = requests.flatMap((request, i) => {
          const json = encoded[i]!
          return Either.isRight(json) ? [{ index: i, call: finishCall(request, json.right) }] : []
        })
        const results: Array<Either.Either<void, StoreError>> = encoded.map((json) =>
          Either.isLeft(json) ? Either.left(json.left) : Either.void
        )
        if (sendable.length === 0) return Effect.succeed(results)
        return redis.run("finish", (client) => Redis.evalMany(client, finishScript, sendable.map(({ call }) => call)))
          .pipe(
            Effect.map((replies) => {
              replies.forEach((reply, k) => {
                if ("error" in reply) {
                  results[sendable[k]!.index] = Either.left(replyError("finish", reply.error))
                }
              })
              return results
            }),
            Effect.catchAll((error) => {
              for (const { index } of sendable) results[index] = Either.left(error)
              return Effect.succeed(results)
            })
          )
      }),
    lastFireTime: (job) =>
      redis.run("lastFireTime", (client) => client.get(keys.last(job))).pipe(
        Effect.map((reply) => {
          const value = reply === null ? NaN : Number(reply)
          return Number.isFinite(value) ? Option.some(value) : Option.none()
        })
      ),
    recentRuns: (job, limit) =>
      limit <= 0 ? Effect.succeed([]) : redis.run("recentRuns", (client) =>
        client.lrange(keys.runs(job), 0, Math.floor(limit) - 1)).pipe(
          Effect.flatMap((entries) =>
            Effect.forEach(entries, (entry, index) =>
              Either.match(decodeRecord(entry), {
                onRight: (record) => Effect.succeed(Option.some(record)),
                // One bad entry (written by hand, or by an incompatible version) must not hide the others.
                onLeft: (error) =>
                  Effect.as(
                    Effect.logWarning("skipping a corrupt run record").pipe(
                      Effect.annotateLogs({
                        key: keys.runs(job),
                        index,
                        error: ParseResult.TreeFormatter.formatErrorSync(error)
                      })
                    ),
                    Option.none<RunRecord>()
                  )
              }))
          ),
          Effect.map(Arr.getSomes)
        ),
    setPaused: (job, paused) =>
      redis.run("setPaused", (client): Promise<unknown> =>
        paused ? client.set(keys.paused(job), "1") : client.del(keys.paused(job)))
        .pipe(Effect.asVoid),
    isPaused: (job) => redis.run("isPaused", (client) => client.exists(keys.paused(job))).pipe(Effect.map((n) => n > 0))
  }
}

/**
 * The store over the `RedisClient` in context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.map(Redis.RedisClient, fromClient)

/**
 * Both the `JobStore` and the seed's `JobLockModel` over the same client and keys, so that a lock taken through
 * either (or by a Go service on the same Redis) excludes the other.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRedis: Layer.Layer<JobStore | JobLockModel.JobLockModel, never, Redis.RedisClient> = Layer
  .effectContext(
    Effect.map(Redis.RedisClient, (redis) =>
      Context.make(JobStore, fromClient(redis)).pipe(
        Context.add(JobLockModel.JobLockModel, JobLockModelRedis.fromClient(redis))
      ))
  )
