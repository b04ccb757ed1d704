import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { chromium } from "playwright-core"
import { getJson, poll, rpc, startNode, tempDir } from "../harness/node.js"
import { requireBinary } from "../harness/tools.js"

const root = path.join(__dirname, "../..")
const TOKEN = "ui-t0ken"

/** Debian's Chromium, headless, on an empty profile, with nothing that reaches the network by itself. */
const browser = Effect.acquireRelease(
  Effect.promise(async () => {
    const executablePath = requireBinary("chromium", "chromium", ["/usr/bin/chromium"])
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), "ui-profile-"))
    const context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      viewport: { width: 1440, height: 760 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run"
      ],
      timeout: 60_000
    })
    return { context, profile }
  }),
  ({ context, profile }) =>
    Effect.promise(async () => {
      await context.close().catch(() => undefined)
      fs.rmSync(profile, { recursive: true, force: true })
    })
)

const time = (value: string | number | null) =>
  value === null ? "-" : new Date(value).toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z")

describe("the dashboard at /ui, in headless Chromium", () => {
  it.live(
    "shows the jobs and runs the API gives, asks for the token, and a click on Trigger adds a run",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("svc-ui")
        const config = path.join(dir, "node.yaml")
        fs.writeFileSync(
          config,
          `http: { token: ${TOKEN} }\njobs:\n  sync_user: { every: 1 hour, timeout: 30 seconds }\n`
        )
        const node = yield* startNode({ id: "node-ui", mode: "all", config, dir })
        yield* poll(
          "/healthz",
          "60 seconds",
          async () => (await getJson(node.port, "/healthz")).status === 200 || undefined
        )
        const { context } = yield* browser
        const page = yield* Effect.promise(() => context.newPage())
        const url = `http://127.0.0.1:${node.port}/ui`

        // The page and its script come with a strict CSP.
        const response = yield* Effect.promise(() => page.goto(url))
        expect(response!.status()).toBe(200)
        expect(response!.headers()["content-security-policy"]).toContain("script-src 'self'")
        // Without the token: the refusal is shown, no job.
        yield* Effect.promise(() => page.locator("#message", { hasText: /unauthorized/ }).waitFor())
        expect(yield* Effect.promise(() => page.textContent("#message"))).toContain("unauthorized")
        expect(yield* Effect.promise(() => page.locator("#jobs tbody tr").count())).toBe(0)

        // With the token: the jobs as the API gives them.
        yield* Effect.promise(() => page.fill("#token", TOKEN))
        yield* Effect.promise(() => page.click("#save-token"))
        yield* Effect.promise(() => page.waitForSelector("#jobs tbody tr[data-job=archive_user]"))
        const api = (yield* Effect.promise(() => rpc(node.port, "ListJobs", {}, TOKEN))).value
        for (const job of api) {
          const row = page.locator(`#jobs tbody tr[data-job=${job.name}]`)
          const text = yield* Effect.promise(() => row.innerText())
          expect(text).toContain(job.trigger)
          expect(yield* Effect.promise(() => row.locator("[data-field=nextFire]").innerText())).toBe(time(job.nextFire))
          const pausedCell = yield* Effect.promise(() => row.locator("[data-field=paused]").innerText())
          expect(pausedCell).toBe(job.paused ? "paused" : "no")
        }
        const leaderText = yield* Effect.promise(() => page.innerText("#leader"))
        expect(leaderText).toContain("leader node-ui since")
        expect(leaderText).toContain("0.1.0")

        // Trigger: the run id the page reports is a recorded run, and it appears in the history table.
        yield* Effect.promise(() => page.click("#jobs tbody tr[data-job=sync_user] button[data-action=trigger]"))
        yield* Effect.promise(() => page.locator("#message", { hasText: /^started sync_user: run / }).waitFor())
        const runId = (yield* Effect.promise(() => page.textContent("#message")))!.replace(
          "started sync_user: run ",
          ""
        )
        yield* Effect.promise(() => page.waitForSelector(`#runs tbody tr[data-run-id="${runId}"]`, { timeout: 30_000 }))
        const runs = (yield* Effect.promise(() => rpc(node.port, "JobRuns", { job: "sync_user", limit: 50 }, TOKEN)))
          .value
        const record = runs.find((run: any) => run.runId === runId)
        expect(record).toMatchObject({ kind: "manual", node: "node-ui" })
        const runRow = yield* Effect.promise(() => page.innerText(`#runs tbody tr[data-run-id="${runId}"]`))
        expect(runRow).toContain("manual")
        expect(runRow).toContain(time(record.fireTime))

        // Pause from the page: the API says paused, the button turns into Resume.
        yield* Effect.promise(() => page.click("#jobs tbody tr[data-job=archive_user] button[data-action=pause]"))
        const archive = "#jobs tbody tr[data-job=archive_user]"
        yield* Effect.promise(() => page.waitForSelector(`${archive} button[data-action=resume]`))
        const paused = (yield* Effect.promise(() => rpc(node.port, "ListJobs", {}, TOKEN))).value
        expect(paused.find((job: any) => job.name === "archive_user").paused).toBe(true)
        yield* Effect.promise(() => page.click("#jobs tbody tr[data-job=archive_user] button[data-action=resume]"))
        yield* Effect.promise(() => page.waitForSelector(`${archive} button[data-action=pause]`))

        // A few more runs, then the README's screenshot.
        for (let i = 2; i <= 4; i++) {
          yield* Effect.promise(() => page.click("#jobs tbody tr[data-job=sync_user] button[data-action=trigger]"))
          yield* poll(`${i} runs in the history`, "30 seconds", async () =>
            (await page.locator("#runs tbody tr").count()) >= i || undefined)
        }
        // UPDATE_SCREENSHOT=1 writes the README's docs/dashboard.png; otherwise the shot goes to the test's directory.
        const shot = process.env.UPDATE_SCREENSHOT === "1"
          ? path.join(root, "docs/dashboard.png")
          : path.join(dir, "ui.png")
        yield* Effect.promise(() =>
          page.screenshot({ path: shot, fullPage: true })
        )
        expect(fs.statSync(shot).size).toBeGreaterThan(10_000)
      }).pipe(Effect.scoped),
    180_000
  )
})
