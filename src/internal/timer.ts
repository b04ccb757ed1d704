/**
 * One timer over many due times: a min-heap and one fiber that waits for the earliest entry on the effect `Clock`
 * (so `TestClock` drives it) and hands every due entry to a callback. The scheduler uses one for planned fires and
 * one for its runs' deadlines and lock renewals, instead of a sleeping fiber per job or per run.
 *
 * Entries are never removed from the middle: a caller whose entry went stale (a job re-planned, a run finished)
 * recognises it in the callback and ignores it.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import { type HeapEntry, MinHeap } from "./heap.js"
import { currentMillis } from "./now.js"

/** One due entry: its value and the time it was due at (epoch ms). */
export type TimerEntry<A> = HeapEntry<A>

/** Resumes from the event loop's check phase: after its timers and I/O, and after the fibers queued now. */
const yieldToEventLoop: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** Below this many entries the heap is never swept: sweeping small heaps would cost more than it frees. */
const MIN_SWEEP_SIZE = 1024

export class Timer<A> {
  private readonly heap = new MinHeap<A>()
  private wake: Deferred.Deferred<void> | undefined = undefined

  /** The heap is swept of stale entries when it reaches this size (then set to twice what is left). */
  private sweepAt = MIN_SWEEP_SIZE

  /**
   * `maxWaitMs`: the longest single sleep (see the scheduler's `maxTimerWait`). `isStale`: whether an entry no
   * longer matters; stale entries are swept when the heap has doubled, so that entries of finished runs (a
   * 5-minute deadline for a 1 ms run) do not pile up between their scheduling and their due time.
   */
  constructor(
    private readonly maxWaitMs: number,
    private readonly isStale: (value: A) => boolean,
    /**
     * The most entries handed over in one call. When more are due, the oldest go first (the heap's order) and the
     * loop yields to the other fibers before the next call, so that work queued behind a batch (the bookkeeping of
     * the runs just started) is done in between: under overload every due entry is reached in turn, oldest first,
     * and what waits between two calls stays bounded.
     */
    private readonly maxBatch: number = Number.POSITIVE_INFINITY
  ) {}

  get size(): number {
    return this.heap.size
  }

  /** Add an entry due at `time` (epoch ms); wakes the loop when it is the new earliest. */
  schedule(time: number, value: A): void {
    if (this.heap.size >= this.sweepAt) {
      this.heap.retain((entry) => !this.isStale(entry))
      this.sweepAt = Math.max(MIN_SWEEP_SIZE, 2 * this.heap.size)
    }
    const top = this.heap.peek()
    this.heap.push({ time, value })
    if ((top === undefined || time < top.time) && this.wake !== undefined) {
      Deferred.unsafeDone(this.wake, Exit.void)
    }
  }

  clear(): void {
    this.heap.clear()
  }

  /**
   * Wait for entries and hand all entries due at one wake-up to `onDue(batch, now)` in one call, forever. Never
   * early: the clock is read again after every wake-up (a Node timer may fire ~1 ms before its target), and an entry
   * is handed over once. One call per wake-up lets a caller treat simultaneous entries as one batch (one leadership
   * check, one store round trip) instead of paying per entry.
   */
  run(onDue: (batch: ReadonlyArray<TimerEntry<A>>, now: number) => Effect.Effect<void>): Effect.Effect<never> {
    const self = this
    return Effect.gen(function*() {
      for (;;) {
        const now = yield* currentMillis
        let top = self.heap.peek()
        if (top !== undefined && top.time <= now) {
          const batch: Array<TimerEntry<A>> = []
          const max = self.maxBatch
          for (; top !== undefined && top.time <= now && batch.length < max; top = self.heap.peek()) {
            self.heap.pop()
            batch.push(top)
          }
          yield* onDue(batch, now)
          // A full batch may have left due entries behind: let the work it queued run first, and the event loop's
          // timers and I/O (a yield to effect's scheduler alone would run only other fibers, for many batches).
          if (batch.length >= max) yield* yieldToEventLoop
          // Entries that came due during the dispatch are handed over at once, from a fresh clock reading.
          continue
        }
        // A stale entry at the top is dropped instead of waited for: a finished run's deadline or renewal would
        // otherwise wake the loop for nothing (and cost a round of the TestClock in tests).
        if (top !== undefined && self.isStale(top.value)) {
          self.heap.pop()
          continue
        }
        const gate = yield* Deferred.make<void>()
        self.wake = gate
        if (top === undefined) {
          yield* Deferred.await(gate)
        } else {
          // The wait is measured when the sleeping fiber arms its timer, not here: `raceFirst` starts its fibers on the
          // scheduler, behind whatever other fibers are queued (a batch of bookkeeping), and a wait computed before
          // that would make the wake-up late by as long as they ran.
          // One sleeping fiber opens the gate when its sleep ends; an earlier entry opens it first and the sleeper is
          // interrupted without waiting for it (a race would cost two fibers and a wait for the loser).
          const target = top.time
          const sleeper = yield* Effect.fork(Effect.flatMap(
            currentMillis,
            (armedAt) =>
              Effect.zipRight(
                Effect.sleep(Math.min(Math.max(1, target - armedAt), self.maxWaitMs)),
                Effect.sync(() => Deferred.unsafeDone(gate, Exit.void))
              )
          ))
          // Interrupted while waiting (leadership lost), this fiber's end interrupts its child, the sleeper.
          yield* Deferred.await(gate)
          if (sleeper.unsafePoll() === null) sleeper.unsafeInterruptAsFork(FiberId.none)
        }
        self.wake = undefined
      }
    })
  }
}
