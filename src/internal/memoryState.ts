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

interface Expiring<A> {
  readonly value: A
  expiresAt: number
}

let tokenCounter = 0

/** An owner token unique in this process; the Redis backend uses random tokens. */
export const newToken = (): string =>
  `${process.pid.toString(36)}.${Date.now().toString(36)}.${(++tokenCounter).toString(36)}`

/** Run records the memory store keeps over all jobs together (see `JobStore.defaultMemoryMaxRecordsTotal`). */
export const DEFAULT_MAX_RECORDS_TOTAL = 10_000

export class MemoryState {
  readonly locks = new Map<string, Expiring<string>>()
  readonly statuses = new Map<string, Expiring<string>>()
  readonly slots = new Map<string, number>()
  readonly fences = new Map<string, number>()
  readonly lastFires = new Map<string, number>()
  /** Per job, oldest first (`recentRuns` reads them from the end), at most the per-job cap each. */
  private readonly records = new Map<string, Array<RunRecord>>()
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
  /**
   * Slot claims in the order they were written, to drop expired ones from the front on every claim: constant work
   * per claim, where a periodic sweep of the whole map (millions of claims at 10,000 fires/s and an 11-minute TTL)
   * stalled every fire for tens of milliseconds. Claims with a longer TTL can hold shorter ones behind them for a
   * while; those are still judged by their own expiry on read.
   */
  private slotQueue: Array<{ readonly slot: string; readonly expiresAt: number }> = []
  private slotHead = 0

  constructor(options: { readonly maxRecordsTotal?: number | undefined } = {}) {
    this.maxRecordsTotal = Math.max(1, Math.floor(options.maxRecordsTotal ?? DEFAULT_MAX_RECORDS_TOTAL))
  }

  private live<A>(map: Map<string, Expiring<A>>, key: string, now: number): Expiring<A> | undefined {
    const entry = map.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      map.delete(key)
      return undefined
    }
    return entry
  }

  acquire(key: string, ttlMs: number, now: number): Option.Option<LockHandle> {
    return this.tryLock(key, ttlMs, now) ?? Option.none()
  }

  /**
   * Take the lock if free; the handle wrapped in `Some`, or undefined when held. With a `term`, the token carries it
   * and a lock held under an older term is taken over (see `internal/lockTerm.ts`).
   */
  tryLock(key: string, ttlMs: number, now: number, term?: number): Option.Option<LockHandle> | undefined {
    const held = this.live(this.locks, key, now)
    const usable = isUsableTerm(term)
    if (held !== undefined) {
      const heldTerm = termOfToken(held.value)
      if (!usable || heldTerm === undefined || heldTerm >= term) return undefined
    }
    const token = usable ? tokenWithTerm(term, newToken()) : newToken()
    this.locks.set(key, { value: token, expiresAt: now + ttlMs })
    return Option.some({ key, token })
  }

  release(lock: LockHandle, now: number): boolean {
    const entry = this.live(this.locks, lock.key, now)
    if (entry === undefined || entry.value !== lock.token) return false
    this.locks.delete(lock.key)
    return true
  }

  renew(lock: LockHandle, ttlMs: number, now: number): boolean {
    const entry = this.live(this.locks, lock.key, now)
    if (entry === undefined || entry.value !== lock.token) return false
    entry.expiresAt = now + ttlMs
    return true
  }

  setStatus(job: string, status: string, ttlMs: number, now: number): void {
    this.statuses.set(job, { value: status, expiresAt: now + ttlMs })
  }

  getStatus(job: string, now: number): string | undefined {
    return this.live(this.statuses, job, now)?.value
  }

  /** Claim `slot` until `now + ttlMs`; false when someone holds it. */
  claimSlot(slot: string, ttlMs: number, now: number): boolean {
    const expiresAt = this.slots.get(slot)
    if (expiresAt !== undefined && expiresAt > now) return false
    this.dropExpiredSlots(now)
    this.slots.set(slot, now + ttlMs)
    this.slotQueue.push({ slot, expiresAt: now + ttlMs })
    return true
  }

  private dropExpiredSlots(now: number): void {
    const queue = this.slotQueue
    let head = this.slotHead
    while (head < queue.length && queue[head]!.expiresAt <= now) {
      const { expiresAt, slot } = queue[head]!
      // Only if not claimed again since (a later claim of the same slot has its own entry further back).
      if (this.slots.get(slot) === expiresAt) this.slots.delete(slot)
      head++
    }
    if (head > 1024 && head * 2 > queue.length) {
      this.slotQueue = queue.slice(head)
      head = 0
    }
    this.slotHead = head
  }

  nextFence(job: string): number {
    const fence = (this.fences.get(job) ?? 0) + 1
    this.fences.set(job, fence)
    return fence
  }

  noteFire(job: string, fireTime: number): void {
    const last = this.lastFires.get(job)
    if (last === undefined || fireTime > last) this.lastFires.set(job, fireTime)
  }

  /** Keep `record` as its job's newest; at most `cap` per job and `maxRecordsTotal` over all jobs (oldest go). */
  addRecord(record: RunRecord, cap: number): void {
    let list = this.records.get(record.job)
    if (list === undefined) {
      list = []
      this.records.set(record.job, list)
    }
    list.push(record)
    this.recordQueue.push(record)
    this.recordCount++
    if (list.length > cap) {
      const dropped = list.length - Math.max(0, cap)
      list.splice(0, dropped)
      this.recordCount -= dropped
      if (list.length === 0) this.records.delete(record.job)
    }
    while (this.recordCount > this.maxRecordsTotal) this.dropOldestRecord()
    if (this.recordHead > 1024 && this.recordHead * 2 > this.recordQueue.length) {
      this.recordQueue = this.recordQueue.slice(this.recordHead)
      this.recordHead = 0
    }
  }

  /** The newest `limit` records of `job`, newest first. */
  recentRecords(job: string, limit: number): Array<RunRecord> {
    const list = this.records.get(job)
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
      const list = this.records.get(oldest.job)
      // A job's records are in the order written, so the oldest of all jobs is the first of its job's list, unless
      // its job's own cap dropped it already.
      if (list !== undefined && list[0] === oldest) {
        list.shift()
        if (list.length === 0) this.records.delete(oldest.job)
        this.recordCount--
        return
      }
    }
  }
}
