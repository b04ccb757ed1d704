import { describe, expect, it } from "@effect/vitest"
import { Duration } from "effect"
import { toMillis } from "../src/internal/duration.js"

describe("toMillis", () => {
  it("gives what Duration.toMillis gives, for durations held in milliseconds, in nanoseconds and infinite", () => {
    const durations = [
      Duration.zero,
      Duration.millis(1.5),
      Duration.seconds(30),
      Duration.minutes(10),
      Duration.nanos(1_500_000n),
      Duration.micros(7n),
      Duration.decode("2 hours"),
      Duration.infinity
    ]
    expect(durations.map(toMillis)).toEqual(durations.map(Duration.toMillis))
    expect(durations.map(toMillis)).toEqual([0, 1.5, 30_000, 600_000, 1.5, 0.007, 7_200_000, Infinity])
  })
})
