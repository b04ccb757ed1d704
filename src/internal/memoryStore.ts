/**
 * The in-memory `JobStore` and `JobLockModel` over a `MemoryState` (one state can back both, so that a lock taken
 * through either excludes the other). Not part of the public API: `JobStore.layerMemory`, `JobStore.makeMemory` and
 * `JobLockModel.makeMemory` are.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import type { JobLockModel, LockHandle } from "../JobLockModel.js"
import type { BeginRequest, BeginResult, FinishRequest, JobStore, ScheduleChange, ScheduleStore } from "../JobStore.js"
import { toMillis } from "./duration.js"
import type { MemoryState } from "./memoryState.js"
import { withNow } from "./now.js"

const beginMemory = (state: MemoryState, request: BeginRequest, now: number): BeginResult => {
  if (state.paused.has(request.job)) return { _tag: "Skipped", reason: "paused" }
  if (Option.isSome(request.slot)) {
    if (!state.claimSlot(request.job, request.fireTime, toMillis(request.slot.value.ttl), now)) {
      return { _tag: "Skipped", reason: "slot_taken" }
    }
    state.noteFire(request.job, request.fireTime)
  }
  let lock = Option.none<LockHandle>()
  if (Option.isSome(request.lock)) {
    const held = state.tryLock(request.lock.value.key, toMillis(request.lock.value.ttl), now, request.term)
    if (held === undefined) return { _tag: "Skipped", reason: "lock_held" }
    lock = held
  }
  state.setStatus(request.job, "running", toMillis(request.statusTtl), now)
  return { _tag: "Started", fence: state.nextFence(request.job), lock }
}

const finishMemory = (state: MemoryState, request: FinishRequest, now: number): void => {
  if (Option.isSome(request.lock)) state.release(request.lock.value, now)
  state.setStatus(request.record.job, request.record.outcome, toMillis(request.statusTtl), now)
  state.addRecord(request.record, request.maxRecords)
}

/** The stored schedules in memory: one map, announcements to the listeners of this process. */
const memorySchedules = (state: MemoryState): ScheduleStore => {
  // Announcements from the subscription on wait in a queue for the stream.
  const subscribe = Effect.gen(function*() {
    const received = yield* Effect.acquireRelease(Queue.unbounded<ScheduleChange>(), Queue.shutdown)
    const listener = (id: string, version: number) => void Queue.unsafeOffer(received, { id, version })
    yield* Effect.acquireRelease(
      Effect.sync(() => state.scheduleListeners.add(listener)),
      () => Effect.sync(() => state.scheduleListeners.delete(listener))
    )
    return Stream.fromQueue(received)
  })
  const announce = (id: string) => {
    for (const listener of state.scheduleListeners) listener(id, state.scheduleVersion)
  }
  return {
    put: (id, spec) =>
      Effect.sync(() => {
        const stored = state.schedules.get(id)
        if (stored !== undefined && stored.spec === spec) {
          return { result: "unchanged" as const, revision: stored.revision }
        }
        const revision = ++state.scheduleVersion
        state.schedules.set(id, { spec, revision })
        announce(id)
        return { result: stored === undefined ? "created" as const : "updated" as const, revision }
      }),
    remove: (id) =>
      Effect.sync(() => {
        state.scheduleRuns.delete(id)
        if (!state.schedules.delete(id)) return false
        state.scheduleVersion++
        announce(id)
        return true
      }),
    get: (id) =>
      Effect.sync(() => Option.map(Option.fromNullable(state.schedules.get(id)), (stored) => ({ id, ...stored }))),
    list: ({ cursor, limit }) =>
      Effect.sync(() => {
        const ids = Array.from(state.schedules.keys()).filter((id) => cursor === undefined || id > cursor).sort()
        const page = ids.slice(0, Math.max(0, limit))
        return {
          entries: page.map((id) => ({ id, ...state.schedules.get(id)! })),
          next: page.length < ids.length && page.length > 0 ? Option.some(page[page.length - 1]!) : Option.none()
        }
      }),
    version: Effect.sync(() => state.scheduleVersion),
    changes: Stream.unwrapScoped(subscribe),
    subscribe,
    countRun: (id) =>
      Effect.sync(() => {
        const count = (state.scheduleRuns.get(id) ?? 0) + 1
        state.scheduleRuns.set(id, count)
        return count
      }),
    runCount: (id) => Effect.sync(() => state.scheduleRuns.get(id) ?? 0)
  }
}

/** An in-memory store over a given state. Expiry follows the effect `Clock`. */
export const memoryStore = (state: MemoryState): JobStore["Type"] => ({
  backend: "memory",
  begin: (request) => withNow((now) => beginMemory(state, request, now)),
  beginMany: (requests) => withNow((now) => requests.map((request) => Either.right(beginMemory(state, request, now)))),
  renewLock: (lock, ttl) => withNow((now) => state.renew(lock, Duration.toMillis(ttl), now)),
  finish: (request) => withNow((now) => finishMemory(state, request, now)),
  finishMany: (requests) =>
    withNow((now) =>
      requests.map((request) => {
        finishMemory(state, request, now)
        return Either.void
      })
    ),
  lastFireTime: (job) => Effect.sync(() => Option.fromNullable(state.lastFire(job))),
  lastFireTimes: (jobs) => Effect.sync(() => jobs.map((job) => Option.fromNullable(state.lastFire(job)))),
  recentRuns: (job, limit) => Effect.sync(() => state.recentRecords(job, limit)),
  setPaused: (job, paused) =>
    Effect.sync(() => {
      if (paused) state.paused.add(job)
      else state.paused.delete(job)
    }),
  isPaused: (job) => Effect.sync(() => state.paused.has(job)),
  schedules: memorySchedules(state)
})

/**
 * The in-memory model over a given state (shared with the memory `JobStore` when both come from
 * `JobStore.layerMemory`). Expiry follows the effect `Clock`, so `TestClock` drives it.
 */
export const memoryLockModel = (state: MemoryState): JobLockModel["Type"] => ({
  acquireLock: (key, ttl) => withNow((now) => state.acquire(key, Duration.toMillis(ttl), now)),
  releaseLock: (lock) => withNow((now) => state.release(lock, now)),
  renewLock: (lock, ttl) => withNow((now) => state.renew(lock, Duration.toMillis(ttl), now)),
  setJobStatus: (jobName, status, ttl) =>
    withNow((now) => state.setStatus(jobName, status, Duration.toMillis(ttl), now)),
  getJobStatus: (jobName) => withNow((now) => Option.fromNullable(state.getStatus(jobName, now)))
})
