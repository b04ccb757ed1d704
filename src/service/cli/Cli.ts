/**
 * The operator's commands, in the service's own binary (@effect/cli):
 *
 * ```
 * effect-job-scheduler jobs list                 jobs, triggers, next fire, last outcome, paused
 * effect-job-scheduler jobs runs <job> [--limit n]  a job's newest runs: outcome, duration, lateness, error
 * effect-job-scheduler jobs trigger <job>        run it now (on the leader, from any node); prints the run id
 * effect-job-scheduler jobs pause|resume <job>   cluster-wide
 * effect-job-scheduler leader                    who leads, since when, its build and config hash
 * effect-job-scheduler config check [--config path] [--mode m]   validate a config without starting
 * effect-job-scheduler --version
 * ```
 *
 * Every API command takes `--url` (default `http://127.0.0.1:8080`, env `SCHEDULER_URL`), `--token` (env
 * `SCHEDULER_TOKEN`) and `--json` (the RPC's JSON instead of a table). Exit codes: 0 done, 1 the node refused or
 * cannot be reached (one line on stderr), 2 bad arguments or an invalid config.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as EffectConfig from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { RunRecord } from "../../Run.js"
import * as Config from "../config/Config.js"
import { JobView, LeaderView } from "../server/Rpcs.js"
import * as Version from "../Version.js"
import * as Client from "./Client.js"
import * as Table from "./Table.js"

/**
 * The first words that make a command line a CLI command rather than a service start.
 *
 * @since 0.1.0
 * @category cli
 */
export const VERBS: ReadonlySet<string> = new Set(["jobs", "leader", "config", "--version"])

const url = Options.text("url").pipe(
  Options.withDescription("the node's HTTP API (env SCHEDULER_URL)"),
  Options.withFallbackConfig(EffectConfig.string("SCHEDULER_URL")),
  Options.withDefault("http://127.0.0.1:8080")
)
const token = Options.text("token").pipe(
  Options.withDescription("bearer token, when the node has http.token set (env SCHEDULER_TOKEN)"),
  Options.withFallbackConfig(EffectConfig.string("SCHEDULER_TOKEN")),
  Options.optional
)
const json = Options.boolean("json").pipe(Options.withDescription("print the API's JSON instead of a table"))
const common = { url, token, json }
const jobArg = Args.text({ name: "job" }).pipe(Args.withDescription("the job's name (see jobs list)"))

type Common = { readonly url: string; readonly token: Option.Option<string>; readonly json: boolean }

const print = (text: string) => Console.log(text)

const printJson = <A, I>(schema: Schema.Schema<A, I>, value: A) =>
  print(JSON.stringify(Schema.encodeSync(schema)(value), null, 2))

const lastRun = (job: JobView): string =>
  job.lastRun === null ? "-" : `${job.lastRun.outcome} at ${Table.time(job.lastRun.finishedAt)}`

const list = Command.make("list", common, (options: Common) =>
  Effect.gen(function*() {
    const jobs = yield* Client.call(options, (client) => client.ListJobs())
    if (options.json) return yield* printJson(Schema.Array(JobView), jobs)
    yield* print(Table.table(
      ["JOB", "TRIGGER", "ENABLED", "PAUSED", "RUNNING", "NEXT FIRE", "LAST RUN"],
      jobs.map((job) => [
        job.name,
        job.trigger,
        job.enabled ? "yes" : "no",
        job.paused ? "yes" : "no",
        String(job.running),
        Table.time(job.nextFire),
        lastRun(job)
      ])
    ))
  })).pipe(Command.withDescription("list the jobs with their trigger, next fire, last outcome and pause state"))

const runs = Command.make(
  "runs",
  {
    ...common,
    job: jobArg,
    limit: Options.integer("limit").pipe(Options.withDefault(20), Options.withDescription("how many (1-100)"))
  },
  (options) =>
    Effect.gen(function*() {
      const records = yield* Client.call(
        options,
        (client) => client.JobRuns({ job: options.job, limit: options.limit })
      )
      if (options.json) return yield* printJson(Schema.Array(RunRecord), records)
      if (records.length === 0) return yield* print(`no runs of ${options.job} recorded yet`)
      yield* print(Table.table(
        ["RUN ID", "KIND", "FIRE TIME", "DURATION", "LATENESS", "NODE", "FENCE", "OUTCOME", "ERROR"],
        records.map((run) => [
          run.runId,
          run.kind,
          Table.time(run.fireTime),
          Table.duration(run.durationMs),
          Table.duration(Math.max(0, run.startedAt.getTime() - run.fireTime.getTime())),
          run.node,
          String(run.fence),
          run.outcome,
          Table.oneLine(run.error === undefined ? undefined : `${run.error.tag}: ${run.error.message}`)
        ])
      ))
    })
).pipe(Command.withDescription("show a job's newest runs: outcome, duration, lateness, node, error"))

const trigger = Command.make("trigger", { ...common, job: jobArg }, (options) =>
  Effect.gen(function*() {
    const result = yield* Client.call(options, (client) => client.TriggerJob({ job: options.job }))
    if (options.json) return yield* print(JSON.stringify(result, null, 2))
    yield* print(
      result._tag === "Started"
        ? `started ${options.job}: run ${result.runId} (fence ${result.fence})`
        : `skipped ${options.job}: ${result.reason}`
    )
  })).pipe(Command.withDescription("run a job now, on the leader (from any node); prints the run id"))

const control = (name: "pause" | "resume") =>
  Command.make(name, { ...common, job: jobArg }, (options) =>
    Effect.gen(function*() {
      yield* Client.call(options, (client) =>
        name === "pause" ? client.PauseJob({ job: options.job }) : client.ResumeJob({ job: options.job }))
      const done = name === "pause" ? "paused" : "resumed"
      yield* options.json ? print(JSON.stringify({ job: options.job, [done]: true })) : print(`${done} ${options.job}`)
    })).pipe(Command.withDescription(`${name} a job cluster-wide`))

const leader = Command.make("leader", common, (options: Common) =>
  Effect.gen(function*() {
    const view = yield* Client.call(options, (client) => client.Leader())
    if (options.json) return yield* printJson(LeaderView, view)
    const rows: Array<[string, string]> = view.leader === null
      ? [["leader", "none published (no job node leads, or the nodes do not share a store)"]]
      : [
        ["leader", view.leader.nodeId],
        ["url", view.leader.url],
        ["since", Table.time(view.leader.since)],
        ["term", String(view.leader.term)],
        ["version", view.leader.version],
        ["config hash", view.leader.configHash]
      ]
    const leading = view.node.leading ? "leading" : "not leading"
    rows.push(
      ["asked", `${view.node.nodeId} (${view.node.mode}, ${view.node.version}, ${leading})`],
      ["its config", `${view.node.configHash}${view.node.configDrift ? "  DIFFERS FROM THE LEADER'S" : ""}`]
    )
    yield* print(rows.map(([key, value]) => `${key.padEnd(13)}${value}`).join("\n"))
  })).pipe(Command.withDescription("who leads, since when, its build and config hash"))

const check = Command.make(
  "check",
  {
    config: Options.file("config").pipe(Options.optional, Options.withDescription("the YAML file (default as start)")),
    mode: Options.text("mode").pipe(Options.optional, Options.withDescription("job | rpc | all"))
  },
  (options) =>
    Effect.gen(function*() {
      const config = yield* Config.load({
        cli: { config: Option.getOrUndefined(options.config), mode: Option.getOrUndefined(options.mode), help: false },
        env: process.env
      })
      const jobs = Object.entries(config.jobs).map(([name, job]) =>
        `${name}${job.enabled === false ? " (disabled)" : ""}`
      )
      yield* print(`config OK: ${config.source}, mode ${config.mode}, jobs ${jobs.join(", ")}`)
    })
).pipe(Command.withDescription("validate a config (file + environment) without starting anything; exit 2 if invalid"))

/**
 * The root command.
 *
 * @since 0.1.0
 * @category cli
 */
export const command = Command.make(Version.name).pipe(
  Command.withDescription("scheduled jobs service; without a command it starts the service (see --mode, --config)"),
  Command.withSubcommands([
    Command.make("jobs").pipe(
      Command.withDescription("list, inspect and control jobs through a node's API"),
      Command.withSubcommands([list, runs, trigger, control("pause"), control("resume")])
    ),
    leader,
    Command.make("config").pipe(Command.withDescription("configuration tools"), Command.withSubcommands([check]))
  ])
)

/**
 * Run the CLI on `argv` (the arguments after the program name).
 *
 * @since 0.1.0
 * @category cli
 */
export const run = (argv: ReadonlyArray<string>) =>
  Command.run(command, { name: Version.name, version: Version.version })(["node", Version.name, ...argv])
