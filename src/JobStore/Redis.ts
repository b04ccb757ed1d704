/**
 * The scheduler's cluster-wide state on Redis: slot claims, locks, fencing counters, last fire times, run records,
 * statuses and pause flags, all under the key prefix (see `Redis.keys`). A run costs two round trips: `begin`
 * (one Lua script: pause check, slot claim, lock, fence, status) and `finish` (one Lua script: release, status,
 * record). The runs of one fire batch share them: `beginMany` and `finishMany` send one script call per 1,000 runs,
 * all in one pipeline, each call a row per run, all rows packed into one argument (a field equal to the row before
 * sent as one character). Lock renewals run in the background and are not on the run's path.
 *
 * The scripts touch several keys, and make the keys of their rows from the prefix themselves, so this backend
 * targets a single Redis (or a primary with replicas), not Redis Cluster, where keys of one script must be declared
 * and share a hash slot, and the `xredis` key layout does not allow it.
 *
 * Safety when Redis loses data (restart without persistence, FLUSHALL, failover to a replica that lags): fences are
 * at least the server's clock in microseconds, so they keep growing (see `beginScript`); the loss is noticed through
 * the epoch marker `{prefix}:job:epoch` and through fence counters found behind a fence already handed out, logged
 * at ERROR and counted (`job_store_data_loss_total`). Pause flags, run records, slot claims and last fire times
 * written before the loss are gone: the Redis that holds them needs persistence (AOF).
 *
 * @since 0.1.0
 */
import * as Arr from "effect/Array"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { StoreError } from "../Errors.js"
import {
  BatchArgs,
  beginScript,
  beginWidth,
  epochKey,
  epochScript,
  finishScript,
  finishWidth,
  listSchedulesScript,
  maxBatch,
  maxFence as scriptsMaxFence,
  putScheduleScript,
  removeScheduleScript
} from "../internal/jobStoreScripts.js"
import { newToken, renewWith } from "../internal/lockScripts.js"
import { isUsableTerm, tokenWithTerm } from "../internal/lockTerm.js"
import { encodeRecordJson } from "../internal/recordJson.js"
import * as RedisScript from "../internal/redisScript.js"
import * as JobLockModel from "../JobLockModel.js"
import * as JobLockModelRedis from "../JobLockModel/Redis.js"
import { JobStore } from "../JobStore.js"
import type {
  BeginRequest,
  BeginResult,
  FinishRequest,
  ScheduleChange,
  ScheduleStore,
  StoredSchedule
} from "../JobStore.js"
import * as Metrics from "../Metrics.js"
import * as Redis from "../Redis.js"
import { RunRecord } from "../Run.js"

/**
 * The largest fence handed out: 2^53 - 1, the last integer that JavaScript numbers (`RunContext.fence`) and Redis'
 * Lua numbers hold exactly. A fence beyond it is never made: the `begin` fails (`fence_exhausted`) before it writes
 * anything. With server-clock fences this is reached in the year 2255, or sooner only if someone writes a larger value
 * into the fence key by hand.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxFence: number = scriptsMaxFence

/** A fresh epoch marker: when it was made (for operators reading the key) and 64 random bits. */
const newEpoch = (): string => `${new Date().toISOString()} ${newToken().slice(0, 16)}`

const RecordJson = Schema.parseJson(RunRecord)
const decodeRecord = Schema.decodeUnknownEither(RecordJson)

const unexpectedReply = (operation: string, reply: unknown) =>
  new StoreError({ backend: "redis", operation, reason: `unexpected reply ${JSON.stringify(reply)}` })

/** The error Redis answered one call of a pipeline with. */
const replyError = (operation: string, error: Error) =>
  new StoreError({ backend: "redis", operation, reason: error.message, cause: error })

/** A batch script's `{"error", message}` reply for one row. */
const rowError = (operation: string, reply: ReadonlyArray<unknown>) =>
  new StoreError({ backend: "redis", operation, reason: String(reply[1]) })

const encodeError = (error: ParseResult.ParseError) =>
  new StoreError({
    backend: "redis",
    operation: "finish",
    reason: `cannot encode the run record: ${ParseResult.TreeFormatter.formatErrorSync(error)}`
  })

/** A parsed row reply of `beginScript`: the result and, for a started run, the previous fence. */
interface BeginReply {
  readonly result: Either.Either<BeginResult, StoreError>
  readonly previous: number | undefined
}

/** One row reply of `beginScript`: `Skipped` with the script's reason, `Started` with the fence, else an error. */
const parseBegin = (request: BeginRequest, token: string, reply: unknown): BeginReply => {
  // Made only for a reply that is bad: an error captures a stack trace, more than the rest of a begin costs.
  const bad = () => ({ result: Either.left(unexpectedReply("begin", reply)), previous: undefined })
  if (!Array.isArray(reply)) return bad()
  switch (reply[0]) {
    case "paused":
    case "slot_taken":
    case "lock_held":
      return { result: Either.right({ _tag: "Skipped", reason: reply[0] }), previous: undefined }
    case "fence_exhausted":
      return {
        result: Either.left(
          new StoreError({
            backend: "redis",
            operation: "begin",
            reason: `the fence of ${request.job} would pass ${maxFence} (2^53 - 1), the largest exact number`
          })
        ),
        previous: undefined
      }
    case "started":
      if (typeof reply[1] !== "number" || typeof reply[2] !== "number") return bad()
      return {
        result: Either.right({
          _tag: "Started",
          fence: reply[1],
          lock: Option.map(request.lock, (lock) => ({ key: lock.key, token }))
        }),
        previous: reply[2] < 0 ? undefined : reply[2]
      }
    case "error":
      return {
        result: Either.left(rowError("begin", reply)),
        previous: undefined
      }
    default:
      return bad()
  }
}

/** One row reply of `finishScript`: 1, else an error. */
const parseFinish = (reply: unknown): Either.Either<void, StoreError> =>
  reply === 1 ? Either.void : Either.left(
    Array.isArray(reply) && reply[0] === "error"
      ? rowError("finish", reply)
      : unexpectedReply("finish", reply)
  )

const stringOr = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)

/** One data loss noticed by this node, to be logged and counted. */
interface DataLoss {
  readonly reason: "marker" | "fence_rollback"
  readonly fields: Record<string, unknown>
}

/** Log at ERROR and count the losses noticed (nothing when there are none, the usual case). */
const reportLosses = (losses: ReadonlyArray<DataLoss>): Effect.Effect<void> =>
  losses.length === 0 ? Effect.void : Effect.forEach(losses, (loss) =>
    Effect.zipRight(
      Effect.logError(
        loss.reason === "marker"
          ? "redis lost its data: the epoch marker changed; pause flags, run records, slot claims and locks written " +
            "before are gone (fences keep growing)"
          : "redis lost data: a job's fence counter is behind a fence this node was given (a replica that lagged, " +
            "or a restored backup); fences keep growing"
      ).pipe(Effect.annotateLogs({ reason: loss.reason, ...loss.fields })),
      Metric.increment(Metric.tagged(Metric.tagged(Metrics.storeDataLoss, "backend", "redis"), "reason", loss.reason))
    ), { discard: true })

/** How many keys one `MGET` of `lastFireTimes` reads: large enough for few round trips, small enough not to stall. */
const MGET_CHUNK = 1000

/** The largest page `list` reads in one script call (the script passes the ids to `HMGET` as arguments). */
const MAX_LIST_PAGE = 4000

const revisionOf = (reply: unknown): number => {
  const value = Number(reply)
  return Number.isFinite(value) ? value : 0
}

/**
 * The stored schedules on Redis (keys in `Redis.keys`): specs and revisions in two hashes, ids in a sorted set for
 * paging, a version counter, and a pub/sub channel announcing every change. Writes are one Lua script each.
 */
const redisSchedules = (redis: Redis.RedisClientService): ScheduleStore => {
  const keys = Redis.keys(redis.keyPrefix)
  const parsePut = (reply: unknown) => {
    if (
      Array.isArray(reply) && (reply[0] === "created" || reply[0] === "updated" || reply[0] === "unchanged") &&
      typeof reply[1] === "number"
    ) {
      return Effect.succeed({ result: reply[0] as "created" | "updated" | "unchanged", revision: reply[1] })
    }
    return Effect.fail(unexpectedReply("putSchedule", reply))
  }
  // A connection of its own (a subscribed connection can run no other command), opened by `subscribe` and closed
  // with its scope. Announcements received from the server's confirmation on wait in a queue for the stream. ioredis
  // subscribes again by itself after a reconnect; what was published meanwhile is lost (the version counter tells).
  const subscribe: Effect.Effect<Stream.Stream<ScheduleChange, StoreError>, StoreError, Scope.Scope> = Effect.gen(
    function*() {
      const received = yield* Effect.acquireRelease(Queue.unbounded<ScheduleChange>(), Queue.shutdown)
      const subscriber = yield* Effect.acquireRelease(
        Effect.sync(() => redis.client.duplicate({ enableOfflineQueue: true, lazyConnect: false })),
        (subscriber) => Effect.sync(() => subscriber.disconnect())
      )
      subscriber.on("error", () => undefined)
      subscriber.on("message", (_channel: string, message: string) => {
        const space = message.indexOf(" ")
        const version = Number(message.slice(0, space))
        if (space > 0 && Number.isFinite(version)) {
          Queue.unsafeOffer(received, { id: message.slice(space + 1), version })
        }
      })
      yield* redis.run("subscribe", () => subscriber.subscribe(keys.scheduleChannel))
      return Stream.fromQueue(received)
    }
  )
  return {
    put: (id, spec) =>
      redis.run("putSchedule", (client) =>
        RedisScript.evalScript(
          client,
          putScheduleScript,
          [keys.schedules, keys.scheduleRevisions, keys.scheduleIds, keys.scheduleVersion],
          [id, spec, keys.scheduleChannel]
        )).pipe(Effect.flatMap(parsePut)),
    remove: (id) =>
      redis.run("removeSchedule", (client) =>
        RedisScript.evalScript(
          client,
          removeScheduleScript,
          [keys.schedules, keys.scheduleRevisions, keys.scheduleIds, keys.scheduleVersion, keys.scheduleRuns],
          [id, keys.scheduleChannel]
        )).pipe(Effect.map((reply) => reply === 1)),
    get: (id) =>
      redis.run(
        "getSchedule",
        (client) => client.pipeline().hget(keys.schedules, id).hget(keys.scheduleRevisions, id).exec()
      ).pipe(
        Effect.flatMap((replies) => {
          const [spec, revision] = (replies ?? []).map(([error, reply]) => (error === null ? reply : error))
          if (spec instanceof Error) return Effect.fail(replyError("getSchedule", spec))
          return Effect.succeed(
            typeof spec === "string"
              ? Option.some<StoredSchedule>({ id, spec, revision: revisionOf(revision) })
              : Option.none()
          )
        })
      ),
    list: ({ cursor, limit }) =>
      Effect.gen(function*() {
        const count = Math.max(0, Math.min(MAX_LIST_PAGE, Math.floor(limit)))
        if (count === 0) return { entries: [], next: Option.none() }
        const reply = yield* redis.run("listSchedules", (client) =>
          RedisScript.evalScript(
            client,
            listSchedulesScript,
            [keys.schedules, keys.scheduleRevisions, keys.scheduleIds],
            [cursor === undefined ? "-" : `(${cursor}`, count]
          ))
        if (!Array.isArray(reply) || reply.length !== 3 || !reply.every(Array.isArray)) {
          return yield* Effect.fail(unexpectedReply("listSchedules", "not three arrays"))
        }
        const [ids, specs, revisions] = reply as [Array<unknown>, Array<unknown>, Array<unknown>]
        const size = Math.min(ids.length, count)
        const entries: Array<StoredSchedule> = []
        for (let i = 0; i < size; i++) {
          const id = ids[i]
          const spec = specs[i]
          // An id without a spec (the sorted set and the hash disagree, written by hand): not listed.
          if (typeof id === "string" && typeof spec === "string") {
            entries.push({ id, spec, revision: revisionOf(revisions[i]) })
          }
        }
        const last = ids[size - 1]
        return {
          entries,
          next: ids.length > count && typeof last === "string" ? Option.some(last) : Option.none()
        }
      }),
    version: redis.run("scheduleVersion", (client) => client.get(keys.scheduleVersion)).pipe(
      Effect.map(revisionOf)
    ),
    changes: Stream.unwrapScoped(subscribe),
    subscribe,
    countRun: (id) => redis.run("countRun", (client) => client.hincrby(keys.scheduleRuns, id, 1)),
    runCount: (id) => redis.run("runCount", (client) => client.hget(keys.scheduleRuns, id)).pipe(Effect.map(revisionOf))
  }
}

/**
 * The store over a connected client.
 *
 * Data loss: the store remembers the epoch marker it saw and, per job, the highest fence it was given. A reply with
 * another marker (on the run path, on `checkEpoch`, on every reconnect) or a fence counter found behind that fence
 * is a loss: logged at ERROR, counted in `job_store_data_loss_total`, and the store goes on (the new marker is the
 * one seen from then on; fences stay above every fence seen before, see `beginScript`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromClient = (redis: Redis.RedisClientService): JobStore["Type"] => {
  const keys = Redis.keys(redis.keyPrefix)
  const epochAt = epochKey(redis.keyPrefix)
  /** The epoch marker this node saw last; undefined until the first reply. */
  let knownEpoch: string | undefined = undefined
  /** Per job, the highest fence this node was given: the floor of its next `begin`. */
  const highWater = new Map<string, number>()

  /**
   * Markers replaced since: a reply carrying one was sent before the loss and handled after a later reply (calls on
   * one connection are answered in order, but their fibers may resume in another), so it says nothing new.
   */
  const retiredEpochs = new Set<string>()

  /** Note the marker a reply carried; a loss when it differs from the one seen before. */
  const noteEpoch = (epoch: string | undefined, losses: Array<DataLoss>, via: string) => {
    if (epoch === undefined || epoch === knownEpoch || retiredEpochs.has(epoch)) return
    if (knownEpoch !== undefined) {
      losses.push({ reason: "marker", fields: { key: epochAt, previous_epoch: knownEpoch, epoch, noticed_by: via } })
      retiredEpochs.add(knownEpoch)
    }
    knownEpoch = epoch
  }

  /**
   * Note what a begin row reply says for a started run: the previous fence and the new one. `seenAtSend` is the
   * highest fence this node knew when it sent the call: in a Redis that kept its data the counter was at least that
   * then, whatever order the replies are handled in. `explained`: the call's marker already told of a loss, which
   * explains a counter behind too.
   */
  const noteBegin = (
    request: BeginRequest,
    seenAtSend: number | undefined,
    reply: BeginReply,
    explained: boolean,
    losses: Array<DataLoss>
  ) => {
    if (Either.isLeft(reply.result) || reply.result.right._tag !== "Started") return
    const job = request.job
    if (seenAtSend !== undefined && (reply.previous ?? -1) < seenAtSend && !explained) {
      losses.push({
        reason: "fence_rollback",
        fields: { job, key: keys.fence(job), counter: reply.previous ?? "missing", highest_fence_seen: seenAtSend }
      })
    }
    const fence = reply.result.right.fence
    const seen = highWater.get(job)
    if (seen === undefined || fence > seen) highWater.set(job, fence)
  }

  const checkEpoch: Effect.Effect<void, StoreError> = Effect.suspend(() =>
    redis.run("checkEpoch", (client) => RedisScript.evalScript(client, epochScript, [epochAt], [newEpoch()])).pipe(
      Effect.flatMap((reply) => {
        const losses: Array<DataLoss> = []
        noteEpoch(stringOr(reply), losses, "check")
        return reportLosses(losses)
      })
    )
  )

  /** One `beginScript` call for up to `maxBatch` requests, with the lock token and fence floor of each. */
  interface BeginCall extends RedisScript.ScriptCall {
    readonly tokens: ReadonlyArray<string>
    readonly seen: ReadonlyArray<number | undefined>
  }

  const beginCall = (requests: ReadonlyArray<BeginRequest>, candidate: string): BeginCall => {
    const batch = new BatchArgs(redis.keyPrefix, beginWidth, [candidate])
    // One random part per call, a counter per row: unique tokens at one random draw per call.
    const random = newToken()
    const tokens: Array<string> = []
    const seen: Array<number | undefined> = []
    for (let i = 0; i < requests.length; i++) {
      const request = requests[i]!
      const term = isUsableTerm(request.term) ? request.term : undefined
      const own = `${random}${i.toString(36)}`
      const token = term === undefined ? own : tokenWithTerm(term, own)
      const floor = highWater.get(request.job)
      tokens.push(token)
      seen.push(floor)
      const slot = request.slot
      const lock = request.lock
      batch.push([
        request.job,
        String(request.fireTime),
        Option.isSome(slot) ? String(RedisScript.ttlMillis(slot.value.ttl)) : "",
        request.nodeId,
        Option.isSome(lock) ? lock.value.key : request.job,
        token,
        Option.isSome(lock) ? String(RedisScript.ttlMillis(lock.value.ttl)) : "",
        String(RedisScript.ttlMillis(request.statusTtl)),
        term === undefined ? "" : String(term),
        floor === undefined ? "0" : String(floor + 1)
      ])
    }
    return { keys: [epochAt], args: batch.args, tokens, seen }
  }

  /**
   * Parse one `beginScript` reply for its requests (`from` is the first one's index in `requests`), noting the losses
   * it tells of, into `results`.
   */
  const parseBeginCall = (
    requests: ReadonlyArray<BeginRequest>,
    from: number,
    call: BeginCall,
    reply: unknown,
    results: Array<Either.Either<BeginResult, StoreError>>,
    losses: Array<DataLoss>
  ) => {
    const count = call.tokens.length
    if (!Array.isArray(reply) || reply.length !== count + 1) {
      const error = unexpectedReply("begin", Array.isArray(reply) ? `${reply.length} replies for ${count}` : reply)
      for (let k = 0; k < count; k++) results[from + k] = Either.left(error)
      return
    }
    const before = losses.length
    noteEpoch(stringOr(reply[0]), losses, "begin")
    const explained = losses.length > before
    for (let k = 0; k < count; k++) {
      const request = requests[from + k]!
      const parsed = parseBegin(request, call.tokens[k]!, reply[k + 1])
      noteBegin(request, call.seen[k], parsed, explained, losses)
      results[from + k] = parsed.result
    }
  }

  /** `finishScript`'s arguments for up to `maxBatch` requests and their encoded records. */
  const finishCall = (requests: ReadonlyArray<{ readonly request: FinishRequest; readonly json: string }>) => {
    const batch = new BatchArgs(redis.keyPrefix, finishWidth, [])
    for (const { json, request } of requests) {
      const lock = request.lock
      batch.push([
        request.record.job,
        Option.isSome(lock) ? lock.value.key : "",
        Option.isSome(lock) ? lock.value.token : "",
        request.record.outcome,
        String(RedisScript.ttlMillis(request.statusTtl)),
        json,
        String(Math.max(0, Math.floor(request.maxRecords)))
      ])
    }
    return { keys: [], args: batch.args }
  }

  const beginMany = (requests: ReadonlyArray<BeginRequest>) =>
    Effect.suspend(() => {
      if (requests.length === 0) return Effect.succeed([])
      // One candidate marker for the batch: only the first call of an empty Redis writes it.
      const candidate = newEpoch()
      const chunks = Arr.chunksOf(requests, maxBatch)
      const calls = chunks.map((chunk) => beginCall(chunk, candidate))
      return redis.run("begin", (client) => RedisScript.evalMany(client, beginScript, calls)).pipe(
        Effect.flatMap((replies) => {
          const losses: Array<DataLoss> = []
          const results: Array<Either.Either<BeginResult, StoreError>> = new Array(requests.length)
          let from = 0
          replies.forEach((reply, c) => {
            const call = calls[c]!
            if ("error" in reply) {
              const error = replyError("begin", reply.error)
              for (let k = 0; k < call.tokens.length; k++) results[from + k] = Either.left(error)
            } else {
              parseBeginCall(requests, from, call, reply.reply, results, losses)
            }
            from += call.tokens.length
          })
          return Effect.as(reportLosses(losses), results)
        })
      )
    })

  const finishMany = (requests: ReadonlyArray<FinishRequest>) =>
    Effect.suspend(() => {
      const results: Array<Either.Either<void, StoreError>> = new Array(requests.length)
      const sendable: Array<{ readonly index: number; readonly request: FinishRequest; readonly json: string }> = []
      requests.forEach((request, index) => {
        const json = encodeRecordJson(request.record)
        if (Either.isLeft(json)) results[index] = Either.left(encodeError(json.left))
        else sendable.push({ index, request, json: json.right })
      })
      if (sendable.length === 0) return Effect.succeed(results)
      const chunks = Arr.chunksOf(sendable, maxBatch)
      const calls = chunks.map(finishCall)
      return redis.run("finish", (client) => RedisScript.evalMany(client, finishScript, calls)).pipe(
        Effect.map((replies) => {
          replies.forEach((reply, c) => {
            const chunk = chunks[c]!
            const rows = "error" in reply ? undefined : reply.reply
            chunk.forEach(({ index }, k) => {
              results[index] = "error" in reply
                ? Either.left(replyError("finish", reply.error))
                : Array.isArray(rows) && rows.length === chunk.length
                ? parseFinish(rows[k])
                : Either.left(unexpectedReply("finish", rows))
            })
          })
          return results
        }),
        Effect.catchAll((error) => {
          for (const { index } of sendable) results[index] = Either.left(error)
          return Effect.succeed(results)
        })
      )
    })

  return {
    backend: "redis",
    begin: (request) => Effect.flatMap(beginMany([request]), (results) => results[0]!),
    beginMany: (requests) =>
      beginMany(requests).pipe(Effect.catchAll((error) => Effect.succeed(requests.map(() => Either.left(error))))),
    renewLock: renewWith(redis),
    finish: (request) => Effect.flatMap(finishMany([request]), (results) => results[0]!),
    finishMany,
    lastFireTime: (job) =>
      redis.run("lastFireTime", (client) => client.get(keys.last(job))).pipe(
        Effect.map((reply) => {
          const value = reply === null ? NaN : Number(reply)
          return Number.isFinite(value) ? Option.some(value) : Option.none()
        })
      ),
    recentRuns: (job, limit) =>
      limit <= 0 ?
        Effect.succeed([]) :
        redis.run("recentRuns", (client) => client.lrange(keys.runs(job), 0, Math.floor(limit) - 1)).pipe(
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
      redis.run(
        "setPaused",
        (client): Promise<unknown> => paused ? client.set(keys.paused(job), "1") : client.del(keys.paused(job))
      )
        .pipe(Effect.asVoid),
    isPaused: (job) =>
      redis.run("isPaused", (client) => client.exists(keys.paused(job))).pipe(Effect.map((n) => n > 0)),
    checkEpoch,
    lastFireTimes: (jobs) =>
      Effect.forEach(
        Arr.chunksOf(jobs, MGET_CHUNK),
        (chunk) =>
          redis.run("lastFireTimes", (client) => client.mget(...chunk.map((job) => keys.last(job)))).pipe(
            Effect.map((replies) =>
              replies.map((reply) => {
                const value = reply === null ? NaN : Number(reply)
                return Number.isFinite(value) ? Option.some(value) : Option.none<number>()
              })
            )
          ),
        // Sent together (one connection pipelines them): one round trip for a few chunks, not one each.
        { concurrency: 4 }
      ).pipe(Effect.map((chunks) => chunks.flat())),
    schedules: redisSchedules(redis)
  }
}

/**
 * The store over the `RedisClient` in context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.map(Redis.RedisClient, fromClient)

/** A failed epoch check is only logged: the next reconnect, leadership or `begin` checks again. */
const checkQuietly = (check: Effect.Effect<void, StoreError>): Effect.Effect<void> =>
  check.pipe(Effect.catchAll((error) => Effect.logWarning("redis epoch check failed", error.message)))

/**
 * Both the `JobStore` and the `JobLockModel` over the same client and keys, so that a lock taken through
 * either (or by a Go service on the same Redis) excludes the other. The store reads the epoch marker when the layer
 * is built and again after every reconnect, so that a Redis that came back empty is noticed at once.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<JobStore | JobLockModel.JobLockModel, never, Redis.RedisClient> = Layer
  .scopedContext(
    Effect.gen(function*() {
      const redis = yield* Redis.RedisClient
      const store = fromClient(redis)
      const check = checkQuietly(store.checkEpoch ?? Effect.void)
      yield* check
      const runtime = yield* Effect.runtime<never>()
      const onReady = () => {
        Runtime.runFork(runtime)(check)
      }
      yield* Effect.acquireRelease(
        Effect.sync(() => redis.client.on("ready", onReady)),
        () => Effect.sync(() => redis.client.removeListener("ready", onReady))
      )
      return Context.make(JobStore, store).pipe(
        Context.add(JobLockModel.JobLockModel, JobLockModelRedis.fromClient(redis))
      )
    })
  )
