/**
 * Which node runs the jobs. The scheduler fires only while `isLeader` is true and interrupts its running jobs when a
 * change to `Follower` arrives.
 *
 * Backends: `layerSingleNode` (always leader, the embedded default), `layerManual` (tests drive it), and
 * `LeaderElection/Etcd.ts` (`layer`).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as os from "node:os"

/**
 * What an election says about this node: `Leader` with its term, or `Follower` with the leader's id when known.
 *
 * @since 0.1.0
 * @category models
 */
export type Leadership =
  | {
    readonly _tag: "Leader"
    /** The leader's term (for etcd: the create revision of its election key); usable as a fence. */
    readonly term: number
  }
  | {
    readonly _tag: "Follower"
    /** The current leader's node id, when known. */
    readonly leader: Option.Option<string>
  }

/**
 * This node leads, in `term` (a number that grows with every leadership in the cluster).
 *
 * @since 0.1.0
 * @category constructors
 */
export const leader = (term: number): Leadership => ({ _tag: "Leader", term })

/**
 * This node does not lead; `leaderId` is the leader's node id when known.
 *
 * @since 0.1.0
 * @category constructors
 */
export const follower = (leaderId?: string): Leadership => ({ _tag: "Follower", leader: Option.fromNullable(leaderId) })

/**
 * Which node runs the jobs, as a service: this node's id, whether it leads now, and the stream of its leadership
 * changes.
 *
 * @since 0.1.0
 * @category tags
 */
export class LeaderElection extends Context.Tag("effect-job-scheduler/LeaderElection")<LeaderElection, {
  /** This node's id. */
  readonly nodeId: string
  /** The current state, then every change. */
  readonly changes: Stream.Stream<Leadership>
  /**
   * Whether this node leads *now*: no I/O, but it checks the self-fencing deadline against the clock, so a node that
   * woke from a freeze after its lease may have expired answers `false` before any background fiber has run.
   */
  readonly isLeader: Effect.Effect<boolean>
}>() {}

/**
 * The default node id: `hostname-pid`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultNodeId = (): string => `${os.hostname()}-${process.pid}`

/**
 * Always the leader, with term 1: one node, or tests.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSingleNode = (nodeId: string = defaultNodeId()): Layer.Layer<LeaderElection> =>
  Layer.succeed(LeaderElection, {
    nodeId,
    changes: Stream.make(leader(1)),
    isLeader: Effect.succeed(true)
  })

/**
 * A leadership that tests set by hand.
 *
 * @since 0.1.0
 * @category tags
 */
export class ManualLeadership extends Context.Tag("effect-job-scheduler/ManualLeadership")<ManualLeadership, {
  readonly set: (state: Leadership) => Effect.Effect<void>
}>() {}

/**
 * A leadership set by hand through `ManualLeadership`; starts as `initial` (leader with term 1 by default).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerManual = (
  nodeId: string = "test-node",
  initial: Leadership = leader(1)
): Layer.Layer<LeaderElection | ManualLeadership> =>
  Layer.effectContext(
    Effect.map(SubscriptionRef.make(initial), (ref) =>
      Context.make(LeaderElection, {
        nodeId,
        changes: ref.changes,
        isLeader: Effect.map(SubscriptionRef.get(ref), (state) => state._tag === "Leader")
      }).pipe(Context.add(ManualLeadership, { set: (state) => SubscriptionRef.set(ref, state) })))
  )
