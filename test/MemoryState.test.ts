import { describe, expect, it } from "@effect/vitest"
import { MemoryState } from "../src/internal/memoryState.js"

describe("MemoryState slot claims", () => {
  it("drops expired claims as new ones are written, so the map stays at what the TTL covers", () => {
    const state = new MemoryState()
    // 1,000 jobs claiming a slot every second for 100 s, with a 10 s TTL: about 10 s of claims are alive at a time.
    for (let second = 0; second < 100; second++) {
      for (let job = 0; job < 1_000; job++) {
        expect(state.claimSlot(`job-${job}:${second * 1000}`, 10_000, second * 1000)).toBe(true)
      }
    }
    expect(state.slots.size).toBeLessThanOrEqual(11_000)
    expect(state.slots.size).toBeGreaterThanOrEqual(10_000)
  })

  it("a live claim is refused, an expired one can be claimed again and is not dropped by its old entry", () => {
    const state = new MemoryState()
    expect(state.claimSlot("a:0", 1_000, 0)).toBe(true)
    expect(state.claimSlot("a:0", 1_000, 999)).toBe(false)
    expect(state.claimSlot("a:0", 5_000, 1_000)).toBe(true) // expired at 1,000: claimed again until 6,000
    // The first claim's queue entry (expiring at 1,000) is dropped here; the second claim must survive it.
    expect(state.claimSlot("b:0", 1_000, 2_000)).toBe(true)
    expect(state.claimSlot("a:0", 1_000, 3_000)).toBe(false)
    expect(state.claimSlot("a:0", 1_000, 6_000)).toBe(true)
  })
})
