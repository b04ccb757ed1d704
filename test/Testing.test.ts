import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  Clock,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  Option,
  RuntimeFlags,
  RuntimeFlagsPatch,
  Supervisor,
  TestClock
} from "effect"
import * as Scheduler from "../src/Scheduler.js"
import * as Testing from "../src/Testing.js"
import { nightlyShanghai } from "./fixtures/nightly.js"

// Testing.layerFastTestClock: the test's own TestClock, with a cheap wait for quiet fibers and the same rule.

const at = (text: string) => Date.parse(text)
const iso = (ms: number) => new Date(ms).toISOString()

/** The Node timers of 0 ms (what effect's TestClock waits with) armed while `effect` runs. */
const zeroTimersDuring = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const original = globalThis.setTimeout
      const counter = { count: 0, original }
      // The spy keeps setTimeout's own overloads; only its delay argument is read.
      globalThis.setTimeout = Object.assign(
        (handler: () => void, delay?: number) => {
          if (delay === undefined || delay <= 1) counter.count++
          return original(handler, delay)
        },
        original
      ) as typeof setTimeout
      return counter
    }),
    (counter) => Effect.as(effect, counter),
    (counter) => Effect.sync(() => (globalThis.setTimeout = counter.original))
  ).pipe(Effect.map((counter) => counter.count))

/** Sleepers of 3, 1 and 2 hours, each recording the clock's time when it wakes; one adjust of 3 hours. */
const sleepersWakeInOrder = Effect.gen(function*() {
  const woke: Array<string> = []
  const sleeper = (hours: number) =>
    Effect.fork(
      Effect.sleep(`${hours} hours`).pipe(
        Effect.zipRight(Clock.currentTimeMillis),
        Effect.flatMap((now) =>
          // Work after the wake-up, over many scheduler turns and a forked child: done before the next sleep wakes.
          Effect.forEach(Array.from({ length: 50 }), () => Effect.yieldNow()).pipe(
            Effect.zipRight(Effect.fork(Effect.yieldNow())),
            Effect.flatMap(Fiber.join),
            Effect.zipRight(Effect.sync(() => woke.push(`${hours}h@${iso(now)}`)))
          )
        )
      )
    )
  yield* TestClock.setTime(at("2026-01-01T00:00:00Z"))
  yield* Effect.forEach([3, 1, 2], sleeper)
  yield* TestClock.adjust("3 hours")
  return woke
})

/** Counts the effect operations run by the fibers it supervises (with op supervision on). */
class OpCounter extends Supervisor.AbstractSupervisor<number> {
  count = 0
  get value() {
    return Effect.sync(() => this.count)
  }
  override onEffect() {
    this.count++
  }
}

/**
 * Effect operations per one-minute adjust that wakes a sleeper, over 200 (the sleeper's and the test fiber's, which
 * runs the adjust).
 */
const opsPerWake = Effect.gen(function*() {
  yield* TestClock.setTime(at("2026-01-01T00:00:00Z"))
  const counter = new OpCounter()
  let woke = 0
  yield* Effect.gen(function*() {
    yield* Effect.fork(Effect.forever(Effect.zipRight(Effect.sleep("1 minute"), Effect.sync(() => woke++))))
    for (let i = 0; i < 200; i++) yield* TestClock.adjust("1 minute")
  }).pipe(
    Effect.supervised(counter),
    Effect.withRuntimeFlagsPatch(RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision))
  )
  expect(woke).toBe(200)
  return counter.count / woke
})

/**
 * Sleeps of 30, 10, 20, 10 and 0 minutes forked in that order, each pushing its label when it wakes; the sleeps the
 * clock lists before and after an adjust of 15 minutes.
 */
const tiesAndSleeps = Effect.gen(function*() {
  yield* TestClock.setTime(at("2026-01-01T00:00:00Z"))
  const woke: Array<string> = []
  for (const [label, minutes] of [["a", 30], ["b", 10], ["c", 20], ["d", 10], ["e", 0]] as const) {
    yield* Effect.fork(Effect.zipRight(Effect.sleep(`${minutes} minutes`), Effect.sync(() => woke.push(label))))
    yield* Effect.yieldNow()
  }
  const before = Chunk.toReadonlyArray(yield* TestClock.sleeps())
  yield* TestClock.adjust("15 minutes")
  const between = Chunk.toReadonlyArray(yield* TestClock.sleeps())
  yield* TestClock.adjust("1 hour")
  return { before, between, woke }
})

describe("Testing.layerFastTestClock", () => {
  it.effect("an adjust that wakes a sleep runs under a quarter of the effect operations effect's TestClock runs", () =>
    Effect.gen(function*() {
      const plain = yield* opsPerWake
      const fast = yield* opsPerWake.pipe(Effect.provide(Testing.layerFastTestClock))
      console.log(`effect operations per wake-up: ${plain.toFixed(1)} on effect's TestClock, ${fast.toFixed(1)} fast`)
      // Counted on effect 3.22: 591 and 85.
      expect(plain).toBeGreaterThan(100)
      expect(fast).toBeLessThan(plain / 4)
    }))

  it.effect("sleeps due at one instant wake in the TestClock's order, and it lists the same sleeps", () =>
    Effect.gen(function*() {
      const plain = yield* tiesAndSleeps
      expect(plain.woke).toEqual(["e", "d", "b", "c", "a"])
      expect(yield* tiesAndSleeps.pipe(Effect.provide(Testing.layerFastTestClock))).toEqual(plain)
    }))

  it.effect("every sleep on the way wakes at its own instant, in order, its work done before the next one wakes", () =>
    Effect.gen(function*() {
      const expected = ["1h@2026-01-01T01:00:00.000Z", "2h@2026-01-01T02:00:00.000Z", "3h@2026-01-01T03:00:00.000Z"]
      expect(yield* sleepersWakeInOrder).toEqual(expected)
      expect(yield* sleepersWakeInOrder.pipe(Effect.provide(Testing.layerFastTestClock))).toEqual(expected)
    }))

  it.effect("it speeds the test's own TestClock: the same clock, its time and its sleeps from before", () =>
    Effect.gen(function*() {
      const before = yield* TestClock.testClock()
      yield* TestClock.setTime(at("2026-01-01T00:00:00Z"))
      const sleeper = yield* Effect.fork(Effect.sleep("1 hour"))
      yield* Effect.gen(function*() {
        expect(yield* TestClock.testClock()).toBe(before)
        expect(iso(yield* Clock.currentTimeMillis)).toBe("2026-01-01T00:00:00.000Z")
        // The sleep made before the layer was provided is woken by an adjust under it.
        yield* TestClock.adjust("59 minutes")
        expect(Option.isSome(yield* Fiber.poll(sleeper))).toBe(false)
        yield* TestClock.adjust("1 minute")
        expect(Option.isSome(yield* Fiber.poll(sleeper))).toBe(true)
        yield* TestClock.setTime(at("2026-02-01T00:00:00Z"))
      }).pipe(Effect.provide(Testing.layerFastTestClock))
      // What was done under the layer is the TestClock's state afterwards.
      expect(iso(yield* Clock.currentTimeMillis)).toBe("2026-02-01T00:00:00.000Z")
    }))

  it.effect("a TestClock round arms no 0 ms Node timer under the layer, and does again once its scope closed", () =>
    Effect.gen(function*() {
      const rounds = Effect.gen(function*() {
        yield* Effect.fork(Effect.sleep("1 minute"))
        yield* TestClock.adjust("1 minute")
      })
      expect(yield* zeroTimersDuring(rounds)).toBeGreaterThan(0)
      expect(yield* zeroTimersDuring(rounds).pipe(Effect.provide(Testing.layerFastTestClock))).toBe(0)
      expect(yield* zeroTimersDuring(rounds)).toBeGreaterThan(0)
    }))

  it.effect("provided with the scheduler's layer in one mergeAll, TestClock.setTime is followed and rounds are fast", () =>
    Effect.gen(function*() {
      const fires: Array<string> = []
      const nightly = nightlyShanghai(fires)
      const zeroTimers = yield* zeroTimersDuring(Effect.gen(function*() {
        yield* TestClock.adjust(0) // the scheduler plans on the clock's start (1970)
        yield* TestClock.setTime(at("2026-01-01T00:00:00Z"))
        for (let hour = 0; hour < 48; hour++) yield* TestClock.adjust("1 hour")
      })).pipe(
        Effect.provide(Layer.mergeAll(Scheduler.layerMemory([nightly]), Testing.layerFastTestClock)),
        Effect.provide(Logger.remove(Logger.defaultLogger))
      )
      expect(fires).toEqual(["2026-01-01T18:00:00.000Z", "2026-01-02T18:00:00.000Z"])
      expect(zeroTimers).toBe(0)
    }))

  it.live("outside a TestClock it dies and says what to do", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(Testing.fastTestClock))
      expect(Exit.isFailure(exit) && String(exit.cause)).toContain("not effect's TestClock")
    }))
})
