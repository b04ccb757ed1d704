/**
 * The Lua scripts of the Redis `JobStore` (`begin`, `finish`, the epoch check) and the epoch marker's key. Not part
 * of the public API; `JobStore/Redis.ts` runs them, the round-trip benchmark calls `beginScript` directly.
 *
 * @internal
 */
import * as RedisScript from "./redisScript.js"

/** The largest fence handed out (exact in JS and Lua numbers); public as `JobStore/Redis.maxFence`. */
export const maxFence = Number.MAX_SAFE_INTEGER

/**
 * One round trip for the start of a run, in the order of `JobStore.begin`: paused? -> claim the slot (and raise the
 * last fire time) -> take the lock -> next fence -> status `running`. A lock not taken leaves the slot claimed: the
 * fire time was handled (skipped with `lock_held`) and must not be run by another node.
 *
 * Before all that, the epoch marker: read, or written with the caller's candidate when missing (a Redis that lost its
 * data), and returned with every reply so that the caller notices a loss on the run path at no extra cost.
 *
 * The lock: `SET NX PX`; when held and the caller begins under a term (`ARGV[7]`), a token `term:{t}:...` with
 * t < the caller's term is overwritten (its holder's leadership has ended).
 *
 * The fence: max(previous fence + 1, the server's clock in microseconds (`TIME`), `ARGV[8]`), written back to the
 * fence key. The clock makes fences grow across a loss of the key (restart without persistence, FLUSHALL, a replica
 * that lags), the caller's floor (one more than the highest fence it was given) covers a server clock that steps
 * back, and the previous fence + 1 makes fences strictly grow whatever the clocks do.
 *
 * `KEYS`: 1 paused, 2 tick (slot), 3 last, 4 lock, 5 fence, 6 status, 7 epoch.
 * `ARGV`: 1 fire time (ms), 2 slot TTL in ms or "" for no slot, 3 slot value (node id), 4 lock token,
 * 5 lock TTL in ms or "" for no lock, 6 status TTL in ms, 7 term or "" for none, 8 fence floor, 9 epoch candidate.
 * Returns `{"paused", epoch}`, `{"slot_taken", epoch}`, `{"lock_held", epoch}`, `{"fence_exhausted", epoch}` or
 * `{"started", fence, epoch, previous fence or -1}`.
 */
export const beginScript = RedisScript.script(
  "begin",
  `if redis.replicate_commands then redis.replicate_commands() end
local epoch = redis.call("GET", KEYS[7])
if not epoch then
  epoch = ARGV[9]
  redis.call("SET", KEYS[7], epoch)
end
if redis.call("EXISTS", KEYS[1]) == 1 then
  return {"paused", epoch}
end
local previous = tonumber(redis.call("GET", KEYS[5]))
local time = redis.call("TIME")
local fence = tonumber(time[1]) * 1000000 + tonumber(time[2])
if previous ~= nil and previous + 1 > fence then fence = previous + 1 end
local floor = tonumber(ARGV[8])
if floor ~= nil and floor > fence then fence = floor end
if fence > ${maxFence} then
  return {"fence_exhausted", epoch}
end
if ARGV[2] ~= "" then
  if not redis.call("SET", KEYS[2], ARGV[3], "NX", "PX", ARGV[2]) then
    return {"slot_taken", epoch}
  end
  local last = tonumber(redis.call("GET", KEYS[3]))
  if last == nil or tonumber(ARGV[1]) > last then
    redis.call("SET", KEYS[3], ARGV[1])
  end
end
if ARGV[5] ~= "" then
  if not redis.call("SET", KEYS[4], ARGV[4], "NX", "PX", ARGV[5]) then
    local taken = false
    if ARGV[7] ~= "" then
      local held = redis.call("GET", KEYS[4])
      local heldTerm = held and tonumber(string.match(held, "^term:(%d+):"))
      taken = heldTerm ~= nil and heldTerm < tonumber(ARGV[7])
    end
    if not taken then
      return {"lock_held", epoch}
    end
    redis.call("SET", KEYS[4], ARGV[4], "PX", ARGV[5])
  end
end
redis.call("SET", KEYS[5], string.format("%.0f", fence))
redis.call("SET", KEYS[6], "running", "PX", ARGV[6])
return {"started", fence, epoch, previous or -1}`
)

/**
 * The epoch marker alone: read it, or write the candidate when it is missing. `KEYS[1]` epoch, `ARGV[1]` candidate.
 * Returns the marker now in place.
 */
export const epochScript = RedisScript.script(
  "epoch",
  `local epoch = redis.call("GET", KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call("SET", KEYS[1], epoch)
end
return epoch`
)

/**
 * The key of the epoch marker: written once (with a fresh random value) into an empty Redis, and never changed
 * after; a node that finds another value than the one it saw, or none, knows the data it saw is gone.
 */
export const epochKey = (prefix: string): string => `${prefix}:job:epoch`

/**
 * One round trip for the end of a run: compare-and-delete our lock (a lock already lost is left alone), set the
 * status to the outcome, push the record and cap the list.
 *
 * `KEYS`: 1 lock, 2 status, 3 runs. `ARGV`: 1 lock token or "" for no lock, 2 outcome, 3 status TTL in ms,
 * 4 record JSON, 5 records kept.
 */
export const finishScript = RedisScript.script(
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

/**
 * Create or replace a stored schedule, in one step: unchanged (nothing written, nothing announced) when the same
 * spec is stored; else write it with a new revision (the version counter, incremented) and publish
 * `"{revision} {id}"`.
 *
 * `KEYS`: 1 schedules, 2 revisions, 3 ids, 4 version. `ARGV`: 1 id, 2 spec JSON, 3 channel.
 * Returns `{"unchanged" | "created" | "updated", revision}`.
 */
export const putScheduleScript = RedisScript.script(
  "putSchedule",
  `local current = redis.call("HGET", KEYS[1], ARGV[1])
if current == ARGV[2] then
  return {"unchanged", tonumber(redis.call("HGET", KEYS[2], ARGV[1]) or "0")}
end
local revision = redis.call("INCR", KEYS[4])
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
redis.call("HSET", KEYS[2], ARGV[1], revision)
redis.call("ZADD", KEYS[3], 0, ARGV[1])
redis.call("PUBLISH", ARGV[3], revision .. " " .. ARGV[1])
if current then return {"updated", revision} end
return {"created", revision}`
)

/**
 * A page of stored schedules in id order: the ids after the lex bound, then their specs and revisions, read in one
 * step (one round trip, and the ids are not sent back to the server to read their fields).
 *
 * `KEYS`: 1 schedules, 2 revisions, 3 ids. `ARGV`: 1 lex bound (`-` or `(` + the last id of the previous page), 2 the
 * page size (at most 4000: `unpack` takes the ids as arguments). Returns `{ids, specs, revisions}`: up to size + 1 ids
 * (one more tells that a next page exists), the specs and revisions of the first `size` (a missing one is nil).
 */
export const listSchedulesScript = RedisScript.script(
  "listSchedules",
  `local size = tonumber(ARGV[2])
local ids = redis.call("ZRANGEBYLEX", KEYS[3], ARGV[1], "+", "LIMIT", 0, size + 1)
local page = {}
for i = 1, math.min(#ids, size) do page[i] = ids[i] end
if #page == 0 then return {ids, {}, {}} end
return {ids, redis.call("HMGET", KEYS[1], unpack(page)), redis.call("HMGET", KEYS[2], unpack(page))}`
)

/**
 * Delete a stored schedule and its run count; when it was stored, bump the version and publish `"{version} {id}"`.
 *
 * `KEYS`: 1 schedules, 2 revisions, 3 ids, 4 version, 5 run counts. `ARGV`: 1 id, 2 channel. Returns 1 or 0.
 */
export const removeScheduleScript = RedisScript.script(
  "removeSchedule",
  `redis.call("HDEL", KEYS[5], ARGV[1])
if redis.call("HDEL", KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call("HDEL", KEYS[2], ARGV[1])
redis.call("ZREM", KEYS[3], ARGV[1])
local version = redis.call("INCR", KEYS[4])
redis.call("PUBLISH", ARGV[2], version .. " " .. ARGV[1])
return 1`
)
