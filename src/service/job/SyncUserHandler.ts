/**
 * The `sync_user` handler (`job/syncuserhandler.go` in the Go pattern): build the logic, call it, return its result.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as SyncUserLogic from "../logic/job/SyncUserLogic.js"

/**
 * @since 0.1.0
 * @category handlers
 */
export const make = (options?: SyncUserLogic.SyncUserOptions) =>
  Effect.flatMap(SyncUserLogic.make(options), (logic) => logic.syncUser)
