/**
 * The run timer: every running job's deadline and lock renewals, one timer and one fiber for all of them. It runs
 * for the scheduler's whole life, also while not leading: manual runs and the shutdown drain need their timeouts
 * and renewals too.
 *
 * A run's entries go stale once its handler has ended (its phase is no longer `running`); they are then ignored.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import type { LockHandle } from "../../JobLockModel.js"
import type { JobStore } from "../../JobStore.js"
import { currentMillis } from "../now.js"
import { Timer, type TimerEntry } from "../timer.js"
import type { InterruptReason, Run } from "./run.js"

/** What the run timer wakes up for: a run's timeout, or its next lock renewal. */
interface Entry {
  readonly run: Run
  readonly kind: "deadline" | "renew"
}

export class Watchdog {
  private readonly timer: Timer<Entry>

  /** `helpers`: where renewals run (interrupted when the scheduler's scope closes). */
  constructor(
    maxWaitMs: number,
    private readonly store: JobStore["Type"],
    private readonly helpers: FiberSet.FiberSet<void, never>
  ) {
    this.timer = new Timer<Entry>(maxWaitMs, (entry) => entry.run.phase !== "running")
  }

  /** A run started at `now`: arm its deadline and, if it holds a lock, its first renewal. Synchronous. */
  watch(run: Run, now: number): void {
    const state = run.state
    this.timer.schedule(now + state.timeoutMs, { run, kind: "deadline" })
    if (Option.isSome(run.lock)) this.timer.schedule(now + state.renewEveryMs, { run, kind: "renew" })
  }

  /** The timer's loop: forked once, for the scheduler's life. */
  get loop(): Effect.Effect<never> {
    return this.timer.run((batch) => this.onDue(batch))
  }

  private onDue(batch: ReadonlyArray<TimerEntry<Entry>>): Effect.Effect<void> {
    return Effect.forEach(batch, ({ value: entry }) => {
      const run = entry.run
      if (run.phase !== "running") return Effect.void
      if (entry.kind === "deadline") return interrupt(run, "timeout")
      return Option.match(run.lock, {
        onNone: () => Effect.void,
        onSome: (lock) => Effect.asVoid(FiberSet.run(this.helpers, this.renew(run, lock)))
      })
    }, { discard: true })
  }

  /**
   * One renewal. Found gone or taken: the run is interrupted with `lock_lost`. The store not answering is retried
   * at the next renewal time until the TTL has certainly run out since the last confirmed renewal; then the lock
   * counts as lost too (someone else may hold it by now).
   */
  private renew(run: Run, lock: LockHandle): Effect.Effect<void> {
    const self = this
    return Effect.gen(function*() {
      const state = run.state
      const ttl = state.job.lock.ttl
      const sentAt = yield* currentMillis
      const renewed = yield* self.store.renewLock(lock, ttl).pipe(
        Effect.catchAllCause((cause) =>
          Effect.as(
            Effect.logWarning("lock renewal failed", cause).pipe(Effect.annotateLogs({ job: state.job.name })),
            undefined
          )
        )
      )
      if (run.phase !== "running") return
      const now = yield* currentMillis
      if (renewed === true) {
        run.renewed(sentAt)
        state.metrics.lockRenewed()
      } else if (renewed === false || now - run.confirmedAt >= Duration.toMillis(ttl)) {
        state.metrics.lockLost()
        return yield* interrupt(run, "lock_lost")
      }
      self.timer.schedule(now + state.renewEveryMs, { run, kind: "renew" })
    })
  }
}

/** Interrupt a run for `reason`, without waiting for it (its end is recorded by the run's own fiber). */
const interrupt = (run: Run, reason: InterruptReason): Effect.Effect<void> =>
  Effect.suspend(() => {
    const fiber = run.interrupt(reason)
    return fiber === undefined ? Effect.void : Fiber.interruptFork(fiber)
  })
