/**
 * Schedules as data: handlers are registered in code under a name with a payload `Schema`; schedules (an id, a
 * handler's name, a trigger, a payload, the job options, a window and a run limit) are data, stored in the `JobStore`
 * and managed at runtime from any node (`upsert`, `remove`, `get`, `list`, `trigger`, `backfill`). The leader applies
 * every change: a notification from the store, and a reconcile against the store's version counter for any it
 * missed; it loads every stored schedule when it starts leading.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type {
  InvalidPayload,
  InvalidSchedule,
  NeverFires,
  NotLeader,
  ScheduleError,
  StoreError,
  UnknownHandler,
  UnknownJob,
  UnknownSchedule
} from "./Errors.js"
import * as internal from "./internal/schedules.js"
import * as Spec from "./internal/scheduleSpec.js"
import type { JobStore, PutResult } from "./JobStore.js"
import type { LeaderElection } from "./LeaderElection.js"
import type { RunContext, RunRecord, SkipReason } from "./Run.js"
import type { Scheduler, TriggerResult } from "./Scheduler.js"

// ---------------------------------------------------------------------------------------------------------------
// The spec
// ---------------------------------------------------------------------------------------------------------------

/**
 * A cron trigger: 6 fields (with seconds) or 5, or a macro; in `timezone` (IANA, default `UTC`).
 *
 * @since 0.2.0
 * @category schemas
 */
export const CronTrigger: typeof Spec.CronTrigger = Spec.CronTrigger

/**
 * An interval trigger: `every` (`"5 seconds"`), fixed delay unless `fixedRate`.
 *
 * @since 0.2.0
 * @category schemas
 */
export const EveryTrigger: typeof Spec.EveryTrigger = Spec.EveryTrigger

/**
 * A one-off trigger: one run at the instant `at` (ISO 8601 in JSON), exactly once cluster-wide.
 *
 * @since 0.2.0
 * @category schemas
 */
export const AtTrigger: typeof Spec.AtTrigger = Spec.AtTrigger

/**
 * When a schedule fires: cron, interval or one instant.
 *
 * @since 0.2.0
 * @category schemas
 */
export const Trigger: typeof Spec.Trigger = Spec.Trigger

/**
 * The type of `Trigger`.
 *
 * @since 0.2.0
 * @category models
 */
export type Trigger = typeof Spec.Trigger.Type

/**
 * A schedule as data. `payload` is the handler's payload in its encoded form (what its schema decodes, JSON for the
 * RPC); durations are strings such as `"5 minutes"`. The options are those of a job defined in code (`Job.make`),
 * plus `startAt` / `endAt` (no fire before / after) and `limit` (at most that many scheduled runs, cluster-wide).
 *
 * @since 0.2.0
 * @category schemas
 */
export const ScheduleSpec: typeof Spec.ScheduleSpec = Spec.ScheduleSpec

/**
 * The type of `ScheduleSpec`.
 *
 * @since 0.2.0
 * @category models
 */
export type ScheduleSpec = typeof ScheduleSpec.Type

/**
 * Where a stored schedule stands: `active` (it fires), `disabled` (`enabled: false`), `finished` (its `at` ran, its
 * limit was reached, or its `endAt` passed), `broken` (stored, but this node cannot run it: its handler is not
 * registered here, or its payload no longer decodes).
 *
 * @since 0.2.0
 * @category models
 */
export type ScheduleState = "active" | "disabled" | "finished" | "broken"

/**
 * A stored schedule as `get` reads it: its spec and revision, its state, the fire this node planned (the leader's
 * plan; none on a follower), the last fire claimed by any node, the scheduled runs counted, and its newest record.
 *
 * @since 0.2.0
 * @category models
 */
export interface ScheduleInfo {
  readonly spec: ScheduleSpec
  readonly revision: number
  readonly state: ScheduleState
  readonly nextFire: Option.Option<Date>
  readonly lastFire: Option.Option<Date>
  readonly runs: number
  readonly lastRun: Option.Option<RunRecord>
}

/**
 * A page of `list`: the schedules and the cursor of the next page, if there is one.
 *
 * @since 0.2.0
 * @category models
 */
export interface SchedulePage {
  readonly schedules: ReadonlyArray<{ readonly spec: ScheduleSpec; readonly revision: number }>
  readonly next: Option.Option<string>
}

/**
 * What `upsert` did: `created`, `updated` or `unchanged` (the same spec was stored: nothing changed), with the
 * schedule's revision.
 *
 * @since 0.2.0
 * @category models
 */
export interface UpsertResult {
  readonly result: PutResult
  readonly revision: number
}

/**
 * What `backfill` did for each fire time of the window, oldest first: `Started` with its record once the run was
 * over, or `Skipped` with the reason (`slot_taken` or `already_ran` for a fire time that ran before).
 *
 * @since 0.2.0
 * @category models
 */
export interface BackfillResult {
  readonly fires: ReadonlyArray<
    | { readonly _tag: "Ran"; readonly fireTime: Date; readonly record: RunRecord }
    | { readonly _tag: "Skipped"; readonly fireTime: Date; readonly reason: SkipReason | "already_ran" }
  >
}

// ---------------------------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------------------------

/**
 * A handler registered by name: the payload schema its schedules' payloads are decoded with before each run, and the
 * work of a run given the typed payload (and `RunContext`).
 *
 * @since 0.2.0
 * @category models
 */
export interface Handler<in out A, in out I, out R> {
  readonly name: string
  readonly payload: Schema.Schema<A, I>
  readonly run: (payload: A) => Effect.Effect<void, unknown, R | RunContext>
  /** Which failures are expected business outcomes (see `Job.JobOptions.isExpected`). */
  readonly isExpected: (error: unknown) => boolean
}

/**
 * Register a handler under `name` with its payload schema.
 *
 * @since 0.2.0
 * @category constructors
 */
export const handler: <A, I, E, R>(
  name: string,
  payload: Schema.Schema<A, I>,
  run: (payload: A) => Effect.Effect<void, E, R>,
  options?: { readonly isExpected?: ((error: E) => boolean) | undefined }
) => Handler<A, I, Exclude<R, RunContext>> = internal.handler

/**
 * A spec for `handler` from a typed payload (encoded with the handler's schema): the typed way to write a schedule
 * in code. Fails with the encoding error as `InvalidPayload`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const spec: <A, I, R>(
  handler: Handler<A, I, R>,
  options: Omit<ScheduleSpec, "handler" | "payload"> & { readonly payload: NoInfer<A> }
) => Either.Either<ScheduleSpec, InvalidPayload> = internal.spec

// ---------------------------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------------------------

/**
 * The stored schedules as a service, on every node; the leader runs them.
 *
 * @since 0.2.0
 * @category tags
 */
export class Schedules extends Context.Tag("effect-job-scheduler/Schedules")<Schedules, {
  /**
   * Create or replace a schedule, validated first (unknown handler, a payload its schema does not decode, a trigger
   * that never fires, a bad option: typed errors, nothing stored). The same spec again changes nothing; a changed
   * trigger or window replans from the new one, from now; a changed payload or option keeps the planned fire.
   */
  readonly upsert: (spec: ScheduleSpec) => Effect.Effect<UpsertResult, ScheduleError | StoreError>
  /** Delete a schedule: it fires no more, cluster-wide (a run in progress finishes). False when it was not stored. */
  readonly remove: (id: string) => Effect.Effect<boolean, StoreError>
  readonly get: (id: string) => Effect.Effect<ScheduleInfo, UnknownSchedule | StoreError>
  /** A page of the stored schedules in id order, after `cursor`, of one `handler` if given; `limit` default 100. */
  readonly list: (options?: {
    readonly handler?: string | undefined
    readonly cursor?: string | undefined
    readonly limit?: number | undefined
  }) => Effect.Effect<SchedulePage, StoreError>
  /**
   * Run a schedule now (a manual run: no slot, not counted against its limit), with `payload` instead of its stored
   * one when given (decoded with the handler's schema first). `NotLeader` on a node that runs no scheduler.
   */
  readonly trigger: (
    id: string,
    payload?: unknown
  ) => Effect.Effect<
    TriggerResult,
    UnknownSchedule | UnknownHandler | InvalidPayload | InvalidSchedule | UnknownJob | NotLeader | StoreError
  >
  /**
   * Run each fire time of the schedule within `[from, to]` once, oldest first, at most `concurrency` at a time (default
   * 1; a schedule that takes its lock runs one at a time), skipping fire times that ran already (their slot is
   * claimed, or a run record has that fire time). Only on the leader. At most `maxBackfillFires` fire times per call.
   */
  readonly backfill: (id: string, options: {
    readonly from: Date
    readonly to: Date
    readonly concurrency?: number | undefined
  }) => Effect.Effect<
    BackfillResult,
    UnknownSchedule | UnknownHandler | InvalidSchedule | NeverFires | NotLeader | StoreError
  >
  /** Apply every stored schedule now (done by itself on start, on leading, and when a change was missed). */
  readonly reconcile: Effect.Effect<void, StoreError>
}>() {}

/**
 * Options of `make`: how often the store's version counter is read to find changes whose announcement was lost.
 *
 * @since 0.2.0
 * @category models
 */
export interface SchedulesOptions {
  /** Default 1 second. */
  readonly reconcileInterval?: Duration.DurationInput | undefined
}

/**
 * The most fire times one `backfill` runs: 10,000.
 *
 * @since 0.2.0
 * @category defaults
 */
export const maxBackfillFires: number = internal.maxBackfillFires

/**
 * Build the service over the scheduler, the store and the election in context, with `handlers`: loads every stored
 * schedule into the scheduler, then follows the store's changes until the scope closes.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: <R>(
  // The handlers' payload types differ from one another; `any` lets one list hold them all (each is checked when
  // it is made with `handler`).
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  handlers: Iterable<Handler<any, any, R>>,
  options?: SchedulesOptions
) => Effect.Effect<Schedules["Type"], InvalidSchedule, R | Scheduler | JobStore | LeaderElection | Scope.Scope> =
  internal.make

/**
 * `make` as a layer.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = <R>(
  // See `make` for the `any`.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  handlers: Iterable<Handler<any, any, R>>,
  options?: SchedulesOptions
): Layer.Layer<Schedules, InvalidSchedule, R | Scheduler | JobStore | LeaderElection> =>
  internal.layer(Schedules, handlers, options)

/**
 * The service over the store alone, for a node that runs no scheduler (an RPC-only node): upsert, remove, get and list
 * validate with `handlers` and write to the store (the leader applies the changes); `trigger` and `backfill` fail
 * with `NotLeader`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerStore = <R>(
  // See `make` for the `any`.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  handlers: Iterable<Handler<any, any, R>>
): Layer.Layer<Schedules, InvalidSchedule, R | JobStore> => internal.layerStore(Schedules, handlers)
