/**
 * The cluster-wide state of the scheduler: slot claims, locks, fencing counters, last fire times, run records,
 * statuses and pause flags. The run path touches it twice: `begin` (pause check + slot claim + lock + fence, one
 * round trip on Redis) and `finish` (lock release + status + record, one round trip).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { StoreError } from "./Errors.js"
import { DEFAULT_MAX_RECORDS_TOTAL, MemoryState } from "./internal/memoryState.js"
import { memoryLockModel, memoryStore } from "./internal/memoryStore.js"
import * as JobLockModel from "./JobLockModel.js"
import type { RunRecord, SkipReason } from "./Run.js"

/**
 * What the scheduler asks of the store when a run begins: the job, fire time, run id, node, the slot to claim, the
 * lock to take (with the leader's term) and how long the `running` status is kept.
 *
 * @since 0.1.0
 * @category models
 */
export interface BeginRequest {
  readonly job: string
  /** Epoch ms. For a scheduled run, the fire time; for a manual run, the trigger time. */
  readonly fireTime: number
  readonly runId: string
  readonly nodeId: string
  /**
   * Claim the slot `(job, fireTime)` for `slotTtl` (key `{prefix}:job:tick:{job}:{fireTime}`). Manual runs do not
   * claim a slot. A scheduled fire that claims its slot also raises the job's last fire time.
   */
  readonly slot: Option.Option<{ readonly ttl: Duration.Duration }>
  /** Take the job's lock (key = `key`, usually the job name) for `ttl`; `None` when the job opts out. */
  readonly lock: Option.Option<{ readonly key: string; readonly ttl: Duration.Duration }>
  /**
   * The leadership term this run begins under, when the node leads (etcd: the create revision of its election key).
   * The lock's owner token then carries the term (`term:{term}:{random}`), and a lock held under an *older* term is
   * taken over instead of skipping the fire as `lock_held`: terms only grow, and a leader stops its runs before its
   * lease can expire, so a newer term means the older term's runs were interrupted. A lock without a term (taken
   * outside the scheduler, by a Go service, or by a run on a node that does not lead) is never taken over.
   */
  readonly term?: number | undefined
  /** How long the `running` status is kept (it is overwritten by `finish`). */
  readonly statusTtl: Duration.Duration
}

/**
 * What `begin` decided: `Started` with the run's fence and lock, or `Skipped` with the reason (paused, slot taken,
 * lock held).
 *
 * @since 0.1.0
 * @category models
 */
export type BeginResult =
  | {
    readonly _tag: "Started"
    /**
     * The fencing token: strictly greater than every fence handed out before for the job by this store. The Redis
     * store makes it at least the server's clock in microseconds, so fences keep growing when Redis loses its data
     * (see `JobStore/Redis.ts`); the memory store counts from 1 for the life of the process.
     */
    readonly fence: number
    readonly lock: Option.Option<JobLockModel.LockHandle>
  }
  | {
    readonly _tag: "Skipped"
    readonly reason: Exclude<SkipReason, "overlap" | "misfired" | "store_error" | "shutting_down">
  }

/**
 * What the scheduler asks of the store when a run is over: its record, the lock to release, and how long the status
 * and how many records are kept.
 *
 * @since 0.1.0
 * @category models
 */
export interface FinishRequest {
  readonly record: RunRecord
  /** Released with compare-and-delete; a lock already lost is not an error here. */
  readonly lock: Option.Option<JobLockModel.LockHandle>
  /** The job status written (the record's outcome) and how long it is kept. */
  readonly statusTtl: Duration.Duration
  /** How many records are kept per job. */
  readonly maxRecords: number
}

/**
 * One stored schedule: its id, its spec as canonical JSON (see `Schedules.ScheduleSpec`) and the store's revision
 * of it (the schedules version counter when it was last written).
 *
 * @since 0.2.0
 * @category models
 */
export interface StoredSchedule {
  readonly id: string
  readonly spec: string
  readonly revision: number
}

/**
 * One announced change of a stored schedule: its id and the version counter the change made.
 *
 * @since 0.2.0
 * @category models
 */
export interface ScheduleChange {
  readonly id: string
  readonly version: number
}

/**
 * What a schedule write did: `created`, `updated`, or `unchanged` (the same spec was stored already: nothing was
 * written, no change was announced).
 *
 * @since 0.2.0
 * @category models
 */
export type PutResult = "created" | "updated" | "unchanged"

/**
 * The stored schedules of the cluster (`Schedules`): written by any node, applied by the leader. Every change bumps
 * a version counter and is announced on `changes`; a node that missed an announcement sees the counter moved on
 * its next reconcile.
 *
 * @since 0.2.0
 * @category models
 */
export interface ScheduleStore {
  /** Create or replace the schedule `id` with `spec` (canonical JSON); `unchanged` when that exact spec is stored. */
  readonly put: (
    id: string,
    spec: string
  ) => Effect.Effect<{ readonly result: PutResult; readonly revision: number }, StoreError>
  /** Delete the schedule and its run count (its last fire time stays: an `At` that ran stays run); false when absent. */
  readonly remove: (id: string) => Effect.Effect<boolean, StoreError>
  readonly get: (id: string) => Effect.Effect<Option.Option<StoredSchedule>, StoreError>
  /** A page of schedules in id order, after `cursor` (an id); `next` is the cursor of the next page, if any. */
  readonly list: (options: { readonly cursor?: string | undefined; readonly limit: number }) => Effect.Effect<
    { readonly entries: ReadonlyArray<StoredSchedule>; readonly next: Option.Option<string> },
    StoreError
  >
  /** The version counter: it grows with every change. */
  readonly version: Effect.Effect<number, StoreError>
  /**
   * The schedules changed from the moment the stream is run (an announcement may be lost, for example while
   * the connection is down: reconcile with `version`).
   */
  readonly changes: Stream.Stream<ScheduleChange, StoreError>
  /**
   * Optional: `changes`, subscribed first. The effect succeeds once the subscription is in place (on Redis: once the
   * server confirmed it), so that every change made after that is on the returned stream, unless an announcement is
   * lost; the subscription lasts as long as the scope. `Schedules` subscribes before it loads, so that a change made
   * during or just after the load is announced, not found later by the version check.
   */
  readonly subscribe?: Effect.Effect<Stream.Stream<ScheduleChange, StoreError>, StoreError, Scope.Scope>
  /** Count one scheduled run of the schedule (its run limit); the count after it. */
  readonly countRun: (id: string) => Effect.Effect<number, StoreError>
  /** How many scheduled runs of the schedule were counted. */
  readonly runCount: (id: string) => Effect.Effect<number, StoreError>
}

/**
 * The run path's state as a service: `begin` (pause check, slot claim, lock, fence, status) and `finish` (release,
 * status, record) of each run, lock renewal, records, pause flags and the newest claimed fire.
 *
 * @since 0.1.0
 * @category tags
 */
export class JobStore extends Context.Tag("effect-job-scheduler/JobStore")<JobStore, {
  /** Name of the backend, for logs and errors (`memory`, `redis`). */
  readonly backend: string
  /** In this order: paused? -> claim the slot -> take the lock -> next fence -> status `running`. */
  readonly begin: (request: BeginRequest) => Effect.Effect<BeginResult, StoreError>
  /**
   * Optional: `begin` for many requests in one call, one result per request in order (a store failure is that
   * request's `Left`). The scheduler begins all runs due at one instant together; a store without it gets one
   * concurrent `begin` per request (see `beginMany`).
   */
  readonly beginMany?: (
    requests: ReadonlyArray<BeginRequest>
  ) => Effect.Effect<ReadonlyArray<Either.Either<BeginResult, StoreError>>>
  /** Extend our lock; `false` when it is gone or owned by another. */
  readonly renewLock: (lock: JobLockModel.LockHandle, ttl: Duration.Duration) => Effect.Effect<boolean, StoreError>
  /** Release the lock (if any), set the status to the outcome, append the record (capped). */
  readonly finish: (request: FinishRequest) => Effect.Effect<void, StoreError>
  /** Optional: `finish` for many requests in one call, one result per request in order (see `finishMany`). */
  readonly finishMany?: (
    requests: ReadonlyArray<FinishRequest>
  ) => Effect.Effect<ReadonlyArray<Either.Either<void, StoreError>>>
  /** The newest fire time claimed for the job by any node (misfire handling after a leader change). */
  readonly lastFireTime: (job: string) => Effect.Effect<Option.Option<number>, StoreError>
  /** The newest records of the job, newest first. */
  readonly recentRuns: (job: string, limit: number) => Effect.Effect<ReadonlyArray<RunRecord>, StoreError>
  /** Pause or resume the job cluster-wide. */
  readonly setPaused: (job: string, paused: boolean) => Effect.Effect<void, StoreError>
  /** Whether the job is paused cluster-wide. */
  readonly isPaused: (job: string) => Effect.Effect<boolean, StoreError>
  /**
   * Optional, for stores that can lose their data while this process runs (Redis without persistence, a FLUSHALL,
   * a failover to a replica that lags): compare the store's epoch marker with the one seen before, writing a new one
   * when it is missing. A changed or missing marker is logged at ERROR and counted in `job_store_data_loss_total`;
   * it is not an error of this effect (the store goes on with the new marker).
   */
  readonly checkEpoch?: Effect.Effect<void, StoreError>
  /** Optional: `lastFireTime` for many jobs in one call, in order (planning many jobs at once). */
  readonly lastFireTimes?: (
    jobs: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<Option.Option<number>>, StoreError>
  /** Optional: the stored schedules (`Schedules` needs a store that has them; memory and Redis do). */
  readonly schedules?: ScheduleStore
}>() {}

/**
 * `begin` for each request, through the store's `beginMany` when it has one, else one concurrent `begin` each.
 *
 * @since 0.1.0
 * @category combinators
 */
export const beginMany = (
  store: JobStore["Type"],
  requests: ReadonlyArray<BeginRequest>
): Effect.Effect<ReadonlyArray<Either.Either<BeginResult, StoreError>>> =>
  store.beginMany !== undefined
    ? store.beginMany(requests)
    : Effect.forEach(requests, (request) => Effect.either(store.begin(request)), { concurrency: "unbounded" })

/**
 * `finish` for each request, through the store's `finishMany` when it has one, else one concurrent `finish` each.
 *
 * @since 0.1.0
 * @category combinators
 */
export const finishMany = (
  store: JobStore["Type"],
  requests: ReadonlyArray<FinishRequest>
): Effect.Effect<ReadonlyArray<Either.Either<void, StoreError>>> =>
  store.finishMany !== undefined
    ? store.finishMany(requests)
    : Effect.forEach(requests, (request) => Effect.either(store.finish(request)), { concurrency: "unbounded" })

/**
 * A fresh in-memory store (its own state; `layerMemory` shares one state with the memory `JobLockModel`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<JobStore["Type"]> = Effect.sync(() => memoryStore(new MemoryState()))

/**
 * Run records the memory store keeps over all jobs together (besides `maxRecords` per job): the newest 10,000. Past
 * it the oldest record of any job goes first, so that memory stays bounded with many jobs (100,000 jobs keeping 100
 * records each would be over a gigabyte).
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultMemoryMaxRecordsTotal: number = DEFAULT_MAX_RECORDS_TOTAL

/**
 * Options of the in-memory store.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  /** Run records kept over all jobs together, newest kept. Default `defaultMemoryMaxRecordsTotal` (10,000). */
  readonly maxRecordsTotal?: number | undefined
}

/**
 * `layerMemory` with options: one in-memory state behind both the `JobStore` and the `JobLockModel`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemoryWith = (options: MemoryOptions): Layer.Layer<JobStore | JobLockModel.JobLockModel> =>
  Layer.effectContext(
    Effect.sync(() => {
      const state = new MemoryState(options)
      return Context.make(JobStore, memoryStore(state)).pipe(
        Context.add(JobLockModel.JobLockModel, memoryLockModel(state))
      )
    })
  )

/**
 * The embedded default: one in-memory state behind both the `JobStore` and the `JobLockModel`, so that a lock taken
 * through either excludes the other. It keeps at most `defaultMemoryMaxRecordsTotal` run records over all jobs
 * (`layerMemoryWith` sets another bound).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<JobStore | JobLockModel.JobLockModel> = layerMemoryWith({})
