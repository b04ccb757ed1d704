/**
 * Who may call the RPCs. With `http.token` set every RPC needs `Authorization: Bearer <token>`, reads included (the
 * user RPCs return e-mail addresses); `http.readToken`, when set too, is accepted for reads only (a dashboard or a
 * monitoring script that must not trigger or pause). Without `http.token` everything is open (the embedded default
 * listens on 127.0.0.1). `/healthz`, `/readyz` and `/metrics` are never guarded: probes and Prometheus need them.
 *
 * A refused call is logged at WARN with the caller's address; every trigger, pause and resume is logged as an `audit`
 * line (action, job, result, caller, credential).
 *
 * @since 0.1.0
 */
import type * as Headers from "@effect/platform/Headers"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { timingSafeEqual } from "node:crypto"
import { Unauthorized } from "../Errors.js"
import { CLIENT_ADDRESS_HEADER } from "./Edge.js"
import { FORWARDED_HEADER } from "./Forward.js"

/**
 * The configured tokens.
 *
 * @since 0.1.0
 * @category models
 */
export interface Tokens {
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly readToken?: Option.Option<Redacted.Redacted<string>> | undefined
}

/**
 * What a call needs: `read` (list, runs, leader, users) or `write` (trigger, pause, resume).
 *
 * @since 0.1.0
 * @category models
 */
export type Access = "read" | "write"

/**
 * Who called, as the logs show it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Caller {
  /** The caller's address (set by the HTTP edge), or `unknown`. */
  readonly address: string
  /** The credential it presented: `token`, `read-token`, or `none` (no token configured). */
  readonly credential: "token" | "read-token" | "none"
  /** The node that forwarded the call, when it was forwarded. */
  readonly forwardedBy: string | undefined
}

/** Constant-time comparison, so the time of a wrong guess says nothing about the token. */
const sameSecret = (given: string, expected: string): boolean => {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * The caller of a request, from the headers the edge set.
 *
 * @since 0.1.0
 * @category auth
 */
export const callerOf = (headers: Headers.Headers, credential: Caller["credential"] = "none"): Caller => ({
  address: headers[CLIENT_ADDRESS_HEADER] ?? "unknown",
  credential,
  forwardedBy: headers[FORWARDED_HEADER]
})

/**
 * Succeeds with the caller when the request may make a call of `access`; else logs the refusal (WARN, with the
 * caller's address) and fails with `Unauthorized`.
 *
 * @since 0.1.0
 * @category auth
 */
export const authorize = (
  tokens: Tokens,
  access: Access,
  headers: Headers.Headers,
  rpc: string
): Effect.Effect<Caller, Unauthorized> => {
  if (Option.isNone(tokens.token)) return Effect.succeed(callerOf(headers))
  const header = headers["authorization"]
  const match = header === undefined ? null : /^Bearer\s+(.+)$/i.exec(header.trim())
  const given = match?.[1]
  if (given !== undefined && sameSecret(given, Redacted.value(tokens.token.value))) {
    return Effect.succeed(callerOf(headers, "token"))
  }
  const readToken = tokens.readToken ?? Option.none()
  const isReadToken = given !== undefined && Option.isSome(readToken) &&
    sameSecret(given, Redacted.value(readToken.value))
  if (isReadToken && access === "read") return Effect.succeed(callerOf(headers, "read-token"))
  const reason = header === undefined
    ? "missing Authorization: Bearer <token>"
    : match === null
    ? "the Authorization header is not \"Bearer <token>\""
    : isReadToken
    ? `the read-only token cannot call ${rpc}`
    : "wrong bearer token"
  const caller = callerOf(headers)
  return Effect.logWarning("request refused").pipe(
    Effect.annotateLogs({ rpc, reason, caller: caller.address }),
    Effect.zipRight(Effect.fail(new Unauthorized({ reason })))
  )
}

/**
 * Log an `audit` line for a job control call, whatever its result.
 *
 * @since 0.1.0
 * @category auth
 */
export const audit = <A, E extends { readonly _tag: string; readonly message: string }, R>(
  action: string,
  job: string,
  caller: Caller,
  effect: Effect.Effect<A, E, R>,
  details: (a: A) => Record<string, unknown> = () => ({})
): Effect.Effect<A, E, R> => {
  const line = (fields: Record<string, unknown>) =>
    Effect.logInfo("audit").pipe(
      Effect.annotateLogs({
        action,
        job,
        caller: caller.address,
        credential: caller.credential,
        ...(caller.forwardedBy === undefined ? {} : { forwarded_by: caller.forwardedBy }),
        ...fields
      })
    )
  return effect.pipe(
    Effect.tapBoth({
      onFailure: (error) => line({ result: error._tag, error: error.message }),
      onSuccess: (a) => line({ result: "ok", ...details(a) })
    })
  )
}
