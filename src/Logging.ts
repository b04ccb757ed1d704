/**
 * Loggers: `json` writes every log line as one JSON object on stdout (annotations as top-level fields), `pretty`
 * is effect's human-readable logger.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as HashMap from "effect/HashMap"

/**
 * @since 0.1.0
 * @category models
 */
export type Format = "json" | "pretty"

/**
 * @since 0.1.0
 * @category models
 */
export type Level = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "none"

const levels: Record<Level, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

const messageText = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((part) => (typeof part === "string" ? part : Inspectable.format(part))).join(" ")
}

/**
 * One JSON object per line: `timestamp`, `level`, `message`, every annotation as a field, `cause` when there is one.
 *
 * @since 0.1.0
 * @category loggers
 */
export const jsonLogger: Logger.Logger<unknown, void> = Logger.make(({ annotations, cause, date, logLevel, message }) => {
  const line: Record<string, unknown> = {
    timestamp: date.toISOString(),
    level: logLevel.label,
    message: messageText(message)
  }
  for (const [key, value] of HashMap.toEntries(annotations)) line[key] = value
  if (!Cause.isEmpty(cause)) line.cause = Cause.pretty(cause, { renderErrorCause: true })
  process.stdout.write(JSON.stringify(line) + "\n")
})

/**
 * The logger and minimum level for the given settings.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: { readonly format: Format; readonly level: Level }): Layer.Layer<never> =>
  Layer.merge(
    options.format === "json" ? Logger.replace(Logger.defaultLogger, jsonLogger) : Logger.pretty,
    Logger.minimumLogLevel(levels[options.level])
  )

/**
 * From the environment: `LOG_FORMAT` (`json` | `pretty`, default `pretty`) and `LOG_LEVEL` (default `info`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromEnv = (): Layer.Layer<never> => {
  const format: Format = process.env.LOG_FORMAT === "json" ? "json" : "pretty"
  const level = (process.env.LOG_LEVEL ?? "info") as Level
  return layer({ format, level: level in levels ? level : "info" })
}
