/**
 * The fire arithmetic of the scheduler, pure: no clock, no timer, no effect. Times are epoch milliseconds; `now` is
 * always an argument.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import * as Cron from "../../Cron.js"
import type * as Job from "../../Job.js"

/**
 * The first planned fire of a cron or interval job when a node starts leading, from the last fire time recorded by
 * any node (none: from now). Cron: the next match after it; intervals: `every` after it (a fixed-delay job's first
 * run is `every` after the scheduler starts).
 */
export const firstFire = (
  trigger: Exclude<Job.Trigger, { readonly _tag: "Schedule" | "At" }>,
  last: number | undefined,
  now: number
): number => {
  const from = last ?? now
  if (trigger._tag !== "Cron") return from + Duration.toMillis(trigger.every)
  // When a node starts leading, most jobs ask the same question (one shared cron, never fired: the next match after
  // now): the last answer is kept. `Cron.next` is pure, so the answer is the same.
  const memo = lastNext
  if (memo.cron === trigger.cron && memo.from === from) return memo.next
  const next = Cron.next(trigger.cron, from)
  lastNext = { cron: trigger.cron, from, next }
  return next
}

let lastNext: { readonly cron: Cron.Cron | undefined; readonly from: number; readonly next: number } = {
  cron: undefined,
  from: Number.NaN,
  next: Number.NaN
}

/**
 * The one fire of an `At` job: `at`, unless a fire at or after it was claimed already (the job is finished).
 */
export const atFire = (at: number, last: number | undefined): number | undefined =>
  last !== undefined && last >= at ? undefined : at

/**
 * Bound a planned fire to the job's window: one before `startAt` moves to the first fire at or after it (a cron
 * job's next match from there, any other trigger `startAt` itself); one after `endAt` is none.
 */
export const bounded = (job: Job.Job<never>, planned: number | undefined): number | undefined => {
  if (planned === undefined) return undefined
  let time = planned
  if (job.startAt !== undefined && time < job.startAt) {
    time = job.trigger._tag === "Cron" ? Cron.next(job.trigger.cron, job.startAt - 1) : job.startAt
  }
  return job.endAt !== undefined && time > job.endAt ? undefined : time
}

/**
 * The fire a `Schedule` step decided, no earlier than `earliest`; undefined once the schedule is done.
 */
export const scheduleFire = (decision: ScheduleDecision.ScheduleDecision, earliest: number): number | undefined =>
  ScheduleDecision.isDone(decision) ? undefined : Math.max(earliest, Intervals.start(decision.intervals))

/**
 * Where a due fire of a cron or fixed-rate job lands: the newest fire time <= now (older ones are superseded:
 * never N catch-up runs), how many were passed over, and the next fire. Written into a caller's object: the planner
 * keeps one and reuses it for every fire.
 */
export interface DueFire {
  newest: number
  missed: number
  next: number
}

/**
 * A cron job's planned fire `planned` is due at `now`: its newest fire time within `windowMs` before now (the
 * misfire window; anything older could only be skipped), and the one after.
 */
export const cronDue = (cron: Cron.Cron, planned: number, now: number, windowMs: number, out: DueFire): void => {
  let newest = planned
  let missed = 0
  let candidate = Cron.next(cron, Math.max(planned, now - windowMs - 1))
  while (candidate <= now) {
    newest = candidate
    missed++
    candidate = Cron.next(cron, candidate)
  }
  out.newest = newest
  out.missed = missed
  out.next = candidate
}

/** A fixed-rate job's planned fire is due at `now`: the newest grid point <= now, and the next one. */
export const fixedRateDue = (everyMs: number, planned: number, now: number, out: DueFire): void => {
  const steps = Math.max(0, Math.floor((now - planned) / everyMs))
  out.newest = planned + steps * everyMs
  out.missed = steps
  out.next = out.newest + everyMs
}

/**
 * Whether a fire `latenessMs` late still runs: on time within the scheduler's threshold; else, with the `runOnce`
 * policy, as a catch-up run within the job's grace; else it is a misfire.
 */
export const misfire = (
  latenessMs: number,
  thresholdMs: number,
  policy: Job.MisfirePolicy,
  graceMs: number
): "on_time" | "catch_up" | "misfired" =>
  latenessMs <= thresholdMs
    ? "on_time"
    : policy === "runOnce" && latenessMs <= graceMs
    ? "catch_up"
    : "misfired"

/** What a fire does about runs of the job still in progress here. */
export const overlap = (running: number, policy: Job.OverlapPolicy): "run" | "skip" | "replace" =>
  running === 0 || policy === "allow" ? "run" : policy
