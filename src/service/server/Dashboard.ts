/**
 * The web dashboard at `GET /ui`, served by every node: one HTML page and one script (`/ui/app.js`), no build step
 * and no dependency. The script calls this node's own API (`POST /rpc`, the same RPCs as the CLI): jobs with their
 * trigger, next fire, last outcome, pause state and buttons (trigger, pause, resume), a job's run history (outcome,
 * duration, lateness, node, error), and who leads. With `http.token` set, the page asks for the token (kept in the
 * tab's session storage only) and sends it as `Authorization: Bearer`.
 *
 * Served with a Content-Security-Policy that allows only this origin's script and API, and no framing. Every value
 * from the API is put in the page as text, never as HTML.
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"

/**
 * The security headers of both files.
 *
 * @since 0.1.0
 * @category constants
 */
export const HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store"
}

/**
 * The page.
 *
 * @since 0.1.0
 * @category files
 */
export const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>effect-job-scheduler</title>
<style>
  :root { --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --bg: #f8f9fb; --ok: #137333; --bad: #b42318; --warn: #b54708; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; gap: 16px; align-items: center; padding: 12px 20px; background: #fff; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
  header h1 { font-size: 16px; margin: 0 12px 0 0; }
  #leader { color: var(--muted); }
  #leader b { color: var(--fg); }
  #auth { margin-left: auto; display: flex; gap: 6px; align-items: center; }
  main { padding: 16px 20px; display: grid; gap: 16px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; overflow-x: auto; }
  h2 { font-size: 14px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
  td.error { white-space: normal; max-width: 420px; color: var(--bad); font-family: ui-monospace, monospace; font-size: 12px; }
  button { font: inherit; padding: 3px 10px; border: 1px solid #c9ced6; border-radius: 6px; background: #fff; cursor: pointer; }
  button:hover { background: #f2f4f7; }
  button.link { border: none; padding: 0; background: none; color: #175cd3; text-decoration: underline; }
  .outcome-success { color: var(--ok); font-weight: 600; }
  .outcome-fail { color: var(--bad); font-weight: 600; }
  .paused { color: var(--warn); font-weight: 600; }
  .drift { color: var(--bad); font-weight: 600; }
  #message { min-height: 1.4em; color: var(--muted); }
  #message.error { color: var(--bad); }
  input { font: inherit; padding: 3px 6px; border: 1px solid #c9ced6; border-radius: 6px; }
</style>
</head>
<body>
<header>
  <h1>effect-job-scheduler</h1>
  <span id="leader">leader: …</span>
  <span id="auth"><label for="token">token</label><input id="token" type="password" autocomplete="off" placeholder="bearer token"><button id="save-token" type="button">use</button></span>
</header>
<main>
  <div id="message" role="status"></div>
  <section>
    <h2>Jobs</h2>
    <table id="jobs">
      <thead><tr><th>Job</th><th>Trigger</th><th>Next fire</th><th>Last run</th><th>Paused</th><th>Running</th><th>Runs / failures</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section id="history" hidden>
    <h2>Runs of <span id="history-job"></span></h2>
    <table id="runs">
      <thead><tr><th>Run id</th><th>Kind</th><th>Fire time</th><th>Duration</th><th>Lateness</th><th>Node</th><th>Fence</th><th>Outcome</th><th>Error</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
<script src="/ui/app.js"></script>
</body>
</html>
`

/**
 * The page's script (plain browser JavaScript).
 *
 * @since 0.1.0
 * @category files
 */
export const script = `"use strict"
;(() => {
  const REFRESH_MS = 5000
  const $ = (id) => document.getElementById(id)
  let selected = null
  let nextId = 1
  const tokenInput = $("token")
  tokenInput.value = sessionStorage.getItem("scheduler-token") || ""
  $("save-token").addEventListener("click", () => {
    sessionStorage.setItem("scheduler-token", tokenInput.value)
    refresh()
  })

  const say = (text, isError) => {
    const el = $("message")
    el.textContent = text
    el.className = isError ? "error" : ""
  }

  const describeFailure = (exit) => {
    const cause = exit.cause || {}
    const error = cause.error || cause.defect || cause
    if (error && typeof error === "object") {
      if (error._tag === "Unauthorized") return "unauthorized: " + error.reason + " (enter the token above)"
      if (error.reason) return error._tag + ": " + error.reason
      if (error.job) return error._tag + ": " + error.job
      return error._tag || JSON.stringify(error)
    }
    return String(error)
  }

  // One RPC over POST /rpc; resolves with its value, rejects with a readable message.
  const call = async (tag, payload) => {
    const headers = { "content-type": "application/json" }
    const token = sessionStorage.getItem("scheduler-token")
    if (token) headers.authorization = "Bearer " + token
    const response = await fetch("/rpc", {
      method: "POST",
      headers,
      body: JSON.stringify({ _tag: "Request", id: String(nextId++), tag, payload: payload || {}, headers: [] })
    })
    const body = await response.json().catch(() => null)
    if (!response.ok) throw new Error((body && body.message) || "HTTP " + response.status)
    const message = Array.isArray(body) ? body.find((m) => m._tag === "Exit") : null
    if (!message) throw new Error("no answer for " + tag)
    if (message.exit._tag !== "Success") throw new Error(describeFailure(message.exit))
    return message.exit.value
  }

  const time = (value) => {
    if (value === null || value === undefined) return "-"
    const date = new Date(value)
    return isNaN(date.getTime()) ? "-" : date.toISOString().replace("T", " ").replace(/\\.\\d{3}Z$/, "Z")
  }
  const ms = (value) => value < 1000 ? Math.round(value) + " ms" : (value / 1000).toFixed(1) + " s"
  const cell = (row, text, className) => {
    const td = document.createElement("td")
    td.textContent = text
    if (className) td.className = className
    row.appendChild(td)
    return td
  }
  const outcomeClass = (outcome) => outcome === "success" ? "outcome-success" : "outcome-fail"
  const button = (label, name, onClick) => {
    const b = document.createElement("button")
    b.type = "button"
    b.textContent = label
    b.dataset.action = label.toLowerCase()
    b.dataset.job = name
    b.addEventListener("click", onClick)
    return b
  }

  const act = async (tag, name, verb) => {
    try {
      const result = await call(tag, { job: name })
      if (tag === "TriggerJob") {
        say(result._tag === "Started" ? "started " + name + ": run " + result.runId : "skipped " + name + ": " + result.reason)
        selected = name
      } else {
        say(verb + " " + name)
      }
      await refresh()
    } catch (error) {
      say(tag + " " + name + ": " + error.message, true)
    }
  }

  const renderJobs = (jobs) => {
    const body = $("jobs").tBodies[0]
    body.replaceChildren()
    for (const job of jobs) {
      const row = document.createElement("tr")
      row.dataset.job = job.name
      const nameCell = document.createElement("td")
      const open = document.createElement("button")
      open.type = "button"
      open.className = "link"
      open.textContent = job.name
      open.addEventListener("click", () => { selected = job.name; refresh() })
      nameCell.appendChild(open)
      row.appendChild(nameCell)
      cell(row, job.trigger + (job.enabled ? "" : " (disabled)"))
      cell(row, time(job.nextFire)).dataset.field = "nextFire"
      const last = job.lastRun
      cell(row, last ? last.outcome + " at " + time(last.finishedAt) : "-", last ? outcomeClass(last.outcome) : "").dataset.field = "lastRun"
      cell(row, job.paused ? "paused" : "no", job.paused ? "paused" : "").dataset.field = "paused"
      cell(row, String(job.running)).dataset.field = "running"
      cell(row, job.counters.runs + " / " + job.counters.failures)
      const actions = document.createElement("td")
      actions.appendChild(button("Trigger", job.name, () => act("TriggerJob", job.name, "triggered")))
      actions.appendChild(document.createTextNode(" "))
      actions.appendChild(job.paused
        ? button("Resume", job.name, () => act("ResumeJob", job.name, "resumed"))
        : button("Pause", job.name, () => act("PauseJob", job.name, "paused")))
      row.appendChild(actions)
      body.appendChild(row)
    }
  }

  const renderRuns = (name, runs) => {
    $("history").hidden = false
    $("history-job").textContent = name
    const body = $("runs").tBodies[0]
    body.replaceChildren()
    for (const run of runs) {
      const row = document.createElement("tr")
      row.dataset.runId = run.runId
      cell(row, run.runId)
      cell(row, run.kind)
      cell(row, time(run.fireTime))
      cell(row, ms(run.durationMs))
      cell(row, ms(Math.max(0, run.startedAt - run.fireTime)))
      cell(row, run.node)
      cell(row, String(run.fence))
      cell(row, run.outcome, outcomeClass(run.outcome))
      // A record's error is { tag, code?, message }; records of older versions may hold a plain string.
      const error = run.error
      cell(row, !error ? "" : typeof error === "string" ? error :
        error.tag + (error.code ? " " + error.code : "") + ": " + error.message, "error")
      body.appendChild(row)
    }
  }

  const renderLeader = (view) => {
    const el = $("leader")
    el.replaceChildren()
    const add = (text, bold, className) => {
      const span = document.createElement(bold ? "b" : "span")
      span.textContent = text
      if (className) span.className = className
      el.appendChild(span)
    }
    if (view.leader === null) {
      add("no leader published", true, "drift")
    } else {
      add("leader ")
      add(view.leader.nodeId, true)
      add(" since " + time(view.leader.since) + " · " + view.leader.version + " · config " + view.leader.configHash)
    }
    add(" · this node ")
    add(view.node.nodeId, true)
    add(" (" + view.node.mode + (view.node.leading ? ", leading" : "") + ")")
    if (view.node.configDrift) add(" · its job definitions differ from the leader's", true, "drift")
  }

  let busy = false
  const refresh = async () => {
    if (busy) return
    busy = true
    try {
      const [jobs, leader] = await Promise.all([call("ListJobs"), call("Leader")])
      renderLeader(leader)
      renderJobs(jobs)
      if (selected === null && jobs.length > 0) selected = jobs[0].name
      if (selected !== null) renderRuns(selected, await call("JobRuns", { job: selected, limit: 50 }))
      document.body.dataset.loaded = "true"
      if ($("message").className === "error") say("")
    } catch (error) {
      say(error.message, true)
    } finally {
      busy = false
    }
  }

  refresh()
  setInterval(refresh, REFRESH_MS)
})()
`

/**
 * `GET /ui`: the page.
 *
 * @since 0.1.0
 * @category routes
 */
export const pageResponse = HttpServerResponse.text(page, { contentType: "text/html; charset=utf-8", headers: HEADERS })

/**
 * `GET /ui/app.js`: the script.
 *
 * @since 0.1.0
 * @category routes
 */
export const scriptResponse = HttpServerResponse.text(script, {
  contentType: "text/javascript; charset=utf-8",
  headers: HEADERS
})
