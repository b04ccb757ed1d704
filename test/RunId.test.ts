import { describe, expect, it } from "@effect/vitest"
import { newRunId } from "../src/internal/runId.js"

describe("run ids", () => {
  it("are version 4 UUIDs in the canonical 36-character form, all different", () => {
    const ids = Array.from({ length: 1000 }, newRunId)
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(new Set(ids).size).toBe(1000)
    // Random in every place but the dashes and the version digit (1,000 ids span several refills of the bytes).
    const fixed = [8, 13, 14, 18, 23]
    for (let place = 0; place < 36; place++) {
      const seen = new Set(ids.map((id) => id[place]))
      expect([place, seen.size > 1]).toEqual([place, !fixed.includes(place)])
    }
  })
})
