/**
 * The fast decoder of stored specs (`decodeFast`, used when a leader loads every stored schedule) against the
 * schema it writes out (`ScheduleSpec`): whatever it accepts, the schema accepts with the same result; every spec the
 * schema encodes, it accepts. On random values, valid and not.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Arbitrary from "effect/Arbitrary"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { decodeFast, ScheduleSpec } from "../src/internal/scheduleSpec.js"

const decodeSchema = Schema.decodeUnknownEither(ScheduleSpec)
const encode = Schema.encodeSync(ScheduleSpec)

/** A field's value: often a valid one, else anything (wrong types, out-of-range numbers, bad dates, nested junk). */
const either = <A>(valid: fc.Arbitrary<A>) =>
  fc.oneof({ weight: 12, arbitrary: valid }, { weight: 1, arbitrary: fc.anything() })

const dateText = fc.oneof(
  fc.date({ min: new Date("1970-01-01"), max: new Date("2100-01-01") }).map((d) => d.toISOString()),
  fc.constantFrom("2026-02-30", "not a date", "", "2026-13-01T00:00:00Z", "1e3", "2026")
)

/** An object with some of `fields`; the `usual` ones mostly present. */
const anyObject = <T extends Record<string, fc.Arbitrary<unknown>>>(fields: T, usual: Array<keyof T & string> = []) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record(fields, { requiredKeys: usual }) },
    { weight: 1, arbitrary: fc.record(fields, { requiredKeys: [] }) }
  )

const triggerLike = fc.oneof(
  anyObject({ cron: either(fc.string()), timezone: either(fc.string()) }, ["cron"]),
  anyObject({ every: either(fc.string()), fixedRate: either(fc.boolean()) }, ["every"]),
  anyObject({ at: either(dateText) }, ["at"]),
  anyObject({ cron: either(fc.string()), every: either(fc.string()), at: either(dateText), fixedRate: fc.anything() }),
  fc.anything()
)

/** Spec-shaped values: every field optional, each valid or not, with stray keys now and then. */
const specLike = fc.tuple(
  anyObject({
    id: either(fc.string()),
    handler: either(fc.string()),
    trigger: triggerLike,
    payload: fc.anything(),
    enabled: either(fc.boolean()),
    timeout: either(fc.string()),
    overlap: either(fc.constantFrom("skip", "allow", "replace")),
    lock: either(anyObject({ enabled: either(fc.boolean()), ttl: either(fc.string()) })),
    retry: either(anyObject({
      times: either(fc.oneof(fc.integer(), fc.double())),
      delay: either(fc.string()),
      factor: either(fc.double()),
      maxDelay: either(fc.string())
    })),
    misfire: either(fc.constantFrom("skip", "runOnce")),
    misfireGrace: either(fc.string()),
    startAt: either(dateText),
    endAt: either(dateText),
    limit: either(fc.oneof(fc.integer(), fc.double(), fc.constant(2 ** 53), fc.constant(0)))
  }, ["id", "handler", "trigger"]),
  fc.dictionary(fc.string(), fc.anything(), { maxKeys: 2 })
).map(([spec, extra]) => ({ ...extra, ...spec }))

describe("decodeFast", () => {
  it("accepts only what ScheduleSpec decodes, with the same result", () => {
    let accepted = 0
    fc.assert(
      fc.property(fc.oneof({ weight: 9, arbitrary: specLike }, { weight: 1, arbitrary: fc.anything() }), (value) => {
        // Stored specs are JSON: the value as a leader reads it back (when it is JSON at all).
        let json: unknown = value
        try {
          const text = JSON.stringify(value)
          if (text !== undefined) json = JSON.parse(text)
        } catch {
          // Not JSON-able (a cycle, a bigint): decoded as it is.
        }
        for (const input of [value, json]) {
          const fast = decodeFast(input)
          if (fast === undefined) continue
          accepted++
          const schema = decodeSchema(input)
          expect(Either.isRight(schema)).toBe(true)
          expect(fast).toStrictEqual(Either.getOrThrow(schema))
        }
      }),
      { numRuns: 20_000 }
    )
    // The random values reach the accepting paths too, not only the rejections.
    expect(accepted).toBeGreaterThan(500)
  })

  it("accepts every spec ScheduleSpec encodes and decodes back from JSON", () => {
    const valid = Arbitrary.make(ScheduleSpec).filter((spec) =>
      [spec.startAt, spec.endAt, "at" in spec.trigger ? spec.trigger.at : undefined].every((d) =>
        d === undefined || !Number.isNaN(d.getTime())
      )
    )
    fc.assert(
      fc.property(valid, (spec) => {
        const stored = JSON.parse(JSON.stringify(encode(spec)))
        const schema = decodeSchema(stored)
        // JSON has no infinities nor NaN (they become null): such a spec is not one JSON keeps.
        fc.pre(Either.isRight(schema))
        expect(decodeFast(stored)).toStrictEqual(Either.getOrThrow(schema))
      }),
      { numRuns: 5_000 }
    )
  })

  it("leaves corrupt specs to the schema, which names the fault", () => {
    for (
      const bad of [
        { id: "a", handler: "h", trigger: { cron: 5 } },
        { id: "a", handler: "h", trigger: { every: "1 hour", fixedRate: "yes" } },
        { id: "a", handler: "h", trigger: { at: "not a date" } },
        { id: "a", handler: "h", trigger: { cron: "* * * * *" }, limit: 0 },
        { id: "a", handler: "h", trigger: { cron: "* * * * *" }, limit: 1.5 },
        { id: "a", handler: "h", trigger: { cron: "* * * * *" }, overlap: "sometimes" },
        { id: "a", trigger: { cron: "* * * * *" } },
        [],
        null
      ]
    ) {
      expect(decodeFast(bad)).toBeUndefined()
      expect(Either.isLeft(decodeSchema(bad))).toBe(true)
    }
  })
})
