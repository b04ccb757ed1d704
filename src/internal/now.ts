/**
 * The current `Clock`'s time, read when the effect runs, in two effect operations (`Clock.currentTimeMillis` takes
 * about six on the TestClock: the clock service, its `Ref`, a `map`). The scheduler reads the time a few times per
 * fire and the memory store once per call, so this is on every run's path.
 *
 * @internal
 */
import * as Effect from "effect/Effect"

/** The current Clock's time in epoch ms (its `unsafeCurrentTimeMillis`, read when run). */
export const currentMillis: Effect.Effect<number> = Effect.clockWith((clock) =>
  Effect.succeed(clock.unsafeCurrentTimeMillis())
)

/** `f` of the current Clock's time in epoch ms, read when run. */
export const withNow = <A>(f: (now: number) => A): Effect.Effect<A> =>
  Effect.clockWith((clock) => Effect.succeed(f(clock.unsafeCurrentTimeMillis())))
