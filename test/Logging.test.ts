import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
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
})
