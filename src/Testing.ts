/**
 * Testing jobs on effect's `TestClock`: `layerFastTestClock` makes the test's TestClock wait for quiet fibers with
 * `setImmediate` instead of `setTimeout(0)`, so its rounds no longer wait on timers, and makes its sleeps and
 * wake-ups cost a handful of effect operations instead of about a hundred and thirty (same state, same order).
 *
 * Only for tests: the root (`effect-job-scheduler`) does not export this module, so an application's bundle does
 * not hold it.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Order from "effect/Order"
import * as Ref from "effect/Ref"
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
// The rest of a wake-up is effect operations: counted on effect 3.22, the TestClock spent about 130 of them per
// sleep it woke (its `sleep`, the walk of `run`, and a `warningStart` per sleep that takes a semaphore to find its
// warning already done), as many as the scheduler's whole run of a job. The layer's `sleep` and `run` are the same
// steps with a handful: the same state (`clockState`: the instant and the sleeps, newest first), the same order
// (sorted by instant, stably: of sleeps due at one instant the newest wakes first), one wait for quiet fibers before
// each wake-up and a `yieldNow` after it; the "test is using time but not advancing the clock" warning is asked
// for as before, except once it is done (adjusted at least once), which is for good.
//
// `awaitSuspended`, `supervisedFibers`, `yieldTimer`, `run`, `sleep`, `warningStart`, `warningDone`, `clockState`
// and `warningState` are the TestClock's own members, not part of effect's typed API: they are replaced on the
// TestClock instance (own properties, restored when the scope closes), which keeps its state and every other
// method, and speeds every clock that delegates to it (such as the scheduler's stand-in, see
// internal/scheduler/testClock.ts), whichever was made first. A version of effect without them is left as it is
// (without `run` and the rest, only the wait is replaced).
type Sleep = readonly [instant: number, deferred: Deferred.Deferred<void>]

interface ClockData {
  readonly instant: number
  readonly sleeps: Chunk.Chunk<Sleep>
}

interface TestClockInternals {
  yieldTimer: Effect.Effect<void>
  awaitSuspended: () => Effect.Effect<void>
  readonly supervisedFibers: () => Effect.Effect<SortedSet.SortedSet<unknown>>
}

interface TestClockSteps {
  readonly clockState: Ref.Ref<ClockData>
  readonly warningState: Ref.Ref<{ readonly _tag: string }>
  run: (f: (instant: number) => number) => Effect.Effect<void>
  sleep: (duration: Duration.DurationInput) => Effect.Effect<void>
  warningStart: () => Effect.Effect<void>
  warningDone: () => Effect.Effect<void>
}

type Replaced = keyof TestClockInternals | Exclude<keyof TestClockSteps, "clockState" | "warningState">

/**
 * Three turns of the event loop: each callback runs after every pending microtask (where effect's scheduler runs
 * fibers) and after the I/O callbacks of that turn, without the 1 ms floor of a timer. One wait for the three, and
 * no canceller (one would cost an `onExit` per wait): a wait interrupted meanwhile lets its last turn resume nothing.
 */
const threeTurns: Effect.Effect<void> = Effect.async<void>((resume) => {
  setImmediate(() => setImmediate(() => setImmediate(() => resume(Effect.void))))
})

/** One turn of the event loop (the TestClock's `yieldTimer` under the layer). */
const yieldImmediate: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

const byInstant: Order.Order<Sleep> = Order.mapInput(Order.number, (sleep: Sleep) => sleep[0])

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

/** Whether the TestClock has the steps `run` and `sleep` are made of (see the comment above). */
const hasSteps = (owner: object): owner is TestClockSteps => {
  const candidate = owner as Partial<TestClockSteps>
  const isRef = (value: unknown) => typeof value === "object" && value !== null && Ref.RefTypeId in value
  return isRef(candidate.clockState) && isRef(candidate.warningState) &&
    typeof candidate.run === "function" && typeof candidate.sleep === "function" &&
    typeof candidate.warningStart === "function" && typeof candidate.warningDone === "function"
}

/** The TestClock's `run` and `sleep` (and its warning's two steps) with few effect operations. */
const steps = (original: TestClockSteps): Pick<TestClockSteps, "run" | "sleep" | "warningStart" | "warningDone"> => {
  const { warningDone, warningStart } = original
  const warningOver = (clock: TestClockSteps) =>
    Effect.map(Ref.get(clock.warningState), (warning) => warning._tag === "Done")
  return {
    // The warning is done for good once done: no transition leaves it.
    warningStart(this: TestClockSteps) {
      return Effect.flatMap(warningOver(this), (over) => over ? Effect.void : warningStart.call(this))
    },
    warningDone(this: TestClockSteps) {
      return Effect.flatMap(warningOver(this), (over) => over ? Effect.void : warningDone.call(this))
    },
    sleep(this: TestClockSteps & TestClockInternals, duration: Duration.DurationInput) {
      const ms = Duration.toMillis(Duration.decode(duration))
      return Effect.fiberIdWith((fiberId) => {
        const deferred = Deferred.unsafeMake<void>(fiberId)
        return Effect.flatMap(
          Ref.modify(this.clockState, (data): readonly [boolean, ClockData] => {
            const end = data.instant + ms
            return end > data.instant
              ? [true, { instant: data.instant, sleeps: Chunk.prepend(data.sleeps, [end, deferred] as const) }]
              : [false, data]
          }),
          (asleep) => asleep ? Effect.zipRight(this.warningStart(), Deferred.await(deferred)) : Effect.void
        )
      })
    },
    run(this: TestClockSteps & TestClockInternals, f: (instant: number) => number) {
      const step = (to: (instant: number) => number): Effect.Effect<void> =>
        Effect.flatMap(this.awaitSuspended(), () =>
          Effect.flatMap(
            Ref.modify(this.clockState, (data): readonly [Sleep | undefined, ClockData] => {
              const end = to(data.instant)
              const sorted = Chunk.sort(data.sleeps, byInstant)
              if (Chunk.isNonEmpty(sorted)) {
                const [instant, deferred] = Chunk.headNonEmpty(sorted)
                if (instant <= end) return [[end, deferred], { instant, sleeps: Chunk.tailNonEmpty(sorted) }]
              }
              return [undefined, { instant: end, sleeps: data.sleeps }]
            }),
            (due) => {
              if (due === undefined) return Effect.void
              const [end, deferred] = due
              Deferred.unsafeDone(deferred, Exit.void)
              return Effect.zipRight(Effect.yieldNow(), step(() => end))
            }
          ))
      return step(f)
    }
  }
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
  const keys: ReadonlyArray<Replaced> = hasSteps(owner)
    ? ["yieldTimer", "awaitSuspended", "run", "sleep", "warningStart", "warningDone"]
    : ["yieldTimer", "awaitSuspended"]
  const target = owner as TestClockInternals & Partial<TestClockSteps>
  return Effect.acquireRelease(
    Effect.sync(() => {
      const saved = keys.map((key) => [key, Object.getOwnPropertyDescriptor(owner, key)] as const)
      const awaitSuspended = owner.awaitSuspended
      if (hasSteps(owner)) Object.assign(owner, steps(owner))
      target.yieldTimer = yieldImmediate
      target.awaitSuspended = function(this: TestClockInternals) {
        return Effect.flatMap(
          this.supervisedFibers(),
          (fibers) => SortedSet.size(fibers) === 0 ? threeTurns : awaitSuspended.call(this)
        )
      }
      return { saved, installed: target.awaitSuspended }
    }),
    ({ installed, saved }) =>
      Effect.sync(() => {
        // Nested uses are released in reverse order; a clock another use changed since is left to that one.
        if (target.awaitSuspended !== installed) return
        for (const [key, descriptor] of saved) {
          if (descriptor === undefined) delete (target as Partial<Record<Replaced, unknown>>)[key]
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
