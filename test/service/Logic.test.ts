import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { BusinessError, SystemError } from "../../src/Errors.js"
import * as Job from "../../src/Job.js"
import { RunContext } from "../../src/Run.js"
import * as Config from "../../src/service/config/Config.js"
import { RepositoryError } from "../../src/service/Errors.js"
import * as Jobs from "../../src/service/job/Jobs.js"
import * as ArchiveUserLogic from "../../src/service/logic/job/ArchiveUserLogic.js"
import * as SyncUserLogic from "../../src/service/logic/job/SyncUserLogic.js"
import * as Repository from "../../src/service/repository/Repository.js"
import * as UserModel from "../../src/service/repository/UserModel.js"
import * as xredis from "../../src/service/repository/xredis.js"
import { JobLockModel } from "../../src/service/repository/xredis.js"

const NOW = Date.UTC(2026, 2, 1)
const DAY = 24 * 60 * 60 * 1000

const runContext = (fence: number) =>
  RunContext.of({
    job: "sync_user",
    fireTime: new Date(NOW),
    runId: `run-${fence}`,
    attempt: 1,
    nodeId: "test-node",
    fence,
    kind: "scheduled"
  })

/** Users 1..n; user i was last active i days before NOW (demo seed). */
const users = (n: number) => UserModel.demoUsers(NOW, n)

/** The memory models, with the user model changed by `patch` (a failing or slow model). */
const patched = (
  seed: ReadonlyArray<UserModel.User>,
  patch: (model: UserModel.UserModel["Type"]) => Partial<UserModel.UserModel["Type"]>
) =>
  Layer.merge(
    xredis.layerMemory,
    Layer.effect(
      UserModel.UserModel,
      Effect.map(UserModel.makeMemory(seed), (model) => ({ ...model, ...patch(model) }))
    )
  )

/** Whether nobody holds the logic lock: take it and give it back. */
const lockIsFree = Effect.gen(function*() {
  const locks = yield* JobLockModel
  const lock = yield* locks.acquireLock("sync_user:logic", "1 minute")
  if (Option.isSome(lock)) yield* locks.releaseLock(lock.value)
  return Option.isSome(lock)
})

const allUsers = Effect.flatMap(UserModel.UserModel, (model) => model.findByPage(0, 1_000_000))

describe("SyncUserLogic", () => {
  it.effect("syncs every unsynced user in batches with the run's fence, sets the status and releases its lock", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const logic = yield* SyncUserLogic.make({ batchSize: 500 })
      const result = yield* logic.syncUser.pipe(Effect.provideService(RunContext, runContext(7)))
      expect(result.synced).toBe(1_234)
      expect(result.stale).toBe(0)
      const all = yield* allUsers
      expect(all.every((u) => u.syncedAt === NOW && u.syncFence === 7)).toBe(true)
      const locks = yield* JobLockModel
      expect(yield* locks.getJobStatus("sync_user:logic")).toEqual(Option.some("done: 1234 synced"))
      expect(yield* lockIsFree).toBe(true)
      // A second run finds nothing left to sync.
      expect((yield* logic.syncUser.pipe(Effect.provideService(RunContext, runContext(8)))).synced).toBe(0)
    }).pipe(Effect.provide(Repository.layerMemory(users(1_234)))))

  it.effect("a stale run (lower fence) leaves rows written by a newer run alone", () =>
    Effect.gen(function*() {
      const model = yield* UserModel.UserModel
      yield* model.markSynced([1, 2], { at: NOW - 1, fence: 10 })
      // Make users 1 and 2 unsynced again, still carrying fence 10.
      yield* model.insert([1, 2].map((id) =>
        new UserModel.User({ ...users(2)[id - 1]!, updatedAt: NOW + 5, syncedAt: NOW - 1, syncFence: 10 })
      ))
      const logic = yield* SyncUserLogic.make()
      const result = yield* logic.syncUser.pipe(Effect.provideService(RunContext, runContext(9)))
      expect(result.synced).toBe(3)
      expect(result.stale).toBe(2)
    }).pipe(Effect.provide(Repository.layerMemory(users(5)))))

  it.effect("another holder of the logic lock gives a BusinessError and syncs nothing", () =>
    Effect.gen(function*() {
      const locks = yield* JobLockModel
      yield* locks.acquireLock("sync_user:logic", "1 minute")
      const logic = yield* SyncUserLogic.make()
      const error = yield* Effect.flip(logic.syncUser)
      expect(error).toBeInstanceOf(BusinessError)
      expect(error.code).toBe("sync_in_progress")
      expect((yield* allUsers).every((u) => u.syncedAt === null)).toBe(true)
    }).pipe(Effect.provide(Repository.layerMemory(users(3)))))

  it.effect("a failing user store is a SystemError; the lock is released and the status says failed", () =>
    Effect.gen(function*() {
      const logic = yield* SyncUserLogic.make()
      const error = yield* Effect.flip(logic.syncUser)
      expect(error).toBeInstanceOf(SystemError)
      expect(error.code).toBe("user_store")
      const locks = yield* JobLockModel
      expect(yield* locks.getJobStatus("sync_user:logic")).toEqual(Option.some("failed"))
      expect(yield* lockIsFree).toBe(true)
    }).pipe(Effect.provide(patched(users(3), () => ({
      findUnsynced: () => Effect.fail(new RepositoryError({ operation: "findUnsynced", reason: "disk I/O error" }))
    })))))

  it.effect("a sync that outlives its timeout fails with SystemError sync_timeout and releases the lock", () =>
    Effect.gen(function*() {
      const logic = yield* SyncUserLogic.make({ timeout: "10 seconds" })
      const fiber = yield* Effect.fork(Effect.flip(logic.syncUser))
      yield* TestClock.adjust("10 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error.code).toBe("sync_timeout")
      expect(yield* lockIsFree).toBe(true)
    }).pipe(Effect.provide(patched(users(3), () => ({ findUnsynced: () => Effect.never })))))
})

describe("ArchiveUserLogic", () => {
  /** In `users(n)` user i was last active i days ago: with a 30-day threshold, users 31..n are inactive. */
  const THRESHOLD = "30 days"

  it.effect("walks 12,345 users in batches of 1,000 by last id and archives exactly the inactive ones", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const pages: Array<readonly [number, number]> = []
      const logic = yield* ArchiveUserLogic.make({ inactiveAfter: THRESHOLD }).pipe(
        Effect.provide(patched(users(12_345), (model) => ({
          findByPage: (lastId, limit) =>
            Effect.tap(model.findByPage(lastId, limit), () => Effect.sync(() => pages.push([lastId, limit])))
        })))
      )
      const result = yield* logic.archiveUsers
      expect(result).toMatchObject({ scanned: 12_345, archived: 12_345 - 30, failed: 0, batches: 13 })
      expect(pages.slice(0, 3)).toEqual([[0, 1_000], [1_000, 1_000], [2_000, 1_000]])
      expect(pages.every(([, limit]) => limit === 1_000)).toBe(true)
    }))

  it.effect("archives only users past the threshold, and a re-run changes nothing", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const logic = yield* ArchiveUserLogic.make({ inactiveAfter: THRESHOLD })
      const first = yield* logic.archiveUsers
      expect(first.archived).toBe(70)
      const after = yield* allUsers
      for (const user of after) {
        expect(user.status).toBe(NOW - user.lastActiveAt > 30 * DAY ? "archived" : "active")
      }
      // A re-run (a retry, a catch-up after a crash) at the same cutoff.
      const second = yield* logic.archiveUsers
      expect(second.archived).toBe(0)
      expect(yield* allUsers).toEqual(after)
    }).pipe(Effect.provide(Repository.layerMemory(users(100)))))

  it.effect("a user whose archive fails is logged and skipped; the batch and the walk go on", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const failing = new Set([40, 1_500, 2_999])
      const logic = yield* ArchiveUserLogic.make({ inactiveAfter: THRESHOLD })
      const result = yield* logic.archiveUsers
      expect(result.failed).toBe(3)
      expect(result.archived).toBe(3_000 - 30 - 3)
      const after = yield* allUsers
      expect(after.filter((u) => u.status === "active").map((u) => u.id).filter((id) => id > 30)).toEqual([...failing])
      // The failed users are picked up by the next run.
    }).pipe(Effect.provide(patched(users(3_000), (model) => ({
      archive: (id, at) =>
        [40, 1_500, 2_999].includes(id)
          ? Effect.fail(new RepositoryError({ operation: "archive", reason: "constraint failed" }))
          : model.archive(id, at)
    })))))

  it.effect("a page that cannot be read fails the run with a retryable SystemError", () =>
    Effect.gen(function*() {
      const logic = yield* ArchiveUserLogic.make()
      const error = yield* Effect.flip(logic.archiveUsers)
      expect(error).toBeInstanceOf(SystemError)
      expect(error.code).toBe("user_store")
    }).pipe(Effect.provide(patched(users(10), () => ({
      findByPage: () => Effect.fail(new RepositoryError({ operation: "findByPage", reason: "database is locked" }))
    })))))

  it.effect("an interruption during a batch takes effect at the batch boundary: no batch is left half done", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const reached = yield* Deferred.make<void>()
      yield* Effect.gen(function*() {
        const logic = yield* ArchiveUserLogic.make({ inactiveAfter: THRESHOLD })
        const fiber = yield* Effect.fork(logic.archiveUsers)
        // Interrupt while the second batch (users 1,001..2,000) is in progress.
        yield* Deferred.await(reached)
        yield* Fiber.interrupt(fiber)
        const archived = (yield* allUsers).filter((u) => u.status === "archived").map((u) => u.id)
        // The second batch finished whole; the third never started.
        expect(archived).toEqual(Array.from({ length: 2_000 - 30 }, (_, i) => i + 31))
      }).pipe(Effect.provide(patched(users(5_000), (model) => ({
        archive: (id, at) =>
          id === 1_500
            ? Effect.zipRight(Deferred.succeed(reached, void 0), model.archive(id, at))
            : model.archive(id, at)
      }))))
    }))
})

describe("Jobs", () => {
  it("builds both jobs from the default config with their triggers and options", () => {
    const config = Either.getOrThrowWith(Config.decode({ defaultNodeId: "n" }), (e) => new Error(e.message))
    const jobs = Either.getOrThrowWith(Jobs.make(config), (e) => new Error(e.message))
    expect(jobs.map((job) => job.name)).toEqual(["sync_user", "archive_user"])
    expect(Job.describeTrigger(jobs[0]!.trigger)).toBe("every 5s")
    expect(jobs[1]!.trigger._tag).toBe("Cron")
    expect(jobs[1]!.misfire).toBe("runOnce")
  })
})
