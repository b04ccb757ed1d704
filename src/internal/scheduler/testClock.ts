/**
 * How the scheduler meets effect's `TestClock`. Timers there are not Node timers (no 2^31-1 ms limit) and the wall
 * clock never steps by itself, so the scheduler's timer chunking has no use there; only `TestClock.setTime` moves the
 * wall clock, and the TestClock then wakes every sleep on the way at its own instant, so a scheduler that planned its
 * fires before the clock was set would run every fire from the old time to the new one. `follow` makes the clock
 * tell the scheduler first.
 *
 * Recognised by shape, not by importing `effect/TestClock`: this module is part of every application, and a test
 * module has no place in a production bundle.
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

interface TestClockLike extends Clock.Clock {
  readonly setTime: (instant: number) => Effect.Effect<void>
  readonly adjust: (duration: unknown) => Effect.Effect<void>
  readonly sleeps: unknown
}

/** Whether `clock` is effect's `TestClock` (or a clock that stands in for it with the same methods). */
export const isTestClock = (clock: Clock.Clock): clock is TestClockLike => {
  const candidate = clock as Partial<TestClockLike>
  return typeof candidate.setTime === "function" && typeof candidate.adjust === "function" && "sleeps" in candidate
}

/**
 * Make `TestClock.setTime`, called from the current fiber (and the fibers it forks) while `scope` is open, call
 * `onSet(instant)` before the TestClock moves. The current fiber's clock becomes a stand-in whose prototype is the
 * TestClock: every other method is the TestClock's own, with its state. The stand-in is removed when the scope
 * closes; `onSet` is never called after that.
 */
export const follow = (
  clock: TestClockLike,
  onSet: (instant: number) => void
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    let open = true
    const standIn: TestClockLike = Object.create(clock)
    Object.defineProperty(standIn, "setTime", {
      value(this: TestClockLike, instant: number) {
        return Effect.zipRight(
          Effect.sync(() => {
            if (open) onSet(instant)
          }),
          clock.setTime.call(this, instant)
        )
      }
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => (open = false)))
    yield* Effect.withClockScoped(standIn)
  })
