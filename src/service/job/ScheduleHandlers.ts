/**
 * The service's handlers for stored schedules: the same work as its two configured jobs, registered by name so that
 * schedules made at runtime (`UpsertSchedule`) can run it. Neither takes a payload (one given is `InvalidPayload`).
 *
 * @since 0.2.0
 */
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Schedules from "../../Schedules.js"
import * as ArchiveUserHandler from "./ArchiveUserHandler.js"
import * as SyncUserHandler from "./SyncUserHandler.js"

/**
 * Every handler a stored schedule may name: `sync_user` and `archive_user`.
 *
 * @since 0.2.0
 * @category handlers
 */
export const handlers = [
  Schedules.handler("sync_user", Schema.Undefined, () => SyncUserHandler.make()),
  Schedules.handler("archive_user", Schema.Undefined, () => ArchiveUserHandler.make())
] as const

/**
 * The schedules service over this node's scheduler (job and all modes).
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = Schedules.layer(handlers).pipe(Layer.orDie)

/**
 * The schedules service over the store alone (rpc mode: no scheduler here; the leader applies the changes).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerStore = Schedules.layerStore(handlers).pipe(Layer.orDie)
