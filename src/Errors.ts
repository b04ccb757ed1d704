/**
 * Every error of the scheduler, as `Schema.TaggedError` classes, so that they can cross the RPC boundary and be
 * matched with `Effect.catchTag`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

// ---------------------------------------------------------------------------------------------------------------
// Errors a job handler returns (the xerr convention of Go RPC services)
// ---------------------------------------------------------------------------------------------------------------

/**
 * Represents an error that occurs when a job meets an expected business condition (`xerr.NewMsgWithInfoLog`
 * in Go RPC services): logged at info, recorded as `business_error`, never retried.
 *
 * @since 0.1.0
 * @category job errors
 */
export class BusinessError extends Schema.TaggedError<BusinessError>()("BusinessError", {
  code: Schema.String,
  message: Schema.String
}) {}

/**
 * Represents an error that occurs when infrastructure a job depends on fails (`xerr.NewWithErrorLog` in Go
 * RPC services): logged at error, recorded as `system_error`, retried per the job's retry policy.
 *
 * @since 0.1.0
 * @category job errors
 */
export class SystemError extends Schema.TaggedError<SystemError>()("SystemError", {
  code: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/**
 * The errors a job handler may fail with.
 *
 * @since 0.1.0
 * @category job errors
 */
export type JobError = BusinessError | SystemError

// ---------------------------------------------------------------------------------------------------------------
// Definition-time errors
// ---------------------------------------------------------------------------------------------------------------

/**
 * Represents an error that occurs when a cron expression or its time zone is invalid, or when the expression can
 * never fire (for example `0 0 0 30 2 *`).
 *
 * @since 0.1.0
 * @category definition errors
 */
export class InvalidCron extends Schema.TaggedError<InvalidCron>()("InvalidCron", {
  expression: Schema.String,
  timezone: Schema.String,
  /** The field at fault (`second`, `minute`, `hour`, `dayOfMonth`, `month`, `dayOfWeek`, `timezone`), if one. */
  field: Schema.optional(Schema.String),
  reason: Schema.String
}) {
  get message(): string {
    return `invalid cron "${this.expression}" (${this.timezone})${
      this.field === undefined ? "" : ` in field ${this.field}`
    }: ${this.reason}`
  }
}

/**
 * Represents an error that occurs when a job definition is invalid (bad name, negative duration, bad trigger).
 *
 * @since 0.1.0
 * @category definition errors
 */
export class InvalidJob extends Schema.TaggedError<InvalidJob>()("InvalidJob", {
  job: Schema.String,
  /** Path of the offending option, e.g. `timeout` or `retry.times`. */
  path: Schema.String,
  reason: Schema.String
}) {
  get message(): string {
    return `invalid job "${this.job}" at ${this.path}: ${this.reason}`
  }
}

/**
 * Represents an error that occurs when a job name is registered twice.
 *
 * @since 0.1.0
 * @category definition errors
 */
export class DuplicateJob extends Schema.TaggedError<DuplicateJob>()("DuplicateJob", {
  job: Schema.String
}) {
  get message(): string {
    return `job "${this.job}" is already registered`
  }
}

/**
 * Represents an error that occurs when an operation names a job the scheduler does not know.
 *
 * @since 0.1.0
 * @category control errors
 */
export class UnknownJob extends Schema.TaggedError<UnknownJob>()("UnknownJob", {
  job: Schema.String
}) {
  get message(): string {
    return `unknown job "${this.job}"`
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Schedule errors (`Schedules.upsert`, `Schedules.trigger`, ...)
// ---------------------------------------------------------------------------------------------------------------

/**
 * Represents an error that occurs when a schedule names a handler that is not registered on this node.
 *
 * @since 0.2.0
 * @category schedule errors
 */
export class UnknownHandler extends Schema.TaggedError<UnknownHandler>()("UnknownHandler", {
  schedule: Schema.String,
  handler: Schema.String
}) {
  get message(): string {
    return `schedule "${this.schedule}": unknown handler "${this.handler}"`
  }
}

/**
 * Represents an error that occurs when a schedule's payload does not decode with its handler's payload schema;
 * `path` is where in the payload (`user.id`, empty for the payload itself).
 *
 * @since 0.2.0
 * @category schedule errors
 */
export class InvalidPayload extends Schema.TaggedError<InvalidPayload>()("InvalidPayload", {
  schedule: Schema.String,
  handler: Schema.String,
  path: Schema.String,
  reason: Schema.String
}) {
  get message(): string {
    return `schedule "${this.schedule}": payload for handler "${this.handler}" invalid at ${
      this.path === "" ? "(root)" : this.path
    }: ${this.reason}`
  }
}

/**
 * Represents an error that occurs when a schedule's trigger can never fire: a cron expression without a match (in
 * its `startAt`-`endAt` window), an `endAt` in the past or before `startAt`, an `at` too far in the past to run.
 *
 * @since 0.2.0
 * @category schedule errors
 */
export class NeverFires extends Schema.TaggedError<NeverFires>()("NeverFires", {
  schedule: Schema.String,
  reason: Schema.String
}) {
  get message(): string {
    return `schedule "${this.schedule}" can never fire: ${this.reason}`
  }
}

/**
 * Represents an error that occurs when a schedule spec is invalid otherwise (a bad id, a bad duration or cron
 * expression, an option out of range, an id taken by a job defined in code); `path` names the field.
 *
 * @since 0.2.0
 * @category schedule errors
 */
export class InvalidSchedule extends Schema.TaggedError<InvalidSchedule>()("InvalidSchedule", {
  schedule: Schema.String,
  path: Schema.String,
  reason: Schema.String
}) {
  get message(): string {
    return `invalid schedule "${this.schedule}" at ${this.path}: ${this.reason}`
  }
}

/**
 * Represents an error that occurs when an operation names a schedule that is not stored.
 *
 * @since 0.2.0
 * @category schedule errors
 */
export class UnknownSchedule extends Schema.TaggedError<UnknownSchedule>()("UnknownSchedule", {
  schedule: Schema.String
}) {
  get message(): string {
    return `unknown schedule "${this.schedule}"`
  }
}

/**
 * Represents an error that occurs when an operation that only the leader can do (a backfill) is asked of a node that
 * does not lead.
 *
 * @since 0.2.0
 * @category schedule errors
 */
export class NotLeader extends Schema.TaggedError<NotLeader>()("NotLeader", {
  operation: Schema.String
}) {
  get message(): string {
    return `${this.operation}: this node does not lead`
  }
}

/**
 * Every error `Schedules.upsert` can fail with besides a `StoreError`.
 *
 * @since 0.2.0
 * @category schedule errors
 */
export type ScheduleError = UnknownHandler | InvalidPayload | NeverFires | InvalidSchedule

// ---------------------------------------------------------------------------------------------------------------
// Run-time outcomes that end a run early
// ---------------------------------------------------------------------------------------------------------------

/**
 * Represents an error that occurs when a run exceeds its job's timeout; the handler fiber is interrupted.
 *
 * @since 0.1.0
 * @category run errors
 */
export class JobTimeout extends Schema.TaggedError<JobTimeout>()("JobTimeout", {
  job: Schema.String,
  timeoutMs: Schema.Number
}) {}

/**
 * Represents an error that occurs when a run's lock renewal finds the lock gone or owned by another node; the run
 * is interrupted.
 *
 * @since 0.1.0
 * @category run errors
 */
export class LockLost extends Schema.TaggedError<LockLost>()("LockLost", {
  job: Schema.String,
  key: Schema.String
}) {}

/**
 * Represents an error that occurs when this node stops leading while a run is in progress; the run is interrupted.
 *
 * @since 0.1.0
 * @category run errors
 */
export class LeadershipLost extends Schema.TaggedError<LeadershipLost>()("LeadershipLost", {
  job: Schema.String
}) {}

// ---------------------------------------------------------------------------------------------------------------
// Backend errors
// ---------------------------------------------------------------------------------------------------------------

/**
 * Represents an error that occurs when the lock/status/record store (memory or Redis) cannot answer: a connection
 * refused, a timeout, a script error. Always bounded in time.
 *
 * @since 0.1.0
 * @category backend errors
 */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  backend: Schema.String,
  operation: Schema.String,
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  get message(): string {
    return `${this.backend} ${this.operation} failed: ${this.reason}`
  }
}

/**
 * Represents an error that occurs when the leader election backend (etcd) cannot answer.
 *
 * @since 0.1.0
 * @category backend errors
 */
export class ElectionError extends Schema.TaggedError<ElectionError>()("ElectionError", {
  operation: Schema.String,
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  get message(): string {
    return `leader election ${this.operation} failed: ${this.reason}`
  }
}

/**
 * Represents an error that occurs when the service configuration is invalid. `path` names the field
 * (`jobs.sync_user.timeout`), `reason` says what is wrong with it.
 *
 * @since 0.1.0
 * @category definition errors
 */
export class ConfigInvalid extends Schema.TaggedError<ConfigInvalid>()("ConfigInvalid", {
  path: Schema.String,
  reason: Schema.String
}) {
  get message(): string {
    return `invalid configuration at ${this.path}: ${this.reason}`
  }
}
