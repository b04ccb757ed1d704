/**
 * The state behind the in-memory `JobLockModel` and `JobStore`: plain maps, with expiry judged against the time
 * passed in by the caller (the effect `Clock`), so `TestClock` drives it. Single-threaded JavaScript makes every
 * method atomic, which is what the Redis scripts give the Redis backend.
 *
 * @internal
 */
import * as Option from "effect/Option"
import type { LockHandle } from "../JobLockModel.js"
import type { RunRecord } from "../Run.js"
import { isUsableTerm, termOfToken, tokenWithTerm } from "./lockTerm.js"

/**
 * One job's slot claims in one array of numbers: `[head, newest, time, expiry, time, expiry, ...]`. `head` is the
 * index of the oldest pair not yet dropped, `newest` the newest fire time claimed. One array (a double array to V8,
 * no boxed numbers) costs about 80 bytes for a job with one claim, where an object and two arrays cost 440.
 */
type SlotClaims = Array<number>

const HEAD = 0
const NEWEST = 1
const FIRST_CLAIM = 2

interface Expiring<A> {
  value: A
  expiresAt: number
}

/** The value of a kept lock entry whose lock was released (tokens are never empty). */
const RELEASED = ""
/** How often released lock entries are swept, at most (on a release). */
const LOCK_SWEEP_MS = 60_000

/** Whether a lock entry is held at `now`: taken, not released, not expired. */
const isHeld = (entry: Expiring<string> | undefined, now: number): entry is Expiring<string> =>
  entry !== undefined && entry.value !== RELEASED && entry.expiresAt > now

let tokenCounter = 0
/** The process and the time this module was loaded: with the counter, unique in this process and across restarts. */
const tokenPrefix = `${process.pid.toString(36)}.${Date.now().toString(36)}.`

/** An owner token unique in this process; the Redis backend uses random tokens. */
export const newToken = (): string => tokenPrefix + (++tokenCounter).toString(36)

/** Run records the memory store keeps over all jobs together (see `JobStore.defaultMemoryMaxRecordsTotal`). */
export const DEFAULT_MAX_RECORDS_TOTAL = 10_000

export class MemoryState {
  /** Lock entries by key: held, expired, or released (kept for the key's next lock; see `tryLock`). */
  readonly locks = new Map<string, Expiring<string>>()
  /** When released lock entries were last swept (see `sweepLocks`). */
  private lockSweepAt = Number.NEGATIVE_INFINITY
  /**
   * What is kept per job name (status, fence, last fire, slot claims, records) in one entry: a run's `begin` and
   * `finish` touch five of them, one map lookup instead of five (and the same job's entry is remembered between
   * consecutive calls).
   */
  private readonly jobs = new Map<string, JobEntry>()
  private lastJob: string | undefined = undefined
  private lastEntry: JobEntry | undefined = undefined
  /**
   * Every kept record in the order written, oldest at `recordHead`, to drop the oldest of all jobs when the total is
   * over `maxRecordsTotal`: without a bound across jobs, 100,000 jobs x 100 records each is over a gigabyte.
   * Records already dropped by their job's own cap are skipped when they reach the front.
   */
  private recordQueue: Array<RunRecord | undefined> = []
  private recordHead = 0
  private recordCount = 0
  readonly maxRecordsTotal: number
  readonly paused = new Set<string>()
  /** Stored schedules by id, their version counter, run counts and change listeners (`JobStore.schedules`). */
  readonly schedules = new Map<string, { readonly spec: string; readonly revision: number }>()
  scheduleVersion = 0
  readonly scheduleRuns = new Map<string, number>()
  readonly scheduleListeners = new Set<(id: string, version: number) => void>()
  constructor(options: { readonly maxRecordsTotal?: number | undefined } = {}) {
    this.maxRecordsTotal = Math.max(1, Math.floor(options.maxRecordsTotal ?? DEFAULT_MAX_RECORDS_TOTAL))
  }

  private entryOf(job: string): JobEntry {
    if (job === this.lastJob) return this.lastEntry!
    let entry = this.jobs.get(job)
    if (entry === undefined) {
      entry = new JobEntry()
      this.jobs.set(job, entry)
    }
    this.lastJob = job
    this.lastEntry = entry
    return entry
  }

  /** The lock entry of `key` if it is held at `now`. */
  private heldLock(key: string, now: number): Expiring<string> | undefined {
    const entry = this.locks.get(key)
    return isHeld(entry, now) ? entry : undefined
  }

  acquire(key: string, ttlMs: number, now: number): Option.Option<LockHandle> {
    return this.tryLock(key, ttlMs, now) ?? Option.none()
  }

  /**
   * Take the lock if free; the handle wrapped in `Some`, or undefined when held. With a `term`, the token carries it
   * and a lock held under an older term is taken over (see `internal/lockTerm.ts`). A key's entry is kept when its
   * lock is released or expires, and taken again in place by its next lock: a job locks the same key every fire, and
   * a map entry deleted and added again per run churns the map's table.
   */
  tryLock(key: string, ttlMs: number, now: number, term?: number): Option.Option<LockHandle> | undefined {
    const entry = this.locks.get(key)
    const usable = isUsableTerm(term)
    if (isHeld(entry, now)) {
      const heldTerm = termOfToken(entry.value)
      if (!usable || heldTerm === undefined || heldTerm >= term) return undefined
    }
    const token = usable ? tokenWithTerm(term, newToken()) : newToken()
    if (entry === undefined) {
      this.locks.set(key, { value: token, expiresAt: now + ttlMs })
    } else {
      entry.value = token
      entry.expiresAt = now + ttlMs
    }
    return Option.some({ key, token })
  }

  release(lock: LockHandle, now: number): boolean {
    const entry = this.heldLock(lock.key, now)
    if (entry === undefined || entry.value !== lock.token) return false
    entry.value = RELEASED
    entry.expiresAt = now // when it was released, read only by the sweep
    if (now - this.lockSweepAt >= LOCK_SWEEP_MS) this.sweepLocks(now)
    return true
  }

  /**
   * Drop the entries released before the last sweep and not taken since: keys never locked again (a lock per user
   * id, say) go within two sweep periods, while a key locked again every fire keeps its entry.
   */
  private sweepLocks(now: number): void {
    const before = this.lockSweepAt
    for (const [key, kept] of this.locks) if (kept.value === RELEASED && kept.expiresAt < before) this.locks.delete(key)
    this.lockSweepAt = now
  }

  renew(lock: LockHandle, ttlMs: number, now: number): boolean {
    const entry = this.heldLock(lock.key, now)
    if (entry === undefined || entry.value !== lock.token) return false
    entry.expiresAt = now + ttlMs
    return true
  }

  setStatus(job: string, status: string, ttlMs: number, now: number): void {
    const entry = this.entryOf(job)
    entry.status = status
    entry.statusExpiresAt = now + ttlMs
  }

  getStatus(job: string, now: number): string | undefined {
    const entry = this.jobs.get(job)
    if (entry === undefined || entry.status === undefined) return undefined
    if (entry.statusExpiresAt <= now) {
      entry.status = undefined
      return undefined
    }
    return entry.status
  }

  /** Claim the slot (`job`, `fireTime`) until `now + ttlMs`; false when someone holds it. */
  claimSlot(job: string, fireTime: number, ttlMs: number, now: number): boolean {
    const entry = this.entryOf(job)
    const claims = entry.claims
    if (claims === undefined) {
      // Made with its first claim: the array is allocated at its exact size.
      entry.claims = [FIRST_CLAIM, fireTime, fireTime, now + ttlMs]
      return true
    }
    let head = claims[HEAD]!
    while (head < claims.length && claims[head + 1]! <= now) head += 2
    if (head > 128 + FIRST_CLAIM && (head - FIRST_CLAIM) * 2 > claims.length) {
      claims.splice(FIRST_CLAIM, head - FIRST_CLAIM)
      head = FIRST_CLAIM
    }
    claims[HEAD] = head
    if (fireTime <= claims[NEWEST]!) {
      for (let i = head; i < claims.length; i += 2) {
        if (claims[i] === fireTime && claims[i + 1]! > now) return false
      }
    } else {
      claims[NEWEST] = fireTime
    }
    claims.push(fireTime, now + ttlMs)
    return true
  }

  /** Slot claims kept (live or not yet dropped), over all jobs. */
  get slotsKept(): number {
    let count = 0
    for (const { claims } of this.jobs.values()) if (claims !== undefined) count += (claims.length - claims[HEAD]!) / 2
    return count
  }

  nextFence(job: string): number {
    return ++this.entryOf(job).fence
  }

  noteFire(job: string, fireTime: number): void {
    const entry = this.entryOf(job)
    if (entry.lastFire === undefined || fireTime > entry.lastFire) entry.lastFire = fireTime
  }

  /** The newest fire time claimed for `job`, if any. */
  lastFire(job: string): number | undefined {
    return this.jobs.get(job)?.lastFire
  }

  /** Keep `record` as its job's newest; at most `cap` per job and `maxRecordsTotal` over all jobs (oldest go). */
  addRecord(record: RunRecord, cap: number): void {
    const entry = this.entryOf(record.job)
    const list = entry.records ??= []
    list.push(record)
    this.recordQueue.push(record)
    this.recordCount++
    if (list.length > cap) {
      const dropped = list.length - Math.max(0, cap)
      list.splice(0, dropped)
      this.recordCount -= dropped
      if (list.length === 0) entry.records = undefined
    }
    while (this.recordCount > this.maxRecordsTotal) this.dropOldestRecord()
    if (this.recordHead > 1024 && this.recordHead * 2 > this.recordQueue.length) {
      this.recordQueue = this.recordQueue.slice(this.recordHead)
      this.recordHead = 0
    }
  }

  /** The newest `limit` records of `job`, newest first. */
  recentRecords(job: string, limit: number): Array<RunRecord> {
    const list = this.jobs.get(job)?.records
    if (list === undefined || limit <= 0) return []
    const out: Array<RunRecord> = []
    for (let i = list.length - 1; i >= 0 && out.length < limit; i--) out.push(list[i]!)
    return out
  }

  /** How many records are kept over all jobs. */
  get recordsKept(): number {
    return this.recordCount
  }

  private dropOldestRecord(): void {
    const queue = this.recordQueue
    while (this.recordHead < queue.length) {
      const oldest = queue[this.recordHead]!
      queue[this.recordHead++] = undefined // let it be collected: the slot is never read again
      const entry = this.jobs.get(oldest.job)
      const list = entry?.records
      // A job's records are in the order written, so the oldest of all jobs is the first of its job's list, unless
      // its job's own cap dropped it already.
      if (list !== undefined && list[0] === oldest) {
        list.shift()
        if (list.length === 0) entry!.records = undefined
        this.recordCount--
        return
      }
    }
  }
}

/** What the memory store keeps for one job name. */
class JobEntry {
  status: string | undefined = undefined
  statusExpiresAt = 0
  fence = 0
  lastFire: number | undefined = undefined
  /**
   * Slot claims in the order written (see `SlotClaims`), made with the first claim. Expired claims are dropped from
   * the front on the job's next claim (constant work per claim); claims with a longer TTL can hold shorter ones
   * behind them for a while, and those are still judged by their own expiry on read. A job's fire times only grow in
   * the usual case, so a claim newer than the job's newest is free without a search.
   */
  claims: SlotClaims | undefined = undefined
  /** Its records, oldest first (`recentRuns` reads them from the end), at most the per-job cap. */
  records: Array<RunRecord> | undefined = undefined
}
