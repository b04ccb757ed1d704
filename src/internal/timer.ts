/**
 * One timer over many due times: a min-heap and one fiber that waits for the earliest entry on the effect `Clock`
 * (so `TestClock` drives it) and hands every due entry to a callback. The scheduler uses one for planned fires and
 * one for its runs' deadlines and lock renewals, instead of a sleeping fiber per job or per run.
 *
 * Two kinds: `Timer`, entries `{ time, value }` never removed from the middle (a caller whose entry went stale, a run
 * finished, recognises it in the callback and ignores it); `SlotTimer`, items due at most once each that are their
 * own heap entries and move in place (a job's planned fire).
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

/**
 * The loop both timers share: wait for the earliest due time on the effect `Clock`, hand every entry due at one
 * wake-up over in one call. Subclasses keep the entries.
 */
abstract class TimerLoop<B> {
  private wake: Deferred.Deferred<void> | undefined = undefined

  /**
   * `maxWaitMs`: the longest single sleep (see the scheduler's `maxTimerWait`). `maxBatch`: the most entries handed
   * over in one call. When more are due, the oldest go first (the heap's order) and the loop yields to the other
   * fibers before the next call, so that work queued behind a batch (the bookkeeping of the runs just started) is
   * done in between: under overload every due entry is reached in turn, oldest first, and what waits between two
   * calls stays bounded.
   */
  constructor(private readonly maxWaitMs: number, private readonly maxBatch: number) {}

  /** The due time of the earliest entry, if any. */
  protected abstract peekTime(): number | undefined
  /** Remove the earliest entry and add it to `batch`. */
  protected abstract popInto(batch: Array<B>): void
  /** Drop the earliest entry if it is stale; whether one was dropped. */
  protected abstract dropStaleTop(): boolean

  /** Wake the loop because an entry due at `time` was added before the earliest, `top` (none: the heap was empty). */
  protected added(time: number, top: number | undefined): void {
    if ((top === undefined || time < top) && this.wake !== undefined) Deferred.unsafeDone(this.wake, Exit.void)
  }

  /**
   * Wait for entries and hand all entries due at one wake-up to `onDue(batch, now)` in one call, forever. Never
   * early: the clock is read again after every wake-up (a Node timer may fire ~1 ms before its target), and an entry
   * is handed over once. One call per wake-up lets a caller treat simultaneous entries as one batch (one leadership
   * check, one store round trip) instead of paying per entry. `onDue` itself is called synchronously, right after the
   * batch was taken off the heap.
   */
  run(onDue: (batch: ReadonlyArray<B>, now: number) => Effect.Effect<void>): Effect.Effect<never> {
    const self = this
    return Effect.gen(function*() {
      for (;;) {
        const now = yield* currentMillis
        let top = self.peekTime()
        if (top !== undefined && top <= now) {
          const batch: Array<B> = []
          const max = self.maxBatch
          for (; top !== undefined && top <= now && batch.length < max; top = self.peekTime()) self.popInto(batch)
          yield* onDue(batch, now)
          // A full batch may have left due entries behind: let the work it queued run first, and the event loop's
          // timers and I/O (a yield to effect's scheduler alone would run only other fibers, for many batches).
          if (batch.length >= max) yield* yieldToEventLoop
          // Entries that came due during the dispatch are handed over at once, from a fresh clock reading.
          continue
        }
        // A stale entry at the top is dropped instead of waited for: a finished run's deadline or renewal would
        // otherwise wake the loop for nothing (and cost a round of the TestClock in tests).
        if (top !== undefined && self.dropStaleTop()) continue
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
          const target = top
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

/**
 * A timer over entries `{ time, value }`, any number per value. Entries are never removed from the middle: a
 * caller whose entry went stale (a run finished) recognises it in the callback and ignores it.
 */
export class Timer<A> extends TimerLoop<TimerEntry<A>> {
  private readonly heap = new MinHeap<A>()

  /** The heap is swept of stale entries when it reaches this size (then set to twice what is left). */
  private sweepAt = MIN_SWEEP_SIZE

  /**
   * `isStale`: whether an entry no longer matters; stale entries are swept when the heap has doubled, so that
   * entries of finished runs (a 5-minute deadline for a 1 ms run) do not pile up between their scheduling and their
   * due time. See `TimerLoop` for `maxWaitMs` and `maxBatch`.
   */
  constructor(
    maxWaitMs: number,
    private readonly isStale: (value: A) => boolean,
    maxBatch: number = Number.POSITIVE_INFINITY
  ) {
    super(maxWaitMs, maxBatch)
  }

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
    this.added(time, top?.time)
  }

  clear(): void {
    this.heap.clear()
  }

  protected peekTime(): number | undefined {
    return this.heap.peek()?.time
  }

  protected popInto(batch: Array<TimerEntry<A>>): void {
    batch.push(this.heap.pop()!)
  }

  protected dropStaleTop(): boolean {
    const top = this.heap.peek()
    if (top === undefined || !this.isStale(top.value)) return false
    this.heap.pop()
    return true
  }
}

/**
 * What `SlotTimer` keeps its place in: the item itself is the heap entry (no entry object per planned time), due
 * at `nextFire`, at index `timerIndex` of the heap (-1: not in it). Both are written only through the timer while
 * the item is in it.
 */
export interface TimerSlot {
  timerIndex: number
  nextFire: number | undefined
}

/**
 * A timer over items that are due at most once each (a job's planned fire): the items are the heap's entries and
 * know their place in it, so that moving an item's time or taking it out is done in place (O(log n)), and the heap
 * holds nothing stale. Items handed over are out of the heap, their `nextFire` still the time they were due at.
 */
export class SlotTimer<A extends TimerSlot> extends TimerLoop<A> {
  private readonly items: Array<A> = []

  constructor(maxWaitMs: number, maxBatch: number = Number.POSITIVE_INFINITY) {
    super(maxWaitMs, maxBatch)
  }

  get size(): number {
    return this.items.length
  }

  /** Make `item` due at `time` (epoch ms): added, or moved if it is in already. Wakes the loop when it is the new earliest. */
  schedule(item: A, time: number): void {
    const top = this.items[0]?.nextFire
    const at = item.timerIndex
    const old = item.nextFire
    item.nextFire = time
    if (at < 0) {
      item.timerIndex = this.items.length
      this.items.push(item)
      this.siftUp(item.timerIndex)
    } else if (old === undefined || time < old) {
      this.siftUp(at)
    } else if (time > old) {
      this.siftDown(at)
    }
    this.added(time, top)
  }

  /** Take `item` out (no-op when it is not in); its `nextFire` is set to `nextFire`. */
  remove(item: A, nextFire: number | undefined = undefined): void {
    const at = item.timerIndex
    item.nextFire = nextFire
    if (at < 0) return
    item.timerIndex = -1
    const items = this.items
    const last = items.pop()!
    if (at === items.length) return
    items[at] = last
    last.timerIndex = at
    // The moved item may belong above or below its new place.
    this.siftUp(at)
    if (last.timerIndex === at) this.siftDown(at)
  }

  /** Take every item out; each item's `nextFire` is left to the caller. */
  clear(): void {
    for (const item of this.items) item.timerIndex = -1
    this.items.length = 0
  }

  protected peekTime(): number | undefined {
    return this.items[0]?.nextFire
  }

  protected popInto(batch: Array<A>): void {
    const items = this.items
    const top = items[0]!
    top.timerIndex = -1
    const last = items.pop()!
    if (items.length > 0) {
      items[0] = last
      last.timerIndex = 0
      this.siftDown(0)
    }
    batch.push(top)
  }

  protected dropStaleTop(): boolean {
    return false
  }

  private siftUp(start: number): void {
    const items = this.items
    const item = items[start]!
    const time = item.nextFire!
    let i = start
    while (i > 0) {
      const parent = (i - 1) >> 1
      const above = items[parent]!
      if (above.nextFire! <= time) break
      items[i] = above
      above.timerIndex = i
      i = parent
    }
    items[i] = item
    item.timerIndex = i
  }

  private siftDown(start: number): void {
    const items = this.items
    const n = items.length
    const item = items[start]!
    const time = item.nextFire!
    let i = start
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && items[right]!.nextFire! < items[left]!.nextFire! ? right : left
      const below = items[child]!
      if (below.nextFire! >= time) break
      items[i] = below
      below.timerIndex = i
      i = child
    }
    items[i] = item
    item.timerIndex = i
  }
}
