/**
 * Where a run's fiber comes from: the one place that touches effect's runtime directly. Runs are root fibers forked
 * from one runtime template taken from the scheduler's scope: its context (the handlers' layer) plus each run's
 * `RunContext` and span, and the scope's fiber refs (logger, log level, clock, tracer) with the run's log
 * annotations. A run's fiber runs the handler itself, with nothing around it: its end is observed on the fiber
 * (`addObserver`), so an interruption that arrives before the handler's first step still lets the run end (record
 * its outcome, release its lock) through `onEnd`.
 *
 * Unsafe on purpose, to keep a run's start cheap:
 * - the run's services are the layer's map (`Context.unsafeMap`) read through, with the run's own two entries over it;
 * - a run's fiber refs are a copy of a map forked once from the scope's;
 * - the fiber is made by hand, as `Runtime.runFork` makes one (the same class, refs, flags and supervisor calls), but
 *   without the map of refs that call makes only for it to be replaced, and without entering effect's global set of
 *   root fibers (`Fiber.roots` does not list runs: the scheduler keeps its own, and interrupts them itself);
 * - a fiber known only after it was forked is interrupted with `unsafeInterruptAsFork`;
 * - effect's built-in tracer is recognised by identity, to stand in a lighter span for its spans.
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import type * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Supervisor from "effect/Supervisor"
import * as Tracer from "effect/Tracer"
import { RunContext } from "../../Run.js"
import { IsoTime } from "../isoTime.js"
import { runAnnotations } from "../runAnnotations.js"
import { RunSpan } from "../runSpan.js"

export class RunForker {
  /** The forker of the current fiber: its runtime, `context` (the handlers' requirements), clock and tracer. */
  static make = <R>(context: Context.Context<R>): Effect.Effect<RunForker> =>
    Effect.gen(function*() {
      const runtime = yield* Effect.runtime<never>()
      const tracer = yield* Effect.tracer
      return new RunForker(
        fiberClass(),
        runtime,
        context as Context.Context<never>,
        yield* Effect.clock,
        tracer,
        yield* FiberRef.get(FiberRef.currentTracerEnabled),
        // Effect's built-in tracer keeps spans nowhere: a lighter span of the same shape stands in for its spans.
        tracer === Effect.runSync(Effect.tracer)
      )
    })

  private readonly runFlags: RuntimeFlags.RuntimeFlags
  /** The scope's log annotations, to which each run adds its own. */
  private readonly baseAnnotations: HashMap.HashMap<string, unknown>
  /**
   * The scope's fiber refs as every run's root fiber starts with them, forked once here: each ref whose fork keeps
   * its value (nearly all), with the scope's own stack of values. Held as two arrays, copied into each run's map one
   * `set` at a time: `new Map(map)` walks the iterator, an entry array and a result object per ref.
   */
  private readonly templateRefs: ReadonlyArray<FiberRef.FiberRef<unknown>>
  private readonly templateStacks: ReadonlyArray<FiberRefStack>
  /** The refs whose fork changes their value, forked again for each run's fiber (as effect forks every ref). */
  private readonly reforkRefs: FiberRefs.FiberRefs | undefined
  /** The runs of a fire batch share their fire time: its text is made once. */
  private readonly fireTimes = new IsoTime()

  private constructor(
    private readonly FiberRuntime: FiberClass,
    baseRuntime: Runtime.Runtime<never>,
    private readonly baseContext: Context.Context<never>,
    readonly clock: Clock.Clock,
    private readonly tracer: Tracer.Tracer,
    private readonly tracing: boolean,
    private readonly nativeTracer: boolean
  ) {
    // Interruptible from its first step: the run's end is observed on the fiber (`addObserver`), so an interruption
    // that arrives before the handler's first step still ends the run through `onEnd`.
    this.runFlags = RuntimeFlags.enable(baseRuntime.runtimeFlags, RuntimeFlags.Interruption)
    this.baseAnnotations = FiberRefs.getOrDefault(baseRuntime.fiberRefs, FiberRef.currentLogAnnotations)
    // What `Runtime.runFork` does for every fiber (copy the ref map, apply every ref's fork patch, compare the
    // values), done once: a run then copies this map and sets its own context and annotations in the copy.
    const base = baseRuntime.fiberRefs.locals
    const forked = FiberRefs.forkAs(baseRuntime.fiberRefs, FiberId.unsafeMake()).locals
    const template = new Map<FiberRef.FiberRef<unknown>, FiberRefStack>()
    const refork = new Map<FiberRef.FiberRef<unknown>, FiberRefStack>()
    for (const [ref, stack] of base) (forked.get(ref) === stack ? template : refork).set(ref, stack)
    this.templateRefs = [...template.keys()]
    this.templateStacks = [...template.values()]
    this.reforkRefs = refork.size === 0 ? undefined : FiberRefs.unsafeMake(refork)
  }

  /** A run's root fiber refs: the template's, the refs whose fork changes them forked for `fiberId`, and its own. */
  private refsOf(
    fiberId: FiberId.Runtime,
    context: Context.Context<never>,
    annotations: HashMap.HashMap<string, unknown>
  ): FiberRefs.FiberRefs {
    const locals = new Map<FiberRef.FiberRef<unknown>, FiberRefStack>()
    const refs = this.templateRefs
    const stacks = this.templateStacks
    for (let i = 0; i < refs.length; i++) locals.set(refs[i]!, stacks[i]!)
    if (this.reforkRefs !== undefined) {
      for (const [ref, stack] of FiberRefs.forkAs(this.reforkRefs, fiberId).locals) locals.set(ref, stack)
    }
    pushValue(locals, FiberRef.currentContext, fiberId, context)
    pushValue(locals, FiberRef.currentLogAnnotations, fiberId, annotations)
    return FiberRefs.unsafeMake(locals)
  }

  /**
   * Fork `handler` as a root fiber with `runContext` and a `job.run` span (when tracing) in its context. `onEnd` is
   * called once, when that fiber is done, with the handler's exit and its end time (the span already ended). The
   * fiber may have ended by the time this returns (a handler that never yields ends inside the fork); `onEnd` has
   * then been called already.
   */
  fork<A>(
    runContext: RunContext["Type"],
    handler: Effect.Effect<void, unknown, RunContext>,
    onEnd: (exit: Exit.Exit<void, unknown>, now: number, target: A) => void,
    target: A
  ): Fiber.RuntimeFiber<void, never> {
    const clock = this.clock
    let span: Tracer.Span | undefined = undefined
    if (this.tracing) {
      const startTime = clock.unsafeCurrentTimeNanos()
      const fields = {
        job: runContext.job,
        fireTime: runContext.fireTime.getTime(),
        runId: runContext.runId,
        node: runContext.nodeId,
        fence: runContext.fence
      }
      if (this.nativeTracer) {
        span = new RunSpan("job.run", startTime, fields)
      } else {
        span = this.tracer.span("job.run", Option.none(), Context.empty(), [], startTime, "internal")
        span.attribute("job", fields.job)
        span.attribute("fire_time", fields.fireTime)
        span.attribute("run_id", fields.runId)
        span.attribute("node", fields.node)
        span.attribute("fence", fields.fence)
      }
    }
    // The layer's context with the run's own services over it (not a copy of the layer's map per run).
    const services = new RunServices(
      this.baseContext.unsafeMap,
      RunContext.key,
      runContext,
      span === undefined ? undefined : Tracer.ParentSpan.key,
      span
    )
    const context = Context.unsafeMake<never>(services)
    // Every log line of the handler carries its run: `job`, `run_id`, `fire_time`. Set in the run's root fiber refs
    // as the fiber is made: not per line, no extra step; the map itself is built when first read.
    const annotations = runAnnotations(
      this.baseAnnotations,
      runContext.job,
      runContext.runId,
      this.fireTimes.of(runContext.fireTime.getTime())
    )
    // What `Runtime.runFork` does, with the refs made for this fiber from the template: a new id, the fiber, the
    // supervisor told of its start and end (when the scope has one), then its first steps. The context above
    // provides the handler's `RunContext`, so the effect run needs nothing more.
    const effect = handler as Effect.Effect<void, unknown>
    const fiberId = FiberId.unsafeMake()
    const fiber = new this.FiberRuntime(fiberId, this.refsOf(fiberId, context, annotations), this.runFlags)
    const supervisor = fiber.currentSupervisor
    if (supervisor !== Supervisor.none) {
      supervisor.onStart(context, effect, Option.none(), fiber)
      fiber.addObserver((exit) => supervisor.onEnd(exit, fiber))
    }
    // The handler's failure is the run's outcome, never the fiber's concern: the exit is handed on, not reported.
    fiber.addObserver((exit) => {
      span?.end(clock.unsafeCurrentTimeNanos(), exit)
      onEnd(exit, clock.unsafeCurrentTimeMillis(), target)
    })
    fiber.start(effect)
    return fiber as unknown as Fiber.RuntimeFiber<void, never>
  }

  /** Interrupt a forked run's fiber from synchronous code, without waiting (its `onEnd` still runs). */
  interrupt(fiber: Fiber.RuntimeFiber<void, never>): void {
    fiber.unsafeInterruptAsFork(FiberId.none)
  }
}

/** One fiber ref's stack of values, newest first, each with the fiber that set it. */
type FiberRefStack = readonly [readonly [FiberId.Single, unknown], ...Array<readonly [FiberId.Single, unknown]>]

/**
 * Set `ref` to `value` as fiber `fiberId` would: the head replaced when that fiber set it, else a new head. The run's
 * fiber id is new, so only a head this fork just pushed (a ref forked for it) carries it, as the same object: compared
 * by reference (effect's `Equal` would hash both ids first).
 */
const pushValue = <A>(
  locals: Map<FiberRef.FiberRef<unknown>, FiberRefStack>,
  ref: FiberRef.FiberRef<A>,
  fiberId: FiberId.Single,
  value: A
): void => {
  const key = ref as FiberRef.FiberRef<unknown>
  const stack = locals.get(key)
  const entry = [fiberId, value] as const
  locals.set(
    key,
    stack === undefined ? [entry] : stack[0][0] === fiberId ? [entry, ...stack.slice(1)] : [entry, ...stack]
  )
}

/** effect's fiber class, taken once from a fiber of its own: the runs' fibers are made with it directly. */
let fiberClassValue: FiberClass | undefined = undefined
const fiberClass = (): FiberClass =>
  fiberClassValue ??= Runtime.runFork(Runtime.defaultRuntime)(Effect.void).constructor as FiberClass

/** effect's fiber class, as the runs' fibers are made with it (the constructor and the members used here). */
type FiberClass = new(
  fiberId: FiberId.Runtime,
  fiberRefs: FiberRefs.FiberRefs,
  runtimeFlags: RuntimeFlags.RuntimeFlags
) => Fiber.RuntimeFiber<void, unknown> & {
  readonly currentSupervisor: Supervisor.Supervisor<unknown>
  start(effect: Effect.Effect<void, unknown>): void
}

/**
 * The services of a run: the layer's map (shared by every run, never changed) with the run's own entries over it (its
 * `RunContext`, and its span when tracing), held in fields: no map of its own. A `Context`'s map is never changed once
 * made (effect copies it to add to it), so reads and iteration are all it answers.
 */
class RunServices implements Map<string, unknown> {
  constructor(
    private readonly base: ReadonlyMap<string, unknown>,
    private readonly key1: string,
    private readonly value1: unknown,
    /** The run's span, when tracing. */
    private readonly key2: string | undefined,
    private readonly value2: unknown
  ) {}

  get(key: string): unknown {
    return key === this.key1 ? this.value1 : key === this.key2 ? this.value2 : this.base.get(key)
  }
  has(key: string): boolean {
    return key === this.key1 || key === this.key2 || this.base.has(key)
  }
  get size(): number {
    let size = this.base.size
    if (!this.base.has(this.key1)) size++
    if (this.key2 !== undefined && !this.base.has(this.key2)) size++
    return size
  }
  forEach(f: (value: unknown, key: string, map: Map<string, unknown>) => void, self?: unknown): void {
    for (const [key, value] of this.entries()) f.call(self, value, key, this)
  }
  *entries(): MapIterator<[string, unknown]> {
    for (const [key, value] of this.base) {
      yield [key, key === this.key1 ? this.value1 : key === this.key2 ? this.value2 : value]
    }
    if (!this.base.has(this.key1)) yield [this.key1, this.value1]
    if (this.key2 !== undefined && !this.base.has(this.key2)) yield [this.key2, this.value2]
  }
  *keys(): MapIterator<string> {
    for (const [key] of this.entries()) yield key
  }
  *values(): MapIterator<unknown> {
    for (const [, value] of this.entries()) yield value
  }
  [Symbol.iterator](): MapIterator<[string, unknown]> {
    return this.entries()
  }
  get [Symbol.toStringTag](): string {
    return "Map"
  }
  set(): this {
    throw new TypeError("a run's services are not changed once made")
  }
  delete(): boolean {
    throw new TypeError("a run's services are not changed once made")
  }
  clear(): void {
    throw new TypeError("a run's services are not changed once made")
  }
}
