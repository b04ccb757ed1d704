import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, FastCheck, Fiber, TestClock } from "effect"
import { MinHeap } from "../src/internal/heap.js"
import { SlotTimer, Timer, type TimerSlot } from "../src/internal/timer.js"

describe("MinHeap", () => {
  it("pops entries in time order, also after retain() dropped some", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.array(FastCheck.integer({ min: 0, max: 1000 }), { maxLength: 300 }), (times) => {
        const heap = new MinHeap<number>()
        times.forEach((time, i) => heap.push({ time, value: i }))
        heap.retain((i) => i % 3 !== 0)
        const out: Array<number> = []
        for (let e = heap.pop(); e !== undefined; e = heap.pop()) out.push(e.time)
        const expected = times.filter((_, i) => i % 3 !== 0).sort((a, b) => a - b)
        expect(out).toEqual(expected)
      })
    )
  })
})

describe("Timer", () => {
  it.scoped("hands each entry over once, never before its time, in time order", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_000)
      const seen: Array<[string, number, number]> = []
      const timer = new Timer<string>(60_000, () => false)
      timer.schedule(5_000, "b")
      timer.schedule(3_000, "a")
      const fiber = yield* Effect.forkScoped(
        timer.run((batch, now) => Effect.sync(() => batch.forEach(({ time, value }) => seen.push([value, time, now]))))
      )
      yield* TestClock.adjust(1_000)
      timer.schedule(2_500, "early") // earlier than the current head: wakes the loop
      yield* TestClock.adjust(10_000)
      expect(seen).toEqual([["early", 2_500, 2_500], ["a", 3_000, 3_000], ["b", 5_000, 5_000]])
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("hands over at most maxBatch entries at a time, oldest first, with queued work run between batches", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_000)
      const events: Array<string> = []
      const timer = new Timer<number>(60_000, () => false, 3)
      for (const time of [500, 200, 800, 100, 700, 300, 600, 400]) timer.schedule(time, time)
      const fiber = yield* Effect.forkScoped(
        timer.run((batch) =>
          Effect.gen(function*() {
            const times = batch.map(({ time }) => time)
            events.push(`batch ${times.join(",")}`)
            // Work a batch queues for another fiber (as the bookkeeping of the runs it started): done before the next.
            yield* Effect.forkDaemon(Effect.sync(() => events.push(`after ${times.join(",")}`)))
          })
        )
      )
      // The loop yields to the event loop between full batches: wait for real time, not the TestClock.
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
      expect(events).toEqual([
        "batch 100,200,300",
        "after 100,200,300",
        "batch 400,500,600",
        "after 400,500,600",
        "batch 700,800",
        "after 700,800"
      ])
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("sweeps stale entries once the heap doubles, keeping every live one", () =>
    Effect.gen(function*() {
      const stale = new Set<number>()
      const timer = new Timer<number>(60_000, (value) => stale.has(value))
      for (let i = 0; i < 5_000; i++) {
        timer.schedule(10_000 + i, i)
        if (i % 10 !== 0) stale.add(i) // most entries go stale soon after they are scheduled, like finished runs
      }
      // Without sweeping the heap would hold 5,000; live entries are 500.
      expect(timer.size).toBeLessThan(2_100)
      const seen: Array<number> = []
      const fiber = yield* Effect.forkScoped(
        timer.run((batch) =>
          Effect.sync(() => batch.forEach(({ value }) => void (stale.has(value) || seen.push(value))))
        )
      )
      yield* TestClock.adjust(20_000)
      expect(seen).toEqual(Array.from({ length: 500 }, (_, k) => k * 10))
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("hands entries due at one wake-up over as one batch, and entries that come due meanwhile at once", () =>
    Effect.gen(function*() {
      const batches: Array<Array<string>> = []
      const timer = new Timer<string>(60_000, () => false)
      for (const name of ["x", "y", "z"]) timer.schedule(1_000, name)
      timer.schedule(2_000, "later")
      const fiber = yield* Effect.forkScoped(
        timer.run((batch, now) =>
          Effect.sync(() => {
            batches.push(batch.map(({ value }) => value))
            // Scheduled during the dispatch and already due: must not wait for another timer tick.
            if (batches.length === 1) timer.schedule(now, "due-now")
          })
        )
      )
      yield* TestClock.adjust(1_000)
      expect(batches).toEqual([["x", "y", "z"], ["due-now"]])
      yield* TestClock.adjust(1_000)
      expect(batches).toEqual([["x", "y", "z"], ["due-now"], ["later"]])
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("does not wait for a stale entry at the top: its sleep is armed for the earliest live entry", () =>
    Effect.gen(function*() {
      const stale = new Set(["finished-run-deadline"])
      const timer = new Timer<string>(60_000, (value) => stale.has(value))
      timer.schedule(2_000, "finished-run-deadline")
      timer.schedule(9_000, "live")
      const fiber = yield* Effect.forkScoped(timer.run(() => Effect.void))
      yield* TestClock.adjust(0)
      // One sleep, until the live entry: the stale one never costs a wake-up (nor a TestClock round).
      expect(Chunk.toReadonlyArray(yield* TestClock.sleeps())).toEqual([9_000])
      yield* Fiber.interrupt(fiber)
    }))
})

class Item implements TimerSlot {
  timerIndex = -1
  nextFire: number | undefined = undefined
  constructor(readonly id: number) {}
}

describe("SlotTimer", () => {
  it("pops items in time order after any mix of schedules, moves and removals; each item at most once", () => {
    const op = FastCheck.oneof(
      FastCheck.record({
        kind: FastCheck.constant("schedule" as const),
        item: FastCheck.nat(20),
        time: FastCheck.nat(500)
      }),
      FastCheck.record({ kind: FastCheck.constant("remove" as const), item: FastCheck.nat(20) })
    )
    FastCheck.assert(
      FastCheck.property(FastCheck.array(op, { minLength: 50, maxLength: 400, size: "max" }), (ops) => {
        class Probe extends SlotTimer<Item> {
          pop(): Item | undefined {
            if (this.peekTime() === undefined) return undefined
            const out: Array<Item> = []
            this.popInto(out)
            return out[0]
          }
        }
        const timer = new Probe(60_000)
        const items = Array.from({ length: 41 }, (_, id) => new Item(id))
        // The reference: each item's due time, or absent.
        const due = new Map<number, number>()
        for (const o of ops) {
          if (o.kind === "schedule") {
            timer.schedule(items[o.item]!, o.time)
            due.set(o.item, o.time)
          } else {
            timer.remove(items[o.item]!)
            due.delete(o.item)
            expect(items[o.item]!.nextFire).toBeUndefined()
          }
        }
        expect(timer.size).toBe(due.size)
        const out: Array<[number, number]> = []
        for (let item = timer.pop(); item !== undefined; item = timer.pop()) {
          // Taken out, with the time it was due at.
          expect(item.timerIndex).toBe(-1)
          out.push([item.id, item.nextFire!])
        }
        expect(out.map(([, time]) => time)).toEqual([...due.values()].sort((a, b) => a - b))
        expect(new Map(out)).toEqual(due)
      })
    )
  })

  it.scoped("hands an item over once, at its latest time: moved earlier it wakes the loop, moved later it waits", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_000)
      const seen: Array<[number, number, number]> = []
      const timer = new SlotTimer<Item>(60_000)
      const [a, b, c] = [new Item(0), new Item(1), new Item(2)]
      timer.schedule(a, 5_000)
      timer.schedule(b, 3_000)
      timer.schedule(c, 4_000)
      const fiber = yield* Effect.forkScoped(
        timer.run((batch, now) => Effect.sync(() => batch.forEach((item) => seen.push([item.id, item.nextFire!, now]))))
      )
      yield* TestClock.adjust(500)
      timer.schedule(a, 2_000) // earlier than the head: wakes the loop
      timer.schedule(b, 6_000) // the old head moves later: nothing at 3,000
      timer.remove(c) // never fires
      yield* TestClock.adjust(10_000)
      expect(seen).toEqual([[0, 2_000, 2_000], [1, 6_000, 6_000]])
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("hands over at most maxBatch items at a time, oldest first", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_000)
      const batches: Array<string> = []
      const timer = new SlotTimer<Item>(60_000, 3)
      for (const time of [500, 200, 800, 100, 700, 300, 600, 400]) timer.schedule(new Item(time), time)
      const fiber = yield* Effect.forkScoped(
        timer.run((batch) => Effect.sync(() => batches.push(batch.map((item) => item.id).join(","))))
      )
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
      expect(batches).toEqual(["100,200,300", "400,500,600", "700,800"])
      yield* Fiber.interrupt(fiber)
    }))
})
