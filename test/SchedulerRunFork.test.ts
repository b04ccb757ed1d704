import { describe, expect, it } from "@effect/vitest"
import {
  Clock,
  Context,
  Deferred,
  Effect,
  Exit,
  Fiber,
  FiberRef,
  HashMap,
  Option,
  Supervisor,
  TestClock,
  Tracer
} from "effect"
import type { JobError } from "../src/Errors.js"
import { RunForker } from "../src/internal/scheduler/runFork.js"
import { RunContext } from "../src/Run.js"

// Where runs' fibers come from: what a run's fiber sees of the scheduler's scope (its services, fiber refs, clock,
// tracer), the span it runs under, and that its end is reported once however it ends.

class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}
class Extra extends Context.Tag("test/Extra")<Extra, number>() {}

/** Records the fibers it is told of: started (with the context it was given) and ended (with the exit). */
class Recorder extends Supervisor.AbstractSupervisor<void> {
  readonly events: Array<string> = []
  readonly value = Effect.void
  override onStart<A, E, R>(
    context: Context.Context<R>,
    _effect: Effect.Effect<A, E, R>,
    parent: Option.Option<Fiber.RuntimeFiber<unknown, unknown>>,
    fiber: Fiber.RuntimeFiber<A, E>
  ): void {
    const run = Context.unsafeGet(context as Context.Context<RunContext>, RunContext)
    this.events.push(`start ${fiber.id().id} ${run.runId} root=${Option.isNone(parent)}`)
  }
  override onEnd<A, E>(exit: Exit.Exit<A, E>, fiber: Fiber.RuntimeFiber<A, E>): void {
    this.events.push(`end ${fiber.id().id} ${exit._tag}`)
  }
}

const runContext: RunContext["Type"] = {
  job: "forked",
  fireTime: new Date(Date.parse("2026-05-01T00:00:10Z")),
  runId: "run-1",
  attempt: 1,
  nodeId: "node-a",
  fence: 42,
  kind: "scheduled"
}

/** Fork `handler` and wait for its end; returns what `onEnd` saw. */
const forkAndEnd = (forker: RunForker, handler: Effect.Effect<void, JobError, RunContext>) =>
  Effect.gen(function*() {
    const ends: Array<{ readonly exit: Exit.Exit<void, unknown>; readonly now: number; readonly target: string }> = []
    const done = yield* Deferred.make<void>()
    const fiber = forker.fork(runContext, handler, (exit, now, target: string) => {
      ends.push({ exit, now, target })
      Deferred.unsafeDone(done, Exit.void)
    }, "target-1")
    return { ends, fiber, done }
  })

describe("RunForker", () => {
  it.effect("a run's fiber sees its RunContext, the scope's services, fiber refs and clock", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-05-01T00:00:10Z"))
      const seen: Array<unknown> = []
      const forker = yield* RunForker.make(Context.make(Greeting, "hello")).pipe(Effect.annotateLogs("scope", "sched"))
      const handler = Effect.gen(function*() {
        const run = yield* RunContext
        const annotations = yield* FiberRef.get(FiberRef.currentLogAnnotations)
        seen.push(run.fence, yield* Greeting, yield* Clock.currentTimeMillis, HashMap.get(annotations, "scope"))
      })
      // As in the scheduler, the handler's other requirements (Greeting) come from the forker's context.
      const { done, ends } = yield* forkAndEnd(forker, handler as Effect.Effect<void, never, RunContext>)
      yield* Deferred.await(done)
      expect(seen).toEqual([42, "hello", Date.parse("2026-05-01T00:00:10Z"), Option.some("sched")])
      expect(ends.map((e) => [Exit.isSuccess(e.exit), e.now, e.target])).toEqual([
        [true, Date.parse("2026-05-01T00:00:10Z"), "target-1"]
      ])
    }))

  it.effect("under effect's own tracer the run has a light job.run span as its current span, ended with the run", () =>
    Effect.gen(function*() {
      const forker = yield* RunForker.make(Context.empty())
      const spans: Array<Tracer.Span> = []
      const handler = Effect.flatMap(Effect.currentSpan, (span) => Effect.sync(() => spans.push(span)))
      const { done } = yield* forkAndEnd(forker, Effect.orDie(handler))
      yield* Deferred.await(done)
      const span = spans[0]!
      expect(span.constructor.name).toBe("RunSpan")
      expect(span.name).toBe("job.run")
      expect(Object.fromEntries(span.attributes)).toEqual({
        job: "forked",
        fire_time: Date.parse("2026-05-01T00:00:10Z"),
        run_id: "run-1",
        node: "node-a",
        fence: 42
      })
      expect(span.status._tag).toBe("Ended")
    }))

  it.effect("with another tracer installed, that tracer makes the span, and sees it ended with the run's exit", () =>
    Effect.gen(function*() {
      const made: Array<string> = []
      const ended: Array<string> = []
      const tracer = Tracer.make({
        span: (name, parent, context, links, startTime, kind) => {
          made.push(name)
          const attributes = new Map<string, unknown>()
          return {
            _tag: "Span",
            name,
            spanId: "s",
            traceId: "t",
            parent,
            context,
            status: { _tag: "Started", startTime },
            attributes,
            links,
            sampled: true,
            kind,
            end: (_end, exit) => void ended.push(exit._tag),
            attribute: (key, value) => void attributes.set(key, value),
            event: () => undefined,
            addLinks: () => undefined
          }
        },
        context: (f) => f()
      })
      const forker = yield* RunForker.make(Context.empty()).pipe(Effect.withTracer(tracer))
      const { done } = yield* forkAndEnd(forker, Effect.die("boom"))
      yield* Deferred.await(done)
      expect(made).toEqual(["job.run"])
      expect(ended).toEqual(["Failure"])
    }))

  it.effect("with tracing disabled in the scope, a run has no span of its own", () =>
    Effect.gen(function*() {
      const forker = yield* RunForker.make(Context.empty()).pipe(Effect.withTracerEnabled(false))
      const spans: Array<Option.Option<Tracer.Span>> = []
      const handler = Effect.flatMap(Effect.option(Effect.currentSpan), (span) => Effect.sync(() => spans.push(span)))
      const { done } = yield* forkAndEnd(forker, handler)
      yield* Deferred.await(done)
      expect(spans.map(Option.isNone)).toEqual([true])
    }))

  it.effect("a run interrupted while its handler waits ends once, through onEnd, with an interruption", () =>
    Effect.gen(function*() {
      const forker = yield* RunForker.make(Context.empty())
      let after = false
      const handler = Effect.zipRight(Effect.never, Effect.sync(() => (after = true)))
      const { done, ends, fiber } = yield* forkAndEnd(forker, handler)
      forker.interrupt(fiber)
      yield* Deferred.await(done)
      yield* Fiber.await(fiber)
      expect(after).toBe(false)
      expect(ends.length).toBe(1)
      expect(Exit.isInterrupted(ends[0]!.exit)).toBe(true)
    }))

  it.effect("a handler that never yields has ended by the time fork returns", () =>
    Effect.gen(function*() {
      const forker = yield* RunForker.make(Context.empty())
      const { ends, fiber } = yield* forkAndEnd(forker, Effect.void)
      expect(ends.length).toBe(1)
      expect(Exit.isSuccess(yield* Fiber.await(fiber))).toBe(true)
    }))

  it.effect("each run starts from the scope's fiber refs: a ref with a fork is forked per run, a run's sets stay its own", () =>
    Effect.gen(function*() {
      // `forks` counts the runs forked from a scope value of 10; `plain` has no fork and is set by each run.
      const forks = FiberRef.unsafeMake(0, { fork: (n) => n + 1 })
      const plain = FiberRef.unsafeMake("initial")
      const forker = yield* RunForker.make(Context.empty()).pipe(
        Effect.locally(forks, 10),
        Effect.locally(plain, "scope")
      )
      const seen: Array<unknown> = []
      for (const runId of ["run-a", "run-b"]) {
        const handler = Effect.gen(function*() {
          const annotations = yield* FiberRef.get(FiberRef.currentLogAnnotations)
          seen.push(
            yield* FiberRef.get(forks),
            yield* FiberRef.get(plain),
            HashMap.get(annotations, "run_id"),
            (yield* RunContext).runId
          )
          yield* FiberRef.set(plain, runId)
        })
        const done = yield* Deferred.make<void>()
        forker.fork({ ...runContext, runId }, handler, () => Deferred.unsafeDone(done, Exit.void), undefined)
        yield* Deferred.await(done)
      }
      // Each run saw the scope's values (forked once from 10), its own run id, and not the other run's set.
      expect(seen).toEqual([11, "scope", Option.some("run-a"), "run-a", 11, "scope", Option.some("run-b"), "run-b"])
      // The scope's own values are untouched.
      expect([yield* FiberRef.get(forks), yield* FiberRef.get(plain)]).toEqual([0, "initial"])
    }))

  it.effect("a run's services are the scope's with its RunContext over them: read, iterated, counted and added to", () =>
    Effect.gen(function*() {
      const forker = yield* RunForker.make(Context.make(Greeting, "hello")).pipe(Effect.withTracerEnabled(false))
      const seen: Array<unknown> = []
      const handler = Effect.gen(function*() {
        const context = yield* Effect.context<RunContext | Greeting>()
        seen.push(
          Context.get(context, Greeting),
          Context.get(context, RunContext).runId,
          context.unsafeMap.size,
          [...context.unsafeMap.keys()].sort(),
          Option.isNone(Context.getOption(context as Context.Context<unknown>, Extra))
        )
        // Adding a service copies the run's map: the copy has all three, the run's own is unchanged.
        const added = yield* Effect.provideService(Effect.context<RunContext | Greeting | Extra>(), Extra, 7)
        seen.push(Context.get(added, Extra), Context.get(added, Greeting), Context.get(added, RunContext).fence)
        seen.push(context.unsafeMap.size)
      })
      const { done } = yield* forkAndEnd(forker, handler as Effect.Effect<void, never, RunContext>)
      yield* Deferred.await(done)
      expect(seen).toEqual(["hello", "run-1", 2, [Greeting.key, RunContext.key].sort(), true, 7, "hello", 42, 2])
    }))

  it.effect("a supervisor in the scope is told of each run's fiber: its start, as a root fiber, and its end", () =>
    Effect.gen(function*() {
      const recorder = new Recorder()
      const forker = yield* RunForker.make(Context.empty()).pipe(Effect.supervised(recorder))
      const { done, fiber } = yield* forkAndEnd(forker, Effect.orDie(Effect.fail("nope")))
      yield* Deferred.await(done)
      yield* Fiber.await(fiber)
      const id = fiber.id().id
      expect(recorder.events.filter((e) => e.startsWith("start") ? e.includes(" run-1 ") : e.startsWith(`end ${id} `)))
        .toEqual([`start ${id} run-1 root=true`, `end ${id} Failure`])
    }))
})
