/**
 * Cron arithmetic: `next()` calls per second and parses per second, for a fixed set of 6-field expressions in `UTC`
 * and `America/New_York`, against croner, cron-parser, node-cron and effect's `Cron`, in one process.
 *
 *   node scripts/run.mjs scripts/bench/cron.ts        env: BENCH_CRON_MS=150 (time per cell), BENCH_CRON_ROUNDS=3
 *
 * Every `next` chain starts at 2026-03-07T12:00:00Z (the day before New York springs forward, so that daily and
 * weekly chains cross both 2026 DST changes) and feeds each result back as the next start, CHAIN steps, then starts
 * again. Per library and zone the figure is the equal-count mix over the expressions: calls/s = E / sum(1 / rate of
 * each expression), so a fast every-second expression cannot hide a slow daily one. After an untimed warm-up round,
 * each cell is timed in ROUNDS rounds, libraries alternating, and the median round is kept. Every library's first chain is compared with ours:
 * `differs` lists the expressions whose results are not the same instants (DST rules differ between libraries).
 *
 * How each library is called: ours `Cron.next(cron, ms)`; effect `Cron.next(cron, date)` after
 * `Cron.parse(expr, zone)`; croner `new Cron(expr, { timezone, paused: true }).nextRun(date)`; cron-parser
 * `CronExpressionParser.parse(expr, { currentDate, tz })` then `.next()` (its iterator feeds itself back); node-cron
 * has no public next-after-a-date: its `createTask(...).timeMatcher.getNextMatch(date)` (the internal its runner
 * calls; parse figures for node-cron are `createTask`, which does more than parse).
 *
 * @since 0.1.0
 */
import { CronExpressionParser } from "cron-parser"
import { Cron as Croner } from "croner"
import * as EffectCron from "effect/Cron"
import * as Either from "effect/Either"
import * as nodeCron from "node-cron"
import * as Cron from "../../src/Cron.js"
import { envNumber, fmt, machine, median, ratio, table } from "./common.js"

const EXPRESSIONS = [
  "* * * * * *",
  "0 */5 * * * *",
  "0 0 2 * * *",
  "30 15 9 * * 1-5",
  "0 0 0 1 * *",
  "*/15 * 9-17 * * 1-5",
  "0 30 1 * * 0"
] as const
const ZONES = ["UTC", "America/New_York"] as const
const START = Date.UTC(2026, 2, 7, 12)
/** Steps per chain before starting again from START (100 weeks for the weekly expression: both DST changes twice). */
const CHAIN = 100

/** A prepared `next` chain: `step(t)` returns the next fire time after `t` (epoch ms); `reset` restarts it. */
interface Stepper {
  readonly reset: () => void
  readonly step: (after: number) => number
}

interface Library {
  readonly name: string
  readonly peer: boolean
  /** Parse (and validate) `expr` in `zone`; returns something so the work is not optimized away. */
  readonly parse: (expr: string, zone: string) => unknown
  readonly stepper: (expr: string, zone: string) => Stepper
}

/** node-cron's matcher, reached through the task (not part of its typed API). */
interface NodeCronMatcher {
  readonly timeMatcher: { readonly getNextMatch: (date: Date) => Date }
}

const noop = () => {}

const libraries: ReadonlyArray<Library> = [
  {
    name: "ours",
    peer: false,
    parse: (expr, zone) => Cron.parse(expr, { timezone: zone }),
    stepper: (expr, zone) => {
      const cron = Either.getOrThrow(Cron.parse(expr, { timezone: zone }))
      return { reset: noop, step: (after) => Cron.next(cron, after) }
    }
  },
  {
    name: "effect Cron",
    peer: true,
    parse: (expr, zone) => EffectCron.parse(expr, zone),
    stepper: (expr, zone) => {
      const cron = Either.getOrThrow(EffectCron.parse(expr, zone))
      return { reset: noop, step: (after) => EffectCron.next(cron, new Date(after)).getTime() }
    }
  },
  {
    name: "croner 11",
    peer: true,
    parse: (expr, zone) => new Croner(expr, { timezone: zone, paused: true }),
    stepper: (expr, zone) => {
      const cron = new Croner(expr, { timezone: zone, paused: true })
      return { reset: noop, step: (after) => cron.nextRun(new Date(after))!.getTime() }
    }
  },
  {
    name: "cron-parser 5",
    peer: true,
    parse: (expr, zone) => CronExpressionParser.parse(expr, { currentDate: START, tz: zone }),
    stepper: (expr, zone) => {
      let iterator = CronExpressionParser.parse(expr, { currentDate: START, tz: zone })
      return {
        // The iterator carries its own position: a new chain is a new iterator (created untimed, in `reset`).
        reset: () => {
          iterator = CronExpressionParser.parse(expr, { currentDate: START, tz: zone })
        },
        step: () => iterator.next().getTime()
      }
    }
  },
  {
    name: "node-cron 4",
    peer: true,
    parse: (expr, zone) => nodeCron.createTask(expr, noop, { timezone: zone }),
    stepper: (expr, zone) => {
      const task = nodeCron.createTask(expr, noop, { timezone: zone }) as unknown as NodeCronMatcher
      return { reset: noop, step: (after) => task.timeMatcher.getNextMatch(new Date(after)).getTime() }
    }
  }
]

/** The first chain of `library` for `expr` in `zone` (errors become the message, to show in `differs`). */
const firstChain = (library: Library, expr: string, zone: string): Array<number | string> => {
  try {
    const stepper = library.stepper(expr, zone)
    stepper.reset()
    const out: Array<number> = []
    let t = START
    for (let i = 0; i < CHAIN; i++) out.push(t = stepper.step(t))
    return out
  } catch (error) {
    return [String(error)]
  }
}

/** Calls per second of `library` on one expression: whole chains until `budgetMs` has passed. */
const nextRate = (library: Library, expr: string, zone: string, budgetMs: number): number => {
  const stepper = library.stepper(expr, zone)
  let calls = 0
  let spent = 0
  let sink = 0
  while (spent < budgetMs) {
    stepper.reset()
    const start = performance.now()
    let t = START
    for (let i = 0; i < CHAIN; i++) t = stepper.step(t)
    spent += performance.now() - start
    sink += t
    calls += CHAIN
  }
  if (sink === 42) console.log("")
  return (calls / spent) * 1000
}

/** Parses per second of `library` over all expressions in `zone`. */
const parseRate = (library: Library, zone: string, budgetMs: number): number => {
  let parses = 0
  const start = performance.now()
  const kept: Array<unknown> = []
  while (performance.now() - start < budgetMs) {
    for (const expr of EXPRESSIONS) kept[parses++ % 64] = library.parse(expr, zone)
  }
  return (parses / (performance.now() - start)) * 1000
}

const main = async () => {
  const budgetMs = envNumber("BENCH_CRON_MS", 150)
  const rounds = envNumber("BENCH_CRON_ROUNDS", 3)
  console.log("## 3. Cron arithmetic: next() and parse, 6-field expressions")
  console.log(`${await machine()}; one process; median of ${rounds} rounds, ${budgetMs} ms per cell`)
  console.log(`expressions: ${EXPRESSIONS.map((e) => `\`${e}\``).join(", ")}`)

  // Agreement with ours, on the first chain.
  const reference = new Map<string, Array<number | string>>()
  for (const zone of ZONES) {
    for (const expr of EXPRESSIONS) reference.set(`${zone} ${expr}`, firstChain(libraries[0]!, expr, zone))
  }
  const differs = new Map<string, Array<string>>()
  for (const library of libraries.slice(1)) {
    for (const zone of ZONES) {
      const list: Array<string> = []
      for (const expr of EXPRESSIONS) {
        const mine = reference.get(`${zone} ${expr}`)!
        const theirs = firstChain(library, expr, zone)
        const at = theirs.findIndex((x, i) => x !== mine[i])
        if (at >= 0) {
          const shown = (x: number | string | undefined) =>
            typeof x === "number" ? new Date(x).toISOString().replace(".000Z", "Z") : String(x).slice(0, 60)
          list.push(`\`${expr}\` step ${at + 1}: ${shown(theirs[at])} (ours ${shown(mine[at])})`)
        }
      }
      differs.set(`${library.name} ${zone}`, list)
    }
  }

  // Throughput: rounds over (zone, expression, library), libraries alternating within each cell.
  const nextSamples = new Map<string, Array<number>>()
  const parseSamples = new Map<string, Array<number>>()
  const push = (map: Map<string, Array<number>>, key: string, value: number) => {
    const list = map.get(key) ?? []
    list.push(value)
    map.set(key, list)
  }
  // An untimed warm-up round, so that the first library measured does not pay for the JIT alone.
  for (const zone of ZONES) {
    for (const library of libraries) {
      for (const expr of EXPRESSIONS) nextRate(library, expr, zone, budgetMs / 5)
      parseRate(library, zone, budgetMs / 5)
    }
  }
  for (let round = 0; round < rounds; round++) {
    process.stderr.write(`cron: round ${round + 1}/${rounds}\n`)
    for (const zone of ZONES) {
      for (const expr of EXPRESSIONS) {
        for (const library of libraries) {
          push(nextSamples, `${library.name}|${zone}|${expr}`, nextRate(library, expr, zone, budgetMs))
        }
      }
      for (const library of libraries) push(parseSamples, `${library.name}|${zone}`, parseRate(library, zone, budgetMs))
    }
  }
  const rate = (library: Library, zone: string, expr: string) =>
    median(nextSamples.get(`${library.name}|${zone}|${expr}`)!)
  const mix = (library: Library, zone: string) =>
    EXPRESSIONS.length / EXPRESSIONS.reduce((sum, expr) => sum + 1 / rate(library, zone, expr), 0)

  for (const zone of ZONES) {
    const best = Math.max(...libraries.filter((l) => l.peer).map((l) => mix(l, zone)))
    const effect = mix(libraries[1]!, zone)
    const ours = mix(libraries[0]!, zone)
    const goal = zone === "UTC"
      ? `goal: ours >= effect Cron (${ours >= effect ? "met" : "not met"}: ${ratio(ours, effect)})`
      : `goal: ours >= 2x the best peer (${ours >= 2 * best ? "met" : "not met"}: ${ratio(ours, best)})`
    console.log("")
    console.log(`### next() calls/s, ${zone} (${goal})`)
    console.log(table(
      ["library", "mix calls/s", "vs best peer", ...EXPRESSIONS.map((e) => `\`${e}\``), "differs from ours"],
      libraries.map((library) => [
        library.name,
        fmt(mix(library, zone), 0),
        ratio(mix(library, zone), best),
        ...EXPRESSIONS.map((expr) => fmt(rate(library, zone, expr), 0)),
        library.peer ? String(differs.get(`${library.name} ${zone}`)!.length) : "-"
      ])
    ))
  }
  console.log("")
  console.log("### parses/s (all expressions in turn)")
  const bestParse = (zone: string) =>
    Math.max(...libraries.filter((l) => l.peer).map((l) => median(parseSamples.get(`${l.name}|${zone}`)!)))
  console.log(table(
    ["library", ...ZONES.flatMap((zone) => [`${zone} parses/s`, "vs best peer"])],
    libraries.map((library) => [
      library.name + (library.name.startsWith("node-cron") ? " (createTask)" : ""),
      ...ZONES.flatMap((zone) => {
        const value = median(parseSamples.get(`${library.name}|${zone}`)!)
        return [fmt(value, 0), ratio(value, bestParse(zone))]
      })
    ])
  ))
  const notes = [...differs].filter(([, list]) => list.length > 0)
  if (notes.length > 0) {
    console.log("")
    console.log("Where a library's first chain differs from ours (first differing step):")
    for (const [key, list] of notes) for (const line of list) console.log(`- ${key}: ${line}`)
  }
}

await main()
