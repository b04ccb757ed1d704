/**
 * Effect metrics in the Prometheus text exposition format (version 0.0.4), rendered from `Metrics.snapshot`
 * (effect's `Metric.snapshot` and the scheduler's per-job series).
 *
 * - counter -> `counter`; gauge -> `gauge`; histogram -> `histogram` with cumulative `_bucket{le="..."}` lines
 *   ending in `le="+Inf"`, then `_sum` and `_count`; summary -> `summary` with `{quantile="..."}`, `_sum`, `_count`;
 *   frequency -> a `counter` with one series per observed value, in the label `key`.
 * - Metric and label names are sanitised to Prometheus' alphabet; label values escape `\`, `"` and newlines; `HELP`
 *   text escapes `\` and newlines. Each family gets one `HELP`/`TYPE` header, whatever its number of label sets.
 * - Clean under `promtool check metrics`: a counter's name ends in `_total` (added when missing), every family has a
 *   `HELP` line (effect's own fiber metrics get theirs from `RUNTIME_HELP`, any other family without a description
 *   gets its name), and effect's `effect_fiber_active`, a counter that goes down, is rendered as a gauge.
 * - `renderFamilies` renders values computed at scrape time (`OperatorMetrics`) with the same rules.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as MetricKey from "effect/MetricKey"
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import * as Metrics from "../../Metrics.js"

/**
 * The `Content-Type` of the rendered text.
 *
 * @since 0.1.0
 * @category constants
 */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

/**
 * A metric name in Prometheus' alphabet `[a-zA-Z_:][a-zA-Z0-9_:]*`: other characters become `_`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const metricName = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[a-zA-Z_:]/.test(cleaned) ? cleaned : `_${cleaned}`
}

/**
 * A label name in `[a-zA-Z_][a-zA-Z0-9_]*`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const labelName = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_]/g, "_")
  return /^[a-zA-Z_]/.test(cleaned) ? cleaned : `_${cleaned}`
}

/**
 * A label value with `\`, `"` and line feeds escaped.
 *
 * @since 0.1.0
 * @category encoding
 */
export const escapeLabelValue = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

/**
 * `HELP` text with `\` and line feeds escaped.
 *
 * @since 0.1.0
 * @category encoding
 */
export const escapeHelp = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

/**
 * A sample value: integers as is, `NaN`, `+Inf`, `-Inf` as Prometheus spells them.
 *
 * @since 0.1.0
 * @category encoding
 */
export const formatValue = (value: number | bigint): string => {
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Number.POSITIVE_INFINITY) return "+Inf"
  if (value === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(value)
}

const labels = (pairs: ReadonlyArray<readonly [string, string]>): string =>
  pairs.length === 0
    ? ""
    : `{${pairs.map(([key, value]) => `${labelName(key)}="${escapeLabelValue(value)}"`).join(",")}}`

interface Family {
  readonly type: string
  readonly help: string | undefined
  readonly lines: Array<string>
}

/**
 * The `HELP` text of effect's runtime metrics (they carry no description).
 *
 * @since 0.1.0
 * @category encoding
 */
export const RUNTIME_HELP: Readonly<Record<string, string>> = {
  effect_fiber_started: "Fibers started",
  effect_fiber_successes: "Fibers that ended in success",
  effect_fiber_failures: "Fibers that ended in failure",
  effect_fiber_active: "Fibers running now",
  effect_fiber_lifetimes: "Fiber lifetimes in milliseconds"
}

/** effect metrics typed as counters that go down: rendered as gauges. */
const GAUGES_TYPED_AS_COUNTERS: ReadonlySet<string> = new Set(["effect_fiber_active"])

/**
 * The name a family is rendered under: counters end in `_total`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const familyName = (name: string, type: string): string =>
  type === "counter" && !name.endsWith("_total") ? `${name}_total` : name

const typeOf = (name: string, state: MetricState.MetricState.Untyped): string | undefined =>
  GAUGES_TYPED_AS_COUNTERS.has(name)
    ? "gauge"
    : MetricState.isCounterState(state) || MetricState.isFrequencyState(state)
    ? "counter"
    : MetricState.isGaugeState(state)
    ? "gauge"
    : MetricState.isHistogramState(state)
    ? "histogram"
    : MetricState.isSummaryState(state)
    ? "summary"
    : undefined

/**
 * Render metric pairs (from `Metrics.snapshot`) as Prometheus text. Families are sorted by name and series by labels,
 * so the output is stable from scrape to scrape.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (snapshot: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  const series = [...snapshot].map((pair) => {
    const key = pair.metricKey as MetricKey.MetricKey.Untyped
    const tags = key.tags.map((tag) => [tag.key, tag.value] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    // The label text once per series, not once per comparison of the sort (100,000 jobs: 300,000 series).
    const text = labels(tags)
    return { name: metricName(key.name), description: key.description, tags, text, state: pair.metricState }
  }).sort((a, b) => (a.name === b.name ? a.text.localeCompare(b.text) : a.name < b.name ? -1 : 1))

  for (const { description, name: rawName, state, tags, text } of series) {
    const type = typeOf(rawName, state)
    if (type === undefined) continue
    const name = familyName(rawName, type)
    let family = families.get(name)
    if (family === undefined) {
      family = { type, help: Option.getOrUndefined(description) ?? RUNTIME_HELP[rawName] ?? rawName, lines: [] }
      families.set(name, family)
    } else if (family.type !== type) {
      // Two metrics of different kinds under one name cannot share a family; the first one wins.
      continue
    }
    const lines = family.lines
    if (MetricState.isCounterState(state) || MetricState.isGaugeState(state)) {
      lines.push(`${name}${text} ${formatValue(MetricState.isCounterState(state) ? state.count : state.value)}`)
    } else if (MetricState.isFrequencyState(state)) {
      for (const [value, count] of [...state.occurrences].sort(([a], [b]) => (a < b ? -1 : 1))) {
        lines.push(`${name}${labels([...tags, ["key", value]])} ${formatValue(count)}`)
      }
    } else if (MetricState.isHistogramState(state)) {
      // effect's buckets are already cumulative; its last boundary is usually +Inf, and +Inf must be there.
      let hasInf = false
      for (const [boundary, count] of state.buckets) {
        if (boundary === Number.POSITIVE_INFINITY) hasInf = true
        lines.push(`${name}_bucket${labels([...tags, ["le", formatValue(boundary)]])} ${formatValue(count)}`)
      }
      if (!hasInf) lines.push(`${name}_bucket${labels([...tags, ["le", "+Inf"]])} ${formatValue(state.count)}`)
      lines.push(`${name}_sum${text} ${formatValue(state.sum)}`)
      lines.push(`${name}_count${text} ${formatValue(state.count)}`)
    } else if (MetricState.isSummaryState(state)) {
      for (const [quantile, value] of state.quantiles) {
        lines.push(
          `${name}${labels([...tags, ["quantile", formatValue(quantile)]])} ${
            formatValue(Option.getOrElse(value, () => Number.NaN))
          }`
        )
      }
      lines.push(`${name}_sum${text} ${formatValue(state.sum)}`)
      lines.push(`${name}_count${text} ${formatValue(state.count)}`)
    }
  }

  const out: Array<string> = []
  for (const [name, family] of families) {
    if (family.help !== undefined) out.push(`# HELP ${name} ${escapeHelp(family.help)}`)
    out.push(`# TYPE ${name} ${family.type}`)
    for (const line of family.lines) out.push(line)
  }
  return out.length === 0 ? "" : out.join("\n") + "\n"
}

/**
 * One series of a value computed at scrape time.
 *
 * @since 0.1.0
 * @category models
 */
export interface Sample {
  readonly labels?: ReadonlyArray<readonly [string, string]> | undefined
  readonly value: number
}

/**
 * A family of values computed at scrape time (gauges, or counters read from elsewhere such as the CPU time).
 *
 * @since 0.1.0
 * @category models
 */
export interface ComputedFamily {
  readonly name: string
  readonly help: string
  readonly type: "gauge" | "counter"
  readonly samples: ReadonlyArray<Sample>
}

/**
 * Render computed families, in the order given, with the rules of `render`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderFamilies = (families: ReadonlyArray<ComputedFamily>): string => {
  const out: Array<string> = []
  for (const family of families) {
    const name = familyName(metricName(family.name), family.type)
    out.push(`# HELP ${name} ${escapeHelp(family.help)}`)
    out.push(`# TYPE ${name} ${family.type}`)
    for (const sample of family.samples) out.push(`${name}${labels(sample.labels ?? [])} ${formatValue(sample.value)}`)
  }
  return out.length === 0 ? "" : out.join("\n") + "\n"
}

/**
 * Every metric of this process, rendered.
 *
 * @since 0.1.0
 * @category rendering
 */
export const scrape: Effect.Effect<string> = Effect.map(Metrics.snapshot, render)

/**
 * Every metric of this process, then the families `computed` gives at this scrape.
 *
 * @since 0.1.0
 * @category rendering
 */
export const scrapeWith = <R>(
  computed: Effect.Effect<ReadonlyArray<ComputedFamily>, never, R>
): Effect.Effect<string, never, R> =>
  Effect.zipWith(scrape, computed, (text, families) => text + renderFamilies(families))
