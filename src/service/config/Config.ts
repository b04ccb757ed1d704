/**
 * The reference service's configuration: a YAML file plus environment overrides, decoded with Schema
 * into one typed value. Decoding is pure (`decode`): reading the file and the environment is done by `load`, so that
 * every bad-config case is tested without I/O. Every invalid input is one `ConfigInvalid { path, reason }` naming the
 * field (`jobs.archive_user.cron`, `http.port`), raised before anything connects.
 *
 * Precedence, highest first: command line (`--mode`, `--config`) > environment (`MODE`, `CONFIG`, ...) > YAML file >
 * built-in defaults. A job given in the file replaces that job's defaults as a whole (its trigger keys would conflict
 * otherwise); a known job absent from the file keeps its defaults; `enabled: false` turns one off.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as YAML from "yaml"
import { ConfigInvalid, type InvalidCron, type InvalidJob } from "../../Errors.js"
import { decodeDuration } from "../../internal/duration.js"
import * as Job from "../../Job.js"
import { defaultNodeId } from "../../LeaderElection.js"
import * as EtcdElection from "../../LeaderElection/Etcd.js"
import type * as Logging from "../../Logging.js"
import * as Redis from "../../Redis.js"

// ---------------------------------------------------------------------------------------------------------------
// Field schemas
// ---------------------------------------------------------------------------------------------------------------

/**
 * A duration written as a string (`"5 seconds"`, `"1 hour"`). Bare numbers are refused: in a config file their unit
 * would be a guess.
 */
const DurationString = (rule: { readonly allowZero?: boolean; readonly min?: Duration.Duration } = {}) =>
  Schema.transformOrFail(Schema.Unknown, Schema.DurationFromSelf, {
    strict: true,
    decode: (input, _, ast) => {
      if (typeof input !== "string") {
        return ParseResult.fail(
          new ParseResult.Type(
            ast,
            input,
            `expected a duration string such as "5 seconds", got ${JSON.stringify(input)}`
          )
        )
      }
      return Either.match(decodeDuration(input, { allowZero: rule.allowZero ?? false }), {
        onLeft: (reason) => ParseResult.fail(new ParseResult.Type(ast, input, reason)),
        onRight: (duration) =>
          rule.min !== undefined && Duration.lessThan(duration, rule.min)
            ? ParseResult.fail(
              new ParseResult.Type(ast, input, `expected at least ${Duration.format(rule.min)}, got "${input}"`)
            )
            : ParseResult.succeed(duration)
      })
    },
    encode: (duration) => ParseResult.succeed(Duration.format(duration))
  })

const urlWith = (protocols: ReadonlyArray<string>, describe: string, echo: boolean) =>
  Schema.String.pipe(Schema.filter((value) => {
    let ok = false
    try {
      ok = protocols.includes(new URL(value).protocol)
    } catch {
      ok = false
    }
    // A URL that may carry a password is never echoed back in the message.
    return ok || `expected ${describe}${echo ? `, got "${value}"` : ""}`
  }))

/** A value checked by a guard, with a message that shows what was expected and what was given. */
const guarded = <A>(is: (u: unknown) => u is A, expected: string): Schema.Schema<A> =>
  Schema.declare(is, { message: (issue) => `expected ${expected}, got ${JSON.stringify(issue.actual)}` })

const Port = guarded(
  (u): u is number => typeof u === "number" && Number.isInteger(u) && u >= 0 && u <= 65535,
  "a port number 0-65535 (0 = any free port)"
)

/** `host:port` (a sentinel's address), port 1-65535. */
const HostPort = Schema.transformOrFail(
  Schema.Unknown,
  Schema.Struct({ host: Schema.String, port: Schema.Number }),
  {
    strict: true,
    decode: (input, _, ast) => {
      const match = typeof input === "string" ? /^\s*(\[[^\]]+\]|[^:\s]+):(\d{1,5})\s*$/.exec(input) : null
      const port = match === null ? NaN : Number(match[2])
      return match !== null && port >= 1 && port <= 65535
        ? ParseResult.succeed({ host: match[1]!.replace(/^\[|\]$/g, ""), port })
        : ParseResult.fail(new ParseResult.Type(ast, input, `expected host:port, got ${JSON.stringify(input)}`))
    },
    encode: ({ host, port }) => ParseResult.succeed(`${host}:${port}`)
  }
)

const NonEmpty = (what: string) =>
  Schema.String.pipe(Schema.filter((value) => value.trim().length > 0 || `expected a non-empty ${what}`))

const literal = <const L extends ReadonlyArray<string>>(...values: L): Schema.Schema<L[number]> =>
  guarded((u): u is L[number] => typeof u === "string" && values.includes(u), `one of ${values.join(", ")}`)

/** Units of `ByteSize`, in bytes. */
const BYTE_UNITS: Readonly<Record<string, number>> = { b: 1, kb: 1000, kib: 1024, mb: 1000 ** 2, mib: 1024 ** 2 }

/** The smallest body limit accepted: below it even a small RPC would be refused. */
const MIN_BODY_SIZE = 1024

/** A byte count: an integer, or a string `"1 MiB"`, `"512 KiB"`, `"100 kB"`, `"2000 B"`; at least 1 KiB. */
const ByteSize = Schema.transformOrFail(Schema.Unknown, Schema.Number, {
  strict: true,
  decode: (input, _, ast) => {
    const match = typeof input === "string" ? /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(input) : null
    const unit = match === null ? undefined : BYTE_UNITS[match[2]!.toLowerCase() || "b"]
    const bytes = typeof input === "number" && Number.isInteger(input)
      ? input
      : match !== null && unit !== undefined
      ? Math.floor(Number(match[1]) * unit)
      : undefined
    if (bytes === undefined) {
      return ParseResult.fail(
        new ParseResult.Type(ast, input, `expected a size such as "1 MiB" or "512 KiB", got ${JSON.stringify(input)}`)
      )
    }
    return bytes < MIN_BODY_SIZE
      ? ParseResult.fail(new ParseResult.Type(ast, input, `expected at least ${MIN_BODY_SIZE} bytes, got ${bytes}`))
      : ParseResult.succeed(bytes)
  },
  encode: (bytes) => ParseResult.succeed(bytes)
})

/**
 * The largest request body the HTTP server reads by default (1 MiB): ample for any RPC of this service, small enough
 * that a flood of big bodies cannot exhaust the process.
 *
 * @since 0.1.0
 * @category defaults
 */
export const DEFAULT_MAX_BODY_SIZE = 1024 * 1024

const Bool = guarded((u): u is boolean => typeof u === "boolean", "true or false")

/**
 * The options of one job. Trigger and option consistency (exactly one trigger, cron syntax, zone,
 * retry factor) is checked by `Job.make`, the same code that checks jobs written in code.
 */
const JobConfigSchema = Schema.Struct({
  every: Schema.optional(DurationString()),
  cron: Schema.optional(Schema.String),
  timezone: Schema.optional(Schema.String),
  fixedRate: Schema.optional(Bool),
  timeout: Schema.optional(DurationString()),
  enabled: Schema.optional(Bool),
  lock: Schema.optional(Schema.Struct({
    enabled: Schema.optional(Bool),
    ttl: Schema.optional(DurationString())
  })),
  overlap: Schema.optional(literal("skip", "allow", "replace")),
  misfire: Schema.optional(literal("skip", "runOnce")),
  misfireGrace: Schema.optional(DurationString({ allowZero: true })),
  retry: Schema.optional(Schema.Struct({
    times: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
    delay: Schema.optional(DurationString({ allowZero: true })),
    factor: Schema.optional(Schema.Number),
    maxDelay: Schema.optional(DurationString({ allowZero: true }))
  }))
})

/**
 * The options of one job, as written in the config (durations decoded).
 *
 * @since 0.1.0
 * @category models
 */
export type JobConfig = typeof JobConfigSchema.Type

/**
 * The jobs the reference service knows. Any other name under `jobs` is an error.
 *
 * @since 0.1.0
 * @category models
 */
export const JOB_NAMES = ["sync_user", "archive_user"] as const

/**
 * @since 0.1.0
 * @category models
 */
export type JobName = typeof JOB_NAMES[number]

/**
 * The jobs of the embedded default: `sync_user` every 5 seconds so that a newcomer sees runs at once,
 * `archive_user` nightly at 02:00 Shanghai time.
 *
 * @since 0.1.0
 * @category defaults
 */
export const DEFAULT_JOBS: Readonly<Record<JobName, JobConfig>> = {
  sync_user: { every: Duration.seconds(5), timeout: Duration.minutes(5) },
  archive_user: { cron: "0 0 2 * * *", timezone: "Asia/Shanghai", timeout: Duration.hours(1), misfire: "runOnce" }
}

/**
 * The lowest etcd lease TTL accepted: etcd raises a lower one to 2 s with its default timers (docs/design.md §8).
 */
const MIN_LEASE_TTL = Duration.seconds(2)

/** The levels of `Logging.layer`. */
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "none"] as const satisfies ReadonlyArray<
  Logging.Level
>

const ConfigSchema = Schema.Struct({
  mode: Schema.optionalWith(literal("job", "rpc", "all"), { default: () => "all" as const }),
  nodeId: Schema.optional(NonEmpty("node id")),
  log: Schema.optionalWith(
    Schema.Struct({
      format: Schema.optionalWith(literal("json", "pretty"), { default: () => "pretty" as const }),
      level: Schema.optionalWith(literal(...LOG_LEVELS), { default: () => "info" as const })
    }),
    { default: () => ({ format: "pretty" as const, level: "info" as const }) }
  ),
  http: Schema.optionalWith(
    Schema.Struct({
      host: Schema.optionalWith(NonEmpty("host"), { default: () => "127.0.0.1" }),
      port: Schema.optionalWith(Port, { default: () => 8080 }),
      token: Schema.optionalWith(Schema.Redacted(NonEmpty("token")), { as: "Option" }),
      readToken: Schema.optionalWith(Schema.Redacted(NonEmpty("token")), { as: "Option" }),
      advertiseUrl: Schema.optionalWith(urlWith(["http:", "https:"], "an http:// or https:// URL", true), {
        as: "Option"
      }),
      maxBodySize: Schema.optionalWith(ByteSize, { default: () => DEFAULT_MAX_BODY_SIZE })
    }),
    {
      default: () => ({
        host: "127.0.0.1",
        port: 8080,
        token: Option.none<Redacted.Redacted<string>>(),
        readToken: Option.none<Redacted.Redacted<string>>(),
        advertiseUrl: Option.none<string>(),
        maxBodySize: DEFAULT_MAX_BODY_SIZE
      })
    }
  ),
  shutdownGrace: Schema.optionalWith(DurationString({ allowZero: true }), { default: () => Duration.seconds(30) }),
  redis: Schema.optionalWith(
    Schema.Struct({
      url: Schema.optional(Schema.Redacted(urlWith(["redis:", "rediss:"], "a redis:// or rediss:// URL", false))),
      keyPrefix: Schema.optionalWith(NonEmpty("key prefix"), { default: () => "user" }),
      // Redis Sentinel instead of `url`: the sentinels' addresses and the primary's name.
      sentinels: Schema.optional(
        Schema.Array(HostPort).pipe(Schema.minItems(1, { message: () => "expected at least one sentinel" }))
      ),
      name: Schema.optional(NonEmpty("primary name")),
      sentinelPassword: Schema.optional(Schema.Redacted(Schema.String)),
      password: Schema.optional(Schema.Redacted(Schema.String)),
      db: Schema.optional(guarded(
        (u): u is number => typeof u === "number" && Number.isInteger(u) && u >= 0,
        "a database number (0, 1, ...)"
      ))
    }),
    { as: "Option", nullable: true }
  ),
  etcd: Schema.optionalWith(
    Schema.Struct({
      endpoints: Schema.Array(urlWith(["http:", "https:"], "an http:// or https:// URL", true)).pipe(
        Schema.minItems(1, { message: () => "expected at least one endpoint" })
      ),
      leaseTtl: Schema.optionalWith(DurationString({ min: MIN_LEASE_TTL }), { default: () => Duration.seconds(10) }),
      electionKey: Schema.optionalWith(NonEmpty("election key"), { default: () => "user/scheduler" }),
      username: Schema.optional(NonEmpty("user name")),
      password: Schema.optionalWith(Schema.Redacted(Schema.String), { as: "Option" })
    }),
    { as: "Option", nullable: true }
  ),
  database: Schema.optionalWith(
    Schema.Struct({
      sqlite: Schema.optionalWith(NonEmpty("path"), { default: () => "./data/user.db" }),
      url: Schema.optionalWith(
        Schema.Redacted(urlWith(["postgres:", "postgresql:"], "a postgres:// or postgresql:// URL", false)),
        { as: "Option" }
      )
    }),
    { default: () => ({ sqlite: "./data/user.db", url: Option.none<Redacted.Redacted<string>>() }) }
  ),
  jobs: Schema.optionalWith(
    Schema.Struct({
      sync_user: Schema.optional(JobConfigSchema),
      archive_user: Schema.optional(JobConfigSchema)
    }),
    { default: () => ({}), nullable: true }
  )
})

// ---------------------------------------------------------------------------------------------------------------
// The typed config
// ---------------------------------------------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export type Mode = "job" | "rpc" | "all"

/**
 * The decoded configuration. Secrets (`http.token`, the Redis and database URLs which may hold a password,
 * `etcd.password`) are
 * `Redacted`: printing the config never shows them.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServiceConfig {
  /** Where the file came from, or `built-in defaults` when no file was read. */
  readonly source: string
  readonly mode: Mode
  readonly nodeId: string
  readonly log: { readonly format: "json" | "pretty"; readonly level: typeof LOG_LEVELS[number] }
  readonly http: {
    readonly host: string
    readonly port: number
    /** When set, every RPC (reads too) requires `Authorization: Bearer <token>`. */
    readonly token: Option.Option<Redacted.Redacted<string>>
    /** When set (with `token`), this token is accepted for reads only (ListJobs, JobRuns, Leader, users). */
    readonly readToken: Option.Option<Redacted.Redacted<string>>
    /** The URL other nodes reach this node's API on (a trigger is forwarded there); default the bound address. */
    readonly advertiseUrl: Option.Option<string>
    /** The largest request body read, in bytes; a bigger one is answered 413. */
    readonly maxBodySize: number
  }
  readonly shutdownGrace: Duration.Duration
  /**
   * A standalone server (`url`), or a primary found through Redis Sentinel (`sentinel`): exactly one of the two is
   * set.
   */
  readonly redis: Option.Option<{
    readonly url: Redacted.Redacted<string> | undefined
    readonly sentinel: Redis.SentinelOptions | undefined
    readonly keyPrefix: string
  }>
  readonly etcd: Option.Option<{
    readonly endpoints: ReadonlyArray<string>
    readonly leaseTtl: Duration.Duration
    readonly electionKey: string
    readonly username: string | undefined
    readonly password: Option.Option<Redacted.Redacted<string>>
  }>
  readonly database: {
    /** The SQLite file of the embedded default; unused when `url` is set. */
    readonly sqlite: string
    /** A PostgreSQL URL: the user store shared by the nodes of a cluster. Wins over `sqlite` when set. */
    readonly url: Option.Option<Redacted.Redacted<string>>
  }
  /** Every known job, defaults merged, validated by `Job.make`. */
  readonly jobs: Readonly<Record<JobName, JobConfig>>
}

/**
 * The loaded configuration, as a service.
 *
 * @since 0.1.0
 * @category tags
 */
export class AppConfig extends Context.Tag("effect-job-scheduler/service/AppConfig")<AppConfig, ServiceConfig>() {}

// ---------------------------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------------------------

/**
 * What the command line says.
 *
 * @since 0.1.0
 * @category models
 */
export interface CliArgs {
  readonly mode?: string | undefined
  readonly config?: string | undefined
  readonly help: boolean
}

/**
 * The `--help` text.
 *
 * @since 0.1.0
 * @category cli
 */
export const USAGE = `Usage: effect-job-scheduler [--mode job|rpc|all] [--config path] [--help]
       effect-job-scheduler jobs list|runs|trigger|pause|resume ... | leader | config check | --version

  --mode job|rpc|all  job = scheduler (+ /healthz /readyz /metrics), rpc = RPC server (+ admin endpoints),
                      all = both in one process (default; env MODE, config key mode)
  --config path       YAML config file (default config/default.yaml; env CONFIG). A missing default file
                      means built-in defaults; a missing file named explicitly is an error.
  --help              show this text

Operator commands (each with --help): jobs list, jobs runs <job>, jobs trigger <job>, jobs pause <job>,
jobs resume <job>, leader (talk to a node's API: --url, --token, --json); config check (validate a config
without starting); --version.

Environment overrides: CONFIG MODE NODE_ID LOG_FORMAT LOG_LEVEL HTTP_HOST HTTP_PORT HTTP_TOKEN HTTP_READ_TOKEN
HTTP_ADVERTISE_URL HTTP_MAX_BODY_SIZE REDIS_URL REDIS_KEY_PREFIX REDIS_SENTINELS (comma-separated host:port)
REDIS_SENTINEL_NAME REDIS_SENTINEL_PASSWORD REDIS_PASSWORD ETCD_ENDPOINTS (comma-separated) ETCD_LEASE_TTL
ETCD_USERNAME ETCD_PASSWORD SQLITE_PATH DATABASE_URL.
Invalid configuration exits with code 2 and one line naming the field and the reason.`

/**
 * Parse `--mode`, `--config` (both as `--x value` or `--x=value`) and `--help`. Anything else is a `ConfigInvalid`
 * at path `argv`.
 *
 * @since 0.1.0
 * @category cli
 */
export const parseArgs = (argv: ReadonlyArray<string>): Either.Either<CliArgs, ConfigInvalid> => {
  let mode: string | undefined
  let config: string | undefined
  let help = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--help" || arg === "-h") {
      help = true
      continue
    }
    const match = /^--(mode|config)(?:=(.*))?$/.exec(arg)
    if (match === null) {
      return Either.left(new ConfigInvalid({ path: "argv", reason: `unknown argument "${arg}" (see --help)` }))
    }
    let value = match[2]
    if (value === undefined) {
      value = argv[++i]
      if (value === undefined || value.startsWith("--")) {
        return Either.left(new ConfigInvalid({ path: "argv", reason: `--${match[1]} needs a value` }))
      }
    }
    if (match[1] === "mode") mode = value
    else config = value
  }
  return Either.right({ mode, config, help })
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------------------------

/**
 * The default config file, relative to the working directory.
 *
 * @since 0.1.0
 * @category defaults
 */
export const DEFAULT_CONFIG_PATH = "config/default.yaml"

/**
 * Everything `decode` reads: the file's text (or none), where it came from, the environment and the command line.
 *
 * @since 0.1.0
 * @category models
 */
export interface DecodeInput {
  /** The YAML text; `undefined` = no file (built-in defaults). */
  readonly text?: string | undefined
  readonly source?: string | undefined
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  readonly cli?: { readonly mode?: string | undefined } | undefined
  /** Default `hostname-pid`. */
  readonly defaultNodeId?: string | undefined
}

type Raw = Record<string, unknown>

const isRecord = (u: unknown): u is Raw => typeof u === "object" && u !== null && !Array.isArray(u)

/** Set `path` in a raw (mutable, parsed-from-YAML) tree, creating objects on the way. */
const setPath = (root: Raw, path: ReadonlyArray<string>, value: unknown): void => {
  let node = root
  for (const key of path.slice(0, -1)) {
    if (!isRecord(node[key])) node[key] = {}
    node = node[key] as Raw
  }
  node[path[path.length - 1]!] = value
}

/** Environment overrides: variable -> config path, and how the string becomes a value. */
const ENV_OVERRIDES: ReadonlyArray<readonly [string, ReadonlyArray<string>, (s: string) => unknown]> = [
  ["MODE", ["mode"], (s) => s],
  ["NODE_ID", ["nodeId"], (s) => s],
  ["LOG_FORMAT", ["log", "format"], (s) => s],
  ["LOG_LEVEL", ["log", "level"], (s) => s],
  ["HTTP_HOST", ["http", "host"], (s) => s],
  // A port that is not all digits stays a string, so the schema names it in its message.
  ["HTTP_PORT", ["http", "port"], (s) => (/^\s*\d+\s*$/.test(s) ? Number(s) : s)],
  ["HTTP_TOKEN", ["http", "token"], (s) => s],
  ["HTTP_READ_TOKEN", ["http", "readToken"], (s) => s],
  ["HTTP_ADVERTISE_URL", ["http", "advertiseUrl"], (s) => s],
  ["HTTP_MAX_BODY_SIZE", ["http", "maxBodySize"], (s) => (/^\s*\d+\s*$/.test(s) ? Number(s) : s)],
  ["REDIS_URL", ["redis", "url"], (s) => s],
  ["REDIS_KEY_PREFIX", ["redis", "keyPrefix"], (s) => s],
  ["REDIS_SENTINELS", ["redis", "sentinels"], (s) => s.split(",").map((e) => e.trim()).filter((e) => e.length > 0)],
  ["REDIS_SENTINEL_NAME", ["redis", "name"], (s) => s],
  ["REDIS_SENTINEL_PASSWORD", ["redis", "sentinelPassword"], (s) => s],
  ["REDIS_PASSWORD", ["redis", "password"], (s) => s],
  ["ETCD_ENDPOINTS", ["etcd", "endpoints"], (s) => s.split(",").map((e) => e.trim()).filter((e) => e.length > 0)],
  ["ETCD_LEASE_TTL", ["etcd", "leaseTtl"], (s) => s],
  ["SQLITE_PATH", ["database", "sqlite"], (s) => s],
  ["DATABASE_URL", ["database", "url"], (s) => s],
  // Beyond the file: secrets are better passed in the environment than written in a file.
  ["ETCD_USERNAME", ["etcd", "username"], (s) => s],
  ["ETCD_PASSWORD", ["etcd", "password"], (s) => s]
]

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (acc, key) => typeof key === "number" ? `${acc}[${key}]` : acc === "" ? String(key) : `${acc}.${String(key)}`,
    ""
  )

const invalid = (path: string, reason: string) => Either.left(new ConfigInvalid({ path, reason }))

/**
 * Decode a configuration: parse the YAML, apply the environment and command line, decode with Schema (unknown keys
 * are errors), then validate every job with `Job.make`. Pure: no file or environment access.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (input: DecodeInput): Either.Either<ServiceConfig, ConfigInvalid> =>
  Either.gen(function*() {
    const source = input.source ?? "built-in defaults"
    let root: Raw = {}
    if (input.text !== undefined) {
      const doc = YAML.parseDocument(input.text, { prettyErrors: true, uniqueKeys: true })
      if (doc.errors.length > 0) {
        const error = doc.errors[0]!
        const at = error.linePos?.[0]
        const where = at === undefined ? source : `${source}:${at.line}:${at.col}`
        // With prettyErrors the first line ends with " at line L, column C:", which the path already says.
        const reason = error.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")
        return yield* invalid(where, `bad YAML: ${reason}`)
      }
      const value: unknown = doc.toJS()
      if (value !== null && value !== undefined) {
        if (!isRecord(value)) return yield* invalid("(root)", `expected a mapping of keys, got ${typeof value}`)
        root = value
      }
    }

    // Which paths came from the environment or the command line, to say so in the message.
    const origins = new Map<string, string>()
    for (const [name, path, parse] of ENV_OVERRIDES) {
      const value = input.env?.[name]
      if (value === undefined || value === "") continue
      setPath(root, path, parse(value))
      origins.set(path.join("."), `env ${name}`)
    }
    if (input.cli?.mode !== undefined) {
      root.mode = input.cli.mode
      origins.set("mode", "--mode")
    }

    const decoded = Schema.decodeUnknownEither(ConfigSchema, { onExcessProperty: "error", errors: "first" })(root)
    if (Either.isLeft(decoded)) {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)[0]!
      const path = formatPath(issue.path)
      let reason = issue.message
      if (issue._tag === "Unexpected") {
        reason = issue.path.length === 2 && issue.path[0] === "jobs"
          ? `unknown job (known jobs: ${JOB_NAMES.join(", ")})`
          : "unknown key"
      } else if (issue._tag === "Missing") {
        reason = "is missing"
      }
      const origin = [...origins.entries()].find(([p]) =>
        path === p || path.startsWith(`${p}.`) || path.startsWith(`${p}[`)
      )
      const why = origin === undefined ? reason : `${reason} (from ${origin[1]})`
      return yield* invalid(path === "" ? "(root)" : path, why)
    }
    const config = decoded.right

    if (Option.isSome(config.http.readToken) && Option.isNone(config.http.token)) {
      return yield* invalid("http.token", "is missing (required when http.readToken is set)")
    }

    let redis: ServiceConfig["redis"] = Option.none()
    if (Option.isSome(config.redis)) {
      const given = config.redis.value
      const origin = (path: string) => {
        const from = origins.get(path)
        return from === undefined ? "" : ` (from ${from})`
      }
      if (given.url !== undefined && given.sentinels !== undefined) {
        const why = `give either redis.url or redis.sentinels, not both${origin("redis.sentinels")}`
        return yield* invalid("redis.sentinels", why)
      }
      if (given.sentinels === undefined) {
        if (given.url === undefined) return yield* invalid("redis.url", "is missing (or give redis.sentinels)")
        for (const key of ["name", "sentinelPassword", "password", "db"] as const) {
          if (given[key] !== undefined) {
            const why = "only applies with redis.sentinels (with redis.url, put it in the URL)"
            return yield* invalid(`redis.${key}`, why)
          }
        }
        redis = Option.some({ url: given.url, sentinel: undefined, keyPrefix: given.keyPrefix })
      } else {
        if (given.name === undefined) {
          return yield* invalid("redis.name", "is missing (the primary's name the sentinels monitor)")
        }
        redis = Option.some({
          url: undefined,
          sentinel: {
            sentinels: given.sentinels,
            name: given.name,
            sentinelPassword: given.sentinelPassword,
            password: given.password,
            db: given.db
          },
          keyPrefix: given.keyPrefix
        })
      }
    }

    if (Option.isSome(config.etcd)) {
      const etcd = config.etcd.value
      if (Option.isSome(etcd.password) && etcd.username === undefined) {
        return yield* invalid("etcd.username", "is missing (required when etcd.password is set)")
      }
      // The election's own validation, so that whatever it would refuse is a config error now.
      const resolved = EtcdElection.resolveOptions({
        nodeId: config.nodeId ?? "node",
        electionKey: etcd.electionKey,
        leaseTtl: etcd.leaseTtl
      })
      if (Either.isLeft(resolved)) {
        const field = resolved.left.startsWith("electionKey") ? "etcd.electionKey" : "etcd.leaseTtl"
        return yield* invalid(field, resolved.left)
      }
    }

    const jobs = {} as Record<JobName, JobConfig>
    for (const name of JOB_NAMES) {
      const job = config.jobs[name] ?? DEFAULT_JOBS[name]
      yield* Either.mapLeft(Job.make(toJobOptions(name, job, {})), (error) => toConfigInvalid(name, error))
      jobs[name] = job
    }

    return {
      source,
      mode: config.mode,
      nodeId: config.nodeId ?? input.defaultNodeId ?? defaultNodeId(),
      log: config.log,
      http: config.http,
      shutdownGrace: config.shutdownGrace,
      redis,
      etcd: Option.map(config.etcd, (etcd) => ({ ...etcd, username: etcd.username })),
      database: config.database,
      jobs
    }
  })

/**
 * A job's `InvalidJob` / `InvalidCron` as a `ConfigInvalid` at `jobs.<name>.<path>`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const toConfigInvalid = (name: string, error: InvalidJob | InvalidCron): ConfigInvalid => {
  if (error._tag === "InvalidJob") {
    const path = error.path === "trigger" ? `jobs.${name}` : `jobs.${name}.${error.path}`
    return new ConfigInvalid({ path, reason: error.reason })
  }
  const field = error.field === "timezone" ? "timezone" : "cron"
  const reason = error.field === undefined || error.field === "timezone"
    ? error.reason
    : `field ${error.field}: ${error.reason}`
  return new ConfigInvalid({ path: `jobs.${name}.${field}`, reason })
}

/**
 * The `Job.make` options of a configured job, with the given handler.
 *
 * @since 0.1.0
 * @category jobs
 */
export const toJobOptions = <R>(
  name: string,
  job: JobConfig,
  handler: { readonly handler?: Job.JobOptions<R>["handler"] }
): Job.JobOptions<R> => ({
  name,
  // Config validation builds the job with a no-op handler; `Jobs.ts` passes the real one.
  handler: handler.handler ?? (Effect.void as Effect.Effect<void, never, R>),
  every: job.every,
  cron: job.cron,
  timezone: job.timezone,
  fixedRate: job.fixedRate,
  timeout: job.timeout,
  enabled: job.enabled,
  lock: job.lock,
  overlap: job.overlap,
  misfire: job.misfire,
  misfireGrace: job.misfireGrace,
  retry: job.retry
})

// ---------------------------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------------------------

/**
 * Read the config file named by `--config`, else `CONFIG`, else `config/default.yaml` (a missing default file means
 * built-in defaults; a missing file named explicitly is an error), apply the environment, and decode.
 *
 * @since 0.1.0
 * @category loading
 */
export const load = (options: {
  readonly cli: CliArgs
  readonly env: Readonly<Record<string, string | undefined>>
}): Effect.Effect<ServiceConfig, ConfigInvalid> =>
  Effect.gen(function*() {
    const explicit = options.cli.config ?? (options.env.CONFIG === "" ? undefined : options.env.CONFIG)
    const file = explicit ?? DEFAULT_CONFIG_PATH
    const text = yield* Effect.try({
      try: () => fs.readFileSync(file, "utf8"),
      catch: (cause) => cause as NodeJS.ErrnoException
    }).pipe(
      Effect.map((text): string | undefined => text),
      Effect.catchAll((cause) =>
        explicit === undefined && cause.code === "ENOENT"
          ? Effect.succeed(undefined)
          : Effect.fail(new ConfigInvalid({ path: file, reason: `cannot read the config file: ${cause.message}` }))
      )
    )
    return yield* decode({
      text,
      source: text === undefined ? undefined : file,
      env: options.env,
      cli: { mode: options.cli.mode }
    })
  })

/**
 * A description of the config that is safe to log: secrets stay redacted, the Redis URL loses its password.
 *
 * @since 0.1.0
 * @category utils
 */
export const describe = (config: ServiceConfig): Record<string, unknown> => ({
  source: config.source,
  mode: config.mode,
  nodeId: config.nodeId,
  http: `${config.http.host}:${config.http.port}${Option.isSome(config.http.token) ? " (token set)" : ""}${
    Option.isSome(config.http.readToken) ? " (read token set)" : ""
  }`,
  redis: Option.match(config.redis, {
    onNone: () => "none (in-memory locks and records)",
    onSome: (redis) => `${Redis.describeOptions(redis)} prefix ${redis.keyPrefix}`
  }),
  etcd: Option.match(config.etcd, {
    onNone: () => "none (single-node leadership)",
    onSome: (etcd) => `${etcd.endpoints.join(",")} key ${etcd.electionKey} ttl ${Duration.format(etcd.leaseTtl)}`
  }),
  database: Option.match(config.database.url, {
    onNone: () => `sqlite ${config.database.sqlite}`,
    // The URL was validated by `new URL`, so the masking below always parses it.
    onSome: (url) => `postgresql ${Redis.describeUrl(url)}`
  }),
  shutdownGrace: Duration.format(config.shutdownGrace)
})
