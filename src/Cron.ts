/**
 * Cron expressions with seconds, IANA time zones and Vixie-cron DST rules. Pure: no timers, no I/O.
 *
 * PLACEHOLDER SIGNATURES — the implementation is being written (see the brief); do not rely on behaviour yet.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import { InvalidCron } from "./Errors.js"

/**
 * A parsed, validated cron expression bound to a time zone.
 *
 * @since 0.1.0
 * @category models
 */
export interface Cron {
  readonly _tag: "Cron"
  /** The expression as written (macros kept as written). */
  readonly expression: string
  /** IANA zone name, `UTC` by default. */
  readonly timezone: string
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const parse = (expression: string, options?: { readonly timezone?: string | undefined }): Either.Either<Cron, InvalidCron> =>
  Either.left(new InvalidCron({ expression, timezone: options?.timezone ?? "UTC", reason: "not implemented" }))

/**
 * @since 0.1.0
 * @category combinators
 */
export const next = (_cron: Cron, after: number | Date): number => (typeof after === "number" ? after : after.getTime()) + 1000
