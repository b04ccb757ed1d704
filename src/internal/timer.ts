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
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { MinHeap } from "./heap.js"

export class Timer<A> {
  private readonly heap = new MinHeap<A>()
  private wake: Deferred.Deferred<void> | undefined = undefined

  /** `maxWaitMs`: the longest single sleep (see the scheduler's `maxTimerWait`). */
  constructor(private readonly maxWaitMs: number) {}

  get size(): number {
    return this.heap.size
  }

  /** Add an entry due at `time` (epoch ms); wakes the loop when it is the new earliest. */
  schedule(time: number, value: A): void {
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
   * Wait for entries and hand each due one to `onDue(value, time, now)`, forever. Never early: the clock is read
   * again after every wake-up (a Node timer may fire ~1 ms before its target), and an entry is handed over once.
   */
  run(onDue: (value: A, time: number, now: number) => Effect.Effect<void>): Effect.Effect<never> {
    const self = this
    return Effect.gen(function*() {
      for (;;) {
        const now = yield* Clock.currentTimeMillis
        for (let top = self.heap.peek(); top !== undefined && top.time <= now; top = self.heap.peek()) {
          self.heap.pop()
          yield* onDue(top.value, top.time, now)
        }
        const top = self.heap.peek()
        const gate = yield* Deferred.make<void>()
        self.wake = gate
        if (top === undefined) {
          yield* Deferred.await(gate)
        } else {
          const wait = Math.min(Math.max(1, top.time - now), self.maxWaitMs)
          yield* Effect.raceFirst(Effect.sleep(wait), Deferred.await(gate))
        }
        self.wake = undefined
      }
    })
  }
}
