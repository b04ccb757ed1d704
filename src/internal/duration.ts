/**
 * Strict duration decoding for definitions and config: effect's `Duration.decode` maps negative input to zero and
 * throws on garbage; here both are a reason string the caller turns into a typed error with its field path.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"

export interface DurationRule {
  /** Accept a zero duration (e.g. a retry delay); default false. */
  readonly allowZero?: boolean
  /** Accept an infinite duration; default false. */
  readonly allowInfinite?: boolean
}

export const decodeDuration = (input: unknown, rule: DurationRule = {}): Either.Either<Duration.Duration, string> => {
  if (typeof input === "number" && (Number.isNaN(input) || input < 0)) {
    return Either.left(`expected a non-negative duration, got ${input}`)
  }
  if (typeof input === "string" && /^\s*-/.test(input)) {
    return Either.left(`expected a non-negative duration, got "${input}"`)
  }
  const decoded = Duration.decodeUnknown(input)
  if (Option.isNone(decoded)) {
    return Either.left(
      `expected a duration such as "5 seconds" or "1 hour", got ${
        typeof input === "string" ? `"${input}"` : String(input)
      }`
    )
  }
  const duration = decoded.value
  if (!rule.allowInfinite && !Duration.isFinite(duration)) return Either.left("expected a finite duration")
  if (!rule.allowZero && Duration.isZero(duration)) return Either.left("expected a duration greater than zero")
  return Either.right(duration)
}

/**
 * `Duration.toMillis`, without the two closures it makes per call for a duration held in milliseconds (the usual
 * kind): the run path reads a few TTLs per run.
 */
export const toMillis = (duration: Duration.Duration): number => {
  const value = duration.value
  return value._tag === "Millis" ? value.millis : Duration.toMillis(duration)
}
