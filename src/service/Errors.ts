/**
 * The reference service's own errors, as `Schema.TaggedError`s so that they cross the RPC boundary. Job logic turns
 * them into the scheduler's `BusinessError` / `SystemError` (src/Errors.ts).
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * Represents an error that occurs when the user store cannot answer: a SQLite or PostgreSQL error, a locked or corrupt
 * database, a database server that is down or too slow.
 *
 * @since 0.1.0
 * @category repository errors
 */
export class RepositoryError extends Schema.TaggedError<RepositoryError>()("RepositoryError", {
  operation: Schema.String,
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  get message(): string {
    return `user store ${this.operation} failed: ${this.reason}`
  }
}

/**
 * Represents an error that occurs when a user id names no user.
 *
 * @since 0.1.0
 * @category repository errors
 */
export class UserNotFound extends Schema.TaggedError<UserNotFound>()("UserNotFound", {
  id: Schema.Number
}) {
  get message(): string {
    return `user ${this.id} not found`
  }
}

/**
 * Represents an error that occurs when a mutating RPC (trigger, pause, resume) arrives without the configured bearer
 * token, or with a wrong one.
 *
 * @since 0.1.0
 * @category server errors
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  reason: Schema.String
}) {
  get message(): string {
    return `unauthorized: ${this.reason}`
  }
}

/**
 * Represents an error that occurs when a job operation needs the scheduler but this process does not run it (an
 * `rpc`-mode node cannot trigger a job: the job nodes run jobs).
 *
 * @since 0.1.0
 * @category server errors
 */
export class SchedulerUnavailable extends Schema.TaggedError<SchedulerUnavailable>()("SchedulerUnavailable", {
  operation: Schema.String,
  reason: Schema.String
}) {
  get message(): string {
    return `${this.operation} unavailable: ${this.reason}`
  }
}

/**
 * Every error of the user store.
 *
 * @since 0.1.0
 * @category repository errors
 */
export type UserModelError = RepositoryError
