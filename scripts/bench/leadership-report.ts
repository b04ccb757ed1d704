/**
 * Leadership figures with the goals: runs scripts/bench/leadership.ts (etcd started by the test harness; ours and
 * etcd3's stock `Election` in the same run), passes its table through, and checks the goals against it.
 *
 *   node scripts/run.mjs scripts/bench/leadership-report.ts      env: as leadership.ts (RUNS, PROCESS_RUNS, TTL)
 *
 * @since 0.1.0
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import { envNumber, machine, root, table } from "./common.js"

/** One row of leadership.ts's table: scenario, figure, ours median and max, etcd3 median and max (ms). */
interface Row {
  readonly scenario: string
  readonly figure: string
  readonly oursMedian: number
  readonly oursMax: number
  readonly etcdMedian: number
  readonly etcdMax: number
}

const parseRows = (output: string): Array<Row> =>
  output.split("\n").flatMap((line) => {
    const cells = line.split("|").slice(1, -1).map((c) => c.trim())
    if (cells.length < 6) return []
    const numbers = cells.slice(2, 6).map(Number)
    if (numbers.some((x) => Number.isNaN(x))) return []
    const [oursMedian, oursMax, etcdMedian, etcdMax] = numbers as [number, number, number, number]
    return [{ scenario: cells[0]!, figure: cells[1]!, oursMedian, oursMax, etcdMedian, etcdMax }]
  })

const main = async () => {
  const ttlMs = envNumber("TTL", 2) * 1000
  console.log("## 5. Leadership (etcd): handover, failover, overlap")
  console.log(`${await machine()}; scripts/bench/leadership.ts, lease TTL ${ttlMs / 1000} s`)
  const result = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const child = spawn(process.execPath, [path.join(root, "scripts", "run.mjs"), "scripts/bench/leadership.ts"], {
      cwd: root,
      // Per-run progress goes to stderr (passed through); the table comes on stdout.
      stdio: ["ignore", "pipe", "inherit"]
    })
    let stdout = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.on("exit", (code) => resolve({ code, stdout }))
  })
  console.log("")
  console.log(result.stdout.trim())
  if (result.code !== 0) {
    console.log(`leadership.ts exited with ${result.code}`)
    process.exitCode = 1
  }
  const rows = parseRows(result.stdout)
  const find = (scenario: string, figure: string) =>
    rows.find((r) => r.scenario.startsWith(scenario) && r.figure.startsWith(figure))
  const graceful = find("graceful", "handover")
  const kill = find("kill -9", "failover")
  const stop = find("SIGSTOP", "overlap")
  const verdict = (ok: boolean | undefined) => (ok === undefined ? "not measured" : ok ? "met" : "not met")
  console.log("")
  console.log("### Leadership goals")
  console.log(table(["goal", "ours", "etcd3 Election", "verdict"], [
    [
      "graceful handover <= 5 ms median",
      graceful === undefined ? "-" : `${graceful.oursMedian} ms`,
      graceful === undefined ? "-" : `${graceful.etcdMedian} ms`,
      verdict(graceful && graceful.oursMedian <= 5)
    ],
    [
      `kill -9 failover <= TTL + 0.5 s = ${ttlMs + 500} ms max`,
      kill === undefined ? "-" : `${kill.oursMax} ms`,
      kill === undefined ? "-" : `${kill.etcdMax} ms`,
      verdict(kill && kill.oursMax <= ttlMs + 500)
    ],
    [
      "two-leader overlap under SIGSTOP = 0",
      stop === undefined ? "-" : `${stop.oursMax} ms`,
      stop === undefined ? "-" : `${stop.etcdMax} ms`,
      verdict(stop && stop.oursMax === 0)
    ]
  ]))
}

await main()
