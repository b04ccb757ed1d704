import { describe, expect, it } from "@effect/vitest"
import { Effect, Equal, Exit, Fiber, Option, Schema } from "effect"
import { recordOf } from "../src/internal/scheduler/bookkeeper.js"
import { type AnyJob, JobState } from "../src/internal/scheduler/jobState.js"
import { Run } from "../src/internal/scheduler/run.js"
import * as Job from "../src/Job.js"
import type { LockHandle } from "../src/JobLockModel.js"
import { RunRecord } from "../src/Run.js"

// One run's phases (beginning -> running -> ended -> over, or beginning -> over) and its interrupt reason, driven
// by hand: each transition is allowed only from its phase, `over` happens once, the first reason wins.

const state = () =>
  new JobState(Job.unsafeMake({ name: "job", every: "10 seconds", handler: Effect.void }) as AnyJob, 1_000)
const lock: Option.Option<LockHandle> = Option.some({ key: "job", token: "t" })

/** A real fiber to attach (never run to completion: interrupted by the test's end). */
const fiber = () => Effect.runFork(Effect.never)

describe("Run: phases", () => {
  it("a run counts as running from its creation until it is over, and is over once", () => {
    const job = state()
    const run = new Run(job, 10_000, "scheduled")
    expect(run.phase).toBe("beginning")
    expect(job.running.includes(run)).toBe(true)
    expect(run.start(7, lock, 10_005)).toBe(true)
    expect([run.phase, run.fence, run.startedAt, run.confirmedAt]).toEqual(["running", 7, 10_005, 10_005])
    expect(run.lock).toBe(lock)
    // Not over while running: its handler must end first.
    expect(run.over()).toBe(false)
    expect(job.running.includes(run)).toBe(true)
    expect(run.end(Exit.void, 10_050)).toBe(true)
    expect([run.phase, run.finishedAt]).toEqual(["ended", 10_050])
    expect(Exit.isSuccess(run.exit!)).toBe(true)
    expect(job.running.includes(run)).toBe(true)
    expect(run.over()).toBe(true)
    expect(run.phase).toBe("over")
    expect(job.running.includes(run)).toBe(false)
    // Every further transition is refused.
    expect(run.over()).toBe(false)
    expect(run.start(8, lock, 20_000)).toBe(false)
    expect(run.end(Exit.void, 20_000)).toBe(false)
    expect(run.fence).toBe(7)
  })

  it("an ended run keeps a success as the shared Exit.void, and any other exit as it came", () => {
    const ok = new Run(state(), 10_000, "scheduled")
    ok.start(1, lock, 10_000)
    const success = Exit.succeed(undefined)
    expect(ok.end(success, 10_001)).toBe(true)
    expect(ok.exit).toBe(Exit.void)
    expect(ok.exit).not.toBe(success)
    const failed = new Run(state(), 10_000, "scheduled")
    failed.start(1, lock, 10_000)
    const failure = Exit.fail("boom")
    failed.end(failure, 10_001)
    expect(failed.exit).toBe(failure)
  })

  it("a job counts its runs in progress one, two at once, and back to none, keeping nothing after the last", () => {
    const job = state()
    const first = new Run(job, 10_000, "scheduled")
    const second = new Run(job, 11_000, "manual")
    expect([job.runningCount, job.running]).toEqual([2, [first, second]])
    expect(first.over()).toBe(true)
    expect([job.runningCount, job.running]).toEqual([1, [second]])
    const third = new Run(job, 12_000, "scheduled")
    expect([job.runningCount, job.running]).toEqual([2, [second, third]])
    expect(second.over()).toBe(true)
    expect(third.over()).toBe(true)
    expect([job.runningCount, job.running]).toEqual([0, []])
    // A run over twice, or one of another job, changes nothing.
    expect(third.over()).toBe(false)
    job.deleteRun(new Run(state(), 13_000, "scheduled"))
    expect(job.runningCount).toBe(0)
  })

  it("a run that never started goes from beginning straight to over", () => {
    const job = state()
    const run = new Run(job, 10_000, "manual")
    expect(run.end(Exit.void, 10_001)).toBe(false)
    expect(run.phase).toBe("beginning")
    expect(run.over()).toBe(true)
    expect(job.runningCount).toBe(0)
    expect(run.start(1, lock, 10_002)).toBe(false)
  })

  it("waiters are woken once, when the run is over; a waiter on a run already over is not kept", () => {
    const run = new Run(state(), 10_000, "scheduled")
    let woken = 0
    expect(run.onOver(() => woken++)).toBe(true)
    expect(run.onOver(() => woken++)).toBe(true)
    run.start(1, lock, 10_000)
    run.end(Exit.void, 10_001)
    expect(woken).toBe(0)
    run.over()
    expect(woken).toBe(2)
    run.over()
    expect(woken).toBe(2)
    expect(run.onOver(() => woken++)).toBe(false)
    expect(woken).toBe(2)
  })

  it("the fiber is kept from attach until the handler ends; a fiber that ended inside the fork is not kept", () => {
    const run = new Run(state(), 10_000, "scheduled")
    const f = fiber()
    // No fiber before the run started.
    expect(run.attach(f)).toBe(false)
    expect(run.fiber).toBeUndefined()
    run.start(1, lock, 10_000)
    expect(run.attach(f)).toBe(false)
    expect(run.fiber).toBe(f)
    run.end(Exit.void, 10_001)
    expect(run.fiber).toBeUndefined()
    // A handler that ended before its fiber was known (it never yielded).
    const quick = new Run(state(), 10_000, "scheduled")
    quick.start(1, lock, 10_000)
    quick.end(Exit.void, 10_000)
    expect(quick.attach(f)).toBe(false)
    expect(quick.fiber).toBeUndefined()
    Effect.runFork(Fiber.interrupt(f))
  })

  it("renewals move confirmedAt only while running; attempts count up from 1", () => {
    const run = new Run(state(), 10_000, "scheduled")
    run.renewed(5)
    expect(run.confirmedAt).toBe(0)
    expect(run.attempt).toBe(1)
    run.start(1, lock, 10_000)
    run.renewed(20_000)
    expect(run.confirmedAt).toBe(20_000)
    expect([run.nextAttempt(), run.nextAttempt(), run.attempt]).toEqual([1, 2, 2])
    run.end(Exit.void, 30_000)
    run.renewed(40_000)
    expect(run.confirmedAt).toBe(20_000)
  })
})

describe("Run: interrupt reasons", () => {
  it("the first reason wins: a timeout stays a timeout when the run is then replaced, lost, or shut down", () => {
    const run = new Run(state(), 10_000, "scheduled")
    const f = fiber()
    run.start(1, lock, 10_000)
    run.attach(f)
    expect(run.interrupt("timeout")).toBe(f)
    // Later reasons still hand back the fiber (interrupting it again is harmless) but do not change the reason.
    expect(run.interrupt("replaced")).toBe(f)
    expect(run.interrupt("leadership_lost")).toBe(f)
    expect(run.interrupt("shutdown")).toBe(f)
    expect(run.reason).toBe("timeout")
    Effect.runFork(Fiber.interrupt(f))
  })

  it("a reason given while beginning is kept, no fiber is handed back, and attach reports it", () => {
    const run = new Run(state(), 10_000, "scheduled")
    expect(run.interrupt("leadership_lost")).toBeUndefined()
    expect(run.interrupt("replaced")).toBeUndefined()
    expect(run.reason).toBe("leadership_lost")
    run.start(1, lock, 10_000)
    const f = fiber()
    // The launcher interrupts the fiber at once when attach says so.
    expect(run.attach(f)).toBe(true)
    Effect.runFork(Fiber.interrupt(f))
  })

  it("once the handler has ended, or the run is over, a reason changes nothing", () => {
    const ended = new Run(state(), 10_000, "scheduled")
    ended.start(1, lock, 10_000)
    ended.end(Exit.void, 10_001)
    expect(ended.interrupt("replaced")).toBeUndefined()
    expect(ended.reason).toBeUndefined()
    const over = new Run(state(), 10_000, "scheduled")
    over.over()
    expect(over.interrupt("shutdown")).toBeUndefined()
    expect(over.reason).toBeUndefined()
  })
})

describe("Run: its record", () => {
  it("the bookkeeper's record of a run is the record the class constructor makes from the same fields", () => {
    for (const failed of [true, false]) {
      const job = state()
      const run = new Run(job, 1_000, "scheduled")
      run.start(3, lock, 1_005)
      const error = { _tag: "SystemError", code: "DB", message: "down" }
      run.end(failed ? Exit.fail(error) : Exit.void, 1_020)
      const fields = {
        runId: run.runId,
        job: "job",
        kind: "scheduled" as const,
        fireTime: new Date(1_000),
        startedAt: new Date(1_005),
        finishedAt: new Date(1_020),
        durationMs: 15,
        node: "node-a",
        attempt: 1,
        fence: 3,
        ...(failed
          ? { outcome: "system_error" as const, error: { tag: "SystemError", code: "DB", message: "down" } }
          : { outcome: "success" as const })
      }
      const fast = recordOf(run, "node-a")
      const made = new RunRecord(fields)
      expect(fast).toBeInstanceOf(RunRecord)
      // Before any Equal.equals, which caches a hash on each object as a symbol key.
      expect(Reflect.ownKeys(fast)).toEqual(Reflect.ownKeys(made))
      // Equal by field (a nested error object is compared by reference: the record's own is given to the other).
      expect(fast.error).toEqual(made.error)
      expect(Equal.equals(fast, new RunRecord({ ...fields, ...(failed ? { error: fast.error } : {}) }, true))).toBe(
        true
      )
      expect(Schema.is(RunRecord)(fast)).toBe(true)
      expect(Schema.encodeSync(RunRecord)(fast)).toEqual(Schema.encodeSync(RunRecord)(made))
      expect(Equal.equals(fast, new RunRecord({ ...fields, fence: 4 }, true))).toBe(false)
    }
  })
})
