/**
 * The planner: one timer over every job's planned fire and the fiber that waits for its top while this node
 * leads. A job's state is its own timer entry (`SlotTimer`): re-planning moves it in place and retiring takes it out.
 * A job's planned fire changes only here (`plan`), and every change bumps the job's generation, so a fire taken off
 * the timer under an older generation (re-planned while its batch waited to run) is stale and ignored. Fires are
 * planned on the timer only while leading; the scheduler's leading flag is that gate.
 *
 * At a fire: find the newest fire time due, plan the next one, and apply the misfire and overlap rules (the
 * arithmetic is in `fire.ts`); the runs that result are handed to the launcher as one batch.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import type { JobStore } from "../../JobStore.js"
import { currentMillis } from "../now.js"
import { SlotTimer } from "../timer.js"
import type { Bookkeeper } from "./bookkeeper.js"
import * as Fire from "./fire.js"
import type { JobState } from "./jobState.js"
import type { Flags, Launcher } from "./launcher.js"
import { Run } from "./run.js"

/**
 * The most fires begun in one batch. More due at once (overload: more fires per second than this node starts) are
 * begun in batches of this size, oldest fire first, with the bookkeeping of each batch's runs done before the next
 * batch begins: no job starves, and the runs waiting for their bookkeeping stay bounded.
 */
export const MAX_FIRE_BATCH = 16_384

export class Planner {
  private readonly timer: SlotTimer<JobState>
  /** Reused by every fire (see `Fire.DueFire`). */
  private readonly due: Fire.DueFire = { newest: 0, missed: 0, next: 0 }
  /**
   * The instant the TestClock was last set to (see `clockSet`): planning never starts from an older reading, which
   * a fiber woken while the TestClock walks to that instant would see.
   */
  private floor = Number.NEGATIVE_INFINITY

  constructor(
    maxWaitMs: number,
    private readonly misfireThresholdMs: number,
    /** The registered jobs; the scheduler writes it (`register`, `unregister`), the planner reads it. */
    private readonly states: ReadonlyMap<string, JobState>,
    private readonly store: JobStore["Type"],
    private readonly flags: Flags,
    private readonly launcher: Launcher,
    private readonly bookkeeper: Bookkeeper,
    /** Where replacing runs wait for the runs they replace. */
    private readonly helpers: FiberSet.FiberSet<void, never>
  ) {
    this.timer = new SlotTimer<JobState>(maxWaitMs, MAX_FIRE_BATCH)
  }

  /**
   * Plan `planned` as the job's next fire (none: a finished Schedule or `At`, a cron fire beyond Date's range, a fire
   * after the job's `endAt`); a fire before its `startAt` moves to the first one from there.
   */
  plan(state: JobState, planned: number | undefined): void {
    const time = planned !== undefined && Number.isFinite(planned) ? Fire.bounded(state.job, planned) : undefined
    state.generation++
    if (time !== undefined && this.flags.leading) this.timer.schedule(state, time)
    else this.timer.remove(state, time)
  }

  /**
   * A job registered while the scheduler runs (a new or replaced schedule): while leading, plan its first fire, from
   * the last fire recorded by any node (`lastFire`: a job this node did not know, as when it starts leading) or from
   * `now` (a replaced job whose trigger changed: its new times count from the change, never the old ones).
   */
  add(state: JobState, from: "lastFire" | "now"): Effect.Effect<void> {
    return this.addMany([{ state, from }])
  }

  /**
   * `add` for many jobs: their last fire times in one store call when the store reads many at once
   * (`JobStore.lastFireTimes`), so that thousands of schedules loaded together are planned in a few round trips. An
   * item's `last` is its last fire time read already by the caller: not read again.
   */
  addMany(
    items: ReadonlyArray<
      { readonly state: JobState; readonly from: "lastFire" | "now"; readonly last?: Option.Option<number> }
    >
  ): Effect.Effect<void> {
    const self = this
    return Effect.gen(function*() {
      if (!self.flags.leading) return
      const list = items.filter(({ state }) => state.job.enabled)
      if (list.length === 0) return
      const now = Math.max(yield* currentMillis, self.floor)
      const generations = list.map(({ state }) => state.generation)
      const bulk = self.store.lastFireTimes
      const simple = bulk !== undefined && list.every(({ state }) => state.job.trigger._tag !== "Schedule")
      // The last fire times needed and not given by the caller, read in one call: a job planned from now needs
      // none (its trigger changed), unless it is an `At` (its one fire may have been claimed already).
      const needs = ({ from, last, state }: (typeof list)[number]) =>
        last === undefined && (from === "lastFire" || state.job.trigger._tag === "At")
      const unread = list.filter(needs)
      const firsts = simple
        ? yield* (unread.length === 0 ? Effect.succeed([]) : bulk(unread.map(({ state }) => state.job.name))).pipe(
          Effect.timeout("10 seconds"),
          Effect.map((lasts) => {
            let k = 0
            return list.map((item) =>
              self.firstFromLast(
                item.state,
                item.last ?? (needs(item) ? lasts[k++] : undefined) ?? Option.none(),
                now,
                item.from === "now"
              )
            )
          }),
          Effect.catchAllCause((cause) =>
            Effect.as(
              Effect.logWarning("last fire times unavailable; planning from now", cause),
              list.map(({ state }) => self.firstFromLast(state, Option.none(), now, true))
            )
          )
        )
        : yield* Effect.forEach(list, ({ from, state }) => self.firstFire(state, now, from === "now"), {
          concurrency: 64
        })
      list.forEach(({ state }, i) => {
        // Replanned meanwhile (leadership changed, the job was replaced or retired: `retire` bumps the generation too):
        // that plan stands.
        if (state.generation !== generations[i] || !self.flags.leading) {
          return
        }
        self.plan(state, firsts[i])
      })
    })
  }

  /** A job no longer registered (removed, or replaced by a new state): its planned fire is dropped. */
  retire(state: JobState): void {
    state.generation++
    this.timer.remove(state)
  }

  /** Forget every planned fire (leadership lost, shutdown). */
  stop(): void {
    this.timer.clear()
    for (const state of this.states.values()) {
      state.generation++
      state.nextFire = undefined
    }
  }

  /**
   * The TestClock is about to be set to `instant` (`TestClock.setTime`, see `testClock.ts`): a wall-clock step. Fires
   * planned before it are planned again from it, as on a node that begins leading then (so the TestClock does not
   * run every fire between the old time and the new one); later ones stay. Synchronous: it runs before the TestClock
   * wakes any sleep.
   */
  clockSet(instant: number): void {
    this.floor = instant
    if (!this.flags.leading) return
    for (const state of this.states.values()) {
      const planned = state.nextFire
      if (planned === undefined || planned >= instant) continue
      const trigger = state.job.trigger
      // An `At` fire keeps its one time: once past, the timer runs it late, under the misfire rules.
      if (trigger._tag === "At") continue
      if (trigger._tag === "Schedule") {
        // Schedules written for triggers step synchronously (they are made of pure steps).
        const [next, , decision] = Effect.runSync(trigger.schedule.step(instant, undefined, state.scheduleState))
        state.scheduleState = next
        this.plan(state, Fire.scheduleFire(decision, instant))
      } else {
        this.plan(state, Fire.firstFire(trigger, undefined, instant))
      }
    }
  }

  /** A fixed-delay job plans its next fire `every` after its run ended (or after a fire that did not run). */
  afterRun(state: JobState, now: number): void {
    // The job may have been replaced while this run lasted: the registered state is the one to plan, unless it was
    // planned already (or runs) by itself.
    const current = this.states.get(state.job.name)
    if (current === undefined || (current !== state && current.nextFire !== undefined)) return
    const trigger = current.job.trigger
    if (trigger._tag === "FixedDelay" && this.flags.leading && current.runningCount === 0 && !this.flags.shuttingDown) {
      this.plan(current, now + Duration.toMillis(trigger.every))
    }
  }

  /**
   * While leading: plan every enabled job's first fire, call `onPlanned`, then fire forever. Forked when this node
   * starts leading.
   */
  lead(onPlanned: () => void): Effect.Effect<never> {
    const self = this
    // Uninterruptible: runs of a batch count as running from when they are created, so an interruption (leadership
    // lost) must not strike between their creation and `begin`, which would leave them counted forever. A batch is
    // short: a synchronous pass, then one store call bounded by the store's own timeout.
    const loop = this.timer.run((batch, now) => {
      // Taken now, as the batch leaves the timer: its fire times, and the generations that make them current.
      const times = batch.map((state) => state.nextFire!)
      const generations = batch.map((state) => state.generation)
      return Effect.uninterruptible(self.fireBatch(batch, times, generations, now))
    })
    return Effect.gen(function*() {
      // A store that lost its data while we did not lead says so now (logged and counted by the store); beside the
      // planning, so that a slow store does not delay the first fires.
      if (self.store.checkEpoch !== undefined) yield* Effect.fork(Effect.ignore(self.store.checkEpoch))
      const now = Math.max(yield* currentMillis, self.floor)
      // Plain loops and arrays made at their size: with 100,000 jobs, every array per job is garbage to collect.
      const enabled: Array<JobState> = new Array(self.states.size)
      let count = 0
      // `forEach`, not `for...of`: run once inside a generator, that is not optimised, and each step of an iterator
      // would make a result object.
      self.states.forEach((state) => {
        if (state.job.enabled) enabled[count++] = state
      })
      enabled.length = count
      const generations = new Float64Array(enabled.length)
      for (let i = 0; i < enabled.length; i++) generations[i] = enabled[i]!.generation
      const firsts = yield* self.leadFirsts(enabled, now)
      // A job replaced or removed while its first fire was looked up is not planned. Both bump its generation, so a
      // job whose generation is unchanged is still registered (no lookup needed, the common case).
      for (let i = 0; i < enabled.length; i++) {
        const state = enabled[i]!
        if (state.generation === generations[i] || self.states.get(state.job.name) === state) {
          self.plan(state, firsts[i])
        }
      }
      onPlanned()
      return yield* loop
    })
  }

  /**
   * The first fires of `enabled` when this node starts leading (see `firstFire`). The memory store answers at once:
   * its last fire times are read in one call, and a fiber per job (or 64 at a time) would only cost time (100,000
   * jobs: seconds of setup). Other stores are asked job by job, 64 at a time.
   */
  private leadFirsts(
    enabled: ReadonlyArray<JobState>,
    now: number
  ): Effect.Effect<ReadonlyArray<number | undefined>> {
    const self = this
    const bulk = this.store.lastFireTimes
    const oneByOne = Effect.forEach(enabled, (state) => self.firstFire(state, now), {
      concurrency: this.store.backend === "memory" ? 1 : 64
    })
    if (this.store.backend !== "memory" || bulk === undefined) return oneByOne
    const names: Array<string> = new Array(enabled.length)
    let count = 0
    for (let i = 0; i < enabled.length; i++) {
      const job = enabled[i]!.job
      if (job.trigger._tag !== "Schedule") names[count++] = job.name
    }
    names.length = count
    return Effect.gen(function*() {
      const lasts = names.length === 0 ? [] : yield* bulk(names)
      const firsts: Array<number | undefined> = new Array(enabled.length)
      let k = 0
      for (let i = 0; i < enabled.length; i++) {
        const state = enabled[i]!
        firsts[i] = state.job.trigger._tag === "Schedule"
          ? yield* self.firstFire(state, now)
          : self.firstFromLast(state, lasts[k++] ?? Option.none(), now, false)
      }
      return firsts
    }).pipe(
      // Never seen from the memory store; should it fail, the job-by-job path answers (and logs per job).
      Effect.catchAll(() => oneByOne)
    )
  }

  /**
   * The first planned fire of a job when this node starts leading: from the last fire recorded by any node (with
   * `fromNow`, from now; an `At` job still asks whether its fire was claimed).
   */
  private firstFire(state: JobState, now: number, fromNow = false): Effect.Effect<number | undefined> {
    const trigger = state.job.trigger
    if (trigger._tag === "Schedule") {
      return Effect.map(trigger.schedule.step(now, undefined, trigger.schedule.initial), ([next, , decision]) => {
        state.scheduleState = next
        return Fire.scheduleFire(decision, now)
      })
    }
    // No timeout of its own: stores bound every operation (JobStore's contract), and a timeout here forked a fiber
    // per job.
    return this.store.lastFireTime(state.job.name).pipe(
      Effect.catchAllCause((cause) =>
        Effect.as(
          Effect.logWarning("last fire time unavailable; planning from now", cause).pipe(
            Effect.annotateLogs({ job: state.job.name })
          ),
          Option.none<number>()
        )
      ),
      Effect.map((last) => this.firstFromLast(state, last, now, fromNow))
    )
  }

  /** The first fire of a cron, interval or `At` job from the last fire time recorded (see `firstFire`). */
  private firstFromLast(
    state: JobState,
    last: Option.Option<number>,
    now: number,
    fromNow: boolean
  ): number | undefined {
    const trigger = state.job.trigger
    if (trigger._tag === "Schedule") return undefined
    return trigger._tag === "At"
      ? Fire.atFire(trigger.at, Option.getOrUndefined(last))
      : Fire.firstFire(trigger, fromNow ? undefined : Option.getOrUndefined(last), now)
  }

  /** Every fire due at one wake-up of the fire timer, begun in one store call. */
  private fireBatch(
    batch: ReadonlyArray<JobState>,
    times: ReadonlyArray<number>,
    generations: ReadonlyArray<number>,
    now: number
  ): Effect.Effect<void> {
    const self = this
    return Effect.gen(function*() {
      const list: Array<Run> = []
      for (let i = 0; i < batch.length; i++) {
        const state = batch[i]!
        const time = times[i]!
        if (generations[i] !== state.generation) continue
        state.nextFire = undefined
        const trigger = state.job.trigger
        let newest = time
        switch (trigger._tag) {
          case "Schedule": {
            const [next, , decision] = yield* trigger.schedule.step(now, undefined, state.scheduleState)
            state.scheduleState = next
            self.plan(state, Fire.scheduleFire(decision, now + 1))
            break
          }
          case "Cron":
          case "FixedRate": {
            const due = self.due
            if (trigger._tag === "Cron") Fire.cronDue(trigger.cron, time, now, state.windowMs, due)
            else Fire.fixedRateDue(Duration.toMillis(trigger.every), time, now, due)
            newest = due.newest
            self.plan(state, due.next)
            if (due.missed > 0) self.bookkeeper.missed(state, due.missed, newest)
            break
          }
            // FixedDelay plans its next fire when this one's run ends (or now, if it does not run).
        }
        const replacing = self.fire(state, newest, now, list)
        if (replacing !== undefined) {
          const { fibers, replaced, run } = replacing
          yield* FiberSet.run(self.helpers, self.launcher.replacing(run, replaced, fibers))
        }
      }
      if (list.length > 0) yield* self.launcher.scheduled(list)
    })
  }

  /**
   * The fire `newest` of a job is due at `now`: the misfire and overlap rules. A run to begin now is added to
   * `list`; a run that replaces others is returned with them (already asked to stop) and their fibers.
   */
  private fire(state: JobState, newest: number, now: number, list: Array<Run>): Replacing | undefined {
    const job = state.job
    const lateness = now - newest
    if (Fire.misfire(lateness, this.misfireThresholdMs, job.misfire, state.misfireGraceMs) === "misfired") {
      this.bookkeeper.skip(state, newest, "misfired", { lateness_ms: lateness })
      this.afterRun(state, now)
      return undefined
    }
    switch (Fire.overlap(state.runningCount, job.overlap)) {
      case "skip": {
        this.bookkeeper.skip(state, newest, "overlap")
        this.afterRun(state, now)
        return undefined
      }
      case "replace": {
        const replaced = state.running
        const fibers: Array<Fiber.RuntimeFiber<void, never>> = []
        for (const running of replaced) {
          const fiber = running.interrupt("replaced")
          if (fiber !== undefined) fibers.push(fiber)
        }
        return { run: new Run(state, newest, "scheduled"), replaced, fibers }
      }
      case "run": {
        list.push(new Run(state, newest, "scheduled"))
        return undefined
      }
    }
  }
}

interface Replacing {
  readonly run: Run
  readonly replaced: ReadonlyArray<Run>
  readonly fibers: ReadonlyArray<Fiber.RuntimeFiber<void, never>>
}
