/**
 * One run of a job, from its creation (it counts as running from then: a fire during its `begin` sees the overlap)
 * until it is over. Its phase moves only forward, and only through the methods below, which are the only writers of
 * its fields:
 *
 * ```
 * beginning --start--> running --end--> ended --over--> over
 *     \______________________________________over_____/      (never started: skipped, dropped, store error)
 * ```
 *
 * - `interrupt(reason)` records why the scheduler stops the run. The first reason wins: a run that timed out and
 *   is then replaced while it stops is recorded as a timeout. A reason given while beginning makes the run stop as
 *   soon as it starts; one given once the handler has ended changes nothing.
 * - `over` happens exactly once (it returns whether this call made it), removes the run from its job's running set
 *   and wakes whoever waits for the run.
 *
 * @internal
 */
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type { LockHandle } from "../../JobLockModel.js"
import type { RunKind, RunRecord } from "../../Run.js"
import { newRunId } from "../runId.js"
import type { JobState } from "./jobState.js"

/** Why the scheduler interrupted a run. */
export type InterruptReason = "timeout" | "lock_lost" | "leadership_lost" | "replaced" | "shutdown"

export type Phase = "beginning" | "running" | "ended" | "over"

const noLock: Option.Option<LockHandle> = Option.none()

export class Run {
  /** Tells a run apart from the other work the bookkeeper queues. */
  readonly _tag = "Run"
  readonly runId: string = newRunId()
  private phaseValue: Phase = "beginning"
  private reasonValue: InterruptReason | undefined = undefined
  private fiberValue: Fiber.RuntimeFiber<void, never> | undefined = undefined
  private lockValue: Option.Option<LockHandle> = noLock
  private fenceValue = 0
  private startedAtValue = 0
  private confirmedAtValue = 0
  private beginSentAtValue = 0
  private attempts = 0
  private exitValue: Exit.Exit<void, unknown> | undefined = undefined
  private finishedAtValue = 0
  private waiters: Array<() => void> | undefined = undefined
  private recordValue: RunRecord | undefined = undefined

  constructor(
    readonly state: JobState,
    /** The fire time it runs for (for a manual run, when it was triggered). */
    readonly fireTime: number,
    readonly kind: typeof RunKind.Type
  ) {
    state.addRun(this)
  }

  get phase(): Phase {
    return this.phaseValue
  }
  /** Why the scheduler interrupted it, if it did: the first reason given. */
  get reason(): InterruptReason | undefined {
    return this.reasonValue
  }
  /** The handler's fiber, from just after the fork until the handler ends. */
  get fiber(): Fiber.RuntimeFiber<void, never> | undefined {
    return this.fiberValue
  }
  get lock(): Option.Option<LockHandle> {
    return this.lockValue
  }
  get fence(): number {
    return this.fenceValue
  }
  get startedAt(): number {
    return this.startedAtValue
  }
  /** When the last successful renewal (or the acquisition) was sent. */
  /** When its `begin` was sent (a begin sent before a freeze may be answered after it). */
  get beginSentAt(): number {
    return this.beginSentAtValue
  }
  get confirmedAt(): number {
    return this.confirmedAtValue
  }
  /** The attempt in progress or the last one made: 1 for the first (also when the handler never got to run). */
  get attempt(): number {
    return this.attempts === 0 ? 1 : this.attempts
  }
  /** How the handler ended (once ended). */
  get exit(): Exit.Exit<void, unknown> | undefined {
    return this.exitValue
  }
  get finishedAt(): number {
    return this.finishedAtValue
  }

  /**
   * Ask the run to stop for `reason` (kept only if it is the first). Returns the fiber to interrupt, if the handler
   * is running in one; the caller interrupts it (this module does no effects).
   */
  interrupt(reason: InterruptReason): Fiber.RuntimeFiber<void, never> | undefined {
    const phase = this.phaseValue
    if (phase !== "beginning" && phase !== "running") return undefined
    this.reasonValue ??= reason
    return this.fiberValue
  }

  /**
   * beginning -> running: the `begin` sent at `beginSentAt` took its lock and fence, answered at `now`. False if it
   * was not beginning.
   */
  start(fence: number, lock: Option.Option<LockHandle>, now: number, beginSentAt: number = now): boolean {
    if (this.phaseValue !== "beginning") return false
    this.phaseValue = "running"
    this.fenceValue = fence
    this.lockValue = lock
    this.beginSentAtValue = beginSentAt
    this.startedAtValue = now
    this.confirmedAtValue = now
    return true
  }

  /**
   * The handler's fiber, once forked. It may have ended already (a handler that ends without yielding ends inside
   * the fork): then it is not kept. True if the run was interrupted before the fiber was known, so that the caller
   * interrupts it now.
   */
  attach(fiber: Fiber.RuntimeFiber<void, never>): boolean {
    if (this.phaseValue !== "running") return false
    this.fiberValue = fiber
    return this.reasonValue !== undefined
  }

  /** A renewal sent at `sentAt` was confirmed. */
  renewed(sentAt: number): void {
    if (this.phaseValue === "running") this.confirmedAtValue = sentAt
  }

  /** The handler begins an attempt; returns its number (1, 2, ...). */
  nextAttempt(): number {
    return ++this.attempts
  }

  /**
   * running -> ended: the handler ended with `exit` at `now`. Nothing interrupts it any more; dropping the fiber lets
   * it (its context, refs, span) be collected young instead of being copied by every scavenge until the bookkeeping
   * is done. False if it was not running.
   */
  end(exit: Exit.Exit<void, unknown>, now: number): boolean {
    if (this.phaseValue !== "running") return false
    this.phaseValue = "ended"
    this.fiberValue = undefined
    // A success carries nothing the record uses (its value is void): the shared `Exit.void` stands in for the fiber's,
    // so that a batch's ended runs do not each hold an exit until their bookkeeping.
    this.exitValue = Exit.isSuccess(exit) ? Exit.void : exit
    this.finishedAtValue = now
    return true
  }

  /** Its record, once over with its bookkeeping done (none if it never started or its bookkeeping failed). */
  get record(): RunRecord | undefined {
    return this.recordValue
  }

  /**
   * beginning | ended -> over: its bookkeeping is done (record written, lock released), or it never started. True
   * for the one call that made it over.
   */
  over(record?: RunRecord): boolean {
    const phase = this.phaseValue
    if (phase !== "beginning" && phase !== "ended") return false
    this.phaseValue = "over"
    this.recordValue = record
    this.state.deleteRun(this)
    const waiters = this.waiters
    this.waiters = undefined
    if (waiters !== undefined) { for (const wake of waiters) wake() }
    return true
  }

  /** Call `wake` once the run is over; false (and `wake` is not kept) if it is over already. */
  onOver(wake: () => void): boolean {
    if (this.phaseValue === "over") return false
    ;(this.waiters ??= []).push(wake)
    return true
  }
}
