/**
 * The service's jobs: each configured job with its handler, validated by `Job.make` (the config was already checked
 * with the same function, so this only fails for a config built by hand).
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import type { ConfigInvalid } from "../../Errors.js"
import * as Job from "../../Job.js"
import type { JobLockModel } from "../../JobLockModel.js"
import { JOB_NAMES, type JobName, type ServiceConfig, toConfigInvalid, toJobOptions } from "../config/Config.js"
import type { UserModel } from "../repository/UserModel.js"
import * as ArchiveUserHandler from "./ArchiveUserHandler.js"
import * as SyncUserHandler from "./SyncUserHandler.js"

/**
 * What the service's handlers need.
 *
 * @since 0.1.0
 * @category models
 */
export type HandlerRequirements = UserModel | JobLockModel

/**
 * The handler of each known job.
 *
 * @since 0.1.0
 * @category handlers
 */
export const handlers: { readonly [K in JobName]: Job.JobOptions<HandlerRequirements>["handler"] } = {
  sync_user: SyncUserHandler.make(),
  archive_user: ArchiveUserHandler.make()
}

/**
 * Every configured job (disabled ones included: they show in status but never fire).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  config: Pick<ServiceConfig, "jobs">
): Either.Either<ReadonlyArray<Job.Job<HandlerRequirements>>, ConfigInvalid> =>
  Either.all(JOB_NAMES.map((name) =>
    Either.mapLeft(
      Job.make(toJobOptions(name, config.jobs[name], { handler: handlers[name] })),
      (error) => toConfigInvalid(name, error)
    )
  ))
