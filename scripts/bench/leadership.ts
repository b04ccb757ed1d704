/**
 * Leadership figures: graceful handover, failover and two-leader overlap, for this project's
 * `LeaderElection.layer` and for etcd3's stock `Election`, in the same run against the same etcd (started by the
 * test harness on free loopback ports, data dir on tmpfs when /dev/shm exists, so that disk fsync noise stays out).
 *
 *   node scripts/run.mjs scripts/bench/leadership.ts (env: RUNS=5, PROCESS_RUNS=3, TTL=2 seconds, SCENARIO=<name>)
 *
 * Every scenario runs two candidates with their own etcd client and a fresh election key; runs alternate between the
 * contenders so that load drift on the machine hits both alike. Times are taken from each candidate's own API (ours:
 * the `changes` stream / `isLeader`; etcd3: the `elected` / `error` events).
 * - graceful: the leader shuts down (ours: its scope closes; etcd3: `campaign.resign()`, then `client.close()`);
 *   figure = from the start of that shutdown until the other leads (ours: after this script has stopped its own
 *   observer of the leader's `changes`, which is bench plumbing, not the election),
 *   and the part of it after a third client saw the leader's key deleted (the follower's reaction).
 * - partition: the leader's connection to etcd goes through a TCP proxy that starts dropping every byte in both
 *   directions (sockets stay open: a silent network cut); the process keeps running. Failover = until the other
 *   leads; overlap = how long the cut-off leader's own API still said it led after the other took over.
 * - kill -9: both candidates are OS processes (this script in child mode); the leader gets SIGKILL. Failover = until
 *   the other process leads (clocks compared across processes as timeOrigin + performance.now()).
 * - SIGSTOP: as kill -9, but the leader process is stopped for TTL + 1.5 s (the other takes over meanwhile), then
 *   continued. Overlap = how long, from the first moment its code ran again, the woken leader's own API still said it
 *   led (sampled every millisecond in that process).
 *
 * Scenarios are entries of `scenarios` below; the lead adds the service binary's kill -9 / SIGSTOP there.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Etcd3 } from "etcd3"
import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"
import * as EtcdClient from "../../src/Etcd.js"
import { makeEtcd3Options } from "../../src/internal/etcdOptions.js"
import { LeaderElection } from "../../src/LeaderElection.js"
import * as EtcdElection from "../../src/LeaderElection/Etcd.js"
import { type EtcdServer, startEtcd } from "../../test/harness/etcd.js"

const RUNS = Number(process.env.RUNS ?? 5)
const PROCESS_RUNS = Number(process.env.PROCESS_RUNS ?? 3)
const TTL_SECONDS = Number(process.env.TTL ?? 2)

/** Milliseconds on a clock comparable across processes on this host (wall-clock origin + monotonic offset). */
const epochNow = (): number => performance.timeOrigin + performance.now()

// ---------------------------------------------------------------------------------------------------------------
// Contenders: a candidate is one node with its own etcd client
// ---------------------------------------------------------------------------------------------------------------

interface Candidate {
  /** When this candidate's own API first said it leads (epoch ms), if it has. */
  readonly leaderSince: () => number | undefined
  /** What the candidate's own API says now. */
  readonly believesLeader: () => boolean
  /**
   * Step down and hand over (ours: close its scope; etcd3: resign). Returns when the handover started (epoch ms):
   * the moment the candidate's own shutdown began, after any bench-only observers were stopped.
   */
  readonly resign: () => Effect.Effect<number>
}

interface Contender {
  readonly name: string
  readonly start: (
    endpoint: string,
    electionKey: string,
    nodeId: string
  ) => Effect.Effect<Candidate, never, Scope.Scope>
}

const ours: Contender = {
  name: "LeaderElectionEtcd.layer (ours)",
  start: (endpoint, electionKey, nodeId) =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
      const context = yield* Layer.buildWithScope(
        EtcdElection.layer({ nodeId, electionKey, leaseTtl: `${TTL_SECONDS} seconds` }).pipe(
          Layer.provideMerge(EtcdClient.layer({ endpoints: [endpoint] }))
        ),
        scope
      ).pipe(Effect.orDie)
      const election = Context.get(context, LeaderElection)
      let since: number | undefined
      const observer = yield* Stream.runForEach(election.changes, (state) =>
        Effect.sync(() => {
          if (state._tag === "Leader" && since === undefined) since = epochNow()
        })).pipe(Effect.forkIn(scope))
      return {
        leaderSince: () => since,
        // `isLeader` is an `Effect.sync`: running it synchronously is exact.
        believesLeader: () => Effect.runSync(election.isLeader),
        // The observer above is this script's, not the election's: stopped (1-7 ms measured) before the clock starts.
        resign: () =>
          Effect.zipRight(
            Fiber.interrupt(observer),
            Effect.suspend(() => {
              const startedAt = epochNow()
              return Effect.as(Scope.close(scope, Exit.void), startedAt)
            })
          )
      }
    })
}

const stock: Contender = {
  name: "etcd3 Election",
  start: (endpoint, electionKey, nodeId) =>
    Effect.gen(function*() {
      // Same transport settings as ours (tuned fault handling, gRPC keepalive): only the election logic differs.
      const client = yield* Effect.acquireRelease(
        Effect.sync(() => new Etcd3(makeEtcd3Options({ endpoints: [endpoint] }))),
        (c) => Effect.sync(() => c.close())
      )
      let since: number | undefined
      let lost = false
      const campaign = client.election(electionKey, TTL_SECONDS).campaign(nodeId)
      campaign.on("elected", () => since ??= epochNow())
      // Without a listener an "error" event would crash the process (it comes twice per failure).
      campaign.on("error", () => lost = true)
      const resign = () => Effect.promise(() => campaign.resign().catch(() => undefined))
      yield* Effect.addFinalizer(resign)
      return {
        leaderSince: () => since,
        believesLeader: () => since !== undefined && !lost,
        // What a shutting-down node does, as our layer's scope close does: resign, then close the client.
        resign: () =>
          Effect.suspend(() => {
            const startedAt = epochNow()
            return Effect.as(Effect.zipRight(resign(), Effect.sync(() => client.close())), startedAt)
          })
      }
    })
}

const contenders: ReadonlyArray<Contender> = [ours, stock]

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

const waitUntil = (what: string, timeoutMs: number, condition: () => boolean) =>
  Effect.gen(function*() {
    const deadline = performance.now() + timeoutMs
    while (!condition()) {
      if (performance.now() > deadline) return yield* Effect.dieMessage(`timed out waiting for ${what}`)
      yield* Effect.sleep("1 millis")
    }
  })

/** Records when `believesLeader` first turns false, sampled every millisecond from now on. */
const watchStepDown = (candidate: Candidate) =>
  Effect.gen(function*() {
    const seen: { at?: number } = {}
    yield* Effect.forkScoped(Effect.gen(function*() {
      while (candidate.believesLeader()) yield* Effect.sleep("1 millis")
      seen.at = epochNow()
    }))
    return seen
  })

/**
 * A TCP proxy to `port` that can be cut: from `cut()` on it drops every byte both ways and keeps the sockets open,
 * like a network that silently stops delivering. Closed with the scope.
 */
const blackHoleProxy = (port: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: net.Server; readonly endpoint: string; readonly cut: () => void }>((resume) => {
      const sockets = new Set<net.Socket>()
      let cut = false
      const server = net.createServer((downstream) => {
        const upstream = net.connect(port, "127.0.0.1")
        for (const [from, to] of [[downstream, upstream], [upstream, downstream]] as const) {
          sockets.add(from)
          from.on("data", (data) => cut || to.write(data))
          from.on("error", () => to.destroy())
          from.on("close", () => to.destroy())
        }
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address() as net.AddressInfo
        resume(Effect.succeed({ server, endpoint: `http://127.0.0.1:${address.port}`, cut: () => cut = true }))
      })
      server.on("close", () => sockets.forEach((s) => s.destroy()))
    }),
    ({ server }) => Effect.sync(() => server.close())
  )

interface Sample {
  readonly ms: number
  /** Graceful: from the key's deletion (seen by a third client) to the follower leading. */
  readonly reactionMs?: number | undefined
  readonly overlapMs?: number | undefined
  /** False when the run did not set up what the scenario measures (reported, left out of the figures). */
  readonly valid?: boolean | undefined
}

// ---------------------------------------------------------------------------------------------------------------
// In-process scenarios
// ---------------------------------------------------------------------------------------------------------------

/** Two candidates, `a` leading; `a` reaches etcd through `aEndpoint`. */
const pair = (contender: Contender, aEndpoint: string, bEndpoint: string) =>
  Effect.gen(function*() {
    const key = `bench/${randomUUID()}`
    const a = yield* contender.start(aEndpoint, key, "a")
    yield* waitUntil("the first candidate to lead", 10_000, () => a.leaderSince() !== undefined)
    const b = yield* contender.start(bEndpoint, key, "b")
    // Let b settle as a follower (campaign key written, watch established).
    yield* Effect.sleep("300 millis")
    return { a, b }
  })

/**
 * The moment an independent client sees the first election key deleted (ours live under `bench/`, etcd3's under
 * `election/bench/`): splits a handover into the resign's share and the follower's reaction.
 */
const firstDelete = (etcd: EtcdServer) =>
  Effect.gen(function*() {
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => new Etcd3({ hosts: etcd.endpoint })),
      (c) => Effect.sync(() => c.close())
    )
    const seen: { at?: number } = {}
    for (const prefix of ["bench/", "election/bench/"]) {
      const watcher = yield* Effect.promise(() => client.watch().prefix(prefix).create())
      watcher.on("error", () => undefined)
      watcher.on("delete", () => seen.at ??= epochNow())
    }
    return seen
  })

const graceful = (etcd: EtcdServer, contender: Contender): Effect.Effect<Sample> =>
  Effect.scoped(Effect.gen(function*() {
    const deleted = yield* firstDelete(etcd)
    const { a, b } = yield* pair(contender, etcd.endpoint, etcd.endpoint)
    const t0 = yield* a.resign()
    yield* waitUntil("the follower to lead", 10_000, () => b.leaderSince() !== undefined)
    const tookOver = b.leaderSince()!
    return { ms: tookOver - t0, reactionMs: deleted.at === undefined ? undefined : tookOver - deleted.at }
  }))

const partition = (etcd: EtcdServer, contender: Contender): Effect.Effect<Sample> =>
  Effect.scoped(Effect.gen(function*() {
    const proxy = yield* blackHoleProxy(etcd.clientPort)
    const { a, b } = yield* pair(contender, proxy.endpoint, etcd.endpoint)
    const aStopped = yield* watchStepDown(a)
    const t0 = epochNow()
    proxy.cut()
    const limit = (3 * TTL_SECONDS + 5) * 1000
    yield* waitUntil("the follower to lead", limit, () => b.leaderSince() !== undefined)
    const tookOver = b.leaderSince()!
    // etcd3's Election tells a cut-off leader only 2 x TTL after its last keepalive: wait long enough to see it.
    yield* Effect.ignore(waitUntil("the old leader to step down", limit, () => aStopped.at !== undefined))
    return { ms: tookOver - t0, overlapMs: Math.max(0, (aStopped.at ?? Number.POSITIVE_INFINITY) - tookOver) }
  }))

// ---------------------------------------------------------------------------------------------------------------
// Process scenarios: candidates are child processes running this script in child mode
// ---------------------------------------------------------------------------------------------------------------

type ChildEvent =
  | { readonly ev: "ready"; readonly t: number }
  | { readonly ev: "leader"; readonly t: number }
  | { readonly ev: "wake"; readonly t: number; readonly gapMs: number; readonly leading: boolean }
  | { readonly ev: "woke-stepdown"; readonly t: number; readonly afterWakeMs: number }

const scriptPath = fileURLToPath(import.meta.url)
const viteNode = path.resolve(path.dirname(scriptPath), "../../node_modules/.bin/vite-node")

interface ChildCandidate {
  readonly child: ChildProcess
  readonly events: Array<ChildEvent>
  readonly find: <K extends ChildEvent["ev"]>(ev: K) => Extract<ChildEvent, { ev: K }> | undefined
}

const spawnCandidate = (contender: Contender, endpoint: string, electionKey: string, nodeId: string) =>
  Effect.acquireRelease(
    Effect.sync((): ChildCandidate => {
      const child = spawn(viteNode, [scriptPath], {
        env: {
          ...process.env,
          BENCH_CHILD: contender === ours ? "ours" : "etcd3",
          BENCH_ENDPOINT: endpoint,
          BENCH_KEY: electionKey,
          BENCH_NODE: nodeId
        },
        stdio: ["ignore", "pipe", "ignore"]
      })
      const events: Array<ChildEvent> = []
      readline.createInterface({ input: child.stdout! }).on("line", (line) => {
        if (line.startsWith("{\"ev\"")) events.push(JSON.parse(line) as ChildEvent)
      })
      return {
        child,
        events,
        find: <K extends ChildEvent["ev"]>(ev: K) =>
          events.find((e): e is Extract<ChildEvent, { ev: K }> => e.ev === ev)
      }
    }),
    ({ child }) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.kill("SIGCONT")
        child.kill("SIGKILL")
      })
  )

/** Two candidate processes, `a` leading and `b` settled as a follower. */
const processPair = (etcd: EtcdServer, contender: Contender) =>
  Effect.gen(function*() {
    const key = `bench/${randomUUID()}`
    const a = yield* spawnCandidate(contender, etcd.endpoint, key, "a")
    // Start-up (vite-node compiles the script) takes a few seconds on a loaded machine.
    yield* waitUntil("process a to lead", 60_000, () => a.find("leader") !== undefined)
    const b = yield* spawnCandidate(contender, etcd.endpoint, key, "b")
    yield* waitUntil("process b to start", 60_000, () => b.find("ready") !== undefined)
    yield* Effect.sleep("1 second")
    return { a, b }
  })

const kill9 = (etcd: EtcdServer, contender: Contender): Effect.Effect<Sample> =>
  Effect.scoped(Effect.gen(function*() {
    const { a, b } = yield* processPair(etcd, contender)
    const t0 = epochNow()
    a.child.kill("SIGKILL")
    yield* waitUntil("process b to lead", (3 * TTL_SECONDS + 5) * 1000, () => b.find("leader") !== undefined)
    return { ms: b.find("leader")!.t - t0 }
  }))

const sigstop = (etcd: EtcdServer, contender: Contender): Effect.Effect<Sample> =>
  Effect.scoped(Effect.gen(function*() {
    const { a, b } = yield* processPair(etcd, contender)
    a.child.kill("SIGSTOP")
    const t0 = epochNow()
    yield* Effect.sleep(`${TTL_SECONDS * 1000 + 1500} millis`)
    a.child.kill("SIGCONT")
    yield* waitUntil("the woken process to report", 15_000, () => a.find("woke-stepdown") !== undefined)
    const wake = a.find("wake")!
    const bLead = b.find("leader")
    // Valid when the other process led before the old one woke: then every ms the woken one still leads is overlap.
    return {
      ms: bLead === undefined ? Number.NaN : bLead.t - t0,
      overlapMs: a.find("woke-stepdown")!.afterWakeMs,
      valid: bLead !== undefined && bLead.t < wake.t
    }
  }))

/** Child mode: one candidate; reports when it leads and, after a freeze, how long it still said it led. */
const child = (mode: string) =>
  Effect.scoped(Effect.gen(function*() {
    const contender = mode === "ours" ? ours : stock
    const { BENCH_ENDPOINT, BENCH_KEY, BENCH_NODE } = process.env
    const candidate = yield* contender.start(BENCH_ENDPOINT!, BENCH_KEY!, BENCH_NODE!)
    const emit = (event: ChildEvent) => Effect.sync(() => process.stdout.write(`${JSON.stringify(event)}\n`))
    yield* emit({ ev: "ready", t: epochNow() })
    let reported = false
    let last = performance.now()
    while (true) {
      // The gap check comes first: after SIGCONT this is the first user code to run, i.e. where a scheduler would
      // check `isLeader` before starting a job. A gap of more than 500 ms between 1 ms ticks means we were stopped.
      const now = performance.now()
      if (now - last > 500) {
        const wokeAt = epochNow()
        const leading = candidate.believesLeader()
        yield* emit({ ev: "wake", t: wokeAt, gapMs: now - last, leading })
        while (candidate.believesLeader()) yield* Effect.sleep("1 millis")
        yield* emit({ ev: "woke-stepdown", t: epochNow(), afterWakeMs: leading ? epochNow() - wokeAt : 0 })
      }
      if (!reported && candidate.leaderSince() !== undefined) {
        reported = true
        yield* emit({ ev: "leader", t: candidate.leaderSince()! })
      }
      last = performance.now()
      yield* Effect.sleep("1 millis")
    }
  }))

// ---------------------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------------------

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((x, y) => x - y)
  if (s.length === 0) return Number.NaN
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
const fmt = (ms: number) => Number.isFinite(ms) ? (Math.abs(ms) >= 100 ? ms.toFixed(0) : ms.toFixed(1)) : String(ms)

interface Scenario {
  readonly name: string
  readonly runs: number
  /** Run once per contender first, uncounted (JIT warm-up weighs on a 15 ms figure, not on a 2 s one). */
  readonly warmup?: boolean
  readonly run: (etcd: EtcdServer, contender: Contender) => Effect.Effect<Sample>
  /** The figures of a sample shown in the table. */
  readonly figures: ReadonlyArray<{ readonly label: string; readonly pick: (s: Sample) => number | undefined }>
}

const failover = { label: "failover ms", pick: (s: Sample) => s.ms }
const overlap = { label: "overlap ms", pick: (s: Sample) => s.overlapMs }

const scenarios: ReadonlyArray<Scenario> = [
  {
    name: "graceful",
    runs: RUNS,
    warmup: true,
    run: graceful,
    figures: [
      { label: "handover ms", pick: (s) => s.ms },
      { label: "of which after the key's deletion ms", pick: (s) => s.reactionMs }
    ]
  },
  { name: "partition", runs: RUNS, run: partition, figures: [failover, overlap] },
  { name: "kill -9", runs: PROCESS_RUNS, run: kill9, figures: [failover] },
  { name: "SIGSTOP", runs: PROCESS_RUNS, run: sigstop, figures: [failover, overlap] }
]

const main = Effect.scoped(Effect.gen(function*() {
  // tmpfs data dir: the figures compare election logic, not this machine's disk fsync latency.
  if (process.env.TMPDIR === undefined && fs.existsSync("/dev/shm")) process.env.TMPDIR = "/dev/shm"
  const etcd = yield* startEtcd()
  const lines = [
    `Leadership, lease TTL ${TTL_SECONDS} s, single etcd on loopback (${etcd.endpoint}), ` +
    `${RUNS} runs in-process, ${PROCESS_RUNS} with processes; times from each candidate's own API`,
    "",
    "| scenario | figure | ours median | ours max | etcd3 median | etcd3 max | ours / etcd3 (medians) |",
    "|---|---|---|---|---|---|---|"
  ]
  for (const scenario of scenarios) {
    if (process.env.SCENARIO !== undefined && process.env.SCENARIO !== scenario.name) continue
    const samples = new Map<Contender, Array<Sample>>(contenders.map((c) => [c, []]))
    if (scenario.warmup) yield* Effect.forEach(contenders, (c) => scenario.run(etcd, c), { discard: true })
    // Alternate contenders run by run, so that load drift on the machine hits both alike.
    for (let i = 0; i < scenario.runs; i++) {
      for (const contender of contenders) {
        const sample = yield* scenario.run(etcd, contender)
        samples.get(contender)!.push(sample)
        console.error(`${scenario.name} / ${contender.name} run ${i + 1}: ${JSON.stringify(sample)}`)
      }
    }
    for (const figure of scenario.figures) {
      const [o, e] = contenders.map((c) => {
        const valid = samples.get(c)!.filter((s) => s.valid !== false)
        const xs = valid.map(figure.pick).filter((x): x is number => x !== undefined)
        return { median: median(xs), max: Math.max(...xs), invalid: samples.get(c)!.length - valid.length }
      }) as [{ median: number; max: number; invalid: number }, { median: number; max: number; invalid: number }]
      const ratio = e.median > 0 ? (o.median / e.median).toFixed(2) : o.median === 0 && e.median === 0 ? "-" : "n/a"
      const note = o.invalid + e.invalid > 0 ? ` (${o.invalid + e.invalid} run(s) invalid, left out)` : ""
      lines.push(
        `| ${scenario.name}${note} | ${figure.label} | ${fmt(o.median)} | ${fmt(o.max)} | ${fmt(e.median)} | ` +
          `${fmt(e.max)} | ${ratio} |`
      )
    }
  }
  console.log(lines.join("\n"))
}))

const mode = process.env.BENCH_CHILD
// The layer's own logs (stdout) would mix with the table and the child protocol: errors only, unless BENCH_LOG=1.
const logLevel = process.env.BENCH_LOG === undefined ? LogLevel.Error : LogLevel.Debug
Effect.runPromise((mode === undefined ? main : child(mode)).pipe(Logger.withMinimumLogLevel(logLevel))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
