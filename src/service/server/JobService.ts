/**
 * The job RPC service: list jobs with status and next fire, recent runs, trigger, pause, resume, and who leads.
 * With `http.token` set every call needs the token (`Auth`; reads also accept `http.readToken`). A trigger made on a
 * node that does not lead is forwarded to the leader (`Forward`), so it works from any node and answers the run id.
 * Trigger, pause and resume are logged as `audit` lines.
 *
 * @since 0.1.0
 */
import type * as Headers from "@effect/platform/Headers"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { UnknownJob } from "../../Errors.js"
import type { JobStatus } from "../../Scheduler.js"
import { Schedules } from "../../Schedules.js"
import * as Auth from "./Auth.js"
import { NodeInfo } from "./ClusterInfo.js"
import { LeaderDirectory } from "./Directory.js"
import * as Forward from "./Forward.js"
import { JobControl } from "./JobControl.js"
import { JobRpcs, JobView, LeaderView, ScheduleView } from "./Rpcs.js"

/**
 * A job status as the RPC shows it.
 *
 * @since 0.1.0
 * @category encoding
 */
export const toView = (status: JobStatus): JobView =>
  new JobView({
    name: status.name,
    trigger: status.trigger,
    enabled: status.enabled,
    paused: status.paused,
    nextFire: Option.match(status.nextFire, { onNone: () => null, onSome: (date) => date.toISOString() }),
    running: status.running,
    lastRun: Option.getOrNull(status.lastRun),
    counters: status.counters
  })

/**
 * The handlers, over the `JobControl` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (tokens: Auth.Tokens) =>
  JobRpcs.toLayer(Effect.gen(function*() {
    const control = yield* JobControl
    const schedules = yield* Schedules
    const directory = yield* LeaderDirectory
    const info = yield* NodeInfo
    const read = <A, E>(headers: Headers.Headers, rpc: string, effect: Effect.Effect<A, E>) =>
      Effect.zipRight(Auth.authorize(tokens, "read", headers, rpc), effect)
    const write = <A, E extends { readonly _tag: string; readonly message: string }>(
      headers: Headers.Headers,
      rpc: string,
      action: string,
      job: string,
      effect: Effect.Effect<A, E>,
      details?: (a: A) => Record<string, unknown>
    ) =>
      Effect.flatMap(
        Auth.authorize(tokens, "write", headers, rpc),
        (caller) => Auth.audit(action, job, caller, effect, details)
      )
    const forward = (job: string, headers: Headers.Headers, payload?: unknown) =>
      Forward.trigger(job, headers, info.nodeId, payload).pipe(Effect.provideService(LeaderDirectory, directory))
    // A job defined in code runs through the scheduler (forwarded to the leader from a node that does not lead); a
    // stored schedule through `Schedules` (with a payload, if given), forwarded the same way.
    const trigger = (job: string, payload: unknown, headers: Headers.Headers) =>
      Effect.flatMap(control.leading, (leading) => {
        if (control.jobs.includes(job)) {
          if (payload !== undefined) {
            return Effect.fail(new UnknownJob({ job: `${job} (a job defined in code takes no payload)` }))
          }
          return leading ? control.trigger(job) : forward(job, headers)
        }
        // Not leading: forwarded only if the schedule exists (an unknown name is answered here).
        if (!leading) {
          return schedules.get(job).pipe(
            Effect.catchTag("UnknownSchedule", () => Effect.fail(new UnknownJob({ job }))),
            Effect.zipRight(forward(job, headers, payload))
          )
        }
        return schedules.trigger(job, payload).pipe(
          Effect.catchTags({
            UnknownSchedule: () => Effect.fail(new UnknownJob({ job })),
            NotLeader: () => forward(job, headers, payload)
          })
        )
      })
    const views = {
      nextOrNull: (date: Option.Option<Date>) =>
        Option.match(date, { onNone: () => null, onSome: (d) => d.toISOString() })
    }
    return JobRpcs.of({
      ListJobs: (_, { headers }) => read(headers, "ListJobs", Effect.map(control.status, (all) => all.map(toView))),
      JobRuns: ({ job, limit }, { headers }) => read(headers, "JobRuns", control.runs(job, limit)),
      TriggerJob: ({ job, payload }, { headers }) =>
        write(headers, "TriggerJob", "trigger", job, trigger(job, payload, headers), (result) =>
          result._tag === "Started" ? { run_id: result.runId } : { skipped: result.reason }),
      UpsertSchedule: (spec, { headers }) =>
        write(headers, "UpsertSchedule", "upsert_schedule", spec.id, schedules.upsert(spec), (result) => ({
          result: result.result,
          revision: result.revision
        })),
      RemoveSchedule: ({ id }, { headers }) =>
        write(
          headers,
          "RemoveSchedule",
          "remove_schedule",
          id,
          Effect.map(schedules.remove(id), (removed) => ({ removed }))
        ),
      GetSchedule: ({ id }, { headers }) =>
        read(
          headers,
          "GetSchedule",
          Effect.map(schedules.get(id), (info) =>
            new ScheduleView({
              spec: info.spec,
              revision: info.revision,
              state: info.state,
              nextFire: views.nextOrNull(info.nextFire),
              lastFire: views.nextOrNull(info.lastFire),
              runs: info.runs,
              lastRun: Option.getOrNull(info.lastRun)
            }))
        ),
      ListSchedules: ({ cursor, handler, limit }, { headers }) =>
        read(
          headers,
          "ListSchedules",
          Effect.map(schedules.list({ cursor, handler, limit }), (page) => ({
            schedules: page.schedules,
            next: Option.getOrNull(page.next)
          }))
        ),
      BackfillSchedule: ({ concurrency, from, id, to }, { headers }) =>
        write(
          headers,
          "BackfillSchedule",
          "backfill_schedule",
          id,
          schedules.backfill(id, { from, to, concurrency }),
          (result) => ({ fires: result.fires.length })
        ),
      PauseJob: ({ job }, { headers }) =>
        write(headers, "PauseJob", "pause", job, control.pause(job)),
      ResumeJob: ({ job }, { headers }) =>
        write(headers, "ResumeJob", "resume", job, control.resume(job)),
      Leader: (_, { headers }) =>
        read(
          headers,
          "Leader",
          Effect.zipWith(directory.current, control.leading, (record, leading) =>
            new LeaderView({
              leader: Option.getOrNull(record),
              node: {
                nodeId: info.nodeId,
                mode: info.mode,
                version: info.version,
                configHash: info.configHash,
                leading,
                configDrift: Option.isSome(record) && record.value.configHash !== info.configHash
              }
            }))
        )
    })
  }))
