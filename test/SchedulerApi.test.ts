import { describe, expect, it } from "@effect/vitest"
import { Effect, HashMap, Layer, Logger, Option, TestClock } from "effect"
import { SystemError } from "../src/Errors.js"
import * as Job from "../src/Job.js"
import * as JobStore from "../src/JobStore.js"
import * as LeaderElection from "../src/LeaderElection.js"
import * as Scheduler from "../src/Scheduler.js"

// What a library user reaches for: awaiting a triggered run, the planned fires right after start-up, and log lines
// of a handler that say which run wrote them.

const logs: Array<{ readonly message: string; readonly annotations: Record<string, unknown> }> = []
const capture = Logger.make(({ annotations, message }) => {
  logs.push({
    message: Array.isArray(message) ? message.join(" ") : String(message),
    annotations: Object.fromEntries(HashMap.toEntries(annotations))
  })
})
const TestLayers = Layer.mergeAll(
  JobStore.layerMemory,
  LeaderElection.layerSingleNode("test"),
  Logger.replace(Logger.defaultLogger, capture)
)

describe("Scheduler API", () => {
  it.scoped("trigger gives a handle that waits for the run's record", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-05-01T00:00:00Z"))
      const scheduler = yield* Scheduler.make([
        Job.unsafeMake({
          name: "report",
          cron: "@daily",
          handler: Effect.zipRight(
            Effect.sleep("2 seconds"),
            Effect.fail(new SystemError({ code: "X", message: "no" }))
          )
        })
      ])
      const result = yield* scheduler.trigger("report")
      if (result._tag !== "Started") throw new Error(`expected Started, got ${result.reason}`)
      const waiting = yield* Effect.fork(result.await)
      yield* TestClock.adjust("2 seconds")
      const record = yield* waiting.await.pipe(Effect.flatten)
      expect([record.runId, record.kind, record.outcome, record.durationMs]).toEqual([
        result.runId,
        "manual",
        "system_error",
        2000
      ])
      // Awaiting a run that is over already gives its record at once.
      expect((yield* result.await).runId).toBe(result.runId)
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("status shows the planned next fire as soon as the scheduler is made (it leads at once)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-05-01T00:00:00Z"))
      const scheduler = yield* Scheduler.make([
        Job.unsafeMake({ name: "nightly", cron: "0 0 2 * * *", handler: Effect.void })
      ])
      const [status] = yield* scheduler.status
      expect(Option.map(status!.nextFire, (d) => d.toISOString())).toEqual(Option.some("2026-05-01T02:00:00.000Z"))
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("every log line a handler writes carries job, run_id and fire_time", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-05-01T00:00:00Z"))
      logs.length = 0
      const scheduler = yield* Scheduler.make([
        Job.unsafeMake({
          name: "billing/eu.invoice",
          every: "1 minute",
          fixedRate: true,
          handler: Effect.zipRight(Effect.log("sending"), Effect.annotateLogs(Effect.log("sent"), { rows: 3 }))
        })
      ])
      yield* TestClock.adjust("1 minute")
      const [record] = yield* scheduler.runs("billing/eu.invoice", 1)
      // The record's times are of the kind RunContext's are.
      expect(record!.fireTime).toEqual(new Date("2026-05-01T00:01:00.000Z"))
      const lines = logs.filter((l) => l.message === "sending" || l.message === "sent")
      expect(lines.map((l) => l.message)).toEqual(["sending", "sent"])
      for (const line of lines) {
        expect(line.annotations).toMatchObject({
          job: "billing/eu.invoice",
          run_id: record!.runId,
          fire_time: "2026-05-01T00:01:00.000Z"
        })
      }
      expect(lines[1]!.annotations.rows).toBe(3)
    }).pipe(Effect.provide(TestLayers)))
})
