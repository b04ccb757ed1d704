import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { getJson, poll, rpc, startNode, tempDir } from "../harness/node.js"
import { promtool } from "../harness/tools.js"

const root = path.join(__dirname, "../..")

/** The samples of `name` in a scrape, by their label text (`{job="sync_user"}`, or "" without labels). */
const samples = (text: string, name: string): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line)
    if (match !== null && match[1] === name) out[match[2] ?? ""] = Number(match[3])
  }
  return out
}

describe("the example alert rules", () => {
  it("pass promtool check rules, and their unit tests pass promtool test rules", () => {
    const check = promtool(["check", "rules", path.join(root, "config/alerts.yml")])
    expect(check.output).toContain("SUCCESS: 10 rules found")
    expect(check.status).toBe(0)
    const tests = promtool(["test", "rules", path.join(root, "config/alerts.test.yml")])
    expect(tests.output).toContain("SUCCESS")
    expect(tests.status).toBe(0)
  })
})

describe("/metrics of a running node", () => {
  it.live(
    "is clean under promtool check metrics, has every job's series from start-up, and follows the jobs",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("svc-metrics")
        const config = path.join(dir, "node.yaml")
        fs.writeFileSync(config, "jobs:\n  sync_user: { every: 1 second, timeout: 30 seconds }\n")
        const node = yield* startNode({ id: "node-m", mode: "all", config, dir })
        yield* poll(
          "/healthz",
          "60 seconds",
          async () => (await getJson(node.port, "/healthz")).status === 200 || undefined
        )
        const scrape = () =>
          Effect.promise(() => fetch(`http://127.0.0.1:${node.port}/metrics`).then((response) => response.text()))

        const first = yield* scrape()
        const check = promtool(["check", "metrics"], first)
        expect(check.output).toBe("")
        expect(check.status).toBe(0)
        // Both jobs, whatever has happened yet.
        for (
          const name of [
            "job_last_success_timestamp_seconds",
            "job_last_failure_timestamp_seconds",
            "job_next_fire_timestamp_seconds",
            "job_paused",
            "job_running",
            "job_interval_seconds"
          ]
        ) {
          expect(Object.keys(samples(first, name)).sort(), name).toEqual([
            "{job=\"archive_user\"}",
            "{job=\"sync_user\"}"
          ])
        }
        expect(samples(first, "job_interval_seconds")).toEqual({
          "{job=\"archive_user\"}": 86400,
          "{job=\"sync_user\"}": 1
        })
        expect(samples(first, "build_info")).toEqual({ "{mode=\"all\",node=\"node-m\",version=\"0.1.0\"}": 1 })
        expect(samples(first, "store_up")).toEqual({ "": 1 })
        expect(samples(first, "job_paused")["{job=\"sync_user\"}"]).toBe(0)
        // The next fire of the nightly job is a 02:00 Shanghai time (18:00 UTC) in the future.
        const nightly = samples(first, "job_next_fire_timestamp_seconds")["{job=\"archive_user\"}"]!
        expect(nightly * 1000).toBeGreaterThan(Date.now())
        expect(new Date(nightly * 1000).toISOString()).toMatch(/T18:00:00\.000Z$/)
        for (const name of ["process_cpu_seconds_total", "process_heap_bytes", "nodejs_eventloop_lag_seconds"]) {
          expect(samples(first, name)[""], name).toBeGreaterThanOrEqual(0)
        }
        expect(samples(first, "process_start_time_seconds")[""]! * 1000).toBeLessThanOrEqual(Date.now())

        // After a run: the newest success is the newest record's end.
        const text = yield* poll("a success in /metrics", "30 seconds", async () => {
          const body = await fetch(`http://127.0.0.1:${node.port}/metrics`).then((response) => response.text())
          return (samples(body, "job_last_success_timestamp_seconds")["{job=\"sync_user\"}"] ?? 0) > 0
            ? body
            : undefined
        })
        const runs = yield* Effect.promise(() => rpc(node.port, "JobRuns", { job: "sync_user", limit: 100 }))
        const successes = runs.value.filter((run: any) => run.outcome === "success").map((run: any) => run.finishedAt)
        expect(successes).toContain(samples(text, "job_last_success_timestamp_seconds")["{job=\"sync_user\"}"]! * 1000)
        expect(samples(text, "job_runs_total")["{job=\"sync_user\",outcome=\"success\"}"]).toBeGreaterThanOrEqual(1)

        // Pause: job_paused 1 on the next scrape.
        yield* Effect.promise(() => rpc(node.port, "PauseJob", { job: "sync_user" }))
        expect(samples(yield* scrape(), "job_paused")["{job=\"sync_user\"}"]).toBe(1)
        const again = promtool(["check", "metrics"], yield* scrape())
        expect(again.output).toBe("")
      }).pipe(Effect.scoped),
    120_000
  )
})
