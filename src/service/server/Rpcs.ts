/**
 * The service's RPC contract (@effect/rpc): a user service and a job service, served together at `POST /rpc` with
 * JSON serialization (so a `curl` can call it). Shared by the server and its clients.
 *
 * @since 0.1.0
 */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"
import {
  InvalidPayload,
  InvalidSchedule,
  NeverFires,
  NotLeader,
  StoreError,
  UnknownHandler,
  UnknownJob,
  UnknownSchedule
} from "../../Errors.js"
import { RunRecord, SkipReason } from "../../Run.js"
import { ScheduleSpec } from "../../Schedules.js"
import { NoLeader, RepositoryError, Unauthorized, UserNotFound } from "../Errors.js"
import { User } from "../repository/UserModel.js"
import { LeaderRecord } from "./Directory.js"

/**
 * The largest page `ListUsers` serves: bounds the response size.
 *
 * @since 0.1.0
 * @category limits
 */
export const MAX_PAGE_SIZE = 100

/**
 * The most run records `JobRuns` returns (the store keeps 100 per job by default).
 *
 * @since 0.1.0
 * @category limits
 */
export const MAX_RUNS = 100

/**
 * One page of users.
 *
 * @since 0.1.0
 * @category models
 */
export class UserList extends Schema.Class<UserList>("UserList")({
  users: Schema.Array(User),
  total: Schema.Number,
  page: Schema.Number,
  pageSize: Schema.Number
}) {}

/**
 * @since 0.1.0
 * @category groups
 */
export class UserRpcs extends RpcGroup.make(
  Rpc.make("GetUser", {
    payload: { id: Schema.Int },
    success: User,
    error: Schema.Union(UserNotFound, RepositoryError, Unauthorized)
  }),
  Rpc.make("ListUsers", {
    payload: Schema.Struct({
      page: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), { default: () => 1 }),
      pageSize: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, MAX_PAGE_SIZE)), { default: () => 20 })
    }),
    success: UserList,
    error: Schema.Union(RepositoryError, Unauthorized)
  })
) {}

/**
 * A job's status as the RPC shows it (times as ISO strings).
 *
 * @since 0.1.0
 * @category models
 */
export class JobView extends Schema.Class<JobView>("JobView")({
  name: Schema.String,
  trigger: Schema.String,
  enabled: Schema.Boolean,
  paused: Schema.Boolean,
  /** The next fire this node plans; null while not leading, disabled, or on an rpc-mode node for interval jobs. */
  nextFire: Schema.NullOr(Schema.String),
  running: Schema.Number,
  lastRun: Schema.NullOr(RunRecord),
  counters: Schema.Struct({
    runs: Schema.Number,
    success: Schema.Number,
    failures: Schema.Number,
    skips: Schema.Number
  })
}) {}

/**
 * What `TriggerJob` did.
 *
 * @since 0.1.0
 * @category models
 */
export const TriggerOutcome = Schema.Union(
  Schema.TaggedStruct("Started", { runId: Schema.String, fence: Schema.Number }),
  Schema.TaggedStruct("Skipped", { reason: SkipReason })
)

/**
 * The longest job name accepted in a request: longer ones are refused before any lookup (and never echoed whole).
 *
 * @since 0.1.0
 * @category limits
 */
export const MAX_JOB_NAME = 200

const JobName = { job: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(MAX_JOB_NAME)) }

/**
 * What `Leader` answers: the leader as it published itself (null when none is published), and the node that answered.
 *
 * @since 0.1.0
 * @category models
 */
export class LeaderView extends Schema.Class<LeaderView>("LeaderView")({
  leader: Schema.NullOr(LeaderRecord),
  node: Schema.Struct({
    nodeId: Schema.String,
    mode: Schema.String,
    version: Schema.String,
    configHash: Schema.String,
    /** Whether the answering node leads now. */
    leading: Schema.Boolean,
    /** Whether its job definitions differ from the leader's (false when no leader is published). */
    configDrift: Schema.Boolean
  })
}) {}

/**
 * A stored schedule as `GetSchedule` shows it (times as ISO strings, null when none).
 *
 * @since 0.2.0
 * @category models
 */
export class ScheduleView extends Schema.Class<ScheduleView>("ScheduleView")({
  spec: ScheduleSpec,
  revision: Schema.Number,
  state: Schema.Literal("active", "disabled", "finished", "broken"),
  /** The next fire the answering node plans (the leader's plan; null on a follower). */
  nextFire: Schema.NullOr(Schema.String),
  lastFire: Schema.NullOr(Schema.String),
  runs: Schema.Number,
  lastRun: Schema.NullOr(RunRecord)
}) {}

/**
 * What `BackfillSchedule` did per fire time, oldest first.
 *
 * @since 0.2.0
 * @category models
 */
export const BackfillFire = Schema.Union(
  Schema.TaggedStruct("Ran", { fireTime: Schema.Date, record: RunRecord }),
  Schema.TaggedStruct("Skipped", {
    fireTime: Schema.Date,
    reason: Schema.Union(SkipReason, Schema.Literal("already_ran"))
  })
)

/**
 * The largest page `ListSchedules` serves.
 *
 * @since 0.2.0
 * @category limits
 */
export const MAX_SCHEDULE_PAGE = 1000

const ScheduleId = { id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(MAX_JOB_NAME)) }

const ScheduleErrors = Schema.Union(
  Unauthorized,
  UnknownHandler,
  InvalidPayload,
  NeverFires,
  InvalidSchedule,
  StoreError
)

/**
 * @since 0.1.0
 * @category groups
 */
export class JobRpcs extends RpcGroup.make(
  Rpc.make("ListJobs", { success: Schema.Array(JobView), error: Schema.Union(StoreError, Unauthorized) }),
  Rpc.make("JobRuns", {
    payload: Schema.Struct({
      ...JobName,
      limit: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, MAX_RUNS)), { default: () => 20 })
    }),
    success: Schema.Array(RunRecord),
    error: Schema.Union(UnknownJob, StoreError, Unauthorized)
  }),
  Rpc.make("TriggerJob", {
    /** `payload`: for a schedule, run with it instead of its stored payload (decoded with its handler's schema). */
    payload: { ...JobName, payload: Schema.optional(Schema.Unknown) },
    success: TriggerOutcome,
    error: Schema.Union(Unauthorized, UnknownJob, StoreError, NoLeader, UnknownHandler, InvalidPayload, InvalidSchedule)
  }),
  Rpc.make("UpsertSchedule", {
    payload: ScheduleSpec,
    success: Schema.Struct({ result: Schema.Literal("created", "updated", "unchanged"), revision: Schema.Number }),
    error: ScheduleErrors
  }),
  Rpc.make("RemoveSchedule", {
    payload: ScheduleId,
    success: Schema.Struct({ removed: Schema.Boolean }),
    error: Schema.Union(Unauthorized, StoreError)
  }),
  Rpc.make("GetSchedule", {
    payload: ScheduleId,
    success: ScheduleView,
    error: Schema.Union(Unauthorized, UnknownSchedule, StoreError)
  }),
  Rpc.make("ListSchedules", {
    payload: Schema.Struct({
      handler: Schema.optional(Schema.String),
      cursor: Schema.optional(Schema.String),
      limit: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, MAX_SCHEDULE_PAGE)), { default: () => 100 })
    }),
    success: Schema.Struct({
      schedules: Schema.Array(Schema.Struct({ spec: ScheduleSpec, revision: Schema.Number })),
      next: Schema.NullOr(Schema.String)
    }),
    error: Schema.Union(Unauthorized, StoreError)
  }),
  Rpc.make("BackfillSchedule", {
    payload: Schema.Struct({
      ...ScheduleId,
      from: Schema.Date,
      to: Schema.Date,
      concurrency: Schema.optional(Schema.Int.pipe(Schema.between(1, 64)))
    }),
    success: Schema.Struct({ fires: Schema.Array(BackfillFire) }),
    error: Schema.Union(ScheduleErrors, UnknownSchedule, NotLeader)
  }),
  Rpc.make("PauseJob", { payload: JobName, error: Schema.Union(Unauthorized, UnknownJob, StoreError) }),
  Rpc.make("ResumeJob", { payload: JobName, error: Schema.Union(Unauthorized, UnknownJob, StoreError) }),
  Rpc.make("Leader", { success: LeaderView, error: Schema.Union(StoreError, Unauthorized) })
) {}

/**
 * Both services, as served at `POST /rpc`.
 *
 * @since 0.1.0
 * @category groups
 */
export class ServiceRpcs extends UserRpcs.merge(JobRpcs) {}

/**
 * The path of the RPC endpoint.
 *
 * @since 0.1.0
 * @category constants
 */
export const RPC_PATH = "/rpc"
