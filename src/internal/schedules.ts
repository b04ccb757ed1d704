/**
 * The body of `Schedules`: validation of a spec into a job, the canonical stored form, and the loop that keeps this
 * node's scheduler in step with the store (notifications, a version check, a full reconcile on start and on leading).
 *
 * One writer: every change to the scheduler's registered schedules (and to `known`) goes through `applyLock`, so a
 * notification, a reconcile and a local upsert never interleave.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type { Scope } from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Cron from "../Cron.js"
import {
  InvalidPayload,
  InvalidSchedule,
  NeverFires,
  NotLeader,
  type StoreError,
  UnknownHandler,
  UnknownJob,
  UnknownSchedule
} from "../Errors.js"
import * as Job from "../Job.js"
import { JobStore, type ScheduleStore, type StoredSchedule } from "../JobStore.js"
import { LeaderElection } from "../LeaderElection.js"
import { RunContext } from "../Run.js"
import { Scheduler } from "../Scheduler.js"
import type {
  BackfillResult,
  Handler,
  ScheduleInfo,
  Schedules as SchedulesTag,
  SchedulesOptions,
  ScheduleState
} from "../Schedules.js"
import { decodeFast, ScheduleSpec } from "./scheduleSpec.js"

/** Schedule ids are job names (they key the same store entries): see `Job.ts`. */
const ID = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$/

export const maxBackfillFires = 10_000

/** Stored schedules read per page when all are loaded. */
const LOAD_PAGE = 2000

/** Pages read ahead of the one applied when all are loaded. */
const PAGES_AHEAD = 3

// The handlers' payload types differ: the registry holds them erased (each was typed when made).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyHandler = Handler<any, any, any>

export const handler = <A, I, E, R>(
  name: string,
  payload: Schema.Schema<A, I>,
  run: (payload: A) => Effect.Effect<void, E, R>,
  options?: { readonly isExpected?: ((error: E) => boolean) | undefined }
): Handler<A, I, Exclude<R, RunContext>> => ({
  name,
  payload,
  // RunContext is provided by the scheduler for every run; it is removed from R as `Job.make` does.
  run: run as (payload: A) => Effect.Effect<void, unknown, Exclude<R, RunContext> | RunContext>,
  // The run fails only with E, so the predicate is only ever given an E.
  isExpected: (options?.isExpected ?? Job.defaultIsExpected) as (error: unknown) => boolean
})

const formatIssue = (error: ParseResult.ParseError): { readonly path: string; readonly reason: string } => {
  const [first] = ParseResult.ArrayFormatter.formatErrorSync(error)
  return first === undefined
    ? { path: "", reason: ParseResult.TreeFormatter.formatErrorSync(error) }
    : { path: first.path.map(String).join("."), reason: first.message }
}

export const spec = <A, I, R>(
  target: Handler<A, I, R>,
  options: Omit<ScheduleSpec, "handler" | "payload"> & { readonly payload: NoInfer<A> }
): Either.Either<ScheduleSpec, InvalidPayload> =>
  Either.map(
    Either.mapLeft(
      Schema.encodeEither(target.payload)(options.payload),
      (error) => new InvalidPayload({ schedule: options.id, handler: target.name, ...formatIssue(error) })
    ),
    (payload) => ({ ...options, handler: target.name, payload })
  )

/** JSON with object keys sorted: equal specs give equal strings, whatever order their fields were written in. */
const canonicalJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v)

const encodeSpec = Schema.encodeSync(ScheduleSpec)
const decodeSpec = Schema.decodeUnknownEither(ScheduleSpec)

/**
 * A stored spec's JSON decoded with `ScheduleSpec`, or why it cannot be (the schema's message). `JSON.parse` then
 * `decodeFast` (the schema's checks written out), else the schema itself: the same result as
 * `Schema.parseJson(ScheduleSpec)` at a fraction of its cost per spec (a load decodes every stored schedule).
 */
const decodeSpecJson = (json: string): Either.Either<ScheduleSpec, string> => {
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch (error) {
    return Either.left(`not JSON: ${error instanceof Error ? error.message : String(error)}`)
  }
  const fast = decodeFast(value)
  if (fast !== undefined) return Either.right(fast)
  return Either.mapLeft(decodeSpec(value), (error) => ParseResult.TreeFormatter.formatErrorSync(error))
}

/** What a change must replan from: the trigger and the window. */
const planKey = (spec: ScheduleSpec): string =>
  canonicalJson({ trigger: encodeSpec(spec).trigger, startAt: spec.startAt, endAt: spec.endAt })

interface Known {
  readonly spec: string
  /** The store's revision of what was applied: a read older than it is stale and never applied over it. */
  readonly revision: number
  /**
   * The last full reconcile that listed this schedule (its round; 0: none). Written when a reconcile's page is
   * applied, kept when the entry is replaced; a reconcile removes what it did not list.
   */
  listed: number
}

/** A job's `InvalidJob` / `InvalidCron` as the schedule's error: a never-matching cron is `NeverFires`. */
const fromJobError = (id: string, error: unknown): InvalidSchedule | NeverFires => {
  if (typeof error === "object" && error !== null && "_tag" in error) {
    if (error._tag === "InvalidCron") {
      const reason = (error as unknown as { readonly reason: string }).reason
      return reason.includes("never fire")
        ? new NeverFires({ schedule: id, reason })
        : new InvalidSchedule({ schedule: id, path: "trigger.cron", reason })
    }
    if (error._tag === "InvalidJob") {
      const { path, reason } = error as unknown as { readonly path: string; readonly reason: string }
      return path === "endAt" && reason.includes("never fire")
        ? new NeverFires({ schedule: id, reason })
        : new InvalidSchedule({ schedule: id, path: path === "name" ? "id" : path, reason })
    }
  }
  return new InvalidSchedule({ schedule: id, path: "", reason: String(error) })
}

export const make = <R>(
  handlers: Iterable<AnyHandler>,
  options: SchedulesOptions = {}
): Effect.Effect<SchedulesTag["Type"], InvalidSchedule, R | Scheduler | JobStore | LeaderElection | Scope> =>
  Effect.flatMap(
    Effect.all([Scheduler, LeaderElection]),
    ([scheduler, election]) => makeWith<R>(handlers, options, { scheduler, election })
  )

export const makeStore = <R>(
  handlers: Iterable<AnyHandler>
): Effect.Effect<SchedulesTag["Type"], InvalidSchedule, R | JobStore | Scope> => makeWith<R>(handlers, {}, undefined)

/**
 * The service; with `node` undefined, over the store alone (a node that runs no scheduler): it validates and writes,
 * applies nothing, and refuses `trigger` and `backfill` with `NotLeader`.
 */
const makeWith = <R>(
  handlers: Iterable<AnyHandler>,
  options: SchedulesOptions,
  node: { readonly scheduler: Scheduler["Type"]; readonly election: LeaderElection["Type"] } | undefined
): Effect.Effect<SchedulesTag["Type"], InvalidSchedule, R | JobStore | Scope> =>
  Effect.gen(function*() {
    const scheduler = node?.scheduler ?? storeOnly
    const jobStore = yield* JobStore
    const context = yield* Effect.context<R>()
    if (jobStore.schedules === undefined) {
      return yield* new InvalidSchedule({
        schedule: "",
        path: "store",
        reason: `the ${jobStore.backend} store keeps no schedules`
      })
    }
    const store: ScheduleStore = jobStore.schedules
    const registry = new Map<string, AnyHandler>()
    for (const h of handlers) {
      if (registry.has(h.name)) {
        return yield* new InvalidSchedule({ schedule: "", path: "handlers", reason: `handler "${h.name}" twice` })
      }
      registry.set(h.name, h)
    }
    // Jobs defined in code own their names: a schedule may not take one.
    const codeJobs = new Set(node?.scheduler.jobs ?? [])
    const reconcileInterval = Duration.decode(options.reconcileInterval ?? "1 second")

    // -----------------------------------------------------------------------------------------------------------
    // A spec into a job
    // -----------------------------------------------------------------------------------------------------------

    const decodePayload = (id: string, target: AnyHandler, payload: unknown) =>
      Either.mapLeft(
        Schema.decodeUnknownEither(target.payload)(payload),
        (error) => new InvalidPayload({ schedule: id, handler: target.name, ...formatIssue(error) })
      )

    const handlerOf = (spec: ScheduleSpec) => {
      const target = registry.get(spec.handler)
      return target === undefined
        ? Either.left(new UnknownHandler({ schedule: spec.id, handler: spec.handler }))
        : Either.right(target)
    }

    /** The spec JSON of a schedule as this node applied it, else as stored. */
    const specJsonOf = (id: string): Effect.Effect<string | undefined, StoreError> =>
      Effect.suspend(() => {
        const applied = known.get(id)
        return applied !== undefined
          ? Effect.succeed(applied.spec)
          : Effect.map(store.get(id), (entry) => Option.getOrUndefined(entry)?.spec)
      })

    /**
     * The handler of every schedule's runs, one effect shared by all (an idle schedule keeps no handler of its own):
     * the schedule's spec as applied, its run limit, then the payload (a manual run's own, or the stored one) decoded
     * with the handler's schema, then the handler.
     */
    const runSchedule: Effect.Effect<void, unknown, RunContext> = Effect.gen(function*() {
      const run = yield* RunContext
      const json = yield* specJsonOf(run.job)
      if (json === undefined) return yield* new UnknownSchedule({ schedule: run.job })
      const decoded = decodeSpecJson(json)
      if (Either.isLeft(decoded)) {
        return yield* new InvalidSchedule({
          schedule: run.job,
          path: "",
          reason: decoded.left
        })
      }
      const spec = decoded.right
      const target = yield* handlerOf(spec)
      if (spec.limit !== undefined && run.kind === "scheduled") {
        const count = yield* store.countRun(spec.id)
        if (count > spec.limit) {
          return yield* Effect.logInfo("schedule limit reached: not run").pipe(
            Effect.annotateLogs({ job: spec.id, limit: spec.limit })
          )
        }
        // The last run allowed: this node stops planning it (the store's count keeps every other node from it).
        if (count === spec.limit) yield* Effect.forkDaemon(refresh(spec.id))
      }
      const payload = yield* decodePayload(spec.id, target, run.input !== undefined ? run.input : spec.payload)
      yield* target.run(payload)
    }).pipe(Effect.mapInputContext((current: Context.Context<RunContext>) => Context.merge(context, current)))

    /** Per handler, which failures are expected: its own rule, and a schedule that cannot run as stored. */
    const expected = new Map<string, (error: unknown) => boolean>()
    for (const [name, target] of registry) {
      expected.set(name, (error) =>
        error instanceof InvalidPayload || error instanceof UnknownSchedule || error instanceof InvalidSchedule ||
        error instanceof UnknownHandler || target.isExpected(error))
    }

    const jobOf = (spec: ScheduleSpec, target: AnyHandler, enabled: boolean) => {
      const trigger = spec.trigger
      const cron = "cron" in trigger ? trigger : undefined
      const every = "every" in trigger ? trigger : undefined
      // One options object with every field (unset ones undefined), no spread: a load makes 100,000 jobs.
      return Either.mapLeft(
        Job.make({
          name: spec.id,
          handler: runSchedule,
          isExpected: expected.get(target.name) ?? target.isExpected,
          cron: cron?.cron,
          timezone: cron?.timezone,
          every: every?.every as Duration.DurationInput | undefined,
          fixedRate: every?.fixedRate,
          at: "at" in trigger ? trigger.at : undefined,
          enabled: enabled && spec.enabled !== false,
          // Durations are strings in a spec; `Job.make` decodes each and names the field of a bad one.
          timeout: spec.timeout as Duration.DurationInput | undefined,
          overlap: spec.overlap,
          lock: spec.lock as Job.JobOptions<never>["lock"],
          retry: spec.retry as Job.JobOptions<never>["retry"],
          misfire: spec.misfire,
          misfireGrace: spec.misfireGrace as Duration.DurationInput | undefined,
          startAt: spec.startAt,
          endAt: spec.endAt
        }),
        (error) =>
          fromJobError(spec.id, error)
      )
    }

    /** Checks that depend on the time of the upsert: a trigger with no fire left. */
    const neverFires = (spec: ScheduleSpec, job: Job.Job<never>, now: number): NeverFires | undefined => {
      const fail = (reason: string) =>
        new NeverFires({ schedule: spec.id, reason })
      if (job.endAt !== undefined && job.endAt < now) return fail("endAt is in the past")
      const trigger = job.trigger
      if (trigger._tag === "At") {
        const grace = job.misfire === "runOnce" ? Duration.toMillis(job.misfireGrace) : 0
        if (trigger.at < now - grace) {
          return fail(`at ${new Date(trigger.at).toISOString()} is in the past, beyond the misfire grace`)
        }
        if (job.startAt !== undefined && trigger.at < job.startAt) return fail("at is before startAt")
        if (job.endAt !== undefined && trigger.at > job.endAt) return fail("at is after endAt")
      }
      if (trigger._tag === "Cron" && job.endAt !== undefined) {
        const first = Cron.next(trigger.cron, Math.max(now, job.startAt ?? now) - 1)
        if (!(first <= job.endAt)) return fail("the cron expression has no fire between startAt and endAt")
      }
      return undefined
    }

    /** Validate a spec: its job and the canonical form stored. */
    const validate = (input: ScheduleSpec) =>
      Effect.gen(function*() {
        const id = input.id
        if (typeof id !== "string" || !ID.test(id)) {
          return yield* new InvalidSchedule({
            schedule: String(id),
            path: "id",
            reason: "expected a letter or digit, then letters, digits and _ . : / - (at most 200 characters)"
          })
        }
        if (codeJobs.has(id)) {
          return yield* new InvalidSchedule({ schedule: id, path: "id", reason: "a job defined in code has this name" })
        }
        const target = yield* handlerOf(input)
        // The payload as its schema encodes it back: equal payloads are stored equal.
        const decoded = yield* decodePayload(id, target, input.payload)
        const payload = yield* Either.mapLeft(
          Schema.encodeEither(target.payload)(decoded),
          (error) => new InvalidPayload({ schedule: id, handler: target.name, ...formatIssue(error) })
        )
        const spec: ScheduleSpec = { ...input, payload }
        const job = yield* jobOf(spec, target, true)
        return { spec, job, target, json: canonicalJson(encodeSpec(spec)) }
      })

    // -----------------------------------------------------------------------------------------------------------
    // Applying the store to this node's scheduler
    // -----------------------------------------------------------------------------------------------------------

    /** What this node has applied, by id: the stored spec JSON and its plan key (none: not runnable here). */
    const known = new Map<string, Known>()
    /**
     * Removed ids and the store version their removal was seen at: a read of the schedule made before the removal
     * (an older revision) must not bring it back. Pruned by a full reconcile.
     */
    const gone = new Map<string, number>()
    const applyLock = yield* Effect.makeSemaphore(1)

    /** A stored schedule decoded, or why this node cannot run it. */
    type Runnable = { readonly spec: ScheduleSpec; readonly target: AnyHandler }
    type Decoded = Runnable | { readonly reason: string }

    /** Decode a stored spec and find its handler: synchronous, no effect per schedule (a load decodes thousands). */
    const decodeStored = (entry: StoredSchedule): Decoded => {
      const decoded = decodeSpecJson(entry.spec)
      if (Either.isLeft(decoded)) return { reason: decoded.left }
      const spec = decoded.right
      const target = registry.get(spec.handler)
      return target === undefined ? { reason: `unknown handler "${spec.handler}"` } : { spec, target }
    }

    const cannotRun = (id: string, reason: string) =>
      Effect.logError("stored schedule cannot run on this node").pipe(Effect.annotateLogs({ job: id, reason }))

    /**
     * Apply stored entries (new or changed ones register, equal or older ones are left) and removals, in one step. A
     * removal is `asOf` a store version read before the read that found the schedule gone: a schedule applied with a
     * newer revision was written after that read, and stays.
     *
     * `round`: the entries are a page of that full reconcile (each is marked listed by it). `reread`: the entries are
     * applied again even when their spec is the one applied (a run count changed).
     *
     * The entries are applied in order, each decoded, validated and made a job synchronously (a load applies
     * thousands per call: no effect per schedule); the only store reads are the run counts of schedules with a
     * `limit`, read together after that pass, those schedules applied after them (still in order among themselves).
     */
    const applyEntries = (
      entries: ReadonlyArray<StoredSchedule>,
      removed: ReadonlyArray<{ readonly id: string; readonly asOf: number }>,
      options?: {
        readonly round?: number | undefined
        readonly reread?: boolean | undefined
        /** The entries' last fire times, one per entry (see `Page.lastFires`). */
        readonly lastFires?: ReadonlyArray<Option.Option<number> | undefined> | undefined
      }
    ) =>
      applyLock.withPermits(1)(Effect.gen(function*() {
        const round = options?.round
        const reread = options?.reread === true
        const lastFires = options?.lastFires
        const register: Array<
          { readonly job: Job.Job<never>; readonly replan: boolean; readonly lastFire?: Option.Option<number> }
        > = []
        const failed: Array<{ readonly id: string; readonly reason: string }> = []
        const limited: Array<{ readonly entry: StoredSchedule; readonly index: number } & Runnable> = []
        const runCounts = new Map<string, number>()

        /** The entry's known state, unless it is applied already (equal) or older than what was applied. */
        const check = (entry: StoredSchedule): { readonly before: Known | undefined } | undefined => {
          const before = known.get(entry.id)
          if (before !== undefined) {
            if (round !== undefined) before.listed = round
            if ((!reread && before.spec === entry.spec) || before.revision > entry.revision) return undefined
          }
          if (gone.size > 0) {
            if (entry.revision <= (gone.get(entry.id) ?? -1)) return undefined
            gone.delete(entry.id)
          }
          return { before }
        }

        /** Note the entry as applied, and what to register (or why it cannot run here). */
        const apply = (
          entry: StoredSchedule,
          index: number,
          before: Known | undefined,
          one: Decoded
        ) => {
          known.set(entry.id, {
            spec: entry.spec,
            revision: entry.revision,
            listed: round ?? before?.listed ?? 0
          })
          if (!("spec" in one)) {
            failed.push({ id: entry.id, reason: one.reason })
            return
          }
          // A schedule whose run limit is reached stays registered, disabled (no fire planned).
          const limitReached = one.spec.limit !== undefined && (runCounts.get(one.spec.id) ?? 0) >= one.spec.limit
          const job = jobOf(one.spec, one.target, !limitReached)
          if (Either.isLeft(job)) {
            failed.push({ id: entry.id, reason: job.left.message })
            return
          }
          // What it replans from is compared with the spec applied before (read again: not kept per schedule); a
          // schedule new here has nothing to compare.
          const replan = before !== undefined &&
            Either.getOrUndefined(Either.map(decodeSpecJson(before.spec), planKey)) !== planKey(one.spec)
          const lastFire = lastFires?.[index]
          register.push(lastFire === undefined ? { job: job.right, replan } : { job: job.right, replan, lastFire })
        }

        for (let index = 0; index < entries.length; index++) {
          const entry = entries[index]!
          const checked = check(entry)
          if (checked === undefined) continue
          const one = decodeStored(entry)
          if ("spec" in one && one.spec.limit !== undefined) limited.push({ entry, index, ...one })
          else apply(entry, index, checked.before, one)
        }
        if (limited.length > 0) {
          const counts = yield* Effect.forEach(limited, ({ spec }) => store.runCount(spec.id), { concurrency: 16 })
          limited.forEach(({ spec }, i) => runCounts.set(spec.id, counts[i]!))
          // Checked again: an entry after it in `entries` (the same id, applied above) may be newer.
          for (const { entry, index, spec, target } of limited) {
            const checked = check(entry)
            if (checked !== undefined) apply(entry, index, checked.before, { spec, target })
          }
        }
        for (const { id, reason } of failed) {
          yield* cannotRun(id, reason)
          yield* scheduler.unregister(id)
        }
        for (const { asOf, id } of removed) {
          const before = known.get(id)
          if (before === undefined || before.revision > asOf) continue
          known.delete(id)
          gone.set(id, asOf)
          yield* scheduler.unregister(id)
          yield* Effect.logInfo("schedule removed").pipe(Effect.annotateLogs({ job: id }))
        }
        if (register.length > 0) yield* scheduler.registerAll(register)
      }))

    /** Read schedules from the store and apply them (stored: register; gone: unregister). */
    const refreshIds = (ids: ReadonlyArray<string>, options?: { readonly reread?: boolean | undefined }) =>
      Effect.gen(function*() {
        const asOf = yield* store.version
        const stored = yield* Effect.forEach(ids, (id) => store.get(id), { concurrency: 16 })
        const present = stored.flatMap((entry) => Option.toArray(entry))
        const removed = ids.filter((_, i) => Option.isNone(stored[i]!)).map((id) => ({ id, asOf }))
        yield* applyEntries(present, removed, options)
      })

    /** Read `id` again and apply it even if its spec is unchanged (its run count changed). */
    const refresh = (id: string) =>
      refreshIds([id], { reread: true }).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("schedule refresh failed", cause))
      )

    /** The version counter as of the last full reconcile, and versions announced since. */
    let reconciledVersion = -1
    const announced = new Set<number>()

    interface Page {
      readonly entries: ReadonlyArray<StoredSchedule>
      readonly next: Option.Option<string>
      /**
       * The last fire times read with the page, one per entry (none read: undefined), for the schedules not applied
       * here yet, on a leader.
       */
      readonly lastFires: ReadonlyArray<Option.Option<number> | undefined> | undefined
    }

    /** The last fire times of a page's schedules not applied here yet, when this node leads (else none). */
    const withLastFires = (
      page: { readonly entries: ReadonlyArray<StoredSchedule>; readonly next: Option.Option<string> }
    ): Effect.Effect<Page> =>
      Effect.gen(function*() {
        const bulk = jobStore.lastFireTimes
        if (bulk === undefined || node === undefined || !(yield* node.election.isLeader)) {
          return { ...page, lastFires: undefined }
        }
        // The schedules new here are the ones planned from their last fire. A hint only: without it (not read, or
        // the read failed) the scheduler reads them itself.
        // On a node that has applied nothing yet (a leader starting), that is every one of them.
        const fresh = known.size === 0 ? page.entries : page.entries.filter((entry) => !known.has(entry.id))
        if (fresh.length === 0) return { ...page, lastFires: undefined }
        const lasts = yield* Effect.option(bulk(fresh.map((entry) => entry.id)))
        if (Option.isNone(lasts)) return { ...page, lastFires: undefined }
        if (fresh === page.entries) return { ...page, lastFires: lasts.value }
        const byId = new Map<string, Option.Option<number>>()
        fresh.forEach((entry, i) => byId.set(entry.id, lasts.value[i] ?? Option.none()))
        return { ...page, lastFires: page.entries.map((entry) => byId.get(entry.id)) }
      })

    /**
     * Every stored schedule, page after page, read ahead of the caller: a fiber (in `scope`) lists the pages one
     * after the other (each needs the previous one's last id) and reads each page's last fire times beside the next
     * listing, up to `PAGES_AHEAD` pages before the one the caller applies. The caller takes the pages in order; a
     * failed read is the failure of its page.
     */
    const readAhead = (scope: Scope) =>
      Effect.gen(function*() {
        const pages = yield* Queue.bounded<Fiber.Fiber<Page, StoreError>>(PAGES_AHEAD)
        const producer = Effect.gen(function*() {
          let cursor: string | undefined = undefined
          while (true) {
            const listed: Either.Either<
              { readonly entries: ReadonlyArray<StoredSchedule>; readonly next: Option.Option<string> },
              StoreError
            > = yield* Effect.either(store.list({ cursor, limit: LOAD_PAGE }))
            if (Either.isLeft(listed)) return yield* pages.offer(Fiber.fail<StoreError>(listed.left))
            yield* pages.offer(yield* Effect.forkIn(withLastFires(listed.right), scope))
            if (Option.isNone(listed.right.next)) return
            cursor = listed.right.next.value
          }
        })
        yield* Effect.forkIn(producer, scope)
        return Effect.flatMap(Queue.take(pages), Fiber.join)
      })

    /** The round of the latest full reconcile begun (see `Known.listed`). */
    let rounds = 0

    const reconcile: Effect.Effect<void, StoreError> = Effect.scoped(Effect.gen(function*() {
      const version = yield* store.version
      // What this reconcile lists is marked with its round; one begun after it (reconciles may overlap: the apply
      // loop's and `Schedules.reconcile`) marks with a later one, which counts as listed here too: it listed the
      // schedule later still.
      const round = ++rounds
      // The pages (and the last fire times the scheduler plans new schedules from) are read while earlier pages are
      // applied: a load waits for neither, unless the store is slower than the applying.
      const nextPage = yield* readAhead(yield* Effect.scope)
      while (true) {
        const page = yield* nextPage
        yield* applyEntries(page.entries, [], { round, lastFires: page.lastFires })
        if (Option.isNone(page.next)) break
      }
      const unlisted: Array<{ readonly id: string; readonly asOf: number }> = []
      // `forEach`, not `for...of`: no entry pair made per schedule.
      known.forEach((applied, id) => {
        if (applied.listed < round) unlisted.push({ id, asOf: version })
      })
      yield* applyEntries([], unlisted)
      reconciledVersion = Math.max(reconciledVersion, version)
      for (const [id, asOf] of gone) if (asOf < version) gone.delete(id)
      for (const v of announced) if (v <= version) announced.delete(v)
    }))

    /** Whether every change up to `version` was announced (and so applied) since the last reconcile. */
    const allAnnounced = (version: number) => {
      for (let v = reconciledVersion + 1; v <= version; v++) if (!announced.has(v)) return false
      return true
    }

    // Work for the one fiber that applies: ids announced, or a full reconcile.
    type Work = { readonly _tag: "Id"; readonly id: string; readonly version: number } | { readonly _tag: "All" }
    const work = yield* Queue.unbounded<Work>()
    yield* Effect.addFinalizer(() => Queue.shutdown(work))

    // -----------------------------------------------------------------------------------------------------------
    // The service
    // -----------------------------------------------------------------------------------------------------------

    /** Load every stored schedule, then follow the store's changes until the scope closes. */
    const follow = (election: LeaderElection["Type"]) =>
      Effect.gen(function*() {
        // Announcements from the store (retried: a subscription lost is made again, and a reconcile follows it).
        // Subscribed before the load: a change made while it runs, or right after it, is announced, and applied from
        // the queue once the load is over (not found later by the version check, which would reload everything).
        const subscribed = yield* Deferred.make<void>()
        const subscribeChanges = store.subscribe ?? Effect.succeed(store.changes)
        yield* Effect.scoped(
          Effect.flatMap(subscribeChanges, (changes) =>
            Effect.zipRight(
              Deferred.succeed(subscribed, undefined),
              Stream.runForEach(changes, (change) => {
                // Received = will be applied (the queue is applied in order): the version check counts it now.
                announced.add(change.version)
                return work.offer({ _tag: "Id", id: change.id, version: change.version })
              })
            ))
        ).pipe(
          // A subscription that failed does not hold up the load either.
          Effect.onExit(() => Deferred.succeed(subscribed, undefined)),
          Effect.zipRight(Effect.fail("changes ended" as const)),
          Effect.tapErrorCause((cause) => Effect.logWarning("schedule changes subscription lost", cause)),
          Effect.zipRight(work.offer({ _tag: "All" })),
          Effect.retry(Schedule.spaced("1 second")),
          Effect.forkScoped
        )
        // Bounded on a live clock (a TestClock does not move by itself): a store slow to subscribe holds nothing up.
        yield* Deferred.await(subscribed).pipe(
          Effect.timeout("2 seconds"),
          Effect.ignore,
          Effect.withClock(Clock.make())
        )

        yield* reconcile.pipe(
          Effect.catchAll((error) => Effect.logError("stored schedules not loaded at start; retrying", error.message))
        )
        const applyLoop = Effect.gen(function*() {
          const batch = yield* Queue.takeBetween(work, 1, 10_000)
          const items = Array.from(batch)
          if (items.some((item) => item._tag === "All")) return yield* reconcile
          const ids = new Set<string>()
          for (const item of items) {
            if (item._tag === "Id") ids.add(item.id)
          }
          yield* refreshIds(Array.from(ids))
        }).pipe(
          Effect.catchAllCause((cause) =>
            Effect.zipRight(
              Effect.logWarning("applying stored schedules failed; reconciling", cause),
              work.offer({ _tag: "All" })
            )
          ),
          Effect.forever
        )
        yield* Effect.forkScoped(applyLoop)

        // The version check: a change nobody announced (or whose announcement was lost) is found within two
        // intervals. A version is judged one interval after it was read: its announcement, published by the same
        // write on another connection, may arrive after the read's reply, and a full reconcile of many schedules for
        // an announcement merely in flight would hold up the changes behind it.
        let previous: number | undefined = undefined
        yield* Effect.gen(function*() {
          const version = yield* store.version
          const judged = previous
          previous = version
          if (judged === undefined || judged <= reconciledVersion) return
          if (!allAnnounced(judged)) {
            yield* work.offer({ _tag: "All" })
            return
          }
          // Every change up to `judged` was announced: no reconcile needed, and nothing older to remember.
          reconciledVersion = judged
          for (const v of announced) if (v <= judged) announced.delete(v)
        }).pipe(
          Effect.catchAll((error) => Effect.logWarning("schedule version check failed", error.message)),
          Effect.repeat(Schedule.spaced(reconcileInterval)),
          Effect.forkScoped
        )

        // On leading: load every stored schedule again (what this node applied as a follower may be behind).
        yield* election.changes.pipe(
          // The first element is the leadership at subscription, right after the load above.
          Stream.drop(1),
          Stream.filter((leadership) => leadership._tag === "Leader"),
          Stream.runForEach(() => work.offer({ _tag: "All" })),
          Effect.catchAllCause((cause) => Effect.logError("leadership stream failed (schedules)", cause)),
          Effect.forkScoped
        )
      })

    const storedSpec = (
      id: string
    ): Effect.Effect<
      { readonly spec: ScheduleSpec; readonly stored: StoredSchedule },
      UnknownSchedule | InvalidSchedule | StoreError
    > =>
      Effect.gen(function*() {
        const entry = yield* store.get(id)
        if (Option.isNone(entry)) return yield* new UnknownSchedule({ schedule: id })
        const decoded = decodeSpecJson(entry.value.spec)
        if (Either.isLeft(decoded)) {
          return yield* new InvalidSchedule({
            schedule: id,
            path: "",
            reason: `stored spec unreadable: ${decoded.left}`
          })
        }
        return { spec: decoded.right, stored: entry.value }
      })

    const stateOf = (
      spec: ScheduleSpec,
      lastFire: Option.Option<number>,
      runs: number,
      now: number
    ): ScheduleState => {
      const target = registry.get(spec.handler)
      if (target === undefined || Either.isLeft(decodePayload(spec.id, target, spec.payload))) return "broken"
      const at = "at" in spec.trigger ? spec.trigger.at.getTime() : undefined
      if (at !== undefined && Option.isSome(lastFire) && lastFire.value >= at) return "finished"
      if (spec.limit !== undefined && runs >= spec.limit) return "finished"
      if (spec.endAt !== undefined && spec.endAt.getTime() < now) return "finished"
      return spec.enabled === false ? "disabled" : "active"
    }

    if (node !== undefined) yield* follow(node.election)

    const service: SchedulesTag["Type"] = {
      upsert: (input) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const { job, json, spec } = yield* validate(input)
          const never = neverFires(spec, job, now)
          if (never !== undefined) {
            // The same spec stored already (an `at` that has run, upserted again) is unchanged, not an error.
            const stored = yield* store.get(spec.id)
            if (Option.isSome(stored) && stored.value.spec === json) {
              return { result: "unchanged" as const, revision: stored.value.revision }
            }
            return yield* never
          }
          const put = yield* store.put(spec.id, json)
          if (put.result !== "unchanged") {
            // Applied here at once; other nodes apply it from the announcement.
            if (node !== undefined) yield* applyEntries([{ id: spec.id, spec: json, revision: put.revision }], [])
            yield* Effect.logInfo(`schedule ${put.result}`).pipe(
              Effect.annotateLogs({ job: spec.id, handler: spec.handler, revision: put.revision })
            )
          }
          return put
        }),
      remove: (id) =>
        Effect.tap(store.remove(id), (removed) =>
          removed
            // The version after the removal: at least the removal's own, below any later re-creation's.
            ? Effect.flatMap(store.version, (asOf) => applyEntries([], [{ id, asOf }]))
            : Effect.void),
      get: (id) =>
        Effect.gen(function*() {
          const { spec, stored } = yield* storedSpec(id)
          const [lastFire, runs, records, now] = yield* Effect.all([
            jobStore.lastFireTime(id),
            store.runCount(id),
            jobStore.recentRuns(id, 1),
            Clock.currentTimeMillis
          ], { concurrency: 3 })
          const status = yield* Effect.option(scheduler.jobStatus(id))
          return {
            spec,
            revision: stored.revision,
            state: stateOf(spec, lastFire, runs, now),
            nextFire: Option.flatMap(status, (s) => s.nextFire),
            lastFire: Option.map(lastFire, (t) => new Date(t)),
            runs,
            lastRun: Option.fromNullable(records[0])
          } satisfies ScheduleInfo
        }).pipe(Effect.catchTag("InvalidSchedule", () => Effect.fail(new UnknownSchedule({ schedule: id })))),
      list: (listOptions = {}) =>
        Effect.gen(function*() {
          const limit = Math.max(1, Math.min(1000, Math.floor(listOptions.limit ?? 100)))
          const schedules: Array<{ readonly spec: ScheduleSpec; readonly revision: number }> = []
          let cursor = listOptions.cursor
          // With a handler filter, pages are read until `limit` match or the store ends.
          while (true) {
            const page = yield* store.list({ cursor, limit: limit - schedules.length })
            for (const entry of page.entries) {
              const decoded = decodeSpecJson(entry.spec)
              if (Either.isLeft(decoded)) continue
              if (listOptions.handler !== undefined && decoded.right.handler !== listOptions.handler) continue
              schedules.push({ spec: decoded.right, revision: entry.revision })
            }
            cursor = Option.getOrUndefined(page.next)
            if (cursor === undefined) return { schedules, next: Option.none() }
            if (schedules.length >= limit) return { schedules, next: Option.some(cursor) }
          }
        }),
      trigger: (id, payload) =>
        Effect.gen(function*() {
          const { spec, stored } = yield* storedSpec(id)
          const target = yield* handlerOf(spec)
          if (payload !== undefined) yield* decodePayload(id, target, payload)
          if (node === undefined) return yield* new NotLeader({ operation: "trigger" })
          if (known.get(id)?.spec !== stored.spec) yield* applyEntries([stored], [])
          return yield* scheduler.trigger(id, payload === undefined ? undefined : { input: payload })
        }),
      backfill: (id, backfillOptions) =>
        Effect.gen(function*() {
          const { spec, stored } = yield* storedSpec(id)
          const target = yield* handlerOf(spec)
          const job = yield* jobOf(spec, target, true)
          if (node === undefined || !(yield* node.election.isLeader)) {
            return yield* new NotLeader({ operation: "backfill" })
          }
          if (known.get(id)?.spec !== stored.spec) yield* applyEntries([stored], [])
          const from = backfillOptions.from.getTime()
          const to = backfillOptions.to.getTime()
          if (!(from <= to)) {
            return yield* new InvalidSchedule({ schedule: id, path: "backfill.to", reason: "to is before from" })
          }
          const times = yield* fireTimes(id, job, from, to)
          const ran = new Set(
            (yield* jobStore.recentRuns(id, 1000)).filter((r) => r.kind === "scheduled").map((r) =>
              r.fireTime.getTime()
            )
          )
          type Fire = BackfillResult["fires"][number]
          const one = (fireTime: number): Effect.Effect<Fire, NotLeader | StoreError> => {
            const at = new Date(fireTime)
            if (ran.has(fireTime)) return Effect.succeed({ _tag: "Skipped", fireTime: at, reason: "already_ran" })
            return scheduler.runFire(id, fireTime).pipe(
              Effect.catchTag("UnknownJob", () => Effect.fail(new NotLeader({ operation: "backfill" }))),
              Effect.flatMap((result): Effect.Effect<Fire, NotLeader> =>
                result._tag === "NotLeading"
                  ? Effect.fail(new NotLeader({ operation: "backfill" }))
                  : result._tag === "Started"
                  ? Effect.map(result.await, (record): Fire => ({ _tag: "Ran", fireTime: at, record }))
                  : Effect.succeed({ _tag: "Skipped", fireTime: at, reason: result.reason })
              )
            )
          }
          // Runs of a job that takes its lock exclude each other: they run one at a time whatever `concurrency` says
          // (run together, all but one would be skipped with `lock_held`).
          const concurrency = job.lock.enabled ? 1 : Math.max(1, Math.floor(backfillOptions.concurrency ?? 1))
          const fires = yield* Effect.forEach(times, one, { concurrency })
          return { fires } satisfies BackfillResult
        }),
      reconcile: Effect.suspend(() => reconcile)
    }
    return service
  })

/** The fire times of a job's trigger within `[from, to]`, oldest first (at most `maxBackfillFires`). */
const fireTimes = (id: string, job: Job.Job<never>, from: number, to: number) =>
  Effect.suspend(() => {
    const times: Array<number> = []
    const trigger = job.trigger
    const lo = Math.max(from, job.startAt ?? from)
    const hi = Math.min(to, job.endAt ?? to)
    const push = (t: number) => {
      times.push(t)
      return times.length <= maxBackfillFires
    }
    switch (trigger._tag) {
      case "Cron": {
        for (let t = Cron.next(trigger.cron, lo - 1); t <= hi; t = Cron.next(trigger.cron, t)) if (!push(t)) break
        break
      }
      case "FixedDelay":
      case "FixedRate": {
        const every = Duration.toMillis(trigger.every)
        for (let t = lo; t <= hi; t += every) if (!push(t)) break
        break
      }
      case "At": {
        if (trigger.at >= lo && trigger.at <= hi) push(trigger.at)
        break
      }
      case "Schedule":
        break
    }
    return times.length > maxBackfillFires
      ? Effect.fail(
        new InvalidSchedule({
          schedule: id,
          path: "backfill",
          reason: `the window holds more than ${maxBackfillFires} fire times`
        })
      )
      : Effect.succeed(times)
  })

/**
 * The scheduler of a node that runs none (`makeStore`): nothing is registered, no job is known. Only the calls that
 * `makeWith` makes without a node are reachable.
 */
const storeOnly: Scheduler["Type"] = {
  nodeId: "",
  jobs: [],
  status: Effect.succeed([]),
  jobStatus: (job) => Effect.fail(new UnknownJob({ job })),
  trigger: (job) => Effect.fail(new UnknownJob({ job })),
  register: () => Effect.void,
  registerAll: () => Effect.void,
  runFire: (job) => Effect.fail(new UnknownJob({ job })),
  unregister: () => Effect.succeed(false),
  pause: (job) => Effect.fail(new UnknownJob({ job })),
  resume: (job) => Effect.fail(new UnknownJob({ job })),
  runs: (job) => Effect.fail(new UnknownJob({ job }))
}

export const layer = <R>(
  tag: typeof SchedulesTag,
  handlers: Iterable<AnyHandler>,
  options?: SchedulesOptions
): Layer.Layer<SchedulesTag, InvalidSchedule, R | Scheduler | JobStore | LeaderElection> =>
  Layer.scoped(tag, make<R>(handlers, options))

export const layerStore = <R>(
  tag: typeof SchedulesTag,
  handlers: Iterable<AnyHandler>
): Layer.Layer<SchedulesTag, InvalidSchedule, R | JobStore> => Layer.scoped(tag, makeStore<R>(handlers))
