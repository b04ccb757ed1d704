/**
 * The `JobLockModel` of Go services built on `xredis`: a per-job lock and a job status, with owner tokens so that only the owner can renew or
 * release a lock. Redis keys (see `JobLockModel/Redis.ts`) are that layout's: `{prefix}:job:lock:{key}` and
 * `{prefix}:job:status:{jobName}`, so Go and TypeScript services sharing a Redis exclude each other.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { StoreError } from "./Errors.js"
import { MemoryState } from "./internal/memoryState.js"
import { memoryLockModel } from "./internal/memoryStore.js"

/**
 * A lock held by this process: its key and the owner token written as its value.
 *
 * @since 0.1.0
 * @category models
 */
export interface LockHandle {
  readonly key: string
  readonly token: string
}

/**
 * The per-run lock and job status store, with the key layout Go services using the `xredis` `JobLockModel` share:
 * `{prefix}:job:lock:{key}` and `{prefix}:job:status:{jobName}`.
 *
 * @since 0.1.0
 * @category tags
 */
export class JobLockModel extends Context.Tag("effect-job-scheduler/JobLockModel")<JobLockModel, {
  /** Take `key` for `ttl` if nobody holds it; `None` when it is held (a normal outcome, not an error). */
  readonly acquireLock: (
    key: string,
    ttl: Duration.DurationInput
  ) => Effect.Effect<Option.Option<LockHandle>, StoreError>
  /** Delete the lock only if we still own it; `false` when it was gone or taken by another owner. */
  readonly releaseLock: (lock: LockHandle) => Effect.Effect<boolean, StoreError>
  /** Extend the lock to `ttl` from now only if we still own it; `false` when it was gone or taken. */
  readonly renewLock: (lock: LockHandle, ttl: Duration.DurationInput) => Effect.Effect<boolean, StoreError>
  /** Write the job's status (`SetJobStatus` in `xredis`), kept for `ttl`. */
  readonly setJobStatus: (
    jobName: string,
    status: string,
    ttl: Duration.DurationInput
  ) => Effect.Effect<void, StoreError>
  /** Read the job's status (`GetJobStatus` in `xredis`); `None` when unset or expired. */
  readonly getJobStatus: (jobName: string) => Effect.Effect<Option.Option<string>, StoreError>
}>() {}

/**
 * The lock as a scoped resource: acquired now, renewed to `ttl` every `ttl / 3` while the scope is open, released
 * (compare-and-delete) when the scope closes, whatever the exit. `None` when another owner holds it; nothing is
 * renewed or released then.
 *
 * Because the lock is renewed, `ttl` need not cover the work done under it: it only bounds how long the lock
 * outlives a process that dies while holding it. A renewal that finds the lock gone or taken stops renewing and logs
 * a warning (the work under it should be fenced); a renewal that fails on the store is retried at the next period,
 * and the lock lapses by its TTL if the store stays down.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withLock = (
  key: string,
  ttl: Duration.DurationInput
): Effect.Effect<Option.Option<LockHandle>, StoreError, JobLockModel | Scope.Scope> =>
  Effect.flatMap(JobLockModel, (model) =>
    Effect.tap(
      Effect.acquireRelease(model.acquireLock(key, ttl), (lock) =>
        Option.match(lock, {
          onNone: () => Effect.void,
          // A failed release is logged, not raised: the lock expires by its TTL anyway.
          onSome: (held) =>
            model.releaseLock(held).pipe(
              Effect.catchAll((error) => Effect.logWarning("lock release failed", error)),
              Effect.asVoid
            )
        })),
      // Forked after the release was registered, so the scope stops the renewals before it releases.
      (lock) => Option.isNone(lock) ? Effect.void : Effect.forkScoped(renewWhileHeld(model, lock.value, ttl))
    ))

/** Renews every `ttl / 3` until the lock is found lost (then warns and stops); store failures wait for the next period. */
const renewWhileHeld = (model: JobLockModel["Type"], lock: LockHandle, ttl: Duration.DurationInput) => {
  const period = Duration.millis(Math.max(1, Math.floor(Duration.toMillis(ttl) / 3)))
  const renewOnce: Effect.Effect<boolean> = model.renewLock(lock, ttl).pipe(
    Effect.catchAll((error) => Effect.as(Effect.logWarning("lock renewal failed", error), true))
  )
  return Effect.sleep(period).pipe(
    Effect.zipRight(renewOnce),
    Effect.repeat({ while: (held) => held }),
    Effect.zipRight(Effect.logWarning("lock lost while held").pipe(Effect.annotateLogs({ lock: lock.key })))
  )
}

/**
 * A fresh in-memory model.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<JobLockModel["Type"]> = Effect.sync(() => memoryLockModel(new MemoryState()))

/**
 * The embedded default: locks and statuses in this process only.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<JobLockModel> = Layer.effect(JobLockModel, makeMemory)
