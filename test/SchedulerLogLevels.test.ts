import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, HashMap, Layer, Logger, LogLevel, Option, TestClock } from "effect"
import { StoreError } from "../src/Errors.js"
import * as Job from "../src/Job.js"
import * as JobStore from "../src/JobStore.js"
import * as LeaderElection from "../src/LeaderElection.js"
import * as Scheduler from "../src/Scheduler.js"

// The levels of `job skipped` lines follow what an operator must act on: a store error is a WARN (jobs are not
// running); a paused job says so once per pause at INFO, not once per fire.

const skipLines: Array<{ readonly level: string; readonly reason: unknown }> = []
const capture = Logger.make(({ annotations, logLevel, message }) => {
  const text = Array.isArray(message) ? message.join(" ") : String(message)
  if (text === "job skipped") {
    skipLines.push({ level: logLevel.label, reason: Option.getOrUndefined(HashMap.get(annotations, "reason")) })
  }
})
const everySecond = Job.unsafeMake({ name: "tick", cron: "* * * * * *", handler: Effect.void })
const logs = Layer.merge(Logger.replace(Logger.defaultLogger, capture), Logger.minimumLogLevel(LogLevel.Debug))

describe("job skipped levels", () => {
  it.scoped("a paused job logs its first skip at INFO, the ones after at DEBUG, and again at INFO after a run", () =>
    Effect.gen(function*() {
      skipLines.length = 0
      yield* TestClock.setTime(Date.parse("2026-05-01T00:00:00Z"))
      const scheduler = yield* Scheduler.make([everySecond])
      yield* scheduler.pause("tick")
      for (let i = 0; i < 3; i++) yield* TestClock.adjust("1 second")
      expect(skipLines.map((l) => `${l.reason}:${l.level}`)).toEqual(["paused:INFO", "paused:DEBUG", "paused:DEBUG"])
      yield* scheduler.resume("tick")
      yield* TestClock.adjust("1 second")
      yield* scheduler.pause("tick")
      yield* TestClock.adjust("1 second")
      expect(skipLines.at(-1)).toEqual({ level: "INFO", reason: "paused" })
    }).pipe(Effect.provide(Layer.mergeAll(JobStore.layerMemory, LeaderElection.layerSingleNode("n"), logs))))

  it.scoped("a store error skip is a WARN", () =>
    Effect.gen(function*() {
      skipLines.length = 0
      yield* TestClock.setTime(Date.parse("2026-05-01T00:00:00Z"))
      const memory = yield* JobStore.makeMemory
      const down = new StoreError({ backend: "test", operation: "begin", reason: "connection refused" })
      const failing: JobStore.JobStore["Type"] = {
        ...memory,
        begin: () => Effect.fail(down),
        beginMany: (requests) => Effect.succeed(requests.map(() => Either.left(down)))
      }
      yield* Scheduler.make([everySecond]).pipe(Effect.provideService(JobStore.JobStore, failing))
      for (let i = 0; i < 2; i++) yield* TestClock.adjust("1 second")
      expect(skipLines.length).toBeGreaterThanOrEqual(2)
      expect(skipLines.every((l) => l.reason === "store_error" && l.level === "WARN")).toBe(true)
    }).pipe(Effect.provide(Layer.mergeAll(LeaderElection.layerSingleNode("n"), logs))))
})
