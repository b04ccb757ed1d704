import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import { MemoryState } from "../src/internal/memoryState.js"
import { RunRecord } from "../src/Run.js"

describe("MemoryState slot claims", () => {
  it("drops expired claims as new ones are written, so the map stays at what the TTL covers", () => {
    const state = new MemoryState()
    // 1,000 jobs claiming a slot every second for 100 s, with a 10 s TTL: about 10 s of claims are alive at a time.
    for (let second = 0; second < 100; second++) {
      for (let job = 0; job < 1_000; job++) {
        expect(state.claimSlot(`job-${job}`, second * 1000, 10_000, second * 1000)).toBe(true)
      }
    }
    expect(state.slotsKept).toBeLessThanOrEqual(11_000)
    expect(state.slotsKept).toBeGreaterThanOrEqual(10_000)
  })

  it("a claim older than the job's newest is judged exactly: free unless that fire time was claimed", () => {
    const state = new MemoryState()
    expect(state.claimSlot("a", 5_000, 60_000, 0)).toBe(true)
    expect(state.claimSlot("a", 3_000, 60_000, 0)).toBe(true) // older, never claimed (a clock stepped back)
    expect(state.claimSlot("a", 3_000, 60_000, 1)).toBe(false)
    expect(state.claimSlot("a", 5_000, 60_000, 1)).toBe(false)
    expect(state.claimSlot("b", 5_000, 60_000, 1)).toBe(true) // another job's slot of the same time
  })

  it("a live claim is refused, an expired one can be claimed again and is not dropped by its old entry", () => {
    const state = new MemoryState()
    expect(state.claimSlot("a", 0, 1_000, 0)).toBe(true)
    expect(state.claimSlot("a", 0, 1_000, 999)).toBe(false)
    expect(state.claimSlot("a", 0, 5_000, 1_000)).toBe(true) // expired at 1,000: claimed again until 6,000
    // The first claim's queue entry (expiring at 1,000) is dropped here; the second claim must survive it.
    expect(state.claimSlot("b", 0, 1_000, 2_000)).toBe(true)
    expect(state.claimSlot("a", 0, 1_000, 3_000)).toBe(false)
    expect(state.claimSlot("a", 0, 1_000, 6_000)).toBe(true)
  })
})

const recordOf = (job: string, i: number): RunRecord =>
  new RunRecord({
    runId: `${job}-${i}`,
    job,
    kind: "scheduled",
    fireTime: new Date(i * 1000),
    startedAt: new Date(i * 1000),
    finishedAt: new Date(i * 1000 + 1),
    durationMs: 1,
    node: "n",
    attempt: 1,
    fence: i,
    outcome: "success"
  }, true)

describe("MemoryState locks", () => {
  const handleOf = (lock: ReturnType<MemoryState["acquire"]>) => {
    if (lock._tag === "None") throw new Error("expected the lock to be taken")
    return lock.value
  }

  it("a released lock's key is taken again in place; the old handle then neither releases nor renews it", () => {
    const state = new MemoryState()
    const first = handleOf(state.acquire("job", 1_000, 0))
    const entry = state.locks.get("job")
    expect(state.acquire("job", 1_000, 10)._tag).toBe("None") // held
    expect(state.release(first, 20)).toBe(true)
    expect(state.release(first, 21)).toBe(false) // released already
    const second = handleOf(state.acquire("job", 1_000, 30))
    expect(second.token).not.toBe(first.token)
    expect(state.locks.get("job")).toBe(entry) // the same entry, taken again
    expect(state.locks.size).toBe(1)
    expect(state.release(first, 40)).toBe(false)
    expect(state.renew(first, 5_000, 40)).toBe(false)
    expect(state.renew(second, 5_000, 40)).toBe(true)
    expect(state.acquire("job", 1_000, 5_039)._tag).toBe("None") // renewed until 5,040
    // Expired: free to take, and its handle can no longer renew or release it.
    expect(state.renew(second, 5_000, 5_040)).toBe(false)
    expect(state.release(second, 5_040)).toBe(false)
    const third = handleOf(state.acquire("job", 1_000, 5_040))
    expect(state.release(third, 5_041)).toBe(true)
  })

  it("a lock held under an older term is taken over; a released one is free whatever its term was", () => {
    const state = new MemoryState()
    const old = handleOf(state.tryLock("job", 60_000, 0, 1) ?? Option.none())
    expect(state.tryLock("job", 60_000, 1, 1)).toBeUndefined() // same term: held
    const newer = handleOf(state.tryLock("job", 60_000, 2, 2) ?? Option.none())
    expect(state.release(old, 3)).toBe(false)
    expect(state.release(newer, 3)).toBe(true)
    expect(state.tryLock("job", 60_000, 4, 1)?._tag).toBe("Some")
  })

  it("released entries of keys never locked again are dropped within two minutes; a key locked every second keeps its entry", () => {
    const state = new MemoryState()
    for (let i = 0; i < 10; i++) handleOf(state.acquire(`held-${i}`, 600_000, 0))
    for (let i = 0; i < 5_000; i++) expect(state.release(handleOf(state.acquire(`user-${i}`, 60_000, 1)), 2)).toBe(true)
    const entry = state.locks.get("job")
    let kept = entry
    for (let second = 3; second <= 130; second++) {
      expect(state.release(handleOf(state.acquire("job", 60_000, second * 1000)), second * 1000 + 1)).toBe(true)
      kept ??= state.locks.get("job")
      expect(state.locks.get("job")).toBe(kept)
    }
    expect(state.locks.size).toBe(11) // the held locks and "job"
    for (let i = 0; i < 10; i++) expect(state.acquire(`held-${i}`, 60_000, 131_000)._tag).toBe("None")
    expect(entry).toBeUndefined()
  })
})

describe("MemoryState run records", () => {
  it("keeps at most maxRecordsTotal over all jobs: the newest of any job, the oldest of all go first", () => {
    const state = new MemoryState({ maxRecordsTotal: 5 })
    // a, b, c interleaved: a0 b0 c0 a1 b1 c1 a2 ... each job's own cap (100) is never reached.
    for (let i = 0; i < 3; i++) for (const job of ["a", "b", "c"]) state.addRecord(recordOf(job, i), 100)
    expect(state.recordsKept).toBe(5)
    // Written in the order a0 b0 c0 a1 b1 c1 a2 b2 c2: the newest 5 are b1 c1 a2 b2 c2.
    expect(state.recentRecords("a", 10).map((r) => r.runId)).toEqual(["a-2"])
    expect(state.recentRecords("b", 10).map((r) => r.runId)).toEqual(["b-2", "b-1"])
    expect(state.recentRecords("c", 10).map((r) => r.runId)).toEqual(["c-2", "c-1"])
  })

  it("the per-job cap and the total bound together: a record dropped by its job's cap is not counted twice", () => {
    const state = new MemoryState({ maxRecordsTotal: 4 })
    for (let i = 0; i < 10; i++) state.addRecord(recordOf("busy", i), 2)
    expect(state.recordsKept).toBe(2)
    expect(state.recentRecords("busy", 10).map((r) => r.runId)).toEqual(["busy-9", "busy-8"])
    state.addRecord(recordOf("quiet", 0), 2)
    state.addRecord(recordOf("quiet", 1), 2)
    expect(state.recordsKept).toBe(4)
    // One more: the oldest kept of all (busy-8) goes, not a record busy's cap already dropped.
    state.addRecord(recordOf("other", 0), 2)
    expect(state.recordsKept).toBe(4)
    expect(state.recentRecords("busy", 10).map((r) => r.runId)).toEqual(["busy-9"])
    expect(state.recentRecords("quiet", 1).map((r) => r.runId)).toEqual(["quiet-1"])
  })

  it("stays bounded with many jobs: 20,000 jobs x 3 runs keep the default 10,000 records", () => {
    const state = new MemoryState()
    for (let i = 0; i < 3; i++) for (let job = 0; job < 20_000; job++) state.addRecord(recordOf(`j${job}`, i), 100)
    expect(state.recordsKept).toBe(10_000)
    expect(state.recentRecords("j19999", 100).map((r) => r.runId)).toEqual(["j19999-2"])
    expect(state.recentRecords("j0", 100)).toEqual([])
  })
})
