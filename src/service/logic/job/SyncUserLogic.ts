/**
 * The `sync_user` job's logic (`SyncUserLogic` in the Go pattern): push every user whose last change is not synced yet,
 * stamping the run's fencing token on each row so that a stale run cannot overwrite a newer one.
 *
 * Locking: the scheduler already takes the job lock `sync_user` around every run (cluster-wide exclusion of runs of
 * the job, compatible with Go services using `xredis` on the same Redis). The logic takes its own lock under a distinct
 * key, `sync_user:logic`, because it guards the *work*, not the job: any other entry point that syncs users (an admin
 * command, a Go service, a test calling the logic directly) takes the same key and is excluded, while the scheduler's
 * lock and status under `sync_user` stay the scheduler's alone (re-using that key would find it held by the very run
 * that calls us). Status is written under the same logic key for the same reason.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { BusinessError, type StoreError, SystemError } from "../../../Errors.js"
import { RunContext } from "../../../Run.js"
import type { RepositoryError } from "../../Errors.js"
import { UserModel } from "../../repository/UserModel.js"
import { JobLockModel, withLock } from "../../repository/xredis.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface SyncUserOptions {
  /** Key of the logic-level lock and status. Default `sync_user:logic`. */
  readonly lockKey?: string | undefined
  /** Bound on one sync. Default 1 minute. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Users read and marked per round trip. Default 500. */
  readonly batchSize?: number | undefined
}

/**
 * What one sync did.
 *
 * @since 0.1.0
 * @category models
 */
export interface SyncResult {
  /** Users marked synced by this run. */
  readonly synced: number
  /** Users found unsynced but left alone because a newer run (higher fence) already wrote them. */
  readonly stale: number
  readonly durationMs: number
}

/**
 * Default bound on one sync: the demo store syncs in milliseconds, so a minute only trips on a stuck store, and it
 * stays well under the job's default 5 minute timeout so that the failure is a retryable `SystemError` from the
 * logic rather than the scheduler's `timeout` outcome.
 */
const DEFAULT_TIMEOUT = Duration.minutes(1)

/** Users per round trip: large enough to amortise the round trip, small enough to keep one statement short. */
const DEFAULT_BATCH_SIZE = 500

/**
 * The logic lock's TTL. `withLock` renews it every third of this while the sync lasts, so it need not cover the sync;
 * it bounds how long the lock outlives a process killed mid-sync (the next sync on another node waits at most this).
 */
const LOCK_TTL = Duration.seconds(15)

/** How long the logic's status is kept: a day, so "when did the last sync end and how" survives a quiet night. */
const STATUS_TTL = Duration.days(1)

/**
 * A `RepositoryError` is an infrastructure failure: a retryable `SystemError`.
 *
 * @since 0.1.0
 * @category errors
 */
export const fromRepositoryError = (error: RepositoryError): SystemError =>
  new SystemError({ code: "user_store", message: error.message, cause: error })

/**
 * A `StoreError` (lock or status store) is an infrastructure failure: a retryable `SystemError`.
 *
 * @since 0.1.0
 * @category errors
 */
export const fromStoreError = (error: StoreError): SystemError =>
  new SystemError({ code: "lock_store", message: error.message, cause: error })

/**
 * Build the logic over the models in context. `syncUser` needs nothing more; it reads the fence from `RunContext`
 * when run by the scheduler (0 otherwise).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: SyncUserOptions = {}) =>
  Effect.gen(function*() {
    const users = yield* UserModel
    const locks = yield* JobLockModel
    const lockKey = options.lockKey ?? "sync_user:logic"
    const timeout = Duration.decode(options.timeout ?? DEFAULT_TIMEOUT)
    const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE

    const setStatus = (status: string) =>
      locks.setJobStatus(lockKey, status, STATUS_TTL).pipe(Effect.mapError(fromStoreError))

    const work = Effect.gen(function*() {
      const run = yield* Effect.serviceOption(RunContext)
      const fence = Option.match(run, { onNone: () => 0, onSome: (ctx) => ctx.fence })
      let synced = 0
      let stale = 0
      let lastId = 0
      for (;;) {
        const batch = yield* users.findUnsynced(lastId, batchSize).pipe(Effect.mapError(fromRepositoryError))
        if (batch.length === 0) break
        const at = yield* Clock.currentTimeMillis
        const marked = yield* users.markSynced(batch.map((u) => u.id), { at, fence }).pipe(
          Effect.mapError(fromRepositoryError)
        )
        synced += marked
        stale += batch.length - marked
        lastId = batch[batch.length - 1]!.id
        if (batch.length < batchSize) break
      }
      return { synced, stale }
    })

    /** One sync: logic lock (scoped), status, timeout, duration logged. */
    const syncUser: Effect.Effect<SyncResult, BusinessError | SystemError> = Effect.scoped(
      Effect.gen(function*() {
        const lock = yield* withLock(lockKey, LOCK_TTL).pipe(
          Effect.provideService(JobLockModel, locks),
          Effect.mapError(fromStoreError)
        )
        if (Option.isNone(lock)) {
          // Another sync (another entry point, another node) is at work: an expected outcome, not retried.
          return yield* new BusinessError({
            code: "sync_in_progress",
            message: `lock ${lockKey} is held by another sync`
          })
        }
        yield* setStatus("running")
        const [elapsed, exit] = yield* work.pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () =>
              new SystemError({ code: "sync_timeout", message: `user sync exceeded ${Duration.format(timeout)}` })
          }),
          Effect.exit,
          Effect.timed
        )
        const durationMs = Math.round(Duration.toMillis(elapsed))
        if (Exit.isSuccess(exit)) {
          yield* setStatus(`done: ${exit.value.synced} synced`)
          yield* Effect.logInfo("user sync done").pipe(
            Effect.annotateLogs({ synced: exit.value.synced, stale: exit.value.stale, duration_ms: durationMs })
          )
          return { ...exit.value, durationMs }
        }
        // Best effort: the run's own error matters more than a failed status write.
        yield* setStatus("failed").pipe(Effect.ignore)
        yield* Effect.logWarning("user sync failed").pipe(Effect.annotateLogs({ duration_ms: durationMs }))
        return yield* Effect.failCause(exit.cause)
      })
    )

    return { syncUser } as const
  })

/**
 * @since 0.1.0
 * @category models
 */
export type SyncUserLogic = Effect.Effect.Success<ReturnType<typeof make>>
