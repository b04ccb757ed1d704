/**
 * The `archive_user` job's logic (`ArchiveUserLogic` in the Go pattern): walk every user in batches by last id and archive
 * the inactive ones.
 *
 * - Inactive = `status` is `active` and `lastActiveAt` is older than `inactiveAfter` (default 90 days) at the start
 *   of the run (one cutoff for the whole walk, so a long run does not move its own goalposts).
 * - A user whose archive fails is logged and skipped; the batch and the walk go on. A failure to *read* a page is an
 *   infrastructure failure: the run fails with a `SystemError` (retried by the scheduler, and a re-run is harmless).
 * - Each batch is one transaction and runs uninterruptibly: an interruption (timeout, shutdown, lost lock or
 *   leadership) takes effect between batches, never in the middle of one.
 * - Idempotent: only active users are archived, so a re-run (after a crash, a retry, a catch-up) changes nothing
 *   that the first run already changed.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { SystemError } from "../../../Errors.js"
import { UserModel } from "../../repository/UserModel.js"
import { fromRepositoryError } from "./SyncUserLogic.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface ArchiveUserOptions {
  /** A user not active for this long is archived. Default 90 days. */
  readonly inactiveAfter?: Duration.DurationInput | undefined
  /** Users per batch. Default 1,000. */
  readonly batchSize?: number | undefined
}

/**
 * What one archive run did.
 *
 * @since 0.1.0
 * @category models
 */
export interface ArchiveResult {
  /** Users read. */
  readonly scanned: number
  /** Users archived by this run. */
  readonly archived: number
  /** Users whose archive failed (logged, skipped). */
  readonly failed: number
  readonly batches: number
  readonly durationMs: number
}

/**
 * Default inactivity threshold: a quarter of a year without activity, the usual dormant-account rule.
 *
 * @since 0.1.0
 * @category defaults
 */
export const DEFAULT_INACTIVE_AFTER = Duration.days(90)

/**
 * Users per batch: one page read and one transaction per 1,000 users keeps each transaction short (milliseconds on
 * SQLite) and the number of round trips low.
 *
 * @since 0.1.0
 * @category defaults
 */
export const DEFAULT_BATCH_SIZE = 1_000

/**
 * Build the logic over the `UserModel` in context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: ArchiveUserOptions = {}) =>
  Effect.gen(function*() {
    const users = yield* UserModel
    const inactiveAfter = Duration.decode(options.inactiveAfter ?? DEFAULT_INACTIVE_AFTER)
    const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE

    const archiveUsers: Effect.Effect<ArchiveResult, SystemError> = Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      const cutoff = start - Duration.toMillis(inactiveAfter)
      let scanned = 0
      let archived = 0
      let failed = 0
      let batches = 0
      let lastId = 0
      for (;;) {
        const page = yield* users.findByPage(lastId, batchSize).pipe(Effect.mapError(fromRepositoryError))
        if (page.length === 0) break
        // Archive the inactive users of the page; a failing user is logged and counted, never fatal.
        const result = yield* Effect.gen(function*() {
          let done = 0
          let errors = 0
          for (const user of page) {
            if (user.status !== "active" || user.lastActiveAt >= cutoff) continue
            const changed = yield* users.archive(user.id, start).pipe(
              Effect.catchAll((error) =>
                Effect.logWarning("user archive failed, skipped").pipe(
                  Effect.annotateLogs({ user_id: user.id, error: error.message }),
                  Effect.as("failed" as const)
                )
              )
            )
            if (changed === "failed") errors++
            else if (changed) done++
          }
          return { done, errors }
        }).pipe(users.transaction, Effect.mapError(fromRepositoryError), Effect.uninterruptible)
        scanned += page.length
        archived += result.done
        failed += result.errors
        batches++
        lastId = page[page.length - 1]!.id
        yield* Effect.logDebug("archive batch done").pipe(
          Effect.annotateLogs({ batch: batches, last_id: lastId, archived: result.done, failed: result.errors })
        )
        if (page.length < batchSize) break
        // The batch boundary: an interruption requested during the batch takes effect here.
        yield* Effect.yieldNow()
      }
      const durationMs = (yield* Clock.currentTimeMillis) - start
      yield* Effect.logInfo("user archive done").pipe(
        Effect.annotateLogs({ scanned, archived, failed, batches, duration_ms: durationMs })
      )
      return { scanned, archived, failed, batches, durationMs }
    })

    return { archiveUsers } as const
  })

/**
 * @since 0.1.0
 * @category models
 */
export type ArchiveUserLogic = Effect.Effect.Success<ReturnType<typeof make>>
