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
import { ElectionError } from "../src/Errors.js"
import * as EtcdClient from "../src/Etcd.js"
import { LeaderElection, type Leadership } from "../src/LeaderElection.js"
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
    const layer = EtcdElection.layer({ nodeId, electionKey, leaseTtl }).pipe(
      Layer.provideMerge(EtcdClient.layer({ endpoints: [etcd.endpoint] }))
    )
    const context = yield* Layer.buildWithScope(layer, scope).pipe(Effect.orDie)
    const election = Context.get(context, LeaderElection)
    const states: Node["states"] = []
    yield* Stream.runForEach(
      election.changes,
      (state) => Effect.sync(() => states.push({ at: performance.now(), state }))
    )
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
const leaders = (nodes: ReadonlyArray<Node>) => Effect.filter(nodes, (node) => node.election.isLeader)

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

describe("LeaderElection.layer", () => {
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

  it.scopedLive("a resigning leader hands over to a follower within about a round trip, with a higher term", () =>
    Effect.gen(function*() {
      const etcd = yield* startEtcd()
      const { nodes } = yield* startNodes(etcd, 3)
      const old = yield* assertStableLeader(nodes, "200 millis")
      const oldState = lastState(old)
      const others = nodes.filter((n) => n !== old)
      const t0 = performance.now()
      yield* old.close
      const tookOver = yield* waitFor(
        "a follower to report Leader",
        "5 seconds",
        Effect.sync(() => others.some((n) => n.states.some((s) => s.at >= t0 && s.state._tag === "Leader")))
      )
      const handoverMs = Math.min(
        ...others.flatMap((n) => n.states.filter((s) => s.at >= t0 && s.state._tag === "Leader").map((s) => s.at))
      ) - t0
      yield* Effect.log(`graceful handover: ${handoverMs.toFixed(1)} ms (close -> changes says Leader)`)
      // ~3-15 ms on loopback; the bound leaves room for a loaded machine, far below a TTL (2 s).
      assert.isBelow(tookOver - t0, 500)
      const next = yield* assertStableLeader(others, "200 millis")
      const nextState = lastState(next)
      assert.isTrue(oldState._tag === "Leader" && nextState._tag === "Leader" && nextState.term > oldState.term)
      assert.isFalse(yield* old.election.isLeader)
    }))

  it.scopedLive("a lease revoked behind the leader's back: it steps down, campaigns again, never two leaders", () =>
    Effect.gen(function*() {
      const etcd = yield* startEtcd()
      const admin = yield* adminClient(etcd)
      const { electionKey, nodes } = yield* startNodes(etcd, 3)
      const old = yield* assertStableLeader(nodes, "200 millis")
      const sampler = yield* sampleLeaders(nodes)
      const before = yield* electionKeys(admin, electionKey)
      const oldKey = before.find((k) => k.nodeId === old.nodeId)!
      const t0 = performance.now()
      // The lease is lost as if it had expired on the server: etcd deletes the key, the node is not told directly.
      yield* Effect.promise(() => admin.leaseClient.leaseRevoke({ ID: oldKey.lease }))
      yield* waitFor("the old leader to step down", "2 seconds", Effect.map(old.election.isLeader, (b) => !b))
      const steppedDownMs = performance.now() - t0
      yield* waitFor(
        "the old leader to campaign again with a new lease",
        "5 seconds",
        Effect.map(
          electionKeys(admin, electionKey),
          (keys) => keys.some((k) => k.nodeId === old.nodeId && k.lease !== oldKey.lease)
        )
      )
      yield* assertStableLeader(nodes, "500 millis")
      yield* sampler.stop
      yield* Effect.log(`stepped down ${steppedDownMs.toFixed(1)} ms after the revoke; ${sampler.seen.samples} samples`)
      assert.isAbove(sampler.seen.samples, 100)
      assert.strictEqual(sampler.seen.max, 1)
      // The old leader's key was the lowest; the next in line leads now.
      assert.notStrictEqual((yield* waitForOneLeader(nodes)).nodeId, old.nodeId)
    }))

  it.scopedLive("etcd frozen (SIGSTOP) past the TTL: the leader fences itself in time; one leader after SIGCONT", () =>
    Effect.gen(function*() {
      const etcd = yield* startEtcd()
      const { nodes } = yield* startNodes(etcd, 3, "2 seconds")
      const old = yield* assertStableLeader(nodes, "200 millis")
      const sampler = yield* sampleLeaders(nodes)
      const t0 = performance.now()
      yield* etcd.pause()
      // A frozen etcd sends nothing: only the node's own deadline can make it stop. What is asserted is the last
      // moment the node still said "leader" (the clock read *before* an `isLeader` that answered true), not when the
      // test noticed the change: a poll delayed by a loaded machine notices late, but can never move that moment.
      let lastLeading = t0
      const fencedAt = yield* waitFor(
        "the leader to fence itself",
        "5 seconds",
        Effect.suspend(() => {
          const before = performance.now()
          return Effect.map(old.election.isLeader, (leading) => {
            if (leading) lastLeading = before
            return !leading
          })
        })
      )
      yield* Effect.log(
        `leader fenced itself: last seen leading ${(lastLeading - t0).toFixed(0)} ms, noticed ${
          (fencedAt - t0).toFixed(0)
        } ms after etcd froze (TTL 2 s)`
      )
      assert.isBelow(lastLeading - t0, 2000)
      // ...and its changes stream says so too, from the fence fiber.
      yield* waitFor(
        "a Follower state after the freeze",
        "1 second",
        Effect.sync(() => lastState(old)._tag === "Follower")
      )
      yield* Effect.sleep(Duration.millis(Math.max(0, 3000 - (performance.now() - t0))))
      assert.deepStrictEqual(yield* leaders(nodes), [])
      yield* etcd.resume()
      const t1 = performance.now()
      yield* waitForOneLeader(nodes)
      yield* Effect.log(`one leader ${(performance.now() - t1).toFixed(0)} ms after SIGCONT`)
      yield* assertStableLeader(nodes, "1 second")
      yield* sampler.stop
      assert.strictEqual(sampler.seen.max, 1)
    }))

  it.scopedLive("etcd killed past the TTL and restarted: old leases are revoked on reconnect, exactly one leader", () =>
    Effect.gen(function*() {
      const etcd = yield* startEtcd()
      const admin = yield* adminClient(etcd)
      // TTL 4 s: the outage (4 s) outlasts every deadline (TTL - 0.8 s margin), and the restored leases would keep
      // the old keys for another 4 s after the restart if nobody revoked them.
      const { electionKey, nodes } = yield* startNodes(etcd, 3, "4 seconds")
      yield* assertStableLeader(nodes, "200 millis")
      const before = yield* electionKeys(admin, electionKey)
      assert.strictEqual(before.length, 3)
      const sampler = yield* sampleLeaders(nodes)
      yield* etcd.kill()
      yield* Effect.sleep("4 seconds")
      assert.deepStrictEqual(yield* leaders(nodes), [])
      yield* etcd.restart()
      const t1 = performance.now()
      yield* waitFor(
        "the old leases to be revoked",
        "3500 millis",
        Effect.map(
          electionKeys(admin, electionKey),
          (keys) => !keys.some((k) => before.some((b) => b.lease === k.lease))
        )
      )
      yield* Effect.log(`old keys gone ${(performance.now() - t1).toFixed(0)} ms after the restart`)
      yield* waitForOneLeader(nodes)
      yield* Effect.log(`one leader ${(performance.now() - t1).toFixed(0)} ms after the restart`)
      yield* assertStableLeader(nodes, "1 second")
      yield* sampler.stop
      assert.strictEqual(sampler.seen.max, 1)
    }))

  it.scopedLive("etcd restarted within the deadline: the lease survives, the same leader keeps its term", () =>
    Effect.gen(function*() {
      const etcd = yield* startEtcd()
      const { nodes } = yield* startNodes(etcd, 2, "4 seconds")
      const old = yield* assertStableLeader(nodes, "200 millis")
      const term = lastState(old)
      yield* etcd.restart()
      // Renewals resume before the deadline (3.2 s after the last acknowledged one): nothing changes.
      yield* Effect.sleep("2 seconds")
      const still = yield* assertStableLeader(nodes, "1 second")
      assert.strictEqual(still.nodeId, old.nodeId)
      assert.deepStrictEqual(lastState(still), term)
    }))

  it.scopedLive("a lease TTL below 2 seconds is rejected with a clear error", () =>
    Effect.gen(function*() {
      const layer = EtcdElection.layer({ nodeId: "n", leaseTtl: "1500 millis" }).pipe(
        // Nothing connects: the options are checked first.
        Layer.provide(EtcdClient.layer({ endpoints: ["http://127.0.0.1:9"] }))
      )
      const exit = yield* Effect.exit(Layer.build(layer))
      assert.isTrue(Exit.isFailure(exit))
      const defect = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined
      assert.instanceOf(defect, ElectionError)
      assert.include((defect as ElectionError).message, "leaseTtl must be at least 2 seconds, got 1s 500ms")
    }))

  it("resolveOptions: defaults, whole-second rounding, margin bounds", () => {
    const resolved = EtcdElection.resolveOptions({ nodeId: "n" })
    assert.isTrue(Either.isRight(resolved))
    if (Either.isRight(resolved)) {
      assert.strictEqual(resolved.right.electionKey, "user/scheduler")
      assert.strictEqual(resolved.right.ttlSeconds, 10)
      assert.strictEqual(Duration.toMillis(resolved.right.margin), 2000)
    }
    const short = EtcdElection.resolveOptions({ nodeId: "n", leaseTtl: "2500 millis" })
    assert.isTrue(Either.isRight(short) && short.right.ttlSeconds === 3)
    const two = EtcdElection.resolveOptions({ nodeId: "n", leaseTtl: "2 seconds" })
    assert.isTrue(Either.isRight(two) && Duration.toMillis(two.right.margin) === 500)
    assert.isTrue(Either.isLeft(EtcdElection.resolveOptions({ nodeId: "n", leaseTtl: "1 second" })))
    const wideMargin = EtcdElection.resolveOptions({ nodeId: "n", leaseTtl: "4 seconds", margin: "3 seconds" })
    assert.isTrue(Either.isLeft(wideMargin))
    assert.isTrue(Either.isLeft(EtcdElection.resolveOptions({ nodeId: "n", margin: 0 })))
    assert.isTrue(Either.isLeft(EtcdElection.resolveOptions({ nodeId: "" })))
  })
})
