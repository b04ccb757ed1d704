/**
 * The etcd election against a real etcd (started by test/harness/etcd.ts), several nodes in one process, each with
 * its own client. Real time throughout (the layer reads the monotonic clock), with bounds generous enough for a
 * loaded 2-core machine; the measured figures are logged.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Etcd3 } from "etcd3"
import { randomUUID } from "node:crypto"
import { performance } from "node:perf_hooks"
import * as EtcdClient from "../src/Etcd.js"
import { ElectionError } from "../src/Errors.js"
import { type Leadership, LeaderElection } from "../src/LeaderElection.js"
import * as EtcdElection from "../src/LeaderElection/Etcd.js"
import { type EtcdServer, startEtcd } from "./harness/etcd.js"

interface Node {
  readonly nodeId: string
  readonly election: LeaderElection["Type"]
  readonly client: EtcdClient.EtcdClient["Type"]
  /** Every state from `changes`, with the monotonic time it arrived. */
  readonly states: Array<{ readonly at: number; readonly state: Leadership }>
  /** Closes the node's scope: the election resigns, the client closes. */
  readonly close: Effect.Effect<void>
}

const startNode = (
  etcd: EtcdServer,
  nodeId: string,
  electionKey: string,
  leaseTtl: Duration.DurationInput = "2 seconds"
): Effect.Effect<Node, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const layer = EtcdElection.layerEtcd({ nodeId, electionKey, leaseTtl }).pipe(
      Layer.provideMerge(EtcdClient.layer({ endpoints: [etcd.endpoint] }))
    )
    const context = yield* Layer.buildWithScope(layer, scope).pipe(Effect.orDie)
    const election = Context.get(context, LeaderElection)
    const states: Node["states"] = []
    yield* Stream.runForEach(election.changes, (state) => Effect.sync(() => states.push({ at: performance.now(), state })))
      .pipe(Effect.forkIn(scope))
    return {
      nodeId,
      election,
      client: Context.get(context, EtcdClient.EtcdClient),
      states,
      close: Scope.close(scope, Exit.void)
    }
  })

const startNodes = (etcd: EtcdServer, count: number, leaseTtl: Duration.DurationInput = "2 seconds") =>
  Effect.gen(function*() {
    const electionKey = `test/${randomUUID()}`
    const nodes = yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => `node-${i + 1}`),
      (nodeId) => startNode(etcd, nodeId, electionKey, leaseTtl)
    )
    return { electionKey, nodes }
  })

/** The nodes whose `isLeader` is true right now. */
const leaders = (nodes: ReadonlyArray<Node>) =>
  Effect.filter(nodes, (node) => node.election.isLeader)

/** Polls `condition` every 5 ms until it holds; fails the test after `within`. */
const waitFor = (what: string, within: Duration.DurationInput, condition: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    const deadline = performance.now() + Duration.toMillis(within)
    while (performance.now() < deadline) {
      if (yield* condition) return performance.now()
      yield* Effect.sleep("5 millis")
    }
    return yield* Effect.dieMessage(`timed out after ${Duration.format(Duration.decode(within))} waiting for ${what}`)
  })

const waitForOneLeader = (nodes: ReadonlyArray<Node>, within: Duration.DurationInput = "10 seconds") =>
  waitFor("exactly one leader", within, Effect.map(leaders(nodes), (l) => l.length === 1)).pipe(
    Effect.zipRight(Effect.map(leaders(nodes), (l) => l[0]!))
  )

/**
 * Samples `isLeader` of every node about every millisecond in the background; `max` is the most nodes seen leading
 * at one sampled moment.
 */
const sampleLeaders = (nodes: ReadonlyArray<Node>) =>
  Effect.gen(function*() {
    const seen = { max: 0, samples: 0 }
    const fiber = yield* Effect.forkScoped(Effect.forever(
      Effect.map(leaders(nodes), (l) => {
        seen.samples++
        seen.max = Math.max(seen.max, l.length)
      }).pipe(Effect.zipRight(Effect.sleep("1 millis")))
    ))
    return { seen, stop: Fiber.interrupt(fiber) }
  })

/** Exactly one (and the same) node leads at every sample over `period`. */
const assertStableLeader = (nodes: ReadonlyArray<Node>, period: Duration.DurationInput = "1 second") =>
  Effect.gen(function*() {
    const first = yield* waitForOneLeader(nodes)
    const until = performance.now() + Duration.toMillis(period)
    while (performance.now() < until) {
      const now = yield* leaders(nodes)
      assert.deepStrictEqual(now.map((n) => n.nodeId), [first.nodeId])
      yield* Effect.sleep("10 millis")
    }
    return first
  })

const lastState = (node: Node): Leadership => node.states[node.states.length - 1]!.state

/** An admin client for the test's own look-ups and fault injection, closed with the scope. */
const adminClient = (etcd: EtcdServer) =>
  Effect.acquireRelease(
    Effect.sync(() => new Etcd3({ hosts: etcd.endpoint })),
    (client) => Effect.sync(() => client.close())
  )

const electionKeys = (client: Etcd3, electionKey: string) =>
  Effect.promise(() => client.getAll().prefix(`${electionKey}/`).sort("Create", "Ascend").exec()).pipe(
    Effect.map((range) =>
      range.kvs.map((kv) => ({ key: kv.key.toString(), nodeId: kv.value.toString(), lease: kv.lease }))
    )
  )

describe("LeaderElection.layerEtcd", () => {
  it.scopedLive("elects exactly one of three nodes, and the followers name it", () =>
    Effect.gen(function*() {
      const etcd = yield* startEtcd()
      const { nodes } = yield* startNodes(etcd, 3)
      const leader = yield* assertStableLeader(nodes)
      const state = lastState(leader)
      assert.strictEqual(state._tag, "Leader")
      for (const node of nodes) {
        if (node === leader) continue
        yield* waitFor(
          `${node.nodeId} to name the leader`,
          "2 seconds",
          Effect.sync(() => {
            const s = lastState(node)
            return s._tag === "Follower" && Option.getOrUndefined(s.leader) === leader.nodeId
          })
        )
      }
    }))
})
