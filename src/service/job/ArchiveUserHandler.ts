/**
 * The `archive_user` handler (`job/archiveuserhandler.go` in the Go pattern): build the logic, call it, return its result.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as ArchiveUserLogic from "../logic/job/ArchiveUserLogic.js"

/**
 * @since 0.1.0
 * @category handlers
 */
export const make = (options?: ArchiveUserLogic.ArchiveUserOptions) =>
  Effect.flatMap(ArchiveUserLogic.make(options), (logic) => logic.archiveUsers)
