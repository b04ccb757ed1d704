import { describe, expect, it } from "@effect/vitest"
import {
  Clock,
  Context,
  Duration,
  Effect,
  Fiber,
  HashMap,
  Layer,
  Logger,
  LogLevel,
  Option,
  Schedule,
  TestClock,
  Tracer
} from "effect"
import { BusinessError, SystemError } from "../src/Errors.js"
import { MemoryState } from "../src/internal/memoryState.js"
import { memoryStore } from "../src/internal/memoryStore.js"
import * as Job from "../src/Job.js"
import { JobLockModel } from "../src/JobLockModel.js"
import * as JobStore from "../src/JobStore.js"
import * as LeaderElection from "../src/LeaderElection.js"
import * as Logging from "../src/Logging.js"
import { RunContext, type RunRecord } from "../src/Run.js"
import * as Scheduler from "../src/Scheduler.js"

// ---------------------------------------------------------------------------------------------------------------
// Helpers: a recorder of what handlers saw, and the scheduler on memory layers with a hand-driven leadership.
// ---------------------------------------------------------------------------------------------------------------

interface Fire {
  readonly job: string
  readonly fireTime: number
  readonly startedAt: number
  readonly attempt: number
  readonly fence: number
}

const recorder = () => {
  const fires: Array<Fire> = []
  const record = (extra: Effect.Effect<void, BusinessError | SystemError> = Effect.void) =>
    Effect.gen(function*() {
      const run = yield* RunContext
      fires.push({
        job: run.job,
        fireTime: run.fireTime.getTime(),
        startedAt: yield* Clock.currentTimeMillis,
        attempt: run.attempt,
        fence: run.fence
      })
      yield* extra
    })
  return { fires, record }
}

const iso = (ms: number) => new Date(ms).toISOString()
const at = (text: string) => Date.parse(text)

/** Log lines are captured, not printed: tests assert on them, and printing thousands of lines is slow. */
const logs: Array<{ readonly message: string; readonly level: string; readonly annotations: Record<string, unknown> }> =
  []
const captureLogger = Logger.make(({ annotations, logLevel, message }) => {
  logs.push({
    message: Array.isArray(message) ? message.join(" ") : String(message),
    level: logLevel.label,
    annotations: Object.fromEntries(HashMap.toEntries(annotations))
  })
  if (logs.length > 10_000) logs.splice(0, 5_000)
})

const TestLayers = Layer.mergeAll(
  JobStore.layerMemory,
  LeaderElection.layerManual("node-a"),
  Logger.replace(Logger.defaultLogger, captureLogger)
)

/**
 * Build the scheduler in the test's scope, after the clock has been set. The shutdown grace is zero unless a test
 * sets it: the test's scope closes with the TestClock standing still, so a grace would wait forever.
 */
const start = <R>(jobs: ReadonlyArray<Job.Job<R>>, options?: Scheduler.SchedulerOptions) =>
  Effect.gen(function*() {
    const scheduler = yield* Scheduler.make(jobs, { shutdownGrace: 0, ...options })
    // Let the leadership subscription and the first planning run.
    yield* TestClock.adjust(0)
    return scheduler
  })

/** Advance the test clock in steps, so that runs forked at each fire get to finish before the next step. */
const advance = (total: Duration.DurationInput, step: Duration.DurationInput = "1 second") =>
  Effect.gen(function*() {
    const totalMs = Duration.toMillis(total)
    const stepMs = Duration.toMillis(step)
    for (let done = 0; done < totalMs; done += stepMs) {
      yield* TestClock.adjust(Math.min(stepMs, totalMs - done))
    }
  })

const records = (scheduler: Scheduler.Scheduler["Type"], job: string) =>
  Effect.map(scheduler.runs(job, 1000), (list) => [...list].reverse())

const outcomes = (list: ReadonlyArray<RunRecord>) => list.map((r) => r.outcome)

// ---------------------------------------------------------------------------------------------------------------

describe("Scheduler: cron triggers on TestClock", () => {
  it.scoped("fires 0 0 2 * * * in Asia/Shanghai at 18:00Z every day of a simulated week", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-03-02T00:00:00Z"))
      const { fires, record } = recorder()
      yield* start([
        Job.unsafeMake({ name: "archive", cron: "0 0 2 * * *", timezone: "Asia/Shanghai", handler: record() })
      ])
      yield* advance("7 days", "1 hour")
      expect(fires.map((f) => iso(f.fireTime))).toEqual([
        "2026-03-02T18:00:00.000Z",
        "2026-03-03T18:00:00.000Z",
        "2026-03-04T18:00:00.000Z",
        "2026-03-05T18:00:00.000Z",
        "2026-03-06T18:00:00.000Z",
        "2026-03-07T18:00:00.000Z",
        "2026-03-08T18:00:00.000Z"
      ])
      // No run starts before its fire time.
      for (const fire of fires) expect(fire.startedAt).toBeGreaterThanOrEqual(fire.fireTime)
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("runs a pinned 02:30 job and an hourly job across the 2026 DST changes in America/New_York", () =>
    Effect.gen(function*() {
      const pinned = recorder()
      const hourly = recorder()
      yield* TestClock.setTime(at("2026-03-07T12:00:00Z"))
      yield* start([
        Job.unsafeMake({
          name: "pinned",
          cron: "0 30 2 * * *",
          timezone: "America/New_York",
          handler: pinned.record()
        }),
        Job.unsafeMake({ name: "hourly", cron: "0 0 * * * *", timezone: "America/New_York", handler: hourly.record() })
      ])
      yield* advance("2 days", "15 minutes")
      // 03-08 02:30 does not exist: the pinned job fires once at the jump, 03:00 EDT = 07:00Z.
      expect(pinned.fires.map((f) => iso(f.fireTime))).toEqual([
        "2026-03-08T07:00:00.000Z",
        "2026-03-09T06:30:00.000Z"
      ])
      // The hourly job keeps elapsed-time rhythm: no fire for the skipped 02:00 local, every UTC hour otherwise.
      const hourlyTimes = hourly.fires.map((f) => f.fireTime)
      for (let i = 1; i < hourlyTimes.length; i++) expect(hourlyTimes[i]! - hourlyTimes[i - 1]!).toBe(3_600_000)
      expect(hourlyTimes.length).toBe(48)
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("fires once in the repeated hour for a pinned job and twice for an hourly job when New York falls back", () =>
    Effect.gen(function*() {
      const pinned = recorder()
      const hourly = recorder()
      yield* TestClock.setTime(at("2026-10-31T12:00:00Z"))
      yield* start([
        Job.unsafeMake({
          name: "pinned",
          cron: "0 30 1 * * *",
          timezone: "America/New_York",
          handler: pinned.record()
        }),
        Job.unsafeMake({ name: "hourly", cron: "0 0 * * * *", timezone: "America/New_York", handler: hourly.record() })
      ])
      yield* advance("1 day", "15 minutes")
      expect(pinned.fires.map((f) => iso(f.fireTime))).toEqual(["2026-11-01T05:30:00.000Z"])
      const utcHours = hourly.fires.map((f) => iso(f.fireTime))
      // 01:00 EDT = 05:00Z and 01:00 EST = 06:00Z both fire.
      expect(utcHours).toContain("2026-11-01T05:00:00.000Z")
      expect(utcHours).toContain("2026-11-01T06:00:00.000Z")
      expect(new Set(utcHours).size).toBe(utcHours.length)
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("fires 0 0 0 1 1 * exactly at the new year when the clock starts on Dec 1 (a wait longer than 2^31-1 ms)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-12-01T00:00:00Z"))
      const { fires, record } = recorder()
      // The timer's longest single wait at its maximum (2^31-1 ms, ~24.9 days): the 31-day wait takes two timers.
      // (Given explicitly: under the TestClock the default is one wait, since TestClock timers have no such limit.)
      const scheduler = yield* start([Job.unsafeMake({ name: "new_year", cron: "0 0 0 1 1 *", handler: record() })], {
        maxTimerWait: Duration.days(365)
      })
      const status = yield* scheduler.jobStatus("new_year")
      expect(Option.map(status.nextFire, (d) => d.toISOString())).toEqual(Option.some("2027-01-01T00:00:00.000Z"))
      yield* advance("30 days", "1 day")
      expect(fires).toEqual([])
      yield* advance("2 days", "1 day")
      expect(fires.map((f) => [iso(f.fireTime), iso(f.startedAt)])).toEqual([
        ["2027-01-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z"]
      ])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped(
    "dispatches each fire time once and fires 1,000 jobs registered at once at their times",
    () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
        const { fires, record } = recorder()
        const jobs = Array.from({ length: 1000 }, (_, i) =>
          // No lock: each locked run arms a renewal sleep, and every such sleep costs a TestClock round.
          Job.unsafeMake({
            name: `job-${i}`,
            cron: `${i % 60} * * * * *`,
            lock: { enabled: false },
            handler: record()
          }))
        yield* start(jobs)
        yield* advance("2 minutes", "30 seconds")
        expect(fires.length).toBe(2000)
        for (const fire of fires) {
          const index = Number(fire.job.slice(4))
          expect(new Date(fire.fireTime).getUTCSeconds()).toBe(index % 60)
          expect(fire.startedAt).toBe(fire.fireTime)
        }
        const keys = new Set(fires.map((f) => `${f.job}@${f.fireTime}`))
        expect(keys.size).toBe(fires.length)
      }).pipe(Effect.provide(TestLayers)),
    120_000
  )
  it.scoped("a job's next fire is shown while its run starts, and the job fires again then", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      // A status read from the handler's first step (inside the fire batch, before it ends) shows the job's next fire.
      const holder: { scheduler?: Scheduler.Scheduler["Type"] } = {}
      const seen: Array<[string, string]> = []
      const job = Job.unsafeMake({
        name: "tick",
        cron: "*/10 * * * * *",
        handler: Effect.flatMap(
          Effect.suspend(() => holder.scheduler!.jobStatus("tick")),
          (status) =>
            Effect.flatMap(RunContext, (run) =>
              Effect.sync(() => {
                seen.push([
                  iso(run.fireTime.getTime()),
                  Option.match(status.nextFire, {
                    onNone: () => "none",
                    onSome: (d) => d.toISOString()
                  })
                ])
              }))
        )
      })
      holder.scheduler = yield* start([job])
      yield* advance("20 seconds")
      expect(seen).toEqual([
        ["2026-05-01T00:00:10.000Z", "2026-05-01T00:00:20.000Z"],
        ["2026-05-01T00:00:20.000Z", "2026-05-01T00:00:30.000Z"]
      ])
    }).pipe(Effect.provide(TestLayers)))
})

describe("Scheduler: interval triggers", () => {
  it.scoped("fixed delay starts the next run `every` after the previous one ended; fixed rate keeps a grid", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const delay = recorder()
      const rate = recorder()
      const work = Effect.sleep("3 seconds")
      yield* start([
        Job.unsafeMake({ name: "delay", every: "10 seconds", handler: delay.record(work) }),
        Job.unsafeMake({ name: "rate", every: "10 seconds", fixedRate: true, handler: rate.record(work) })
      ])
      yield* advance("45 seconds", "500 millis")
      const t0 = at("2026-05-01T00:00:00Z")
      expect(delay.fires.map((f) => (f.fireTime - t0) / 1000)).toEqual([10, 23, 36])
      expect(rate.fires.map((f) => (f.fireTime - t0) / 1000)).toEqual([10, 20, 30, 40])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("fixed rate skips a grid point missed while a run overlaps it (overlap skip), never queues it", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const rate = recorder()
      const scheduler = yield* start([
        Job.unsafeMake({
          name: "rate",
          every: "10 seconds",
          fixedRate: true,
          handler: rate.record(Effect.sleep("15 seconds"))
        })
      ])
      yield* advance("55 seconds", "500 millis")
      const t0 = at("2026-05-01T00:00:00Z")
      // 10 runs until 25: the 20 fire is skipped (overlap), 30 runs, 40 skipped, 50 runs.
      expect(rate.fires.map((f) => (f.fireTime - t0) / 1000)).toEqual([10, 30, 50])
      const status = yield* scheduler.jobStatus("rate")
      expect(status.counters.skips).toBe(2)
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("any effect Schedule can be a trigger", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const { fires, record } = recorder()
      yield* start([
        Job.unsafeMake({
          name: "sched",
          schedule: Schedule.spaced("7 seconds").pipe(Schedule.compose(Schedule.recurs(3))),
          handler: record()
        })
      ])
      yield* advance("60 seconds", "500 millis")
      expect(fires.length).toBeGreaterThanOrEqual(2)
      expect(fires.length).toBeLessThanOrEqual(4)
    }).pipe(Effect.provide(TestLayers)))
})

describe("Scheduler: one run", () => {
  it.scoped("a run's context holds the layer's services and its RunContext, and behaves as a Context when changed", () =>
    Effect.gen(function*() {
      class Greeter extends Context.Tag("test/Greeter")<Greeter, string>() {}
      class Extra extends Context.Tag("test/Extra")<Extra, number>() {}
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const seen: Array<unknown> = []
      const handler = Effect.gen(function*() {
        const context = yield* Effect.context<RunContext | Greeter>()
        seen.push(Context.get(context, Greeter), Context.get(context, RunContext).job)
        // Adding to it copies it: the copy holds the run's, the layer's and the new service.
        const added = Context.add(context, Extra, 7)
        seen.push(Context.get(added, Greeter), Context.get(added, RunContext).job, Context.get(added, Extra))
        seen.push(Option.isNone(Context.getOption(Context.omit(Greeter)(context), Greeter)))
        seen.push(Context.get(Context.omit(Greeter)(context), RunContext).fence)
        // A service provided over the layer's wins inside, as over any Context.
        seen.push(yield* Effect.provideService(Greeter, "inner")(Greeter))
        yield* Effect.provideService(
          Effect.flatMap(Extra, (extra) => Effect.map(RunContext, (run) => seen.push(extra, run.attempt))),
          Extra,
          8
        )
      })
      yield* start([Job.unsafeMake({ name: "ctx", every: "1 minute", handler })]).pipe(
        Effect.provideService(Greeter, "hello")
      )
      yield* advance("61 seconds", "500 millis")
      expect(seen).toEqual(["hello", "ctx", "hello", "ctx", 7, true, 1, "inner", 8, 1])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("a timeout interrupts the handler, releases the lock and records timeout", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      let interrupted = false
      const handler = Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => (interrupted = true))))
      const scheduler = yield* start([
        Job.unsafeMake({ name: "slow", every: "1 minute", timeout: "5 seconds", handler })
      ])
      yield* advance("66 seconds", "500 millis")
      const list = yield* records(scheduler, "slow")
      expect(outcomes(list)).toEqual(["timeout"])
      expect(list[0]!.durationMs).toBe(5000)
      expect(interrupted).toBe(true)
      // The lock is free again: another owner can take it.
      const locks = yield* JobLockModel
      expect(Option.isSome(yield* locks.acquireLock("slow", "1 minute"))).toBe(true)
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("a handler that yields once and then hangs still times out (its deadline is armed once the fork returns)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const handler = Effect.zipRight(Effect.yieldNow(), Effect.never)
      const scheduler = yield* start([
        Job.unsafeMake({ name: "yields", every: "1 minute", timeout: "5 seconds", handler }),
        Job.unsafeMake({ name: "instant", every: "1 minute", timeout: "5 seconds", handler: Effect.void })
      ])
      yield* advance("66 seconds", "500 millis")
      expect(outcomes(yield* records(scheduler, "yields"))).toEqual(["timeout"])
      expect(outcomes(yield* records(scheduler, "instant"))).toEqual(["success"])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("a lock held by another owner skips the fire with reason lock_held", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const { fires, record } = recorder()
      const locks = yield* JobLockModel
      const other = yield* locks.acquireLock("locked", "1 hour")
      expect(Option.isSome(other)).toBe(true)
      const scheduler = yield* start([Job.unsafeMake({ name: "locked", every: "10 seconds", handler: record() })])
      yield* advance("25 seconds", "500 millis")
      expect(fires).toEqual([])
      const status = yield* scheduler.jobStatus("locked")
      expect(status.counters.skips).toBe(2)
      expect(status.counters.runs).toBe(0)
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("a lock renewal that finds another owner interrupts the run with lock_lost", () => {
    // The memory store over a state the test can reach, to hand the lock to another owner mid-run.
    const state = new MemoryState()
    const layers = Layer.mergeAll(
      Layer.succeed(JobStore.JobStore, memoryStore(state)),
      LeaderElection.layerManual("node-a"),
      Logger.replace(Logger.defaultLogger, captureLogger)
    )
    return Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      let interrupted = false
      const handler = Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => (interrupted = true))))
      const scheduler = yield* start([
        Job.unsafeMake({
          name: "renewed",
          every: "1 hour",
          timeout: "10 minutes",
          lock: { ttl: "30 seconds" },
          handler
        })
      ])
      yield* advance("1 hour", "1 minute")
      // The run holds the lock and renews it every 10 s; after 25 s, another owner has it.
      yield* advance("25 seconds", "1 second")
      expect(interrupted).toBe(false)
      const now = yield* Clock.currentTimeMillis
      state.locks.set("renewed", { value: "other-owner", expiresAt: now + 60_000 })
      yield* advance("10 seconds", "1 second")
      expect(interrupted).toBe(true)
      const list = yield* records(scheduler, "renewed")
      expect(outcomes(list)).toEqual(["lock_lost"])
      // The other owner's lock is untouched by our release.
      expect(state.locks.get("renewed")?.value).toBe("other-owner")
    }).pipe(Effect.provide(layers))
  })

  it.scoped("BusinessError is not retried; SystemError is retried per policy with exponential backoff", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const business = recorder()
      const system = recorder()
      const scheduler = yield* start([
        Job.unsafeMake({
          name: "business",
          every: "1 minute",
          retry: { times: 3, delay: "1 second" },
          handler: business.record(Effect.fail(new BusinessError({ code: "NO_USERS", message: "nothing to sync" })))
        }),
        Job.unsafeMake({
          name: "system",
          every: "1 minute",
          retry: { times: 3, delay: "1 second", factor: 2 },
          handler: system.record(Effect.fail(new SystemError({ code: "DB_DOWN", message: "db unreachable" })))
        })
      ])
      yield* advance("70 seconds", "250 millis")
      expect(business.fires.map((f) => f.attempt)).toEqual([1])
      expect(system.fires.map((f) => f.attempt)).toEqual([1, 2, 3, 4])
      const t = system.fires.map((f) => f.startedAt - system.fires[0]!.startedAt)
      expect(t).toEqual([0, 1000, 3000, 7000])
      expect(outcomes(yield* records(scheduler, "business"))).toEqual(["business_error"])
      const systemRecords = yield* records(scheduler, "system")
      expect(outcomes(systemRecords)).toEqual(["system_error"])
      expect(systemRecords[0]!.attempt).toBe(4)
      expect(systemRecords[0]!.error).toEqual({ tag: "SystemError", code: "DB_DOWN", message: "db unreachable" })
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("a defect in one job is recorded and does not disturb other jobs or later fires", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const healthy = recorder()
      const scheduler = yield* start([
        Job.unsafeMake({
          name: "broken",
          every: "10 seconds",
          handler: Effect.sync(() => {
            throw new Error("boom")
          })
        }),
        Job.unsafeMake({ name: "healthy", every: "10 seconds", handler: healthy.record() })
      ])
      yield* advance("35 seconds", "500 millis")
      expect(outcomes(yield* records(scheduler, "broken"))).toEqual(["defect", "defect", "defect"])
      expect((yield* records(scheduler, "broken"))[0]!.error).toEqual({ tag: "Error", message: "boom" })
      expect(healthy.fires.length).toBe(3)
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("each run gets a fence that grows with every run of the job", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const { fires, record } = recorder()
      yield* start([Job.unsafeMake({ name: "fenced", every: "1 second", fixedRate: true, handler: record() })])
      yield* advance("5 seconds", "250 millis")
      expect(fires.map((f) => f.fence)).toEqual([1, 2, 3, 4, 5])
    }).pipe(Effect.provide(TestLayers)))
})

describe("Scheduler: overlap", () => {
  const overlapRun = (overlap: Job.OverlapPolicy) =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const { fires, record } = recorder()
      const scheduler = yield* start([
        Job.unsafeMake({
          name: "long",
          every: "10 seconds",
          fixedRate: true,
          overlap,
          lock: { enabled: false },
          handler: record(Effect.sleep("25 seconds"))
        })
      ])
      yield* advance("40 seconds", "500 millis")
      return { fires, list: yield* records(scheduler, "long") }
    })

  it.scoped("skip: a fire while the job runs is skipped", () =>
    Effect.gen(function*() {
      const { fires } = yield* overlapRun("skip")
      expect(fires.map((f) => f.fireTime % 60_000 / 1000)).toEqual([10, 40])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("allow: runs overlap", () =>
    Effect.gen(function*() {
      const { fires, list } = yield* overlapRun("allow")
      expect(fires.map((f) => f.fireTime % 60_000 / 1000)).toEqual([10, 20, 30, 40])
      expect(outcomes(list)).toEqual(["success"]) // only the 10 s run has finished by 40 s
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("replace: a new fire interrupts the running one", () =>
    Effect.gen(function*() {
      const { fires, list } = yield* overlapRun("replace")
      expect(fires.map((f) => f.fireTime % 60_000 / 1000)).toEqual([10, 20, 30, 40])
      expect(outcomes(list)).toEqual(["interrupted", "interrupted", "interrupted"])
    }).pipe(Effect.provide(TestLayers)))
})

describe("Scheduler: control", () => {
  it.scoped("pause skips fires with reason paused until resume", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const { fires, record } = recorder()
      const scheduler = yield* start([
        Job.unsafeMake({ name: "p", every: "10 seconds", fixedRate: true, handler: record() })
      ])
      yield* advance("15 seconds", "500 millis")
      yield* scheduler.pause("p")
      expect((yield* scheduler.jobStatus("p")).paused).toBe(true)
      yield* advance("20 seconds", "500 millis")
      yield* scheduler.resume("p")
      yield* advance("10 seconds", "500 millis")
      expect(fires.map((f) => f.fireTime % 60_000 / 1000)).toEqual([10, 40])
      expect((yield* scheduler.jobStatus("p")).counters.skips).toBe(2)
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("trigger runs a job now through the same path and records it as manual", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const { fires, record } = recorder()
      const scheduler = yield* start([Job.unsafeMake({ name: "t", cron: "0 0 0 1 1 *", handler: record() })])
      const result = yield* scheduler.trigger("t")
      expect(result._tag).toBe("Started")
      yield* TestClock.adjust(0)
      expect(fires.length).toBe(1)
      const list = yield* records(scheduler, "t")
      expect(list.map((r) => [r.kind, r.outcome])).toEqual([["manual", "success"]])
      const unknown = yield* Effect.flip(scheduler.trigger("nope"))
      expect(unknown._tag).toBe("UnknownJob")
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("shutdown lets running jobs finish within the grace", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      let finished = false
      const store = yield* JobStore.JobStore
      const handler = Effect.sleep("5 seconds").pipe(Effect.tap(() => Effect.sync(() => (finished = true))))
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        yield* Scheduler.make([Job.unsafeMake({ name: "drain", every: "10 seconds", handler })], {
          shutdownGrace: "30 seconds"
        })
        yield* Effect.sleep("11 seconds")
      })))
      // The scope closes at 11 s while the run (10 s -> 15 s) is in progress; shutdown waits for it.
      yield* advance("20 seconds", "500 millis")
      yield* Fiber.join(fiber)
      expect(finished).toBe(true)
      const list = yield* store.recentRuns("drain", 10)
      expect(list.map((r) => r.outcome)).toEqual(["success"])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("shutdown interrupts running jobs once the grace is over, and the lock is released", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const store = yield* JobStore.JobStore
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        yield* Scheduler.make([Job.unsafeMake({ name: "hung", every: "10 seconds", handler: Effect.never })], {
          shutdownGrace: "5 seconds"
        })
        yield* Effect.sleep("11 seconds")
      })))
      yield* advance("20 seconds", "500 millis")
      yield* Fiber.join(fiber)
      const list = yield* store.recentRuns("hung", 10)
      expect(list.map((r) => r.outcome)).toEqual(["interrupted"])
      // Interrupted at 11 s (scope close) + 5 s grace.
      expect(list[0]!.finishedAt.getTime() - list[0]!.startedAt.getTime()).toBe(6000)
      const locks = yield* JobLockModel
      expect(Option.isSome(yield* locks.acquireLock("hung", "1 minute"))).toBe(true)
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("losing leadership interrupts a running job (leadership_lost) and stops firing; regaining resumes", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const { fires, record } = recorder()
      const leadership = yield* LeaderElection.ManualLeadership
      const scheduler = yield* start([
        Job.unsafeMake({
          name: "l",
          every: "10 seconds",
          fixedRate: true,
          misfire: "skip",
          handler: record(Effect.sleep("5 seconds"))
        })
      ])
      yield* advance("12 seconds", "500 millis")
      expect(fires.length).toBe(1)
      yield* leadership.set(LeaderElection.follower("node-b"))
      yield* TestClock.adjust(0)
      expect(outcomes(yield* records(scheduler, "l"))).toEqual(["leadership_lost"])
      yield* advance("30 seconds", "500 millis")
      expect(fires.length).toBe(1)
      expect(Option.isNone((yield* scheduler.jobStatus("l")).nextFire)).toBe(true)
      yield* leadership.set(LeaderElection.leader(2))
      yield* advance("25 seconds", "500 millis")
      // Resumes on the grid from the last recorded fire (10 s): 50, 60 s; the missed 20-40 s are beyond the
      // misfire threshold and the policy is skip.
      expect(fires.map((f) => f.fireTime % 60_000 / 1000)).toEqual([10, 50, 0])
    }).pipe(Effect.provide(TestLayers)))
})

describe("Scheduler: misfires", () => {
  it.scoped("after a leadership gap, runOnce makes one catch-up run for the newest missed fire within the grace", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const once = recorder()
      const late = recorder()
      const leadership = yield* LeaderElection.ManualLeadership
      yield* start([
        Job.unsafeMake({ name: "once", every: "10 seconds", fixedRate: true, handler: once.record() }),
        Job.unsafeMake({
          name: "late",
          every: "10 seconds",
          fixedRate: true,
          misfireGrace: "2 seconds",
          handler: late.record()
        })
      ])
      yield* advance("12 seconds", "500 millis")
      yield* leadership.set(LeaderElection.follower("node-b"))
      yield* advance("33 seconds", "500 millis") // 45 s: fires at 20, 30, 40 were missed
      yield* leadership.set(LeaderElection.leader(2))
      yield* advance("10 seconds", "500 millis")
      const t0 = at("2026-05-01T00:00:00Z")
      // One catch-up run for 40 (started at 45), never three; then the grid goes on at 50.
      expect(once.fires.map((f) => [(f.fireTime - t0) / 1000, (f.startedAt - t0) / 1000])).toEqual([
        [10, 10],
        [40, 45],
        [50, 50]
      ])
      // The newest missed fire (40) is 5 s late, beyond a 2 s grace: skipped as misfired.
      expect(late.fires.map((f) => (f.fireTime - t0) / 1000)).toEqual([10, 50])
      const skipped = logs.filter((l) => l.message === "job skipped" && l.annotations.job === "late")
      expect(skipped.map((l) => l.annotations.reason)).toContain("misfired")
    }).pipe(Effect.provide(TestLayers)))
})

describe("Scheduler: logs", () => {
  it.scoped("logs one job finished line per run with its job, fire time, run id, node, fence, outcome, duration and lateness, and job skipped with its reason", () =>
    Effect.gen(function*() {
      logs.length = 0
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const scheduler = yield* start([
        Job.unsafeMake({ name: "logged", every: "10 seconds", fixedRate: true, handler: Effect.sleep("12 seconds") })
      ])
      yield* advance("23 seconds", "500 millis") // the run lasts 10 s -> 22 s; the fire at 20 s overlaps it
      void scheduler
      const finished = logs.filter((l) => l.message === "job finished" && l.annotations.job === "logged")
      expect(finished.length).toBe(1)
      const fields = finished[0]!.annotations
      expect(fields).toMatchObject({
        job: "logged",
        fire_time: "2026-05-01T00:00:10.000Z",
        node: "node-a",
        fence: 1,
        outcome: "success",
        duration_ms: 12_000,
        lateness_ms: 0
      })
      expect(typeof fields.run_id).toBe("string")
      expect(finished[0]!.level).toBe("INFO")
      const skipped = logs.filter((l) => l.message === "job skipped" && l.annotations.job === "logged")
      expect(skipped.map((l) => [l.annotations.reason, l.annotations.fire_time])).toEqual([
        ["overlap", "2026-05-01T00:00:20.000Z"]
      ])
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("this package's JSON logger gets the scheduler's lines as fields, with the scope's annotations, and a second logger beside it gets the same line", () =>
    Effect.gen(function*() {
      logs.length = 0
      const json: Array<Record<string, unknown>> = []
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      yield* Effect.gen(function*() {
        yield* start([Job.unsafeMake({ name: "json", every: "1 second", fixedRate: true, handler: Effect.void })])
        yield* advance("1 second", "500 millis")
      }).pipe(
        Effect.annotateLogs({ service: "billing" }),
        Effect.provide(Logger.add(Logging.makeJsonLogger((line) => json.push(JSON.parse(line)))))
      )
      const finished = json.filter((l) => l.message === "job finished")
      expect(finished).toHaveLength(1)
      expect(finished[0]).toMatchObject({
        level: "INFO",
        service: "billing",
        job: "json",
        fire_time: "2026-05-01T00:00:01.000Z",
        node: "node-a",
        outcome: "success",
        lateness_ms: 0,
        kind: "scheduled"
      })
      const captured = logs.filter((l) => l.message === "job finished" && l.annotations.job === "json")
      expect(captured).toHaveLength(1)
      const { level: _level, message: _message, timestamp: _timestamp, ...fields } = finished[0]!
      expect(captured[0]!.annotations).toEqual(fields)
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("a scheduler made inside a span adds its job finished lines to that span as events (effect's tracer logger)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const span = yield* Effect.gen(function*() {
        yield* start([Job.unsafeMake({ name: "traced", every: "1 second", fixedRate: true, handler: Effect.void })])
        yield* advance("1 second", "500 millis")
        return yield* Effect.currentSpan
      }).pipe(Effect.withSpan("app"))
      // Effect's native span keeps its events as [name, time, attributes].
      const events =
        (span as unknown as { readonly events: ReadonlyArray<readonly [string, bigint, Record<string, unknown>]> })
          .events
      const finished = events.filter(([name, , attributes]) => name === "job finished" && attributes.job === "traced")
      expect(finished).toHaveLength(1)
      expect(finished[0]![2]).toMatchObject({ outcome: "success", fire_time: "2026-05-01T00:00:01.000Z" })
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("with the minimum log level at Warning, successes log nothing and a defect still logs job finished at ERROR", () =>
    Effect.gen(function*() {
      logs.length = 0
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      yield* Effect.gen(function*() {
        yield* start([
          Job.unsafeMake({ name: "quiet", every: "1 second", fixedRate: true, handler: Effect.void }),
          Job.unsafeMake({ name: "loud", every: "1 second", fixedRate: true, handler: Effect.die("boom") })
        ])
        yield* advance("2 seconds", "500 millis")
      }).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))
      const finished = logs.filter((l) => l.message === "job finished")
      expect(finished.map((l) => [l.annotations.job, l.level])).toEqual([["loud", "ERROR"], ["loud", "ERROR"]])
      expect(finished[0]!.annotations.outcome).toBe("defect")
    }).pipe(Effect.provide(TestLayers)))

  it.effect("LOG_FORMAT=json writes every log line as one JSON object with the annotations as fields", () =>
    Effect.gen(function*() {
      const written: Array<string> = []
      const original = process.stdout.write
      process.stdout.write = ((chunk: string) => {
        written.push(String(chunk))
        return true
      }) as typeof process.stdout.write
      try {
        yield* Effect.logInfo("job finished").pipe(
          Effect.annotateLogs({ job: "j", outcome: "success", duration_ms: 5 }),
          Effect.provide(Logging.layer({ format: "json", level: "info" }))
        )
        yield* Effect.logDebug("hidden").pipe(Effect.provide(Logging.layer({ format: "json", level: "info" })))
      } finally {
        process.stdout.write = original
      }
      expect(written.length).toBe(1)
      expect(written[0]!.endsWith("\n")).toBe(true)
      const line = JSON.parse(written[0]!)
      expect(line).toMatchObject({
        level: "INFO",
        message: "job finished",
        job: "j",
        outcome: "success",
        duration_ms: 5
      })
      expect(Number.isNaN(Date.parse(line.timestamp))).toBe(false)
    }))
})

describe("Scheduler: spans", () => {
  it.scoped("each run is a job.run span: the handler sees it as its current span, with the run's attributes", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const seen: Array<Tracer.Span> = []
      const children: Array<Tracer.Span> = []
      const handler = Effect.gen(function*() {
        const span = yield* Effect.currentSpan
        seen.push(span)
        yield* Effect.annotateCurrentSpan("rows", 3)
        // A span made by the handler is a child of the run's span.
        yield* Effect.withSpan(
          Effect.flatMap(Effect.currentSpan, (child) => Effect.sync(() => children.push(child))),
          "query"
        )
      }).pipe(Effect.orDie)
      yield* start([Job.unsafeMake({ name: "traced", every: "1 second", fixedRate: true, handler })])
      yield* advance("2 seconds", "500 millis")
      expect(seen.length).toBe(2)
      const [first, second] = seen as [Tracer.Span, Tracer.Span]
      expect(first.name).toBe("job.run")
      expect(first.attributes.get("job")).toBe("traced")
      expect(first.attributes.get("fire_time")).toBe(at("2026-05-01T00:00:01Z"))
      expect(first.attributes.get("node")).toBe("node-a")
      expect(first.attributes.get("fence")).toBe(1)
      expect(typeof first.attributes.get("run_id")).toBe("string")
      expect(first.attributes.get("rows")).toBe(3)
      expect(first.spanId).not.toBe(second.spanId)
      expect(first.traceId).toMatch(/^[0-9a-f]{32}$/)
      expect(first.status._tag).toBe("Ended")
      expect(children[0]!.parent.pipe(Option.map((p) => p.spanId))).toEqual(Option.some(first.spanId))
      expect(children[0]!.traceId).toBe(first.traceId)
    }).pipe(Effect.provide(TestLayers)))

  it.scoped("with a tracer installed, that tracer makes one span per run and sees it ended with the run's exit", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-05-01T00:00:00Z"))
      const made: Array<{ readonly name: string; readonly span: Tracer.Span }> = []
      const ended: Array<{ readonly name: string; readonly exit: string }> = []
      const tracer = Tracer.make({
        span: (name, parent, context, links, startTime, kind) => {
          const attributes = new Map<string, unknown>()
          const span: Tracer.Span = {
            _tag: "Span",
            name,
            spanId: `span-${made.length + 1}`,
            traceId: "trace",
            parent,
            context,
            status: { _tag: "Started", startTime },
            attributes,
            links,
            sampled: true,
            kind,
            end: (_endTime, exit) => void ended.push({ name, exit: exit._tag }),
            attribute: (key, value) => void attributes.set(key, value),
            event: () => undefined,
            addLinks: () => undefined
          }
          made.push({ name, span })
          return span
        },
        context: (f) => f()
      })
      yield* Effect.gen(function*() {
        yield* start([
          Job.unsafeMake({ name: "ok", every: "1 second", fixedRate: true, handler: Effect.void }),
          Job.unsafeMake({ name: "bad", every: "1 second", fixedRate: true, handler: Effect.die("boom") })
        ])
        yield* advance("1 second", "500 millis")
      }).pipe(Effect.withTracer(tracer))
      const runs = made.filter((m) => m.name === "job.run")
      expect(runs.map((m) => m.span.attributes.get("job")).sort()).toEqual(["bad", "ok"])
      expect(runs.every((m) => m.span.attributes.get("fence") === 1)).toBe(true)
      expect(ended.filter((e) => e.name === "job.run").map((e) => e.exit).sort()).toEqual(["Failure", "Success"])
    }).pipe(Effect.provide(TestLayers)))
})
