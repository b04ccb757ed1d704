import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Schema, TestClock } from "effect"
import { BusinessError } from "../src/Errors.js"
import * as Job from "../src/Job.js"
import * as JobStore from "../src/JobStore.js"
import * as LeaderElection from "../src/LeaderElection.js"
import { RunRecord } from "../src/Run.js"
import * as Scheduler from "../src/Scheduler.js"

// Handlers fail with their own error types; the job classifies them; the record keeps them structured.

class MailDown extends Schema.TaggedError<MailDown>()("MailDown", { code: Schema.String, message: Schema.String }) {}
class NoRecipients extends Schema.TaggedError<NoRecipients>()("NoRecipients", { message: Schema.String }) {}

const TestLayers = Layer.mergeAll(
  JobStore.layerMemory,
  LeaderElection.layerSingleNode("test"),
  Logger.remove(Logger.defaultLogger)
)

const runOnce = <E>(options: Omit<Job.JobOptions<never, E>, "name" | "cron" | "every" | "schedule">) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(Date.parse("2026-05-01T00:00:00Z"))
    let attempts = 0
    const job = Job.unsafeMake<never, E>({
      ...options,
      name: "mail",
      every: "1 hour",
      retry: { times: 2, delay: "1 second" },
      handler: Effect.zipRight(Effect.sync(() => attempts++), options.handler)
    })
    const scheduler = yield* Scheduler.make([job])
    yield* TestClock.adjust("1 hour")
    for (let i = 0; i < 5; i++) yield* TestClock.adjust("1 second")
    const [record] = yield* scheduler.runs("mail", 1)
    return { attempts, record: record! }
  })

describe("Scheduler: open error types", () => {
  it.scoped("a domain error needs no mapError; unclassified it is retryable, and recorded with its tag and code", () =>
    Effect.gen(function*() {
      const { attempts, record } = yield* runOnce({
        handler: Effect.fail(new MailDown({ code: "SMTP", message: "smtp down" }))
      })
      expect(attempts).toBe(3)
      expect(record.outcome).toBe("system_error")
      expect(record.error).toEqual({ tag: "MailDown", code: "SMTP", message: "smtp down" })
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("isExpected classifies the job's errors: an expected one is business_error and never retried", () =>
    Effect.gen(function*() {
      const { attempts, record } = yield* runOnce<MailDown | NoRecipients>({
        handler: Effect.fail(new NoRecipients({ message: "nobody to mail" })),
        isExpected: (error) => error._tag === "NoRecipients"
      })
      expect(attempts).toBe(1)
      expect(record.outcome).toBe("business_error")
      expect(record.error).toEqual({ tag: "NoRecipients", message: "nobody to mail" })
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("by default a BusinessError is expected", () =>
    Effect.gen(function*() {
      const { attempts, record } = yield* runOnce({
        handler: Effect.fail(new BusinessError({ code: "EMPTY", message: "nothing to do" }))
      })
      expect([attempts, record.outcome]).toEqual([1, "business_error"])
      expect(record.error).toEqual({ tag: "BusinessError", code: "EMPTY", message: "nothing to do" })
    }).pipe(Effect.provide(TestLayers)))

  it("a record stored with the error as one string (older versions) still decodes; it is written back structured", () => {
    const Json = Schema.parseJson(RunRecord)
    const stored = JSON.stringify({
      runId: "r-1",
      job: "mail",
      kind: "scheduled",
      fireTime: 1,
      startedAt: 2,
      finishedAt: 3,
      durationMs: 1,
      node: "n",
      attempt: 1,
      fence: 7,
      outcome: "system_error",
      error: "MAIL: smtp down"
    })
    const record = Schema.decodeSync(Json)(stored)
    expect(record.error).toEqual({ tag: "Unknown", code: "MAIL", message: "smtp down" })
    expect(JSON.parse(Schema.encodeSync(Json)(record)).error).toEqual({
      tag: "Unknown",
      code: "MAIL",
      message: "smtp down"
    })
    // Times are Dates in the record (as in RunContext) and stay epoch milliseconds in the stored JSON.
    expect([record.fireTime, record.startedAt, record.finishedAt]).toEqual([new Date(1), new Date(2), new Date(3)])
    expect(JSON.parse(Schema.encodeSync(Json)(record))).toMatchObject({ fireTime: 1, startedAt: 2, finishedAt: 3 })
    const bare = Schema.decodeSync(Json)(stored.replace("MAIL: smtp down", "boom"))
    expect(bare.error).toEqual({ tag: "Unknown", message: "boom" })
  })
})
