/**
 * The Redis backends' Lua plumbing: scripts run by SHA-1 with an `EVAL` fallback, one at a time or many in one
 * pipeline, and TTLs in the integer milliseconds `PX` expects. Not part of the public API.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import { createHash } from "node:crypto"
import type { Client } from "../Redis.js"
import { toMillis } from "./duration.js"

const messageOf = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/**
 * Longest TTL written, standing for "no expiry" when a caller passes an infinite duration (100 years, well inside
 * the range Redis accepts for `PX`).
 */
const MAX_TTL_MILLIS = 100 * 365 * 24 * 60 * 60 * 1000

/**
 * A TTL as the integer milliseconds `PX` expects: at least 1 (Redis rejects `PX 0`), rounded up so that a lock never
 * lives shorter than asked, and infinite mapped to `MAX_TTL_MILLIS`.
 */
export const ttlMillis = (ttl: Duration.DurationInput): number => {
  const duration = Duration.decode(ttl)
  if (!Duration.isFinite(duration)) return MAX_TTL_MILLIS
  return Math.min(MAX_TTL_MILLIS, Math.max(1, Math.ceil(toMillis(duration))))
}

/**
 * A Lua script run with `EVALSHA` (one round trip), falling back to `EVAL` when the server does not know it yet
 * (first use, or after a restart or `SCRIPT FLUSH`).
 */
export interface Script {
  readonly name: string
  readonly lua: string
  readonly sha1: string
}

/** A script with its SHA-1, computed once. */
export const script = (name: string, lua: string): Script => ({
  name,
  lua,
  sha1: createHash("sha1").update(lua).digest("hex")
})

/**
 * Run a script with its keys (declared as `KEYS`, as Redis requires) and arguments.
 */
export const evalScript = (
  client: Client,
  script: Script,
  keys: ReadonlyArray<string>,
  args: ReadonlyArray<string | number>
): Promise<unknown> =>
  client.evalsha(script.sha1, keys.length, ...keys, ...args).catch((error: unknown) =>
    messageOf(error).startsWith("NOSCRIPT")
      ? client.eval(script.lua, keys.length, ...keys, ...args)
      : Promise.reject(error)
  )

/**
 * One script call of `evalMany`: its keys and arguments.
 */
export interface ScriptCall {
  readonly keys: ReadonlyArray<string>
  readonly args: ReadonlyArray<string | number>
}

/**
 * Run a script once per call in one pipeline (one round trip for all of them), with the same `EVAL` fallback as
 * `evalScript` for the calls the server answered with `NOSCRIPT`. One result per call, in order: its reply, or the
 * error Redis answered it with. Rejects when the pipeline itself fails (connection lost). A single call is sent alone,
 * without a pipeline (it rejects with the error Redis answers).
 */
export const evalMany = async (
  client: Client,
  script: Script,
  calls: ReadonlyArray<ScriptCall>
): Promise<Array<{ readonly error: Error } | { readonly reply: unknown }>> => {
  if (calls.length === 1) return [{ reply: await evalScript(client, script, calls[0]!.keys, calls[0]!.args) }]
  const send = async (indexes: ReadonlyArray<number>, full: boolean) => {
    const pipeline = client.pipeline()
    for (const i of indexes) {
      const { args, keys } = calls[i]!
      if (full) pipeline.eval(script.lua, keys.length, ...keys, ...args)
      else pipeline.evalsha(script.sha1, keys.length, ...keys, ...args)
    }
    const replies = await pipeline.exec()
    if (replies === null) throw new Error("pipeline discarded")
    return replies.map(([error, reply]) => (error === null ? { reply } : { error }))
  }
  const all = calls.map((_, i) => i)
  const results = await send(all, false)
  const unknown = all.filter((i) => {
    const result = results[i]!
    return "error" in result && messageOf(result.error).startsWith("NOSCRIPT")
  })
  if (unknown.length > 0) {
    const again = await send(unknown, true)
    unknown.forEach((i, k) => results[i] = again[k]!)
  }
  return results
}
