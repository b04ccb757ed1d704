import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as TestClock from "effect/TestClock"
import { fieldLoggerOf } from "../src/internal/fieldLines.js"
import * as Logging from "../src/Logging.js"

/** What `effect` writes to stdout while it runs, split into lines. */
const captureStdout = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const chunks: Array<string> = []
      const original = process.stdout.write
      process.stdout.write = ((chunk: string | Uint8Array) => {
        chunks.push(String(chunk))
        return true
      }) as typeof process.stdout.write
      return { chunks, original }
    }),
    ({ chunks }) => Effect.map(effect, () => chunks.join("").split("\n").filter((line) => line !== "")),
    ({ original }) => Effect.sync(() => void (process.stdout.write = original))
  )

const event = Effect.logInfo("job finished").pipe(
  Effect.annotateLogs({ job: "sync_user", run_id: "r-1", fence: 3, error: "MAIL: smtp down" })
)

describe("Logging", () => {
  it.effect("pretty: one line per event, annotations as key=value, values with spaces quoted", () =>
    Effect.gen(function*() {
      const lines = yield* captureStdout(event.pipe(Effect.provide(Logging.layer({ format: "pretty", level: "info" }))))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}job finished /)
      expect(lines[0]).toContain("job=sync_user")
      expect(lines[0]).toContain("run_id=r-1")
      expect(lines[0]).toContain("fence=3")
      expect(lines[0]).toContain(`error="MAIL: smtp down"`)
    }))

  it.effect("pretty: a failure's cause follows its event line, indented", () =>
    Effect.gen(function*() {
      const lines = yield* captureStdout(
        Effect.logError("job finished", Cause.die(new Error("boom"))).pipe(
          Effect.annotateLogs({ job: "x" }),
          Effect.provide(Logging.layer({ format: "pretty", level: "info" }))
        )
      )
      expect(lines[0]).toMatch(/ERROR job finished job=x$/)
      expect(lines.length).toBeGreaterThan(1)
      for (const line of lines.slice(1)) expect(line.startsWith("    ")).toBe(true)
      expect(lines.slice(1).join("\n")).toContain("Error: boom")
    }))

  it.effect("pretty: an error given as part of the message shows its text on the line and its stack below", () =>
    Effect.gen(function*() {
      const lines = yield* captureStdout(
        Effect.logWarning("store unreachable", new Error("ECONNREFUSED")).pipe(
          Effect.provide(Logging.layer({ format: "pretty", level: "info" }))
        )
      )
      expect(lines[0]).toMatch(/WARN {2}store unreachable Error: ECONNREFUSED$/)
      expect(lines.slice(1).every((line) => line.startsWith("    "))).toBe(true)
      expect(lines.length).toBeGreaterThan(1)
    }))

  it.effect("json: one object per line with the annotations as fields; below the level nothing is written", () =>
    Effect.gen(function*() {
      const layer = Logging.layer({ format: "json", level: "info" })
      const lines = yield* captureStdout(
        Effect.zipRight(Effect.logDebug("hidden"), event).pipe(Effect.provide(layer))
      )
      expect(lines).toHaveLength(1)
      expect(JSON.parse(lines[0]!)).toMatchObject({
        level: "INFO",
        message: "job finished",
        job: "sync_user",
        run_id: "r-1",
        fence: 3
      })
    }))

  // The scheduler hands its own lines (`job finished`, `job skipped`) to this package's loggers as a record of fields
  // instead of an annotation map; what they write must be what the same line as annotations gives.
  const fields = { job: "sync_user", run_id: "r-1", fence: 3, outcome: "business_error", error: "MAIL: smtp down" }
  const base = HashMap.make(["service", "billing"], ["job", "overridden by the line's field"])
  const asAnnotations = (logger: Logger.Logger<unknown, void>, cause: Cause.Cause<unknown>) =>
    Effect.logWithLevel(LogLevel.Warning, "job finished", cause).pipe(
      Effect.annotateLogs(fields),
      Effect.annotateLogs(Object.fromEntries(HashMap.toEntries(base))),
      Effect.provide(Logger.replace(Logger.defaultLogger, logger))
    )
  const asFields = (logger: Logger.Logger<unknown, void>, cause: Cause.Cause<unknown>) =>
    fieldLoggerOf(logger)!({
      logLevel: LogLevel.Warning,
      message: ["job finished"],
      date: new Date(0),
      base,
      fields,
      cause
    })

  it.effect("json: a line handed as fields writes the object the same line as annotations writes", () =>
    Effect.gen(function*() {
      for (const cause of [Cause.empty, Cause.die(new Error("boom"))]) {
        const viaMap: Array<string> = []
        const viaFields: Array<string> = []
        yield* asAnnotations(Logging.makeJsonLogger((line) => viaMap.push(line)), cause)
        asFields(Logging.makeJsonLogger((line) => viaFields.push(line)), cause)
        expect(viaMap).toHaveLength(1)
        expect(viaFields).toHaveLength(1)
        const line = JSON.parse(viaFields[0]!)
        expect(line).toEqual(JSON.parse(viaMap[0]!)) // the TestClock stands at 0, the date given above
        expect(line).toMatchObject({ level: "WARN", message: "job finished", job: "sync_user", service: "billing" })
        expect("cause" in line).toBe(!Cause.isEmpty(cause))
      }
    }))

  it.effect("json: lines handed as fields with no annotations write the objects the lines as annotations write, in field order", () =>
    Effect.gen(function*() {
      // One logger for all lines: the head it shares between lines must follow each line's time, level and message.
      const viaFields: Array<string> = []
      const logger = Logging.makeJsonLogger((line) => viaFields.push(line))
      const lines: Array<[LogLevel.LogLevel, string, number, Record<string, unknown>]> = [
        [LogLevel.Info, "job finished", 0, fields],
        [LogLevel.Info, "job finished", 0, { ...fields, fence: 4 }],
        [LogLevel.Warning, "job finished", 0, fields],
        [LogLevel.Warning, "job skipped \"quoted\"", 0, { job: "a" }],
        [LogLevel.Warning, "job skipped \"quoted\"", 1_000, {}],
        [LogLevel.Info, "job finished", 1_000, { job: "b", message: "a field named message" }]
      ]
      const viaMap: Array<string> = []
      for (const [level, message, at, lineFields] of lines) {
        fieldLoggerOf(logger)!({
          logLevel: level,
          message: [message],
          date: new Date(at),
          base: HashMap.empty(),
          fields: lineFields,
          cause: Cause.empty
        })
        yield* TestClock.setTime(at)
        yield* Effect.logWithLevel(level, message).pipe(
          Effect.annotateLogs(lineFields),
          Effect.provide(Logger.replace(Logger.defaultLogger, Logging.makeJsonLogger((line) => viaMap.push(line))))
        )
      }
      // The same objects (an annotation map has its own key order); the fields in the order the record gave them.
      expect(viaFields.map((line) => JSON.parse(line))).toEqual(viaMap.map((line) => JSON.parse(line)))
      expect(Object.keys(JSON.parse(viaFields[0]!))).toEqual(["timestamp", "level", "message", ...Object.keys(fields)])
      expect(JSON.parse(viaFields[4]!)).toEqual({
        timestamp: "1970-01-01T00:00:01.000Z",
        level: "WARN",
        message: "job skipped \"quoted\""
      })
      expect(JSON.parse(viaFields[5]!).message).toBe("a field named message")
    }))

  it.effect("pretty: a line handed as fields writes the same key=value pairs and cause as the line as annotations", () =>
    Effect.gen(function*() {
      const cause = Cause.die(new Error("boom"))
      const viaMap = yield* captureStdout(asAnnotations(Logging.prettyLogger, cause))
      const viaFields = yield* captureStdout(Effect.sync(() => asFields(Logging.prettyLogger, cause)))
      const pairs = (line: string) => line.split(" job finished ")[1]!.match(/\w+=("[^"]*"|\S+)/g)!.sort()
      expect(pairs(viaFields[0]!)).toEqual(pairs(viaMap[0]!))
      expect(pairs(viaFields[0]!)).toContain("job=sync_user")
      expect(viaFields.slice(1)).toEqual(viaMap.slice(1))
      expect(viaFields.length).toBeGreaterThan(1)
    }))
})
