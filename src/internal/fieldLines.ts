/**
 * Log lines handed to a logger as a plain record of fields instead of an annotation map. The scheduler writes one
 * `job finished` line per run with eleven fields; as `Logger.log` takes them, those fields are a persistent
 * `HashMap` built key by key (and walked again by the logger), which was the largest single cost of a run's
 * bookkeeping. A logger that can take the fields as they are carries a `FieldLogger` function under this module's
 * symbol; the scheduler's bookkeeper calls it instead of `log` and builds the `HashMap` only for the loggers that
 * lack one. What such a logger writes must be what its `log` writes for the same line with the fields as
 * annotations (set over the fiber's annotations).
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import type * as HashMap from "effect/HashMap"
import type * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"

export const FieldLoggerId: unique symbol = Symbol.for("effect-job-scheduler/FieldLogger")

/** One line: the fiber's annotations (`base`) and the line's own fields, which win over a base key of their name. */
export interface FieldLine {
  readonly logLevel: LogLevel.LogLevel
  readonly message: ReadonlyArray<string>
  readonly date: Date
  readonly base: HashMap.HashMap<string, unknown>
  readonly fields: Readonly<Record<string, unknown>>
  readonly cause: Cause.Cause<unknown>
}

export type FieldLogger = (line: FieldLine) => void

/** `logger` with `fields` as its field entry point (the same object, so that sets of loggers still find it). */
export const withFieldLogger = <L extends Logger.Logger<unknown, unknown>>(logger: L, fields: FieldLogger): L =>
  Object.assign(logger, { [FieldLoggerId]: fields })

/** The field entry point of `logger`, if it has one. */
export const fieldLoggerOf = (logger: Logger.Logger<unknown, unknown>): FieldLogger | undefined =>
  (logger as { readonly [FieldLoggerId]?: FieldLogger })[FieldLoggerId]
