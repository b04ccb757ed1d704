/**
 * Plain-text tables and values for the CLI's human output (the `--json` output is the RPC's own JSON).
 *
 * @since 0.1.0
 */

/**
 * Columns padded to their widest cell, separated by two spaces, headers first.
 *
 * @since 0.1.0
 * @category formatting
 */
export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ").trimEnd()
  return [line(headers), ...rows.map(line)].join("\n")
}

/**
 * An epoch-ms time or ISO string as `2026-01-01 02:00:00Z`, or `-`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const time = (value: Date | number | string | null | undefined): string => {
  if (value === null || value === undefined) return "-"
  const date = new Date(value)
  return Number.isNaN(date.getTime()) ? "-" : date.toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z")
}

/**
 * Milliseconds as `850ms`, `12.3s`, `4m05s`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const duration = (ms: number): string => {
  if (!Number.isFinite(ms)) return "-"
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  const minutes = Math.floor(ms / 60_000)
  return `${minutes}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, "0")}s`
}

/**
 * `text` on one line, cut to `max` characters.
 *
 * @since 0.1.0
 * @category formatting
 */
export const oneLine = (text: string | undefined, max = 60): string => {
  if (text === undefined || text === "") return "-"
  const flat = text.replace(/\s+/g, " ").trim()
  return flat.length <= max ? flat : `${flat.slice(0, max - 3)}...`
}
