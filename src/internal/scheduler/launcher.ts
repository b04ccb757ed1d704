/**
 * Begin and start: turns runs that are `beginning` into running fibers. `begin` (pause, slot, lock, fence; one
 * store call per batch) and the start of every run it let through happen in one uninterruptible step, so nothing
 * can strike between taking a lock and starting the run that releases it. Runs that may not begin (not leading,
 * shutting down, skipped by the store) are over at once.
 *
 * Once shutdown has begun no run begins: a fire whose run waited for the runs it replaces, and a manual trigger,
 * are refused then.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type { StoreError } from "../../Errors.js"
import { type BeginRequest, type BeginResult, type JobStore } from "../../JobStore.js"
import * as JobStoreM from "../../JobStore.js"
import type { LeaderElection } from "../../LeaderElection.js"
import { RunContext } from "../../Run.js"
import { currentMillis } from "../now.js"
import { Bookkeeper } from "./bookkeeper.js"
import type { JobState } from "./jobState.js"
import { Run } from "./run.js"
import type { RunForker } from "./runFork.js"
import type { Watchdog } from "./watchdog.js"

/** The scheduler's flags, as the launcher reads them (the scheduler writes them). */
export interface Flags {
  readonly leading: boolean
  /** The term of the latest leadership this node gained (read only while `leading`). */
  readonly term: number | undefined
  readonly shuttingDown: boolean
}

/** What `begin` answered for a run (a missing answer is a store error). */
export type BeginOutcome = Either.Either<BeginResult, StoreError> | undefined

export class Launcher {
  constructor(
    private readonly nodeId: string,
    private readonly store: JobStore["Type"],
    private readonly election: LeaderElection["Type"],
    private readonly flags: Flags,
    private readonly forker: RunForker,
    private readonly watchdog: Watchdog,
    private readonly bookkeeper: Bookkeeper
  ) {}

  /**
   * Scheduled runs of one wake-up of the fire timer. Leadership is checked at the last moment, once per batch: a
   * node that woke from a freeze must not start anything. Call it uninterruptibly from the runs' creation (they
   * count as running from then).
   */
  scheduled(list: ReadonlyArray<Run>): Effect.Effect<void> {
    return Effect.flatMap(this.election.isLeader, (isLeader) => {
      const refused = this.flags.shuttingDown ? "shutting down" : isLeader ? undefined : "not leading"
      if (refused === undefined) return Effect.asVoid(this.beginAndStart(list))
      const now = this.forker.clock.unsafeCurrentTimeMillis()
      for (const run of list) this.bookkeeper.drop(run, refused, now)
      return Effect.void
    })
  }

  /**
   * A scheduled run that replaces `replaced` (overlap `replace`, already asked to stop): it begins once they are
   * over, their locks released, unless this node stopped leading or began shutting down meanwhile. Returns at once;
   * the wait runs in `helpers`' fiber.
   */
  replacing(
    run: Run,
    replaced: ReadonlyArray<Run>,
    fibers: ReadonlyArray<Fiber.RuntimeFiber<void, never>>
  ): Effect.Effect<void, never, never> {
    return Effect.zipRight(
      Effect.zipRight(Fiber.interruptAll(fibers), Bookkeeper.awaitOver(replaced)),
      this.scheduled([run])
    ).pipe(
      // Interrupted while waiting (only when the scheduler's scope is closing): the run never begins, but it must
      // still be over, or it would count as running forever.
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          const now = this.forker.clock.unsafeCurrentTimeMillis()
          if (run.phase === "beginning") this.bookkeeper.drop(run, "interrupted", now)
        })
      )
    )
  }

  /**
   * A manual run of `state`, now: created, begun and started in one uninterruptible step. `input` is handed to its
   * handler as `RunContext.input`. Undefined once the scheduler is shutting down: no run begins then.
   */
  manual(
    state: JobState,
    input?: unknown
  ): Effect.Effect<{ readonly run: Run; readonly result: BeginOutcome } | undefined> {
    return Effect.uninterruptible(Effect.flatMap(currentMillis, (now) => {
      const run = new Run(state, now, "manual")
      if (input !== undefined) this.inputs.set(run, input)
      if (this.flags.shuttingDown) {
        this.bookkeeper.drop(run, "shutting down", now)
        return Effect.succeed(undefined)
      }
      return Effect.map(this.beginAndStart([run]), ([result]) => ({ run, result }))
    }))
  }

  /**
   * A scheduled run of `state` for the past fire time `fireTime` (a backfill): its slot is claimed (for `slotTtl`,
   * so that a later backfill of the same window finds it), only while this node leads.
   */
  backfill(
    state: JobState,
    fireTime: number,
    slotTtl: Duration.Duration
  ): Effect.Effect<{ readonly run: Run; readonly result: BeginOutcome } | undefined> {
    return Effect.uninterruptible(Effect.suspend(() => {
      if (!this.flags.leading || this.flags.shuttingDown) return Effect.succeed(undefined)
      const run = new Run(state, fireTime, "scheduled")
      this.slotTtls.set(run, slotTtl)
      return Effect.map(this.beginAndStart([run]), ([result]) => ({ run, result }))
    }))
  }

  /** Slot TTLs of backfill runs, which outlive the usual one. */
  private readonly slotTtls = new WeakMap<Run, Duration.Duration>()

  /** `begin` all of `list` in one store call and start those that may run. */
  private beginAndStart(list: ReadonlyArray<Run>): Effect.Effect<ReadonlyArray<BeginOutcome>> {
    return Effect.uninterruptible(Effect.suspend(() => {
      // When the attempt was made: a skip the store gives is logged later (after its reply, or its timeout), and
      // readers judging when a node tried to run something (a frozen node must not) need the send time.
      const sentAt = this.forker.clock.unsafeCurrentTimeMillis()
      const begun = Effect.zip(
        JobStoreM.beginMany(this.store, list.map((run) => this.requestOf(run))),
        this.election.isLeader
      )
      return Effect.map(begun, ([results, stillLeading]) => {
        const now = this.forker.clock.unsafeCurrentTimeMillis()
        const begin_sent_at = new Date(sentAt).toISOString()
        for (let i = 0; i < list.length; i++) {
          const run = list[i]
          const result = results[i]
          if (result === undefined || Either.isLeft(result)) {
            const reason = result === undefined ? "no result" : result.left.message
            this.bookkeeper.skip(run.state, run.fireTime, "store_error", { error: reason, begin_sent_at })
            this.bookkeeper.complete(run, now)
          } else if (result.right._tag === "Skipped") {
            this.bookkeeper.skip(run.state, run.fireTime, result.right.reason, { begin_sent_at })
            this.bookkeeper.complete(run, now)
          } else {
            // A begin sent before a freeze (SIGSTOP, a long GC pause) can be answered after it, when this node no
            // longer leads: the run then ends at its start, its handler never runs, its lock is released.
            if (run.kind === "scheduled" && !stillLeading) run.interrupt("leadership_lost")
            this.start(run, result.right, now, sentAt)
          }
        }
        return results
      })
    }))
  }

  private requestOf(run: Run): BeginRequest {
    const state = run.state
    const begin = state.begin
    const backfillTtl = run.kind === "scheduled" ? this.slotTtls.get(run) : undefined
    return {
      job: state.job.name,
      fireTime: run.fireTime,
      runId: run.runId,
      nodeId: this.nodeId,
      slot: run.kind !== "scheduled"
        ? Option.none()
        : backfillTtl === undefined
        ? begin.slot
        : Option.some({ ttl: backfillTtl }),
      lock: begin.lock,
      // A begin made while leading carries the term: its lock then takes over one left by an older term.
      term: this.flags.leading ? this.flags.term : undefined,
      statusTtl: begin.statusTtl
    }
  }

  /** The inputs of manual runs that were given one, until they start. */
  private readonly inputs = new WeakMap<Run, unknown>()

  /** Start a begun run: its fiber, then its deadline and renewals on the run timer. Synchronous. */
  private start(
    run: Run,
    started: Extract<BeginResult, { _tag: "Started" }>,
    now: number,
    beginSentAt: number
  ): void {
    run.start(started.fence, started.lock, now, beginSentAt)
    if (run.reason !== undefined) {
      // Asked to stop while it was beginning (leadership lost, shutdown, replaced): it ends without running the
      // handler, and its end is recorded (lock released) like any other.
      this.ended(Exit.interrupt(FiberId.none), now, run)
      return
    }
    const job = run.state.job
    const input = this.inputs.get(run)
    const runContext: RunContext["Type"] = {
      job: job.name,
      fireTime: new Date(run.fireTime),
      runId: run.runId,
      attempt: 1,
      nodeId: this.nodeId,
      fence: started.fence,
      kind: run.kind,
      ...(input === undefined ? {} : { input })
    }
    const fiber = this.forker.fork(runContext, this.handlerOf(run, runContext), this.onEnded, run)
    if (run.attach(fiber)) this.forker.interrupt(fiber)
    // Its deadline and renewals, from its start, unless it ended inside the fork (a handler that never yielded): such
    // a run needs neither, and its entries would only wait in the run timer until their time.
    if (run.phase === "running") this.watchdog.watch(run, now)
  }

  /** The handler of one run; retried runs get a fresh `RunContext` (its `attempt`) per retry. */
  private handlerOf(run: Run, runContext: RunContext["Type"]): Effect.Effect<void, unknown, RunContext> {
    const job = run.state.job
    if (job.retry.times === 0) return job.handler
    return Effect.suspend(() => {
      const attempt = run.nextAttempt()
      return attempt === 1
        ? job.handler
        : Effect.provideService(job.handler, RunContext, { ...runContext, attempt })
    }).pipe(
      Effect.retry({
        times: job.retry.times,
        schedule: run.state.retrySchedule,
        while: (error) => !job.isExpected(error)
      })
    )
  }

  private ended(exit: Exit.Exit<void, unknown>, now: number, run: Run): void {
    if (run.end(exit, now)) this.bookkeeper.ended(run)
  }

  /** `ended`, bound once: handed to every run's fiber. */
  private readonly onEnded = (exit: Exit.Exit<void, unknown>, now: number, run: Run): void => this.ended(exit, now, run)
}
