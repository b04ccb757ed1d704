/**
 * The span of one run when effect's built-in tracer is in use. That tracer keeps its spans nowhere: a span is only
 * what the handler can see of it (`Effect.currentSpan`, child spans' parent, log correlation). Making one costs more
 * than the rest of starting a run (48 `Math.random` calls for its ids, a map for its attributes), so this span makes
 * its ids and attribute map when first read. With any other tracer (OpenTelemetry, ...) the scheduler asks that
 * tracer for the span instead.
 *
 * @internal
 */
import * as Context from "effect/Context"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Tracer from "effect/Tracer"
import { randomBytes } from "node:crypto"

/** The attributes every run span carries, kept as fields until the attribute map is read. */
export interface RunSpanFields {
  readonly job: string
  readonly fireTime: number
  readonly runId: string
  readonly node: string
  readonly fence: number
}

const noParent: Option.Option<Tracer.AnySpan> = Option.none()
const noContext: Context.Context<never> = Context.empty()

export class RunSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly parent = noParent
  readonly context = noContext
  readonly sampled = true
  readonly kind = "internal"
  status: Tracer.SpanStatus
  private traceIdValue: string | undefined = undefined
  private spanIdValue: string | undefined = undefined
  private attributeMap: Map<string, unknown> | undefined = undefined
  private linkList: Array<Tracer.SpanLink> | undefined = undefined
  private eventList: Array<[name: string, startTime: bigint, attributes: Record<string, unknown>]> | undefined =
    undefined

  constructor(readonly name: string, startTime: bigint, private readonly fields: RunSpanFields) {
    this.status = { _tag: "Started", startTime }
  }

  get traceId(): string {
    return this.traceIdValue ??= randomBytes(16).toString("hex")
  }

  get spanId(): string {
    return this.spanIdValue ??= randomBytes(8).toString("hex")
  }

  get attributes(): ReadonlyMap<string, unknown> {
    return this.map()
  }

  /** What the handler recorded as events on this span, oldest first. */
  get events(): ReadonlyArray<readonly [name: string, startTime: bigint, attributes: Record<string, unknown>]> {
    return this.eventList ?? []
  }

  get links(): ReadonlyArray<Tracer.SpanLink> {
    return this.linkList ??= []
  }

  private map(): Map<string, unknown> {
    if (this.attributeMap === undefined) {
      const { fence, fireTime, job, node, runId } = this.fields
      this.attributeMap = new Map<string, unknown>([
        ["job", job],
        ["fire_time", fireTime],
        ["run_id", runId],
        ["node", node],
        ["fence", fence]
      ])
    }
    return this.attributeMap
  }

  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    this.status = { _tag: "Ended", startTime: this.status.startTime, endTime, exit }
  }

  attribute(key: string, value: unknown): void {
    this.map().set(key, value)
  }

  event(name: string, startTime: bigint, attributes?: Record<string, unknown>): void {
    ;(this.eventList ??= []).push([name, startTime, attributes ?? {}])
  }

  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    const list = (this.linkList ??= [])
    for (const link of links) list.push(link)
  }
}
