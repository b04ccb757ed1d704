import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { StoreError } from "../../src/Errors.js"
import * as Job from "../../src/Job.js"
import type { JobStore } from "../../src/JobStore.js"
import * as LeaderElection from "../../src/LeaderElection.js"
import * as Metrics from "../../src/Metrics.js"
import * as Scheduler from "../../src/Scheduler.js"
import * as ScheduleHandlers from "../../src/service/job/ScheduleHandlers.js"
import * as UserModel from "../../src/service/repository/UserModel.js"
import * as ClusterInfo from "../../src/service/server/ClusterInfo.js"
import * as Directory from "../../src/service/server/Directory.js"
import * as JobControl from "../../src/service/server/JobControl.js"
import * as Prometheus from "../../src/service/server/Prometheus.js"
import { ServiceRpcs } from "../../src/service/server/Rpcs.js"
import * as Server from "../../src/service/server/Server.js"

const NOW = Date.UTC(2026, 0, 1)

// ---------------------------------------------------------------------------------------------------------------
// Prometheus text
// ---------------------------------------------------------------------------------------------------------------

/** The rendered lines of the metrics whose name starts with `prefix` (the registry is process-wide). */
const scrapeOf = (prefix: string) =>
  Effect.map(
    Metrics.snapshot,
    (all) => Prometheus.render(all.filter((pair) => pair.metricKey.name.startsWith(prefix))).trimEnd().split("\n")
  )

describe("Prometheus rendering", () => {
  it.effect("renders counters and gauges with HELP, TYPE and sorted, escaped labels", () =>
    Effect.gen(function*() {
      const counter = Metric.counter("promtest_a_runs_total", { description: "Runs by job\nand outcome \\ all" })
      yield* Metric.update(counter.pipe(Metric.tagged("outcome", "success"), Metric.tagged("job", "sync")), 1)
      yield* Metric.update(counter.pipe(Metric.tagged("job", "we\"ird\\job\nname")), 2)
      yield* Metric.set(Metric.gauge("promtest_a_leader"), 1)
      const lines = yield* scrapeOf("promtest_a_")
      expect(lines).toEqual([
        "# HELP promtest_a_leader promtest_a_leader",
        "# TYPE promtest_a_leader gauge",
        "promtest_a_leader 1",
        "# HELP promtest_a_runs_total Runs by job\\nand outcome \\\\ all",
        "# TYPE promtest_a_runs_total counter",
        "promtest_a_runs_total{job=\"sync\",outcome=\"success\"} 1",
        "promtest_a_runs_total{job=\"we\\\"ird\\\\job\\nname\"} 2"
      ].sort((a, b) => lines.indexOf(a) - lines.indexOf(b)))
      // One HELP/TYPE per family, whatever the number of series.
      expect(lines.filter((l) => l.startsWith("# TYPE promtest_a_runs_total"))).toHaveLength(1)
    }))

  it.effect("renders a histogram as cumulative _bucket lines up to +Inf, then _sum and _count", () =>
    Effect.gen(function*() {
      const histogram = Metric.histogram("promtest_b_seconds", MetricBoundaries.fromIterable([0.1, 1, 10]))
        .pipe(Metric.tagged("job", "x"))
      for (const value of [0.05, 0.5, 0.7, 5, 50]) yield* Metric.update(histogram, value)
      const lines = yield* scrapeOf("promtest_b_")
      expect(lines).toEqual([
        "# HELP promtest_b_seconds promtest_b_seconds",
        "# TYPE promtest_b_seconds histogram",
        "promtest_b_seconds_bucket{job=\"x\",le=\"0.1\"} 1",
        "promtest_b_seconds_bucket{job=\"x\",le=\"1\"} 3",
        "promtest_b_seconds_bucket{job=\"x\",le=\"10\"} 4",
        "promtest_b_seconds_bucket{job=\"x\",le=\"+Inf\"} 5",
        "promtest_b_seconds_sum{job=\"x\"} 56.25",
        "promtest_b_seconds_count{job=\"x\"} 5"
      ])
    }))

  it.effect("renders frequencies as counters keyed by value, and summaries with quantiles", () =>
    Effect.gen(function*() {
      const frequency = Metric.frequency("promtest_c_reasons")
      yield* Metric.update(frequency, "lock_held")
      yield* Metric.update(frequency, "lock_held")
      yield* Metric.update(frequency, "paused")
      const lines = yield* scrapeOf("promtest_c_")
      expect(lines).toEqual([
        "# HELP promtest_c_reasons_total promtest_c_reasons",
        "# TYPE promtest_c_reasons_total counter",
        "promtest_c_reasons_total{key=\"lock_held\"} 2",
        "promtest_c_reasons_total{key=\"paused\"} 1"
      ])
      const summary = Metric.summary({
        name: "promtest_d_latency",
        maxAge: "1 hour",
        maxSize: 100,
        error: 0.01,
        quantiles: [0.5]
      })
      yield* Metric.update(summary, 3)
      const summaryLines = yield* scrapeOf("promtest_d_")
      expect(summaryLines[1]).toBe("# TYPE promtest_d_latency summary")
      expect(summaryLines.slice(2)).toEqual([
        "promtest_d_latency{quantile=\"0.5\"} 3",
        "promtest_d_latency_sum 3",
        "promtest_d_latency_count 1"
      ])
    }))

  it.effect("a counter gets _total, a counter that goes down (effect_fiber_active) is a gauge, all have HELP", () =>
    Effect.gen(function*() {
      yield* Metric.increment(Metric.counter("promtest_e_starts"))
      expect(yield* scrapeOf("promtest_e_")).toEqual([
        "# HELP promtest_e_starts_total promtest_e_starts",
        "# TYPE promtest_e_starts_total counter",
        "promtest_e_starts_total 1"
      ])
      const lines = Prometheus.render(yield* Metrics.snapshot).split("\n")
      expect(lines).toContain("# TYPE effect_fiber_active gauge")
      expect(lines).toContain("# HELP effect_fiber_started_total Fibers started")
      const families = lines.filter((l) => l.startsWith("# TYPE ")).map((l) => l.split(" ")[2])
      const helps = lines.filter((l) => l.startsWith("# HELP ")).map((l) => l.split(" ")[2])
      expect(helps).toEqual(families)
      expect(Prometheus.renderFamilies([{ name: "x_seconds", help: "X", type: "gauge", samples: [{ value: 1.5 }] }]))
        .toBe("# HELP x_seconds X\n# TYPE x_seconds gauge\nx_seconds 1.5\n")
    }))

  it("sanitises metric and label names into Prometheus' alphabet", () => {
    expect(Prometheus.metricName("job.runs-total")).toBe("job_runs_total")
    expect(Prometheus.metricName("1st")).toBe("_1st")
    expect(Prometheus.labelName("job:name")).toBe("job_name")
    expect(Prometheus.formatValue(Number.POSITIVE_INFINITY)).toBe("+Inf")
    expect(Prometheus.formatValue(Number.NaN)).toBe("NaN")
    expect(Prometheus.formatValue(10n)).toBe("10")
  })
})

// ---------------------------------------------------------------------------------------------------------------
// HTTP: admin + RPC
// ---------------------------------------------------------------------------------------------------------------

const jobs = [
  Job.unsafeMake({ name: "hourly", every: "1 hour", handler: Effect.void }),
  Job.unsafeMake({ name: "nightly", cron: "0 0 2 * * *", timezone: "Asia/Shanghai", handler: Effect.void })
]

const TOKEN = "t0ken-for-tests"
const READ_TOKEN = "read-t0ken-for-tests"

/** Every log line of the servers built by `serverLayer` (message, level and annotations), in order. */
const logged: Array<Record<string, unknown>> = []
const captureLogs = Logger.replace(
  Logger.defaultLogger,
  Logger.make(({ annotations, logLevel, message }) => {
    const line: Record<string, unknown> = {
      level: logLevel.label,
      message: Array.isArray(message) ? message.join(" ") : String(message)
    }
    for (const [key, value] of HashMap.toEntries(annotations)) line[key] = value
    logged.push(line)
  })
)

/** A server on a free port with memory models, a scheduler over `jobs`, and the given options. */
const serverLayer = (options: {
  readonly token?: string
  readonly readToken?: string
  readonly maxBodySize?: number
  readonly leaderUrl?: string
  readonly control?: "scheduler" | "store"
  readonly checks?: ReadonlyArray<{ readonly name: string; readonly check: Effect.Effect<void, unknown> }>
}) => {
  const models = Layer.mergeAll(
    UserModel.layerMemory(UserModel.demoUsers(NOW, 45)),
    Scheduler.layerMemory(jobs),
    LeaderElection.layerSingleNode("test-node"),
    options.leaderUrl === undefined ? Directory.layerMemory : Layer.effect(
      Directory.LeaderDirectory,
      Effect.sync(Directory.makeMemory).pipe(Effect.tap((directory) =>
        directory.publish(
          new Directory.LeaderRecord({
            nodeId: "gone",
            url: options.leaderUrl!,
            since: new Date(NOW).toISOString(),
            term: 7,
            version: "0.0.0-test",
            configHash: "hash-test"
          }),
          Duration.hours(1)
        )
      ))
    ),
    Layer.succeed(ClusterInfo.NodeInfo, {
      nodeId: "test-node",
      mode: "all",
      version: "0.0.0-test",
      configHash: "hash-test",
      advertiseUrl: Option.none()
    })
  )
  const control: Layer.Layer<
    JobControl.JobControl,
    never,
    Scheduler.Scheduler | JobStore | LeaderElection.LeaderElection
  > = options.control === "store"
    ? JobControl.layerStore(jobs)
    : JobControl.layerScheduler
  return Server.serveAll({
    token: options.token === undefined ? Option.none() : Option.some(Redacted.make(options.token)),
    readToken: options.readToken === undefined ? Option.none() : Option.some(Redacted.make(options.readToken)),
    maxBodySize: options.maxBodySize,
    checks: options.checks ?? [],
    info: { node: "test-node", mode: "all" }
  }).pipe(
    Layer.provide(control),
    Layer.provide(options.control === "store" ? ScheduleHandlers.layerStore : ScheduleHandlers.layer),
    Layer.provide(models),
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provide(captureLogs),
    Layer.tap(() => Effect.sync(() => logged.splice(0)))
  )
}

/** An RPC client of the test server, over its own HTTP client (the test client rewrites URLs its own way). */
const rpcClient = HttpServer.addressFormattedWith((base) =>
  RpcClient.make(ServiceRpcs).pipe(
    Effect.provide(
      RpcClient.layerProtocolHttp({ url: `${base}/rpc` }).pipe(
        Layer.provide([RpcSerialization.layerJson, FetchHttpClient.layer])
      )
    )
  )
)

const getJson = (path: string) =>
  Effect.gen(function*() {
    const response = yield* HttpClient.get(path)
    return { status: response.status, body: (yield* response.json) as Record<string, unknown> }
  })

describe("admin endpoints", () => {
  it.scoped("/healthz answers 200 with JSON saying the process is alive", () =>
    Effect.gen(function*() {
      const { body, status } = yield* getJson("/healthz")
      expect(status).toBe(200)
      expect(body).toMatchObject({ status: "ok", node: "test-node", mode: "all" })
    }).pipe(Effect.provide(serverLayer({}))))

  it.scoped("/readyz is 200 when every check passes and 503 naming the failing check otherwise", () =>
    Effect.gen(function*() {
      const ready = yield* getJson("/readyz").pipe(Effect.provide(serverLayer({
        checks: [{ name: "redis", check: Effect.void }]
      })))
      expect(ready).toEqual({ status: 200, body: { status: "ready", checks: { config: "ok", redis: "ok" } } })
      const down = yield* getJson("/readyz").pipe(Effect.provide(serverLayer({
        checks: [
          {
            name: "redis",
            check: Effect.fail(new StoreError({ backend: "redis", operation: "ping", reason: "ECONNREFUSED" }))
          },
          { name: "etcd", check: Effect.void }
        ]
      })))
      expect(down.status).toBe(503)
      expect(down.body).toMatchObject({ status: "not_ready", checks: { config: "ok", etcd: "ok" } })
      expect((down.body.checks as Record<string, string>).redis).toContain("ECONNREFUSED")
    }))

  it.live("/readyz answers 503 within its bound when a check hangs", () =>
    Effect.gen(function*() {
      const started = Date.now()
      const { body, status } = yield* getJson("/readyz")
      expect(status).toBe(503)
      expect((body.checks as Record<string, string>).etcd).toContain("no answer")
      expect(Date.now() - started).toBeLessThan(10_000)
    }).pipe(Effect.scoped, Effect.provide(serverLayer({ checks: [{ name: "etcd", check: Effect.never }] }))))

  it.scoped("/metrics serves Prometheus text with the text/plain 0.0.4 content type", () =>
    Effect.gen(function*() {
      yield* Metric.update(Metric.counter("promtest_http_total").pipe(Metric.tagged("job", "a")), 1)
      const response = yield* HttpClient.get("/metrics")
      expect(response.status).toBe(200)
      expect(response.headers["content-type"]).toBe(Prometheus.CONTENT_TYPE)
      const text = yield* response.text
      expect(text).toContain("# TYPE promtest_http_total counter\npromtest_http_total{job=\"a\"} 1\n")
    }).pipe(Effect.provide(serverLayer({}))))

  it.scoped("an unknown path is a 404", () =>
    Effect.gen(function*() {
      expect((yield* HttpClient.get("/nope")).status).toBe(404)
    }).pipe(Effect.provide(serverLayer({}))))
})

describe("RPC", () => {
  it.scoped("GetUser and ListUsers serve the user store; a missing user is UserNotFound", () =>
    Effect.gen(function*() {
      const client = yield* rpcClient
      const user = yield* client.GetUser({ id: 3 })
      expect(user.email).toBe("user3@example.com")
      const missing = yield* Effect.flip(client.GetUser({ id: 999 }))
      expect(missing._tag).toBe("UserNotFound")
      const page = yield* client.ListUsers({ page: 3, pageSize: 20 })
      expect(page.total).toBe(45)
      expect(page.users.map((u) => u.id)).toEqual([41, 42, 43, 44, 45])
      const defaults = yield* client.ListUsers({})
      expect(defaults.users).toHaveLength(20)
    }).pipe(Effect.provide(serverLayer({}))))

  it.scoped("ListJobs shows every job with its trigger and next fire; JobRuns of an unknown job is UnknownJob", () =>
    Effect.gen(function*() {
      const client = yield* rpcClient
      const list = yield* client.ListJobs()
      expect(list.map((job) => job.name)).toEqual(["hourly", "nightly"])
      const nightly = list.find((job) => job.name === "nightly")!
      expect(nightly.trigger).toContain("0 0 2 * * *")
      expect(nightly.nextFire).toMatch(/T18:00:00\.000Z$/)
      expect(nightly.paused).toBe(false)
      expect((yield* Effect.flip(client.JobRuns({ job: "nope" })))._tag).toBe("UnknownJob")
    }).pipe(Effect.provide(serverLayer({}))))

  it.scoped("without a configured token, trigger/pause/resume need no header and work", () =>
    Effect.gen(function*() {
      const client = yield* rpcClient
      const started = yield* client.TriggerJob({ job: "hourly" })
      expect(started._tag).toBe("Started")
      yield* client.PauseJob({ job: "nightly" })
      expect((yield* client.ListJobs()).find((job) => job.name === "nightly")!.paused).toBe(true)
      yield* client.ResumeJob({ job: "nightly" })
      expect((yield* client.ListJobs()).find((job) => job.name === "nightly")!.paused).toBe(false)
      // The manual run is recorded.
      const runs = yield* Effect.retry(
        client.JobRuns({ job: "hourly" }).pipe(Effect.filterOrFail((r) => r.length > 0)),
        { times: 50 }
      )
      expect(runs[0]!.kind).toBe("manual")
    }).pipe(Effect.provide(serverLayer({}))))

  it.scoped("schedules over RPC: upsert, get, list, trigger, backfill, remove; typed errors; mutations need the token", () =>
    Effect.gen(function*() {
      const client = yield* rpcClient
      const auth = { headers: { authorization: `Bearer ${TOKEN}` } }
      const spec = { id: "extra-sync", handler: "sync_user", trigger: { cron: "0 0 * * * *" } } as const
      expect((yield* Effect.flip(client.UpsertSchedule(spec)))._tag).toBe("Unauthorized")
      expect((yield* Effect.flip(client.RemoveSchedule({ id: "extra-sync" })))._tag).toBe("Unauthorized")
      expect((yield* Effect.flip(client.ListSchedules({})))._tag).toBe("Unauthorized")
      const created = yield* client.UpsertSchedule(spec, auth)
      expect(created.result).toBe("created")
      expect((yield* client.UpsertSchedule(spec, auth)).result).toBe("unchanged")
      const unknown = yield* Effect.flip(client.UpsertSchedule({ ...spec, handler: "nope" }, auth))
      expect(unknown).toMatchObject({ _tag: "UnknownHandler", handler: "nope" })
      const never = yield* Effect.flip(client.UpsertSchedule({ ...spec, trigger: { cron: "0 0 0 30 2 *" } }, auth))
      expect(never._tag).toBe("NeverFires")
      const payload = yield* Effect.flip(client.UpsertSchedule({ ...spec, payload: { x: 1 } }, auth))
      expect(payload._tag).toBe("InvalidPayload")
      const view = yield* client.GetSchedule({ id: "extra-sync" }, auth)
      expect([view.state, view.revision, view.spec.handler]).toEqual(["active", created.revision, "sync_user"])
      expect(view.nextFire).toMatch(/:00:00\.000Z$/)
      const page = yield* client.ListSchedules({ handler: "sync_user" }, auth)
      expect(page.schedules.map((s) => s.spec.id)).toEqual(["extra-sync"])
      const triggered = yield* client.TriggerJob({ job: "extra-sync" }, auth)
      expect(triggered._tag).toBe("Started")
      const badPayload = yield* Effect.flip(client.TriggerJob({ job: "extra-sync", payload: 5 }, auth))
      expect(badPayload._tag).toBe("InvalidPayload")
      const backfill = yield* client.BackfillSchedule({
        id: "extra-sync",
        from: new Date(NOW - 2 * 3600_000),
        to: new Date(NOW - 1)
      }, auth)
      expect(backfill.fires.map((f) => f._tag)).toEqual(["Ran", "Ran"])
      expect(yield* client.RemoveSchedule({ id: "extra-sync" }, auth)).toEqual({ removed: true })
      expect((yield* Effect.flip(client.GetSchedule({ id: "extra-sync" }, auth)))._tag).toBe("UnknownSchedule")
      expect((yield* Effect.flip(client.TriggerJob({ job: "extra-sync" }, auth)))._tag).toBe("UnknownJob")
    }).pipe(Effect.provide(serverLayer({ token: TOKEN }))))

  it.scoped("with a token, every call without it or with a wrong one is Unauthorized, reads included", () =>
    Effect.gen(function*() {
      const client = yield* rpcClient
      const auth = { headers: { authorization: `Bearer ${TOKEN}` } }
      expect((yield* Effect.flip(client.TriggerJob({ job: "hourly" })))._tag).toBe("Unauthorized")
      expect((yield* Effect.flip(client.PauseJob({ job: "hourly" })))._tag).toBe("Unauthorized")
      expect((yield* Effect.flip(client.ResumeJob({ job: "hourly" })))._tag).toBe("Unauthorized")
      expect((yield* Effect.flip(client.ListJobs()))._tag).toBe("Unauthorized")
      expect((yield* Effect.flip(client.JobRuns({ job: "hourly" })))._tag).toBe("Unauthorized")
      expect((yield* Effect.flip(client.Leader()))._tag).toBe("Unauthorized")
      expect((yield* Effect.flip(client.GetUser({ id: 1 })))._tag).toBe("Unauthorized")
      expect((yield* Effect.flip(client.ListUsers({})))._tag).toBe("Unauthorized")
      const wrong = yield* Effect.flip(
        client.PauseJob({ job: "hourly" }, { headers: { authorization: "Bearer nope" } })
      )
      expect(wrong).toMatchObject({ _tag: "Unauthorized", reason: "wrong bearer token" })
      expect((yield* client.ListJobs(undefined, auth)).find((job) => job.name === "hourly")!.paused).toBe(false)
      yield* client.PauseJob({ job: "hourly" }, auth)
      expect((yield* client.ListJobs(undefined, auth)).find((job) => job.name === "hourly")!.paused).toBe(true)
      expect((yield* client.GetUser({ id: 1 }, auth)).id).toBe(1)
      const triggered = yield* client.TriggerJob({ job: "hourly" }, auth)
      // Paused cluster-wide: a manual trigger is skipped too.
      expect(triggered).toEqual({ _tag: "Skipped", reason: "paused" })
      // Refusals are logged with the caller's address; job control calls leave audit lines.
      const refused = logged.filter((line) => line.message === "request refused")
      expect(refused.length).toBeGreaterThanOrEqual(9)
      expect(refused[0]).toMatchObject({
        level: "WARN",
        rpc: "TriggerJob",
        caller: expect.stringMatching(/127\.0\.0\.1/)
      })
      expect(refused.some((line) => line.reason === "wrong bearer token" && line.rpc === "PauseJob")).toBe(true)
      const audits = logged.filter((line) => line.message === "audit")
      expect(audits.map((line) => [line.action, line.job, line.result, line.credential])).toEqual([
        ["pause", "hourly", "ok", "token"],
        ["trigger", "hourly", "ok", "token"]
      ])
      expect(audits[1]).toMatchObject({ skipped: "paused", caller: expect.stringMatching(/127\.0\.0\.1/) })
    }).pipe(Effect.provide(serverLayer({ token: TOKEN }))))

  it.scoped("a read token reads but cannot trigger, pause or resume", () =>
    Effect.gen(function*() {
      const client = yield* rpcClient
      const reader = { headers: { authorization: `Bearer ${READ_TOKEN}` } }
      expect((yield* client.ListJobs(undefined, reader)).map((job) => job.name)).toEqual(["hourly", "nightly"])
      expect(yield* client.JobRuns({ job: "hourly" }, reader)).toEqual([])
      expect((yield* client.ListUsers({}, reader)).total).toBe(45)
      for (const call of [client.TriggerJob, client.PauseJob, client.ResumeJob]) {
        const refused = yield* Effect.flip(call({ job: "hourly" }, reader))
        expect(refused._tag).toBe("Unauthorized")
        expect(refused.message).toMatch(/the read-only token cannot call (TriggerJob|PauseJob|ResumeJob)/)
      }
      expect((yield* client.ListJobs(undefined, reader)).find((job) => job.name === "hourly")!.paused).toBe(false)
    }).pipe(Effect.provide(serverLayer({ token: TOKEN, readToken: READ_TOKEN }))))

  it.scoped("a plain HTTP POST (the README's curl) with the bearer header reaches the job service", () =>
    Effect.gen(function*() {
      const post = (body: unknown, token?: string) =>
        HttpClientRequest.post("/rpc").pipe(
          HttpClientRequest.setHeaders(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          HttpClientRequest.bodyUnsafeJson(body),
          HttpClient.execute,
          Effect.flatMap((response) => response.json)
        )
      const request = { _tag: "Request", id: "1", tag: "PauseJob", payload: { job: "hourly" }, headers: [] }
      const denied = (yield* post(request)) as ReadonlyArray<any>
      expect(denied[0].exit._tag).toBe("Failure")
      expect(JSON.stringify(denied[0].exit)).toContain("Unauthorized")
      const allowed = (yield* post(request, TOKEN)) as ReadonlyArray<any>
      expect(allowed[0]).toMatchObject({ _tag: "Exit", requestId: "1", exit: { _tag: "Success" } })
      const listRequest = { _tag: "Request", id: "2", tag: "ListJobs", payload: {}, headers: [] }
      const list = (yield* post(listRequest, TOKEN)) as ReadonlyArray<any>
      expect(list[0].exit.value.map((job: { name: string }) => job.name)).toEqual(["hourly", "nightly"])
    }).pipe(Effect.provide(serverLayer({ token: TOKEN }))))

  it.scoped("on an rpc-mode node, jobs are listed from the store and trigger without a leader is NoLeader", () =>
    Effect.gen(function*() {
      const client = yield* rpcClient
      const list = yield* client.ListJobs()
      expect(list.map((job) => job.name)).toEqual(["hourly", "nightly"])
      expect(list.find((job) => job.name === "nightly")!.nextFire).not.toBeNull()
      const noLeader = yield* Effect.flip(client.TriggerJob({ job: "hourly" }))
      expect(noLeader._tag).toBe("NoLeader")
      expect(noLeader.message).toContain("no leader is published")
      expect((yield* Effect.flip(client.TriggerJob({ job: "nope" })))._tag).toBe("UnknownJob")
      yield* client.PauseJob({ job: "hourly" })
      expect((yield* client.ListJobs()).find((job) => job.name === "hourly")!.paused).toBe(true)
    }).pipe(Effect.provide(serverLayer({ control: "store" }))))

  it.scoped("a trigger on a node that does not lead, with a published leader that does not answer, is NoLeader", () =>
    Effect.gen(function*() {
      const client = yield* rpcClient
      const error = yield* Effect.flip(client.TriggerJob({ job: "hourly" }))
      expect(error._tag).toBe("NoLeader")
      expect(error.message).toContain("the leader gone at http://127.0.0.1:1 cannot be reached")
      const view = yield* client.Leader()
      expect(view.leader?.nodeId).toBe("gone")
      expect(view.node).toEqual({
        nodeId: "test-node",
        mode: "all",
        version: "0.0.0-test",
        configHash: "hash-test",
        leading: false,
        configDrift: false
      })
      // A request already forwarded once is not forwarded again.
      const looped = yield* Effect.flip(
        client.TriggerJob({ job: "hourly" }, { headers: { "x-scheduler-forwarded-by": "node-x" } })
      )
      expect(looped.message).toContain("forwarded by node-x to test-node, which does not lead")
    }).pipe(Effect.provide(serverLayer({ control: "store", leaderUrl: "http://127.0.0.1:1" }))))
})

describe("the HTTP edge of POST /rpc", () => {
  /** POST `body` (a string, or a stream of chunks without Content-Length) to the test server's /rpc. */
  const post = (body: string | ReadableStream<Uint8Array>, headers: Record<string, string> = {}) =>
    HttpServer.addressFormattedWith((base) =>
      Effect.promise(async () => {
        const response = await fetch(`${base}/rpc`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body,
          // Node's fetch needs this to send a stream.
          ...(typeof body === "string" ? {} : { duplex: "half" })
        } as RequestInit)
        const text = await response.text()
        return {
          status: response.status,
          text,
          json: (() => {
            try {
              return JSON.parse(text) as any
            } catch {
              return undefined
            }
          })()
        }
      })
    )
  const request = (tag: string, payload: unknown, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ _tag: "Request", id: "1", tag, payload, headers: [], ...extra })

  it.scoped("a body over http.maxBodySize is 413, whether Content-Length says so or the stream runs over", () =>
    Effect.gen(function*() {
      const big = request("JobRuns", { job: "x".repeat(20_000) })
      const declared = yield* post(big)
      expect(declared.status).toBe(413)
      expect(declared.json).toEqual({
        error: "PayloadTooLarge",
        message: "the body is larger than the limit of 16384 bytes (http.maxBodySize)"
      })
      const chunk = new TextEncoder().encode(" ".repeat(4096))
      let sent = 0
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          // 64 KiB of whitespace in 4 KiB chunks, no Content-Length: the server stops reading at the limit.
          if (sent++ < 16) controller.enqueue(chunk)
          else controller.close()
        }
      })
      const streamed = yield* post(stream)
      expect(streamed.status).toBe(413)
      // A request under the limit still works.
      const small = yield* post(request("ListJobs", {}))
      expect(small.status).toBe(200)
      expect(small.json[0].exit._tag).toBe("Success")
    }).pipe(Effect.provide(serverLayer({ maxBodySize: 16 * 1024 }))))

  it.scoped("bad JSON, a missing or malformed field, an unknown RPC are 400 with one clear message", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["{\"_tag\": \"Request\", ", "the body is not JSON"],
        ["42", "message 0: expected an object, got 42"],
        ["[]", "the body holds no message"],
        [JSON.stringify({ _tag: "Call", id: "1" }), "message 0: _tag must be \"Request\", got \"Call\""],
        [JSON.stringify({ _tag: "Request", tag: "ListJobs", payload: {} }), "message 0: id must be a non-empty string"],
        [JSON.stringify({ _tag: "Request", id: "1", payload: {} }), "message 0: tag is missing"],
        [request("DropTables", {}), "message 0: unknown RPC \"DropTables\" (known: GetUser, ListUsers, ListJobs"],
        [request("TriggerJob", {}), "message 0 (TriggerJob): payload.job: is missing"],
        [request("JobRuns", { job: "hourly", limit: 5000 }), "message 0 (JobRuns): payload.limit:"],
        [request("GetUser", { id: "one" }), "message 0 (GetUser): payload.id: Expected number, actual \"one\""],
        [request("ListJobs", {}, { headers: "yes" }), "message 0: headers must be a list of [name, value] string pairs"]
      ]
      for (const [body, message] of cases) {
        const response = yield* post(body)
        expect(response.status, body).toBe(400)
        expect(response.json.error, body).toBe("BadRequest")
        expect(response.json.message, body).toContain(message)
      }
    }).pipe(Effect.provide(serverLayer({}))))

  it.scoped("a request without headers is served; an input echoed in a message is cut short", () =>
    Effect.gen(function*() {
      const bare = yield* post(JSON.stringify({ _tag: "Request", id: "7", tag: "ListJobs", payload: {} }))
      expect(bare.status).toBe(200)
      expect(bare.json[0]).toMatchObject({ requestId: "7", exit: { _tag: "Success" } })
      const long = yield* post(request("JobRuns", { job: "y".repeat(10_000) }))
      expect(long.status).toBe(400)
      expect(long.json.message).toContain("payload.job:")
      expect(long.json.message).toContain("more characters")
      expect(long.text.length).toBeLessThan(600)
      const notJson = yield* post("z".repeat(10_000))
      expect(notJson.status).toBe(400)
      expect(notJson.text.length).toBeLessThan(600)
    }).pipe(Effect.provide(serverLayer({}))))

  it.scoped("the caller cannot forge the client address the edge passes to the handlers", () =>
    Effect.gen(function*() {
      const response = yield* post(request("PauseJob", { job: "hourly" }), {
        "x-scheduler-client-address": "10.9.9.9"
      })
      expect(response.json[0].exit._tag).toBe("Success")
      const audit = logged.find((line) => line.message === "audit")!
      expect(audit.caller).toMatch(/127\.0\.0\.1/)
      expect(audit.caller).not.toContain("10.9.9.9")
    }).pipe(Effect.provide(serverLayer({}))))
})

describe("a request whose handling dies", () => {
  it.scoped("is answered 500 with a JSON body, and the defect is logged with the method and URL", () =>
    Effect.gen(function*() {
      const response = yield* HttpClient.get("/boom")
      expect(response.status).toBe(500)
      expect(yield* response.json).toEqual({
        error: "InternalError",
        message: "the request failed on the server (see its log: request failed)"
      })
      const line = logged.find((l) => l.message === "request failed")
      expect(line).toMatchObject({ level: "ERROR", method: "GET", url: "/boom" })
    }).pipe(Effect.provide(
      HttpServer.serve(Server.logDefects(HttpRouter.empty.pipe(HttpRouter.get("/boom", Effect.die(new Error("bug"))))))
        .pipe(
          Layer.provideMerge(NodeHttpServer.layerTest),
          Layer.provide(captureLogs),
          Layer.tap(() => Effect.sync(() => logged.splice(0)))
        )
    )))
})
