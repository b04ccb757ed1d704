/**
 * Loggers: `json` writes every log line as one JSON object on stdout (annotations as top-level fields), `pretty`
 * writes one human-readable line per event (`time LEVEL message key=value ...`), with a failure's cause on the
 * lines after it.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as HashMap from "effect/HashMap"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { type FieldLine, withFieldLogger } from "./internal/fieldLines.js"
import { IsoTime } from "./internal/isoTime.js"

/**
 * The log format: `json` (one JSON object per line) or `pretty` (one readable line per event).
 *
 * @since 0.1.0
 * @category models
 */
export type Format = "json" | "pretty"

/**
 * The minimum level of the lines written; `none` writes nothing.
 *
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
  if (Array.isArray(message) && message.length === 1 && typeof message[0] === "string") return message[0]
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((part) =>
    typeof part === "string" ? part : part instanceof Error ? String(part) : Inspectable.format(part)
  ).join(" ")
}

/**
 * A JSON logger that hands each line (one JSON object, no newline) to `write`: a file, a socket, a buffer in a
 * test, or nothing at all (a benchmark that builds every line and discards it). `jsonLogger` is this over stdout.
 *
 * @since 0.1.0
 * @category loggers
 */
export const makeJsonLogger = (write: (line: string) => void): Logger.Logger<unknown, void> => {
  const heads = new JsonHeads()
  return withFieldLogger(
    Logger.make(({ annotations, cause, date, logLevel, message }) => {
      const line = jsonHead(date, logLevel, message)
      for (const [key, value] of annotations) line[key] = value
      write(jsonEnd(line, cause))
    }),
    // The scheduler's own lines, with their fields as a record (the same object as above, without a map).
    ({ base, cause, date, fields, logLevel, message }: FieldLine) => {
      // Most of the scheduler's lines have no annotations and no cause: their fields are serialised on their own and
      // put after the head, which the lines of one batch share (the same text as the object below would give).
      if (
        HashMap.size(base) === 0 && Cause.isEmpty(cause) && !("timestamp" in fields) && !("level" in fields) &&
        !("message" in fields)
      ) {
        const body = JSON.stringify(fields)
        const head = heads.of(date.getTime(), logLevel, message)
        write(body === "{}" ? head + "}" : head + "," + body.slice(1))
        return
      }
      const line = jsonHead(date, logLevel, message)
      if (HashMap.size(base) > 0) { for (const [key, value] of base) line[key] = value }
      for (const key in fields) line[key] = fields[key]
      write(jsonEnd(line, cause))
    }
  )
}

/** The text of a line's first three fields (`{"timestamp":...,"level":...,"message":...`), remembering the last. */
class JsonHeads {
  private ms = Number.NaN
  private level: LogLevel.LogLevel | undefined = undefined
  private message: unknown = undefined
  private text = ""

  of(ms: number, level: LogLevel.LogLevel, message: unknown): string {
    if (ms !== this.ms || level !== this.level || message !== this.message) {
      const head = jsonHead(new Date(ms), level, message)
      this.text = `{"timestamp":${JSON.stringify(head.timestamp)},"level":${JSON.stringify(head.level)},"message":${
        JSON.stringify(head.message)
      }`
      this.ms = ms
      this.level = level
      this.message = message
    }
    return this.text
  }
}

/** Lines come in bursts (a bookkeeping batch writes thousands within a few milliseconds): their time's text is shared. */
const lineTimes = new IsoTime()

const jsonHead = (date: Date, logLevel: LogLevel.LogLevel, message: unknown): Record<string, unknown> => ({
  timestamp: lineTimes.of(date.getTime()),
  level: logLevel.label,
  message: messageText(message)
})

const jsonEnd = (line: Record<string, unknown>, cause: Cause.Cause<unknown>): string => {
  if (!Cause.isEmpty(cause)) line.cause = Cause.pretty(cause, { renderErrorCause: true })
  return JSON.stringify(line)
}

/**
 * One JSON object per line: `timestamp`, `level`, `message`, every annotation as a field, `cause` when there is one.
 *
 * @since 0.1.0
 * @category loggers
 */
export const jsonLogger: Logger.Logger<unknown, void> = makeJsonLogger((line) => {
  process.stdout.write(line + "\n")
})

/** A value as `key=value` text: strings bare unless they hold spaces, quotes or `=`, everything else as JSON. */
const prettyValue = (value: unknown): string => {
  if (typeof value === "string") return /^[^\s"=]*$/.test(value) && value !== "" ? value : JSON.stringify(value)
  if (value instanceof Date) return value.toISOString()
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value)
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return Inspectable.format(value)
  }
}

/**
 * One line per event for people reading a terminal: `2026-01-01T02:00:00.000Z INFO job finished job=archive_user
 * outcome=success ...`, annotations in the order they were added. A failure's cause (with its stack) follows on the
 * next lines, indented, so that one event is still one line at the start of the screen line.
 *
 * @since 0.1.0
 * @category loggers
 */
export const prettyLogger: Logger.Logger<unknown, void> = withFieldLogger(
  Logger.make(({ annotations, cause, date, logLevel, message }) => {
    let line = prettyHead(date, logLevel, message)
    for (const [key, value] of HashMap.toEntries(annotations)) line += ` ${key}=${prettyValue(value)}`
    process.stdout.write(prettyEnd(line, message, cause))
  }),
  // The scheduler's own lines, with their fields as a record: the fiber's annotations, then the line's fields.
  ({ base, cause, date, fields, logLevel, message }: FieldLine) => {
    let line = prettyHead(date, logLevel, message)
    if (HashMap.size(base) > 0) {
      for (const [key, value] of base) if (!Object.hasOwn(fields, key)) line += ` ${key}=${prettyValue(value)}`
    }
    for (const key in fields) line += ` ${key}=${prettyValue(fields[key])}`
    process.stdout.write(prettyEnd(line, message, cause))
  }
)

const prettyHead = (date: Date, logLevel: LogLevel.LogLevel, message: unknown): string =>
  `${date.toISOString()} ${logLevel.label.padEnd(5)} ${messageText(message)}`

/** The line, then a failure's cause and any error's stack on the lines after it, indented. */
const prettyEnd = (line: string, message: unknown, cause: Cause.Cause<unknown>): string => {
  const details = Cause.isEmpty(cause) ? [] : [Cause.pretty(cause, { renderErrorCause: true })]
  for (const part of Array.isArray(message) ? message : [message]) {
    if (part instanceof Error && part.stack !== undefined) details.push(part.stack)
  }
  for (const detail of details) line += "\n" + detail.split("\n").map((l) => `    ${l}`).join("\n")
  return line + "\n"
}

/**
 * The logger and minimum level for the given settings.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: { readonly format: Format; readonly level: Level }): Layer.Layer<never> =>
  Layer.merge(
    Logger.replace(Logger.defaultLogger, options.format === "json" ? jsonLogger : prettyLogger),
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
