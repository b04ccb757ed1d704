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
 * A field of a batch script's row that equals the same field of the row before (most fields do: fire time, TTLs,
 * node id, term), sent as this one character instead of the value.
 */
const SAME = "="

/**
 * Lua: the batch's rows, read one after the other from the packed rows (the last argument), with `SAME` fields
 * filled in from the row before (a field is `SAME` or `{length in bytes}:{value}`), and `eachRow(handle, replies)`:
 * each row handled under `pcall`, its reply (or `{"error", message}`) appended to `replies`.
 */
const readRows = `local prefix = ARGV[1] .. ":job:"
local width = tonumber(ARGV[2])
local packed = ARGV[#ARGV]
local at = 1
local previous = {}
local function row()
  local fields = {}
  for j = 1, width do
    if string.byte(packed, at) == ${SAME.charCodeAt(0)} then
      fields[j] = previous[j]
      at = at + 1
    else
      local colon = string.find(packed, ":", at, true)
      local length = tonumber(string.sub(packed, at, colon - 1))
      fields[j] = string.sub(packed, colon + 1, colon + length)
      at = colon + length + 1
    end
  end
  previous = fields
  return fields
end
local function failure(reason)
  if type(reason) == "table" and reason.err then return {"error", reason.err} end
  return {"error", tostring(reason)}
end
local function eachRow(handle, replies)
  while at <= #packed do
    local ok, reply = pcall(handle, row())
    replies[#replies + 1] = ok and reply or failure(reply)
  end
  return replies
end`

/**
 * The arguments of one batch script call: the header, then every row packed into one argument, each field either
 * `SAME` (equal to the same field of the row before) or its length in bytes, `:` and the value. One argument per
 * call instead of one per field: the client's work per argument (its length in bytes, its own piece of the command)
 * was most of what a batched run cost it. The script reads the keys' prefix as `ARGV[1]`, the row width as `ARGV[2]`
 * and the rows from the last argument.
 */
export class BatchArgs {
  private readonly header: ReadonlyArray<string>
  /** The packed rows so far (appended to in place: cheaper than joining a part per field). */
  private packed = ""
  private previous: ReadonlyArray<string> | undefined = undefined
  constructor(prefix: string, readonly width: number, header: ReadonlyArray<string>) {
    this.header = [prefix, String(width), ...header]
  }
  /** Append one row (`width` fields). */
  push(fields: ReadonlyArray<string>): void {
    const previous = this.previous
    for (let j = 0; j < this.width; j++) {
      const value = fields[j]!
      this.packed += previous !== undefined && previous[j] === value ? SAME : value.length + ":" + value
    }
    this.previous = fields
  }
  /** The call's arguments: the header, then the packed rows. */
  get args(): Array<string> {
    const packed = this.packed
    // Lengths were taken in UTF-16 units, which are bytes while every character is ASCII (nearly always: names and
    // ids are); else each field is measured again in UTF-8 bytes.
    return [...this.header, Buffer.byteLength(packed) === packed.length ? packed : inBytes(packed)]
  }
}

/** Packed rows as `BatchArgs` made them (lengths in UTF-16 units), with each field's length in UTF-8 bytes. */
const inBytes = (packed: string): string => {
  let out = ""
  let at = 0
  while (at < packed.length) {
    if (packed[at] === SAME) {
      out += SAME
      at++
    } else {
      const colon = packed.indexOf(":", at)
      const length = Number(packed.slice(at, colon))
      const value = packed.slice(colon + 1, colon + 1 + length)
      out += Buffer.byteLength(value) + ":" + value
      at = colon + 1 + length
    }
  }
  return out
}

/** The most calls one batch script call carries: Redis runs a script to its end before anything else. */
export const maxBatch = 1000

/**
 * The start of runs, many in one script call (one call per request is one row), each row in the order of
 * `JobStore.begin`: paused? -> claim the slot (and raise the last fire time) -> take the lock -> next fence ->
 * status `running`. A lock not taken leaves the slot claimed: the fire time was handled (skipped with
 * `lock_held`) and must not be run by another node. Rows are handled in order, each seeing the ones before, as
 * separate calls would be; a row that fails (a key of the wrong type) answers its error and the others go on.
 *
 * Before the rows, the epoch marker: read, or written with the caller's candidate when missing (a Redis that lost its
 * data), and returned with the replies so that the caller notices a loss on the run path at no extra cost.
 *
 * The lock: `SET NX PX`; when held and the row begins under a term, a token `term:{t}:...` with t < the row's
 * term is overwritten (its holder's leadership has ended).
 *
 * The fence: max(previous fence + 1, the server's clock in microseconds (`TIME`, read once per call), the row's
 * floor), written back to the fence key. The clock makes fences grow across a loss of the key (restart without
 * persistence, FLUSHALL, a replica that lags), the caller's floor (one more than the highest fence it was given)
 * covers a server clock that steps back, and the previous fence + 1 makes fences strictly grow whatever the clocks do.
 *
 * The keys are made from the prefix as `Redis.keys` makes them; only the epoch marker is declared (`KEYS[1]`).
 * `ARGV`: 1 key prefix, 2 row width (10), 3 epoch candidate, 4 the rows (see `BatchArgs`), each: job, fire time
 * (ms), slot TTL in ms or "" for no slot, slot value (node id), lock key, lock token, lock TTL in ms or "" for no
 * lock, status TTL in ms, term or "" for none, fence floor. Returns `{epoch, reply, ...}`, one reply per row:
 * `{"paused"}`, `{"slot_taken"}`, `{"lock_held"}`, `{"fence_exhausted"}`, `{"started", fence, previous fence or -1}`
 * or `{"error", message}`.
 */
export const beginScript = RedisScript.script(
  "begin",
  `if redis.replicate_commands then redis.replicate_commands() end
${readRows}
local epoch = redis.call("GET", KEYS[1])
if not epoch then
  epoch = ARGV[3]
  redis.call("SET", KEYS[1], epoch)
end
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local function begin(r)
  local job = r[1]
  if redis.call("EXISTS", prefix .. "paused:" .. job) == 1 then
    return {"paused"}
  end
  local fenceKey = prefix .. "fence:" .. job
  local previousFence = tonumber(redis.call("GET", fenceKey))
  local fence = now
  if previousFence ~= nil and previousFence + 1 > fence then fence = previousFence + 1 end
  local floor = tonumber(r[10])
  if floor ~= nil and floor > fence then fence = floor end
  if fence > ${maxFence} then
    return {"fence_exhausted"}
  end
  if r[3] ~= "" then
    if not redis.call("SET", prefix .. "tick:" .. job .. ":" .. r[2], r[4], "NX", "PX", r[3]) then
      return {"slot_taken"}
    end
    local lastKey = prefix .. "last:" .. job
    local last = tonumber(redis.call("GET", lastKey))
    if last == nil or tonumber(r[2]) > last then
      redis.call("SET", lastKey, r[2])
    end
  end
  if r[7] ~= "" then
    local lockKey = prefix .. "lock:" .. r[5]
    if not redis.call("SET", lockKey, r[6], "NX", "PX", r[7]) then
      local taken = false
      if r[9] ~= "" then
        local held = redis.call("GET", lockKey)
        local heldTerm = held and tonumber(string.match(held, "^term:(%d+):"))
        taken = heldTerm ~= nil and heldTerm < tonumber(r[9])
      end
      if not taken then
        return {"lock_held"}
      end
      redis.call("SET", lockKey, r[6], "PX", r[7])
    end
  end
  redis.call("SET", fenceKey, string.format("%.0f", fence))
  redis.call("SET", prefix .. "status:" .. job, "running", "PX", r[8])
  return {"started", fence, previousFence or -1}
end
return eachRow(begin, {epoch})`
)

/** The width of a `beginScript` row. */
export const beginWidth = 10

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
 * The end of runs, many in one script call, each row: compare-and-delete the run's lock (a lock already lost is left
 * alone), set the status to the outcome, push the record and cap the list. A row that fails answers its error and
 * the others go on.
 *
 * No key is declared. `ARGV`: 1 key prefix, 2 row width (7), 3 the rows (see `BatchArgs`), each: job, lock key or
 * "" for no lock, lock token, outcome, status TTL in ms, record JSON, records kept. Returns one reply per row: 1 or
 * `{"error", message}`.
 */
export const finishScript = RedisScript.script(
  "finish",
  `${readRows}
local function finish(r)
  if r[2] ~= "" then
    local lockKey = prefix .. "lock:" .. r[2]
    if redis.call("GET", lockKey) == r[3] then
      redis.call("DEL", lockKey)
    end
  end
  redis.call("SET", prefix .. "status:" .. r[1], r[4], "PX", r[5])
  local runs = prefix .. "runs:" .. r[1]
  local keep = tonumber(r[7])
  if keep > 0 then
    redis.call("LPUSH", runs, r[6])
    redis.call("LTRIM", runs, 0, keep - 1)
  else
    redis.call("DEL", runs)
  end
  return 1
end
return eachRow(finish, {})`
)

/** The width of a `finishScript` row. */
export const finishWidth = 7

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
