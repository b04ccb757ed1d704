/**
 * The schemas of a schedule spec, apart from `Schedules.ts` so that the service's implementation can use them without
 * an import cycle. Public through `Schedules`.
 *
 * @internal
 */
import * as Schema from "effect/Schema"

export const CronTrigger = Schema.Struct({ cron: Schema.String, timezone: Schema.optional(Schema.String) })

export const EveryTrigger = Schema.Struct({ every: Schema.String, fixedRate: Schema.optional(Schema.Boolean) })

export const AtTrigger = Schema.Struct({ at: Schema.Date })

export const Trigger = Schema.Union(CronTrigger, EveryTrigger, AtTrigger)

export type Trigger = typeof Trigger.Type

export const ScheduleSpec = Schema.Struct({
  id: Schema.String,
  handler: Schema.String,
  trigger: Trigger,
  payload: Schema.optional(Schema.Unknown),
  enabled: Schema.optional(Schema.Boolean),
  timeout: Schema.optional(Schema.String),
  overlap: Schema.optional(Schema.Literal("skip", "allow", "replace")),
  lock: Schema.optional(
    Schema.Struct({ enabled: Schema.optional(Schema.Boolean), ttl: Schema.optional(Schema.String) })
  ),
  retry: Schema.optional(Schema.Struct({
    times: Schema.optional(Schema.Number),
    delay: Schema.optional(Schema.String),
    factor: Schema.optional(Schema.Number),
    maxDelay: Schema.optional(Schema.String)
  })),
  misfire: Schema.optional(Schema.Literal("skip", "runOnce")),
  misfireGrace: Schema.optional(Schema.String),
  startAt: Schema.optional(Schema.Date),
  endAt: Schema.optional(Schema.Date),
  limit: Schema.optional(Schema.Int.pipe(Schema.positive()))
})

export type ScheduleSpec = typeof ScheduleSpec.Type
