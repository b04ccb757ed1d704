/**
 * The job RPC service: list jobs with status and next fire, recent runs, trigger, pause, resume, and who leads.
 * Mutating calls (trigger, pause, resume) require `Authorization: Bearer <token>` when a token is configured
 * (`http.token`). A trigger made on a node that does not lead is forwarded to the leader (`Forward`), so it works from
 * any node and answers the run id.
 *
 * @since 0.1.0
 */
import type * as Headers from "@effect/platform/Headers"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { timingSafeEqual } from "node:crypto"
import type { JobStatus } from "../../Scheduler.js"
import { Unauthorized } from "../Errors.js"
import { NodeInfo } from "./ClusterInfo.js"
import { LeaderDirectory } from "./Directory.js"
import * as Forward from "./Forward.js"
import { JobControl } from "./JobControl.js"
import { JobRpcs, JobView, LeaderView } from "./Rpcs.js"

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

/** Constant-time comparison, so the time of a wrong guess says nothing about the token. */
const sameSecret = (given: string, expected: string): boolean => {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * Succeeds when no token is configured, or when the request carries `Authorization: Bearer <token>`.
 *
 * @since 0.1.0
 * @category auth
 */
export const authorize = (
  token: Option.Option<Redacted.Redacted<string>>,
  headers: Headers.Headers
): Effect.Effect<void, Unauthorized> => {
  if (Option.isNone(token)) return Effect.void
  const header = headers["authorization"]
  if (header === undefined) return Effect.fail(new Unauthorized({ reason: "missing Authorization: Bearer <token>" }))
  const match = /^Bearer\s+(.+)$/i.exec(header.trim())
  if (match === null || !sameSecret(match[1]!, Redacted.value(token.value))) {
    return Effect.fail(new Unauthorized({ reason: "wrong bearer token" }))
  }
  return Effect.void
}

/**
 * The handlers, over the `JobControl` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: { readonly token: Option.Option<Redacted.Redacted<string>> }) =>
  JobRpcs.toLayer(Effect.gen(function*() {
    const control = yield* JobControl
    const directory = yield* LeaderDirectory
    const info = yield* NodeInfo
    const trigger = (job: string, headers: Headers.Headers) =>
      control.jobs.includes(job)
        ? Effect.flatMap(control.leading, (leading) =>
          leading
            ? control.trigger(job)
            : Forward.trigger(job, headers, info.nodeId).pipe(Effect.provideService(LeaderDirectory, directory)))
        : control.trigger(job)
    const guarded = <A, E>(headers: Headers.Headers, effect: Effect.Effect<A, E>, action: string, job: string) =>
      Effect.zipRight(authorize(options.token, headers), effect).pipe(
        Effect.tap(() => Effect.logInfo(`job ${action} by rpc`).pipe(Effect.annotateLogs({ job })))
      )
    return JobRpcs.of({
      ListJobs: () => Effect.map(control.status, (all) => all.map(toView)),
      JobRuns: ({ job, limit }) => control.runs(job, limit),
      TriggerJob: ({ job }, { headers }) => guarded(headers, trigger(job, headers), "trigger", job),
      PauseJob: ({ job }, { headers }) => guarded(headers, control.pause(job), "pause", job),
      ResumeJob: ({ job }, { headers }) => guarded(headers, control.resume(job), "resume", job),
      Leader: () =>
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
    })
  }))
