/**
 * Helpers shared by the benchmark scripts: a sub-millisecond wall clock, percentiles, child processes that report
 * one JSON result, and markdown tables with ratios against the best peer.
 *
 * @since 0.1.0
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"

/** The line prefix a child process writes its result after; anything else it prints is passed through. */
const RESULT_PREFIX = "BENCH_RESULT "

/** The repository root (two levels above this script, or above the bundle in .tmp/run/). */
export const root: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")

// ---------------------------------------------------------------------------------------------------------------
// Clock
// ---------------------------------------------------------------------------------------------------------------

let offset = 0

/**
 * Align the monotonic clock with `Date.now()`: spin until `Date.now()` ticks over, so that at that instant the wall
 * clock is exactly on a whole millisecond. Afterwards `now()` reads the wall clock with microsecond resolution
 * (schedulers aim at `Date.now()` targets, so lateness must be read on that clock, not on `performance.timeOrigin`,
 * which can differ from it by a fraction of a millisecond or more).
 *
 * @since 0.1.0
 */
export const calibrateClock = (): void => {
  const first = Date.now()
  let tick = Date.now()
  while (tick === first) tick = Date.now()
  offset = tick - performance.now()
}

/**
 * Wall-clock milliseconds with sub-millisecond resolution (call `calibrateClock` once first).
 *
 * @since 0.1.0
 */
export const now = (): number => performance.now() + offset

/**
 * Run a full garbage collection if node runs with --expose-gc (twice: the first pass can leave finalizable objects).
 *
 * @since 0.1.0
 */
export const fullGc = (): boolean => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) return false
  gc()
  gc()
  return true
}

/**
 * A promise that resolves after `ms` (a plain timer: one among the scheduler's, never in the measured path).
 *
 * @since 0.1.0
 */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))

// ---------------------------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------------------------

/**
 * The p-th percentile (nearest rank) of an ascending array.
 *
 * @since 0.1.0
 */
export const percentile = (sorted: ArrayLike<number>, p: number): number =>
  sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!

/**
 * Median of any array (copied, then sorted).
 *
 * @since 0.1.0
 */
export const median = (xs: ReadonlyArray<number>): number => percentile([...xs].sort((a, b) => a - b), 50)

// ---------------------------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------------------------

/**
 * A number from the environment, or the default.
 *
 * @since 0.1.0
 */
export const envNumber = (name: string, fallback: number): number => {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  const value = Number(raw)
  if (!Number.isFinite(value)) throw new Error(`${name} must be a number, got "${raw}"`)
  return value
}

/**
 * A comma-separated list of numbers from the environment, or the default.
 *
 * @since 0.1.0
 */
export const envNumbers = (name: string, fallback: ReadonlyArray<number>): ReadonlyArray<number> => {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  return raw.split(",").map((x) => {
    const value = Number(x.replaceAll("_", ""))
    if (!Number.isFinite(value)) throw new Error(`${name} must be comma-separated numbers, got "${raw}"`)
    return value
  })
}

/**
 * A comma-separated filter from the environment (contender names); `undefined` keeps everything.
 *
 * @since 0.1.0
 */
export const envFilter = (name: string): (value: string) => boolean => {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return () => true
  const wanted = raw.split(",").map((x) => x.trim())
  return (value) => wanted.includes(value)
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------------------------

/**
 * Print the result of a child process (the parent picks it out of stdout).
 *
 * @since 0.1.0
 */
export const report = (result: unknown): void => {
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`)
}

/**
 * The command that runs this script again: the bundle that is running now when started through scripts/run.mjs (no
 * second esbuild call), else the TypeScript file through scripts/run.mjs.
 *
 * @since 0.1.0
 */
export const selfCommand = (metaUrl: string, nodeFlags: ReadonlyArray<string>): Array<string> => {
  const file = fileURLToPath(metaUrl)
  return file.endsWith(".ts")
    ? [...nodeFlags, path.join(root, "scripts", "run.mjs"), file]
    : [...nodeFlags, file]
}

/**
 * @since 0.1.0
 */
export type ChildOutcome<A> =
  | { readonly _tag: "Ok"; readonly value: A }
  | { readonly _tag: "Failed"; readonly reason: string }

/**
 * Run `node <args>` with `env` added, pass its stderr through, and return the JSON it reported. A child that exits
 * without a result (a crash, out of memory) or outlives `timeoutMs` (killed) is a `Failed` with the reason.
 *
 * @since 0.1.0
 */
export const runChild = <A>(
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  timeoutMs: number
): Promise<ChildOutcome<A>> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderrTail = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-2000)
      if (process.env.BENCH_VERBOSE !== undefined) process.stderr.write(chunk)
    })
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill("SIGKILL")
    }, timeoutMs)
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      const line = stdout.split("\n").find((l) => l.startsWith(RESULT_PREFIX))
      if (line !== undefined) return resolve({ _tag: "Ok", value: JSON.parse(line.slice(RESULT_PREFIX.length)) as A })
      const oom = /heap out of memory|Allocation failed/.test(stderrTail)
      const reason = timedOut
        ? `killed after ${Math.round(timeoutMs / 1000)} s`
        : oom
        ? "out of memory"
        : `exit ${code ?? signal}: ${stderrTail.trim().split("\n").slice(-3).join(" / ")}`
      resolve({ _tag: "Failed", reason })
    })
  })

// ---------------------------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------------------------

/**
 * A markdown table (so that it can be pasted into the README as is), columns padded for the terminal.
 *
 * @since 0.1.0
 */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`
  const rule = `|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`
  return [line(header), rule, ...rows.map(line)].join("\n")
}

/**
 * A number for a table: `digits` decimals, thousands separated; `-` for undefined or NaN.
 *
 * @since 0.1.0
 */
export const fmt = (value: number | null | undefined, digits = 1): string =>
  // null: a NaN that went through JSON.
  value === undefined || value === null || Number.isNaN(value)
    ? "-"
    : value === Infinity
    ? "inf"
    : value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })

/**
 * `value / best` as `1.23x`; `-` when either is missing or the best is 0.
 *
 * @since 0.1.0
 */
export const ratio = (value: number | null | undefined, best: number | null | undefined): string =>
  value === undefined || value === null || best === undefined || best === null || !Number.isFinite(value) ||
    !Number.isFinite(best) || best === 0
    ? "-"
    : `${(value / best).toFixed(2)}x`

/**
 * The machine the figures were taken on, for the head of every table.
 *
 * @since 0.1.0
 */
export const machine = async (): Promise<string> => {
  const os = await import("node:os")
  const cpus = os.cpus()
  return `node ${process.version}, ${cpus.length} x ${cpus[0]?.model.trim() ?? "cpu"}, ` +
    `${Math.round(os.totalmem() / 2 ** 30)} GiB, load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`
}
