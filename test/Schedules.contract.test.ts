/**
 * One contract for the stored schedules of every `JobStore` backend (memory, Redis): the store operations
 * (`JobStore.schedules`), and the `Schedules` service over them on real time, including three bugs users of other
 * schedulers met (a changed pattern ignored on upsert, remove-then-upsert leaving no next run, duplicates after a
 * restart).
 */
import { assert, describe, expect, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Cron from "../src/Cron.js"
import * as JobStore from "../src/JobStore.js"
import * as JobStoreRedis from "../src/JobStore/Redis.js"
import * as LeaderElection from "../src/LeaderElection.js"
import * as Redis from "../src/Redis.js"
import { RunContext } from "../src/Run.js"
import * as Scheduler from "../src/Scheduler.js"
import * as Schedules from "../src/Schedules.js"
import { TestRedis, uniquePrefix } from "./harness/redis.js"

type StoreContext = Context.Context<JobStore.JobStore>

interface Backend {
  /** Register one test; its body gets a fresh, empty store (the same one for every node it starts). */
  readonly test: (
    name: string,
    body: (store: StoreContext) => Effect.Effect<void, unknown, Scope.Scope>
  ) => void
}

const schedulesOf = (store: StoreContext) => {
  const schedules = Context.get(store, JobStore.JobStore).schedules
  if (schedules === undefined) throw new Error("the store keeps no schedules")
  return schedules
}

const tick = Schedules.handler("tick", Schema.Void, () => Effect.void)

/** One node: a scheduler and the schedules service over `store`, in a scope of its own (closed = the node stopped). */
// Handlers of different payload types in one list.

const node = (store: StoreContext, handlers: ReadonlyArray<Schedules.Handler<any, any, never>> = [tick]) =>
  Effect.gen(function*() {
    const scheduler = yield* Scheduler.make<never>([])
    const schedules = yield* Schedules.make(handlers, { reconcileInterval: "200 millis" }).pipe(
      Effect.provideService(Scheduler.Scheduler, scheduler)
    )
    return { scheduler, schedules }
  }).pipe(
    Effect.provide(Layer.merge(LeaderElection.layerSingleNode("node-1"), Logger.remove(Logger.defaultLogger))),
    Effect.provide(store)
  )

const spec = (json: object) => JSON.stringify(json)

const contract = ({ test }: Backend) => {
  test("put creates, then updates; the same spec again is unchanged and moves no revision or version", (ctx) =>
    Effect.gen(function*() {
      const store = schedulesOf(ctx)
      const v0 = yield* store.version
      const created = yield* store.put("a", spec({ id: "a", n: 1 }))
      const same = yield* store.put("a", spec({ id: "a", n: 1 }))
      const v1 = yield* store.version
      const updated = yield* store.put("a", spec({ id: "a", n: 2 }))
      expect([created.result, same.result, updated.result]).toEqual(["created", "unchanged", "updated"])
      assert.strictEqual(same.revision, created.revision)
      assert.isAbove(created.revision, v0)
      assert.strictEqual(v1, created.revision)
      assert.isAbove(updated.revision, created.revision)
      const got = Option.getOrThrow(yield* store.get("a"))
      expect(got).toEqual({ id: "a", spec: spec({ id: "a", n: 2 }), revision: updated.revision })
      assert.isTrue(Option.isNone(yield* store.get("b")))
    }))

  test("remove deletes the schedule and its run count once, and moves the version", (ctx) =>
    Effect.gen(function*() {
      const store = schedulesOf(ctx)
      yield* store.put("a", spec({ id: "a" }))
      expect([yield* store.countRun("a"), yield* store.countRun("a"), yield* store.runCount("a")]).toEqual([1, 2, 2])
      const before = yield* store.version
      assert.isTrue(yield* store.remove("a"))
      assert.isAbove(yield* store.version, before)
      const after = yield* store.version
      assert.isFalse(yield* store.remove("a"))
      assert.strictEqual(yield* store.version, after)
      assert.isTrue(Option.isNone(yield* store.get("a")))
      assert.strictEqual(yield* store.runCount("a"), 0)
    }))

  test("list pages through every schedule once, in id order", (ctx) =>
    Effect.gen(function*() {
      const store = schedulesOf(ctx)
      const ids = Array.from({ length: 25 }, (_, i) => `s-${String(i).padStart(2, "0")}`)
      for (const id of [...ids].reverse()) yield* store.put(id, spec({ id }))
      const seen: Array<string> = []
      let cursor: string | undefined = undefined
      let pages = 0
      while (true) {
        const page: { readonly entries: ReadonlyArray<JobStore.StoredSchedule>; readonly next: Option.Option<string> } =
          yield* store.list({ cursor, limit: 10 })
        pages++
        for (const entry of page.entries) seen.push(entry.id)
        if (Option.isNone(page.next)) break
        cursor = page.next.value
      }
      expect(seen).toEqual(ids)
      assert.strictEqual(pages, 3)
    }))

  test("changes announces every put and remove that changed something, with its version", (ctx) =>
    Effect.gen(function*() {
      const store = schedulesOf(ctx)
      const fiber = yield* store.changes.pipe(Stream.take(3), Stream.runCollect, Effect.fork)
      // The subscription is set up asynchronously (Redis: its own connection): write until it is seen.
      yield* Effect.sleep("200 millis")
      const a = yield* store.put("a", spec({ id: "a" }))
      yield* store.put("a", spec({ id: "a" }))
      const b = yield* store.put("b", spec({ id: "b" }))
      yield* store.remove("a")
      const removed = yield* store.version
      const changes = Chunk.toReadonlyArray(yield* Fiber.join(fiber).pipe(Effect.timeout("5 seconds")))
      expect(changes).toEqual([
        { id: "a", version: a.revision },
        { id: "b", version: b.revision },
        { id: "a", version: removed }
      ])
    }))

  test("lastFireTimes reads many jobs' last claimed fire times in order", (ctx) =>
    Effect.gen(function*() {
      const jobStore = Context.get(ctx, JobStore.JobStore)
      const request = (job: string, fireTime: number): JobStore.BeginRequest => ({
        job,
        fireTime,
        runId: `${job}-${fireTime}`,
        nodeId: "node-1",
        slot: Option.some({ ttl: Duration.seconds(30) }),
        lock: Option.none(),
        statusTtl: Duration.seconds(30)
      })
      yield* jobStore.begin(request("x", 1000))
      yield* jobStore.begin(request("z", 3000))
      const lasts = yield* jobStore.lastFireTimes!(["x", "y", "z"])
      expect(lasts).toEqual([Option.some(1000), Option.none(), Option.some(3000)])
    }))

  test("a changed cron pattern is applied on upsert: the next fire follows the new pattern", (ctx) =>
    Effect.gen(function*() {
      const { scheduler, schedules } = yield* node(ctx)
      yield* schedules.upsert({ id: "p", handler: "tick", trigger: { cron: "0 0 0 1 1 *" } })
      const now = Date.now()
      const changed = yield* schedules.upsert({ id: "p", handler: "tick", trigger: { cron: "0 0 12 * * *" } })
      assert.strictEqual(changed.result, "updated")
      const next = Option.getOrThrow((yield* scheduler.jobStatus("p")).nextFire).getTime()
      assert.strictEqual(next, Cron.next(Either.getOrThrow(Cron.parse("0 0 12 * * *")), now))
      const stored = yield* schedules.get("p")
      expect(stored.spec.trigger).toEqual({ cron: "0 0 12 * * *" })
    }))

  test("remove then upsert of the same id has a next run", (ctx) =>
    Effect.gen(function*() {
      const { scheduler, schedules } = yield* node(ctx)
      const s = { id: "r", handler: "tick", trigger: { every: "1 hour" } } as const
      yield* schedules.upsert(s)
      assert.isTrue(yield* schedules.remove("r"))
      assert.isFalse(scheduler.jobs.includes("r"))
      assert.strictEqual((yield* schedules.upsert(s)).result, "created")
      assert.isTrue(Option.isSome((yield* scheduler.jobStatus("r")).nextFire))
    }))

  test("no duplicates after a restart: the same upsert is unchanged, one schedule, each fire time run once", (ctx) =>
    Effect.gen(function*() {
      const fires: Array<number> = []
      const record = Schedules.handler(
        "record",
        Schema.Void,
        () => Effect.flatMap(RunContext, (run) => Effect.sync(() => fires.push(run.fireTime.getTime())))
      )
      const s = { id: "dup", handler: "record", trigger: { every: "150 millis", fixedRate: true } } as const
      for (let restart = 0; restart < 2; restart++) {
        yield* Effect.scoped(Effect.gen(function*() {
          const { schedules } = yield* node(ctx, [record])
          const result = yield* schedules.upsert(s)
          assert.strictEqual(result.result, restart === 0 ? "created" : "unchanged")
          yield* Effect.sleep("700 millis")
        }))
      }
      const { schedules } = yield* node(ctx, [record])
      const listed = yield* schedules.list()
      expect(listed.schedules.map((x) => x.spec.id)).toEqual(["dup"])
      assert.isAtLeast(fires.length, 4, `fires ${fires.join(", ")}`)
      assert.strictEqual(new Set(fires).size, fires.length, `a fire time ran twice: ${fires.join(", ")}`)
    }))

  test("concurrent upserts of one id through two nodes: one whole spec wins, the newest revision, and both schedulers plan it", (ctx) =>
    Effect.gen(function*() {
      const a = yield* node(ctx)
      const b = yield* node(ctx)
      // Hourly at minute `m`: every round writes two different specs of one id at once, one through each node.
      const specAt = (m: number) => ({ id: "race", handler: "tick", trigger: { cron: `0 ${m} * * * *` } }) as const
      let winner = 0
      for (let round = 0; round < 20; round++) {
        const [ra, rb] = yield* Effect.all(
          [a.schedules.upsert(specAt(2 * round)), b.schedules.upsert(specAt(2 * round + 1))],
          { concurrency: 2 }
        )
        assert.notStrictEqual(ra.revision, rb.revision, `round ${round}: two writes, one revision`)
        winner = ra.revision > rb.revision ? 2 * round : 2 * round + 1
        const stored = yield* a.schedules.get("race")
        expect(stored.spec).toEqual(specAt(winner))
        assert.strictEqual(stored.revision, Math.max(ra.revision, rb.revision))
      }
      // Each node applies the changes in its own order (its own writes at once, the other's when announced): both
      // end with the last winner planned, never with the write that lost.
      const cron = Either.getOrThrow(Cron.parse(specAt(winner).trigger.cron))
      const plannedOf = (n: typeof a) =>
        Effect.map(n.scheduler.jobStatus("race"), (status) => Option.map(status.nextFire, (d) => d.getTime()))
      const deadline = Date.now() + 5000
      for (;;) {
        const expected = Cron.next(cron, Date.now())
        const planned = [yield* plannedOf(a), yield* plannedOf(b)]
        if (planned.every((p) => Option.isSome(p) && p.value === expected)) break
        if (Date.now() > deadline) {
          assert.fail(`planned ${planned.map(String).join(", ")}, expected ${new Date(expected).toISOString()}`)
        }
        yield* Effect.sleep("20 millis")
      }
      expect((yield* b.schedules.get("race")).spec).toEqual(specAt(winner))
    }))

  test("a load of several pages: a corrupt spec is reported and skipped, changes made during the load are applied at their new version", (ctx) =>
    Effect.gen(function*() {
      const store = schedulesOf(ctx)
      // More than two pages of the load (2,000 a page), in id order: s-0000 .. s-4499.
      const id = (i: number) => `s-${String(i).padStart(4, "0")}`
      const cron = (i: number, hour: string) => ({ cron: `0 ${i % 60} ${hour} * * *` })
      const stored = (i: number, hour = "*") => spec({ handler: "tick", id: id(i), trigger: cron(i, hour) })
      const count = 4500
      yield* Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) => store.put(id(i), stored(i)), {
        concurrency: 32,
        discard: true
      })
      // On the second page: a spec that is not JSON, and one whose trigger is not one; they must not stop the load.
      yield* store.put(id(2100), "{not json")
      yield* store.put(id(2101), spec({ handler: "tick", id: id(2101), trigger: { cron: 5 } }))

      // Changes written while the load runs, right after its first page was read: one schedule of the first page
      // (loaded at its old version, then changed), one of the last page changed and one removed (read after).
      const changed = { early: 10, late: 4400, removed: 4401 }
      let pagesRead = 0
      const during = Effect.gen(function*() {
        yield* store.put(id(changed.early), stored(changed.early, "3"))
        yield* store.put(id(changed.late), stored(changed.late, "4"))
        yield* store.remove(id(changed.removed))
      })
      const watched = Context.add(ctx, JobStore.JobStore, {
        ...Context.get(ctx, JobStore.JobStore),
        schedules: {
          ...store,
          list: (options) => Effect.tap(store.list(options), () => (pagesRead++ === 0 ? during : Effect.void))
        }
      })

      const errors: Array<{ readonly message: string; readonly job: unknown }> = []
      const logger = Logger.make(({ annotations, logLevel, message }) => {
        if (logLevel._tag !== "Error") return
        errors.push({
          message: String(Array.isArray(message) ? message[0] : message),
          job: HashMap.unsafeGet(annotations, "job")
        })
      })
      const { scheduler } = yield* node(watched).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      assert.isAtLeast(pagesRead, 3)

      const describe = (i: number, hour = "*") => `cron "${cron(i, hour).cron}" UTC`
      const jobs = new Set(scheduler.jobs)
      // Loaded and planned: every schedule but the corrupt two and the removed one.
      assert.strictEqual(jobs.size, count - 3)
      for (const gone of [2100, 2101, changed.removed]) assert.isFalse(jobs.has(id(gone)), id(gone))
      for (const i of [0, 1999, 2000, 2102, 4000, count - 1]) {
        const status = yield* scheduler.jobStatus(id(i))
        assert.isTrue(Option.isSome(status.nextFire), `${id(i)} is not planned`)
        assert.strictEqual(status.trigger, describe(i))
      }
      // Read after its change: never planned at its old version.
      assert.strictEqual((yield* scheduler.jobStatus(id(changed.late))).trigger, describe(changed.late, "4"))
      // Read before its change: its new version follows (the load's version check finds the change).
      const deadline = Date.now() + 10_000
      while (
        (yield* scheduler.jobStatus(id(changed.early))).trigger !== describe(changed.early, "3") &&
        Date.now() < deadline
      ) yield* Effect.sleep("20 millis")
      assert.strictEqual((yield* scheduler.jobStatus(id(changed.early))).trigger, describe(changed.early, "3"))
      assert.isTrue(Option.isSome((yield* scheduler.jobStatus(id(changed.early))).nextFire))
      // The corrupt specs are reported, each with its id.
      const reported = errors.filter((e) => e.message === "stored schedule cannot run on this node").map((e) => e.job)
      expect(new Set(reported)).toEqual(new Set([id(2100), id(2101)]))
    }))

  test("a change made through another node's service reaches this node's scheduler", (ctx) =>
    Effect.gen(function*() {
      const a = yield* node(ctx)
      const b = yield* node(ctx)
      yield* a.schedules.upsert({ id: "x", handler: "tick", trigger: { every: "1 hour" } })
      const deadline = Date.now() + 5000
      while (!b.scheduler.jobs.includes("x") && Date.now() < deadline) yield* Effect.sleep("10 millis")
      assert.isTrue(b.scheduler.jobs.includes("x"), "the upsert did not reach node b")
      yield* a.schedules.remove("x")
      while (b.scheduler.jobs.includes("x") && Date.now() < deadline) yield* Effect.sleep("10 millis")
      assert.isFalse(b.scheduler.jobs.includes("x"), "the removal did not reach node b")
    }))
}

describe("Schedules contract: memory", () => {
  contract({
    test: (name, body) =>
      it.scopedLive(name, () =>
        Effect.gen(function*() {
          const ctx = yield* Layer.build(JobStore.layerMemory)
          yield* body(ctx)
        }))
  })
})

layer(TestRedis.layer, { excludeTestServices: true, timeout: Duration.seconds(30) })(
  "Schedules contract: redis",
  (it) => {
    contract({
      test: (name, body) =>
        it.scoped(name, () =>
          Effect.gen(function*() {
            const server = yield* TestRedis
            const ctx = yield* Layer.build(
              JobStoreRedis.layer.pipe(Layer.provide(Redis.layer({ url: server.url, keyPrefix: uniquePrefix() })))
            )
            yield* body(ctx)
          }))
    })

    it.scoped("a change whose announcement was lost is applied by the version check", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const prefix = uniquePrefix()
        const ctx = yield* Layer.build(
          JobStoreRedis.layer.pipe(Layer.provideMerge(Redis.layer({ url: server.url, keyPrefix: prefix })))
        )
        const { scheduler } = yield* node(ctx)
        // Written the way the put script writes, but with no PUBLISH: nobody is told.
        const keys = Redis.keys(prefix)
        const client = Context.get(ctx, Redis.RedisClient).client
        const spec = JSON.stringify({ handler: "tick", id: "quiet", trigger: { every: "1 hour" } })
        yield* Effect.promise(async () => {
          const revision = await client.incr(keys.scheduleVersion)
          await client.hset(keys.schedules, "quiet", spec)
          await client.hset(keys.scheduleRevisions, "quiet", revision)
          await client.zadd(keys.scheduleIds, 0, "quiet")
        })
        const start = Date.now()
        while (!scheduler.jobs.includes("quiet") && Date.now() - start < 10_000) yield* Effect.sleep("20 millis")
        assert.isTrue(scheduler.jobs.includes("quiet"), "the unannounced schedule was not applied")
        // Two intervals of 200 ms, with a wide margin for a loaded machine.
        assert.isBelow(Date.now() - start, 5_000)
      }))
  }
)
