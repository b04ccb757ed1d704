import { describe, expect, it } from "@effect/vitest"
import { Effect, Equal, FiberRef, Hash, HashMap, Inspectable, Logger, Option } from "effect"
import { runAnnotations } from "../src/internal/runAnnotations.js"

// A run's annotations are a HashMap built on first read: it must answer every question a HashMap is asked exactly as
// the map it stands for (a renamed internal field of effect's HashMap would make it fail here).

const base = HashMap.make(["service", "billing"], ["job", "from the scope"]) as HashMap.HashMap<string, unknown>
const fields = ["sync_user", "run-1", "2026-05-01T00:00:10.000Z"] as const
const real = () =>
  HashMap.mutate(base, (map) => {
    HashMap.set(map, "job", fields[0])
    HashMap.set(map, "run_id", fields[1])
    HashMap.set(map, "fire_time", fields[2])
  })
const lazy = () => runAnnotations(base, ...fields)

describe("run annotations", () => {
  it("are built only when read", () => {
    const annotations = lazy() as unknown as { readonly built: unknown }
    expect(annotations.built).toBeUndefined()
    expect(HashMap.size(annotations as unknown as HashMap.HashMap<string, unknown>)).toBe(4)
    expect(annotations.built).toBeDefined()
  })

  it("answer as the HashMap they stand for: reads, iteration, equality, hash, updates, printing", () => {
    const expected = real()
    const check = (make: () => HashMap.HashMap<string, unknown>) => {
      expect(HashMap.isHashMap(make())).toBe(true)
      expect(HashMap.size(make())).toBe(4)
      expect(HashMap.get(make(), "job")).toEqual(Option.some("sync_user"))
      expect(HashMap.get(make(), "service")).toEqual(Option.some("billing"))
      expect(HashMap.has(make(), "nope")).toBe(false)
      expect(Array.from(make())).toEqual(Array.from(expected))
      expect(HashMap.toEntries(make())).toEqual(HashMap.toEntries(expected))
      expect(Equal.equals(make(), expected)).toBe(true)
      expect(Equal.equals(expected, make())).toBe(true)
      expect(Hash.hash(make())).toBe(Hash.hash(expected))
      expect(Equal.equals(HashMap.set(make(), "extra", 1), HashMap.set(expected, "extra", 1))).toBe(true)
      expect(Equal.equals(HashMap.remove(make(), "job"), HashMap.remove(expected, "job"))).toBe(true)
      const mutated = HashMap.mutate(make(), (map) => HashMap.set(map, "more", true))
      expect(HashMap.get(mutated, "more")).toEqual(Option.some(true))
      expect(HashMap.size(mutated)).toBe(5)
      expect(JSON.stringify(make())).toBe(JSON.stringify(expected))
      expect(String(make())).toBe(String(expected))
      expect(Inspectable.format(make())).toBe(Inspectable.format(expected))
    }
    check(lazy)
    // A map read once (built) answers the same.
    const built = lazy()
    HashMap.size(built)
    check(() => built)
  })

  it.effect("as a fiber's annotations, log lines and annotateLogs see them", () =>
    Effect.gen(function*() {
      const lines: Array<Record<string, unknown>> = []
      const logger = Logger.make(({ annotations }) => lines.push(Object.fromEntries(HashMap.toEntries(annotations))))
      yield* Effect.logInfo("hello").pipe(
        Effect.annotateLogs("extra", 1),
        Effect.locally(FiberRef.currentLogAnnotations, lazy()),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      expect(lines).toEqual([{
        service: "billing",
        job: "sync_user",
        run_id: "run-1",
        fire_time: "2026-05-01T00:00:10.000Z",
        extra: 1
      }])
    }))
})
