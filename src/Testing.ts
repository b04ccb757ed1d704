/**
 * Testing jobs on effect's `TestClock`: `layerFastTestClock` makes the test's TestClock wait for quiet fibers with
 * `setImmediate` instead of `setTimeout(0)`, so a simulated week of fires costs well under a second of real time.
 *
 * Only for tests: the root (`effect-job-scheduler`) does not export this module, so an application's bundle does
 * not hold it.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { isTestClock } from "./internal/scheduler/testClock.js"

// Effect's TestClock, before it wakes a sleep (and at the start of every `adjust` or `setTime`), waits until the
// test's fibers are quiet: it compares snapshots of their states taken around a `yieldTimer`, which is
// `setTimeout(0)`, three times per wake-up. Node runs no timer sooner than 1 ms, so every wake-up costs 3 ms or more
// of real time whatever the woken fiber does. The property is the TestClock's own (an instance field, not part of
// effect's typed API); replacing it on the instance keeps every other part of the TestClock (its state, its
// snapshot rule, its methods) and speeds every clock that delegates to it (the scheduler's stand-in, see
// internal/scheduler/testClock.ts), whichever was made first.
const yieldTimerKey = "yieldTimer"

/**
 * One turn of the event loop: the callback runs after every pending microtask (where effect's scheduler runs
 * fibers) and after the I/O callbacks of that turn, without the 1 ms floor of a timer.
 */
const yieldImmediate: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** The object in `clock`'s prototype chain that holds the TestClock's `yieldTimer`, if any. */
const yieldTimerOwner = (clock: object): Record<string, unknown> | undefined => {
  for (let obj: object | null = clock; obj !== null; obj = Object.getPrototypeOf(obj)) {
    if (Object.hasOwn(obj, yieldTimerKey)) {
      const value = (obj as Record<string, unknown>)[yieldTimerKey]
      return Effect.isEffect(value) ? obj as Record<string, unknown> : undefined
    }
  }
  return undefined
}

/**
 * The test's `TestClock` (the `Clock` of the current fiber, as `TestClock.adjust` and `TestClock.setTime` find it)
 * waits for quiet fibers with one `setImmediate` where it waited with `setTimeout(0)`, while `scope` is open; its
 * state and every method stay the TestClock's own.
 *
 * Dies when the current clock is not a `TestClock` (run the test with `it.effect` or `it.scoped` of
 * `@effect/vitest`, or provide `TestContext.TestContext`). On a version of effect whose TestClock no longer waits
 * with a `yieldTimer`, it leaves the clock as it is: the test keeps the TestClock's semantics and its speed.
 *
 * @example
 * ```ts
 * import { Effect, TestClock, TestContext } from "effect"
 * import * as Testing from "effect-job-scheduler/Testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   yield* Testing.fastTestClock
 *   const sleeper = yield* Effect.fork(Effect.sleep("1 hour"))
 *   yield* TestClock.adjust("1 hour")
 *   yield* sleeper.await
 * }))
 *
 * Effect.runPromise(program.pipe(Effect.provide(TestContext.TestContext)))
 * ```
 *
 * @since 0.1.0
 * @category testing
 */
export const fastTestClock: Effect.Effect<void, never, Scope.Scope> = Effect.flatMap(Effect.clock, (clock) => {
  if (!isTestClock(clock)) {
    return Effect.dieMessage(
      "Testing.fastTestClock: the current Clock is not effect's TestClock (run the test with it.effect or it.scoped " +
        "of @effect/vitest, or provide TestContext.TestContext)"
    )
  }
  const owner = yieldTimerOwner(clock)
  if (owner === undefined) return Effect.void
  return Effect.acquireRelease(
    Effect.sync(() => {
      const previous = owner[yieldTimerKey]
      owner[yieldTimerKey] = yieldImmediate
      return previous
    }),
    (previous) =>
      Effect.sync(() => {
        // Nested uses are released in reverse order; one that another replaced since is left to that one.
        if (owner[yieldTimerKey] === yieldImmediate) owner[yieldTimerKey] = previous
      })
  )
})

/**
 * `fastTestClock` as a layer: provide it to a test (with `it.effect` or `it.scoped` of `@effect/vitest`) next to the
 * scheduler's layers, in any order. `TestClock.adjust` and `TestClock.setTime` keep their meaning: every sleep on
 * the way wakes at its own instant, once the test's fibers are quiet; only the real time a wake-up costs changes.
 *
 * @since 0.1.0
 * @category testing
 */
export const layerFastTestClock: Layer.Layer<never> = Layer.scopedDiscard(fastTestClock)
