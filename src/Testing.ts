/**
 * Testing jobs on effect's `TestClock`: `layerFastTestClock` makes the test's TestClock wait for quiet fibers with
 * `setImmediate` instead of `setTimeout(0)`, so its rounds no longer wait on timers (a simulated week of three jobs
 * takes about a third of the real time it takes on effect's TestClock).
 *
 * Only for tests: the root (`effect-job-scheduler`) does not export this module, so an application's bundle does
 * not hold it.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as SortedSet from "effect/SortedSet"
import { isTestClock } from "./internal/scheduler/testClock.js"

// Effect's TestClock, before it wakes a sleep (and at the start of every `adjust` or `setTime`), waits until the
// test's fibers are quiet (`awaitSuspended`): it snapshots the states of the fibers the test supervises, waits a
// `yieldTimer` (`setTimeout(0)`), snapshots again, and so on, three waits per wake-up at the least. Node runs no
// timer sooner than 1 ms, so every wake-up costs 3 ms or more of real time whatever the woken fiber does. Each wait
// also forks a fiber on the live clock that would log "a fiber is not suspending" after 5 s, and interrupts it.
//
// Under `it.effect` the test supervises no fiber (the TestAnnotations' fiber set is empty), so every snapshot is
// empty and the wait is exactly three turns of the event loop. The layer keeps that rule and makes it cheap: the
// three turns are `setImmediate`s, and no warning fiber is forked for them (it could log only if those three turns
// took 5 s). A test that does supervise fibers gets the TestClock's own wait, with `setImmediate` turns in place of
// the timers.
//
// `awaitSuspended`, `supervisedFibers` and `yieldTimer` are the TestClock's own members, not part of effect's typed
// API: they are replaced on the TestClock instance (own properties, restored when the scope closes), which keeps its
// state and every other method, and speeds every clock that delegates to it (such as the scheduler's stand-in, see
// internal/scheduler/testClock.ts), whichever was made first. A version of effect without them is left as it is.
interface TestClockInternals {
  yieldTimer: Effect.Effect<void>
  awaitSuspended: () => Effect.Effect<void>
  readonly supervisedFibers: () => Effect.Effect<SortedSet.SortedSet<unknown>>
}

/**
 * One turn of the event loop: the callback runs after every pending microtask (where effect's scheduler runs
 * fibers) and after the I/O callbacks of that turn, without the 1 ms floor of a timer.
 */
const yieldImmediate: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** The TestClock's wait when no fiber is supervised: its three turns, each a `yieldImmediate`. */
const threeTurns: Effect.Effect<void> = Effect.zipRight(yieldImmediate, Effect.zipRight(yieldImmediate, yieldImmediate))

/** The object in `clock`'s prototype chain that holds the TestClock's `yieldTimer`, if it has the members used. */
const internalsOwner = (clock: object): TestClockInternals | undefined => {
  for (let obj: object | null = clock; obj !== null; obj = Object.getPrototypeOf(obj)) {
    if (!Object.hasOwn(obj, "yieldTimer")) continue
    const candidate = obj as Partial<TestClockInternals>
    return Effect.isEffect(candidate.yieldTimer) && typeof candidate.awaitSuspended === "function" &&
        typeof candidate.supervisedFibers === "function"
      ? candidate as TestClockInternals
      : undefined
  }
  return undefined
}

/**
 * While `scope` is open, the test's `TestClock` (the `Clock` of the current fiber, which `TestClock.adjust` and
 * `TestClock.setTime` use) waits for quiet fibers with `setImmediate` turns instead of `setTimeout(0)` timers, and,
 * when the test supervises no fiber (as under `it.effect`), without forking its "fiber not suspending" warning
 * fiber for every wait. Its state, its rule (every sleep on the way wakes at its own instant, after the same number
 * of event-loop turns) and every other method stay the TestClock's own.
 *
 * Dies when the current clock is not a `TestClock` (run the test with `it.effect` or `it.scoped` of
 * `@effect/vitest`, or provide `TestContext.TestContext`). On a version of effect whose TestClock has no such wait
 * to replace, it leaves the clock as it is: the test keeps the TestClock's semantics and its speed.
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
  const owner = internalsOwner(clock)
  if (owner === undefined) return Effect.void
  const own = (key: keyof TestClockInternals) => Object.getOwnPropertyDescriptor(owner, key)
  return Effect.acquireRelease(
    Effect.sync(() => {
      const saved = { yieldTimer: own("yieldTimer"), awaitSuspended: own("awaitSuspended") }
      const awaitSuspended = owner.awaitSuspended
      owner.yieldTimer = yieldImmediate
      owner.awaitSuspended = function(this: TestClockInternals) {
        return Effect.flatMap(
          this.supervisedFibers(),
          (fibers) => SortedSet.size(fibers) === 0 ? threeTurns : awaitSuspended.call(this)
        )
      }
      return { saved, installed: owner.awaitSuspended }
    }),
    ({ installed, saved }) =>
      Effect.sync(() => {
        // Nested uses are released in reverse order; a clock another use changed since is left to that one.
        if (owner.awaitSuspended !== installed) return
        for (const key of ["yieldTimer", "awaitSuspended"] as const) {
          const descriptor = saved[key]
          if (descriptor === undefined) delete (owner as Partial<TestClockInternals>)[key]
          else Object.defineProperty(owner, key, descriptor)
        }
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
