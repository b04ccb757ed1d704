/**
 * The etcd election on a three-member etcd cluster (test/harness/etcd.ts `startEtcdCluster`), three election nodes in
 * one process, each with its own client given all three endpoints. Faults: each member killed in turn (the raft
 * leader among them) and restarted, and a minority partition (two members stopped with SIGSTOP). Throughout, a sampler
 * checks that at most one node leads at any moment, and every new leader's term (its fence) is higher than every
 * earlier one. Real time; bounds generous for a loaded 2-core machine; measured figures are logged
 * (`[etcd-cluster] ...`).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { randomUUID } from "node:crypto"
import { performance } from "node:perf_hooks"
import * as EtcdClient from "../src/Etcd.js"
import { LeaderElection, type Leadership } from "../src/LeaderElection.js"
import * as EtcdElection from "../src/LeaderElection/Etcd.js"
import { type EtcdCluster, startEtcdCluster } from "./harness/etcd.js"

/** The lease TTL of every test: the shortest etcd honours (2 s); the leader's deadline is TTL - 500 ms. */
const TTL_MS = 2_000

interface Node {
  readonly nodeId: string
  readonly election: LeaderElection["Type"]
  /** Every state from `changes`, with the monotonic time it arrived. */
  readonly states: Array<{ readonly at: number; readonly state: Leadership }>
}

const startNodes = (cluster: EtcdCluster, count: number) =>
  Effect.gen(function*() {
    const electionKey = `test/${randomUUID()}`
    return yield* Effect.forEach(Array.from({ length: count }, (_, i) => `node-${i + 1}`), (nodeId) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* Effect.addFinalizer(() =>
          Scope.close(scope, Exit.void)
        )
        const layer = EtcdElection.layer({ nodeId, electionKey, leaseTtl: Duration.millis(TTL_MS) }).pipe(
          Layer.provide(EtcdClient.layer({ endpoints: cluster.endpoints }))
        )
        const context = yield* Layer.buildWithScope(layer, scope).pipe(Effect.orDie)
        const election = Context.get(context, LeaderElection)
        const states: Node["states"] = []
        const record = (state: Leadership) => Effect.sync(() => states.push({ at: performance.now(), state }))
        yield* Stream.runForEach(election.changes, record).pipe(Effect.forkIn(scope))
        return { nodeId, election, states } satisfies Node
      }))
  })

const leaders = (nodes: ReadonlyArray<Node>) => Effect.filter(nodes, (node) => node.election.isLeader)

const waitFor = (what: string, within: Duration.DurationInput, condition: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    const deadline = performance.now() + Duration.toMillis(within)
    while (performance.now() < deadline) {
      if (yield* condition) return performance.now()
      yield* Effect.sleep("5 millis")
    }
    return yield* Effect.dieMessage(`timed out after ${Duration.format(Duration.decode(within))} waiting for ${what}`)
  })

/** Exactly one (and the same) node leads at every check over `period`; returns it. */
const stableLeader = (
  nodes: ReadonlyArray<Node>,
  within: Duration.DurationInput,
  period: Duration.DurationInput = "500 millis"
) =>
  Effect.gen(function*() {
    yield* waitFor("exactly one leader", within, Effect.map(leaders(nodes), (l) => l.length === 1))
    const [first] = yield* leaders(nodes)
    const until = performance.now() + Duration.toMillis(period)
    while (performance.now() < until) {
      assert.deepStrictEqual((yield* leaders(nodes)).map((n) => n.nodeId), [first!.nodeId])
      yield* Effect.sleep("10 millis")
    }
    return first!
  })

/**
 * After a fault: within `within`, some node leads alone and keeps leading for `period`. A leader that steps down
 * before (its deadline passed while etcd re-elected its own raft leader) is allowed and counted in `flaps`; at most one
 * leader at a time is the sampler's check, not this one's.
 */
const settledLeader = (
  nodes: ReadonlyArray<Node>,
  within: Duration.DurationInput,
  period: Duration.DurationInput = "500 millis"
) =>
  Effect.gen(function*() {
    const deadline = performance.now() + Duration.toMillis(within)
    let flaps = 0
    while (true) {
      const remaining = deadline - performance.now()
      if (remaining <= 0) return yield* Effect.dieMessage(`no leader held for ${Duration.format(period)}`)
      yield* waitFor(
        "exactly one leader",
        Duration.millis(remaining),
        Effect.map(leaders(nodes), (l) => l.length === 1)
      )
      const [first] = yield* leaders(nodes)
      const until = performance.now() + Duration.toMillis(period)
      let held = true
      while (held && performance.now() < until) {
        const now = (yield* leaders(nodes)).map((n) => n.nodeId)
        held = now.length === 1 && now[0] === first!.nodeId
        if (held) yield* Effect.sleep("10 millis")
      }
      if (held) return { leader: first!, flaps }
      flaps++
    }
  })

/**
 * Samples every node's `isLeader` about every millisecond: `max` is the most nodes seen leading at one moment, and
 * `noLeaderMs` the longest stretch with no leader.
 */
const sampleLeaders = (nodes: ReadonlyArray<Node>) =>
  Effect.gen(function*() {
    const seen = { max: 0, samples: 0, noLeaderSince: undefined as number | undefined, noLeaderMs: 0 }
    const fiber = yield* Effect.forkScoped(Effect.forever(
      Effect.map(leaders(nodes), (l) => {
        const now = performance.now()
        seen.samples++
        seen.max = Math.max(seen.max, l.length)
        if (l.length === 0) seen.noLeaderSince ??= now
        else if (seen.noLeaderSince !== undefined) {
          seen.noLeaderMs = Math.max(seen.noLeaderMs, now - seen.noLeaderSince)
          seen.noLeaderSince = undefined
        }
      }).pipe(Effect.zipRight(Effect.sleep("1 millis")))
    ))
    return { seen, stop: Fiber.interrupt(fiber) }
  })

/** Every `Leader` state of every node, by arrival: each term is higher than every term reported before it. */
const assertTermsGrow = (nodes: ReadonlyArray<Node>) => {
  const terms = nodes.flatMap((node) =>
    node.states.flatMap((s) => s.state._tag === "Leader" ? [{ at: s.at, term: s.state.term, node: node.nodeId }] : [])
  ).sort((a, b) => a.at - b.at)
  for (let i = 1; i < terms.length; i++) {
    assert.isAbove(terms[i]!.term, terms[i - 1]!.term, `terms in order: ${JSON.stringify(terms)}`)
  }
  return terms
}

const report = (scenario: string, figures: Record<string, unknown>) =>
  Effect.sync(() => console.log(`[etcd-cluster] ${scenario}: ${JSON.stringify(figures)}`))

describe("LeaderElection.layer on a three-member etcd cluster", () => {
  it.scopedLive(
    "each member killed in turn (the raft leader first): the election survives, never two leaders",
    () =>
      Effect.gen(function*() {
        const cluster = yield* startEtcdCluster()
        const nodes = yield* startNodes(cluster, 3)
        yield* stableLeader(nodes, "10 seconds")
        const sampler = yield* sampleLeaders(nodes)
        const raftLeader = yield* cluster.leader()
        assert.isDefined(raftLeader)
        // The raft leader first, then the others: every member is lost once.
        const order = [raftLeader!, ...[0, 1, 2].filter((i) => i !== raftLeader)]
        const figures: Array<Record<string, unknown>> = []
        for (const index of order) {
          const member = cluster.members[index]!
          const wasRaftLeader = index === (yield* cluster.leader())
          const before = yield* leaders(nodes)
          const t0 = performance.now()
          yield* member.kill()
          // Two members keep the quorum: within a few seconds exactly one node leads (the same one, unless its lease
          // keepalive ran through the killed member and its deadline passed first), and it stays so.
          yield* Effect.sleep(Duration.millis(TTL_MS))
          const { flaps, leader: after } = yield* settledLeader(nodes, "10 seconds", "1 second")
          const raftAfter = yield* cluster.leader()
          figures.push({
            member: `m${index}`,
            was_raft_leader: wasRaftLeader,
            raft_leader_after: raftAfter === undefined ? "none" : `m${raftAfter}`,
            scheduler_leader_kept: before[0]?.nodeId === after.nodeId,
            leaders_lost_before_settling: flaps,
            stable_after_ms: Math.round(performance.now() - t0)
          })
          assert.notStrictEqual(raftAfter, index)
          yield* member.restart()
          yield* settledLeader(nodes, "10 seconds")
        }
        yield* sampler.stop
        const terms = assertTermsGrow(nodes)
        yield* report("one member killed at a time", {
          figures,
          longest_without_leader_ms: Math.round(sampler.seen.noLeaderMs),
          leader_terms: terms.length
        })
        assert.isAbove(sampler.seen.samples, 1000)
        assert.strictEqual(sampler.seen.max, 1)
        // Losing one member of three costs at most one lease: the longest gap without a leader stays under TTL + 2 s.
        assert.isBelow(sampler.seen.noLeaderMs, TTL_MS + 2_000)
      }),
    120_000
  )

  it.scopedLive(
    "a minority partition (two members SIGSTOPped): the leader stops by its deadline, one after",
    () =>
      Effect.gen(function*() {
        const cluster = yield* startEtcdCluster()
        const nodes = yield* startNodes(cluster, 3)
        const old = yield* stableLeader(nodes, "10 seconds")
        const sampler = yield* sampleLeaders(nodes)
        const raftLeader = (yield* cluster.leader())!
        // The raft leader and one other member: the one left has no quorum, so no lease can be renewed anywhere.
        const stopped = [raftLeader, (raftLeader + 1) % 3].map((i) => cluster.members[i]!)
        const t0 = performance.now()
        yield* Effect.forEach(stopped, (member) => member.pause())
        const steppedDown = yield* waitFor(
          "the leader to stop leading",
          Duration.millis(TTL_MS + 2_000),
          Effect.map(old.election.isLeader, (b) => !b)
        )
        // Past the TTL nobody may lead: etcd cannot grant or renew a lease without a quorum.
        yield* Effect.sleep(Duration.millis(Math.max(0, 2 * TTL_MS - (performance.now() - t0))))
        assert.deepStrictEqual((yield* leaders(nodes)).map((n) => n.nodeId), [])
        const t1 = performance.now()
        yield* Effect.forEach(stopped, (member) => member.resume())
        const { flaps, leader: back } = yield* settledLeader(nodes, "15 seconds", "1 second")
        yield* sampler.stop
        const terms = assertTermsGrow(nodes)
        yield* report("minority partition", {
          step_down_ms: Math.round(steppedDown - t0),
          one_leader_after_sigcont_ms: Math.round(performance.now() - t1 - 1000),
          leader_after: back.nodeId === old.nodeId ? "same node, new term" : "another node",
          leaders_lost_before_settling: flaps,
          leader_terms: terms.length
        })
        // The deadline: the last acknowledged keepalive's send time + TTL - 500 ms, so at most 1.5 s after the
        // partition; one more second for a loaded machine (the sampler's strict check is the one below).
        assert.isBelow(steppedDown - t0, TTL_MS + 1_000)
        assert.strictEqual(sampler.seen.max, 1)
        // The leader after the partition holds a new term (its lease could not be renewed through it).
        const last = back.states[back.states.length - 1]!.state
        const first = old.states.find((s) => s.state._tag === "Leader")!.state
        assert.isTrue(last._tag === "Leader" && first._tag === "Leader" && last.term > first.term)
      }),
    120_000
  )
})
