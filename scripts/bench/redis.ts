/**
 * Per-run overhead with Redis: runs scripts/redis-roundtrips.ts (it starts and stops its own redis-server, counts the
 * commands `begin` and `finish` send and times them against a raw ioredis `SET NX PX` in the same process) and
 * prints its figures as a table with the goal and ratios against the raw round trip.
 *
 *   node scripts/run.mjs scripts/bench/redis.ts       env: BENCH_REDIS_ITERATIONS=3000
 *
 * @since 0.1.0
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import { envNumber, fmt, machine, root, table } from "./common.js"

interface Row {
  readonly name: string
  readonly roundTrips: number
  readonly p50: number
  readonly p99: number
  readonly mean: number
}

/** The lines of the table redis-roundtrips prints: name, then round trips, p50, p99 and mean (microseconds). */
const parseRows = (output: string): Array<Row> =>
  output.split("\n").flatMap((line) => {
    const match = /^(.+?)\s+(\d+\.\d\d)\s+(\d+\.\d)\s+(\d+\.\d)\s+(\d+\.\d)\s*$/.exec(line)
    if (match === null) return []
    const [, name, roundTrips, p50, p99, mean] = match
    return [{
      name: name!.trim(),
      roundTrips: Number(roundTrips),
      p50: Number(p50),
      p99: Number(p99),
      mean: Number(mean)
    }]
  })

const main = async () => {
  const iterations = envNumber("BENCH_REDIS_ITERATIONS", 3000)
  console.log("## 4. Per-run overhead with Redis (JobStore begin + finish)")
  console.log(`${await machine()}; scripts/redis-roundtrips.ts, ${iterations} iterations per row, times in us`)
  // Not runChild: that script prints a table, not a JSON result; its output is taken whole.
  const output = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [
      path.join(root, "scripts", "run.mjs"),
      "scripts/redis-roundtrips.ts",
      String(iterations)
    ], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.on("exit", (code) => resolve({ code, stdout, stderr }))
  })
  const rows = parseRows(output.stdout)
  if (output.code !== 0 || rows.length === 0) {
    console.log(`redis-roundtrips failed (exit ${output.code}): ${(output.stderr || output.stdout).trim().slice(-800)}`)
    process.exitCode = 1
    return
  }
  for (const line of output.stdout.split("\n")) if (/sends:/.test(line)) console.log(line)
  const raw = rows.find((r) => r.name.startsWith("raw SET NX"))
  const run = rows.find((r) => r.name.startsWith("locked run"))
  console.log("")
  console.log(
    `### Round trips and time on a locked run's path (goal: <= 2 round trips; ` +
      `${run !== undefined && run.roundTrips <= 2 ? "met" : "not met"})`
  )
  console.log(table(
    ["operation", "round trips", "p50 us", "p99 us", "mean us", "p50 vs raw SET NX"],
    rows.map((
      r
    ) => [
      r.name,
      fmt(r.roundTrips, 2),
      fmt(r.p50, 1),
      fmt(r.p99, 1),
      fmt(r.mean, 1),
      raw === undefined ? "-" : `${(r.p50 / raw.p50).toFixed(2)}x`
    ])
  ))
  if (raw !== undefined && run !== undefined) {
    console.log("")
    console.log(
      `A locked run adds ${fmt(run.roundTrips, 0)} round trips (begin: pause + slot + lock + fence + status in one ` +
        `script; finish: release + status + record in one) = ${fmt(run.p50, 0)} us p50 to the run's path, ` +
        `${(run.p50 / raw.p50).toFixed(2)}x one raw SET NX PX (${fmt(raw.p50, 0)} us p50) in the same run.`
    )
  }
}

await main()
