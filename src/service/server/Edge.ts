/**
 * The HTTP edge of `POST /rpc`: everything a request must pass before the RPC server sees it, so that a bad request
 * gets a 4xx with one clear message instead of a 500, a defect or a schema dump, and a big one cannot exhaust the
 * process.
 *
 * 1. The body is kept up to `maxBodySize` bytes: past that it is 413. The rest of an oversized body is read and
 *    dropped up to `DRAIN_FACTOR` x the limit, so that the client (still sending) gets the 413 rather than a reset
 *    connection; a body larger than that, or declared larger by its `Content-Length`, is cut off at once. Reading is
 *    bounded by `READ_TIMEOUT` (408).
 * 2. It must be JSON: an RPC message `{_tag: "Request", id, tag, payload, headers?}` or an array of them; `headers`
 *    may be left out (it means none). Anything else: 400 naming what is wrong.
 * 3. Each payload is decoded with its RPC's schema here: 400 naming the field and the reason.
 * 4. The RPC server gets the request re-encoded, with the caller's address in `CLIENT_ADDRESS_HEADER` (a value the
 *    caller sent under that name is dropped), for the handlers' auth failure and audit lines.
 *
 * Every echo of the input in a message is cut to `MAX_ECHO` characters.
 *
 * @since 0.1.0
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { Readable } from "node:stream"

/**
 * The header the edge sets to the caller's address (`remote address`, plus `X-Forwarded-For` when a proxy sent one).
 *
 * @since 0.1.0
 * @category constants
 */
export const CLIENT_ADDRESS_HEADER = "x-scheduler-client-address"

/**
 * The longest excerpt of a request echoed back in an error message.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_ECHO = 200

/**
 * How much of an oversized body is read (and dropped) before the connection is cut, as a multiple of the limit.
 *
 * @since 0.1.0
 * @category constants
 */
export const DRAIN_FACTOR = 8

/**
 * Bound on reading one request body: a client that trickles its body cannot hold a request open for long.
 *
 * @since 0.1.0
 * @category constants
 */
export const READ_TIMEOUT = Duration.seconds(30)

/**
 * The most messages one request may carry: a batch of RPCs is allowed, a flood of them is not.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_MESSAGES = 100

/**
 * `text` cut to `max` characters, with a note of how much was left out.
 *
 * @since 0.1.0
 * @category utils
 */
export const excerpt = (text: string, max: number = MAX_ECHO): string =>
  text.length <= max ? text : `${text.slice(0, max)}... (${text.length - max} more characters)`

/**
 * A 4xx answer: `{"error": tag, "message": ...}`.
 *
 * @since 0.1.0
 * @category responses
 */
export const reject = (status: number, message: string) =>
  HttpServerResponse.unsafeJson({
    error: status === 413 ? "PayloadTooLarge" : status === 408 ? "RequestTimeout" : "BadRequest",
    message
  }, { status })

type Body =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "TooLarge" }
  | { readonly _tag: "Failed"; readonly reason: string }

const isReadable = (u: unknown): u is Readable =>
  typeof u === "object" && u !== null && "on" in u && typeof u.on === "function" && "destroy" in u

/** Read a Node request stream, keeping at most `max` bytes and dropping up to `drain` bytes past that. */
const readNode = (source: Readable, max: number, drain: number): Effect.Effect<Body> =>
  Effect.async<Body>((resume) => {
    const chunks: Array<Buffer> = []
    let bytes = 0
    const cleanup = () => {
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
    }
    const onData = (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes <= max) return void chunks.push(chunk)
      chunks.length = 0
      if (bytes > drain) {
        cleanup()
        source.destroy()
        resume(Effect.succeed({ _tag: "TooLarge" }))
      }
    }
    const onEnd = () => {
      cleanup()
      resume(Effect.succeed(
        bytes > max ? { _tag: "TooLarge" } : { _tag: "Text", text: Buffer.concat(chunks).toString("utf8") }
      ))
    }
    const onError = (error: Error) => {
      cleanup()
      resume(Effect.succeed({ _tag: "Failed", reason: error.message }))
    }
    source.on("data", onData).on("end", onEnd).on("error", onError)
    return Effect.sync(() => {
      cleanup()
      source.destroy()
    })
  })

/** The body of a request, bounded (see the module doc). */
const readBody = (request: HttpServerRequest.HttpServerRequest, max: number): Effect.Effect<Body> => {
  const declared = Number(request.headers["content-length"])
  const drain = Number.isFinite(declared) && declared > max * DRAIN_FACTOR ? 0 : max * DRAIN_FACTOR
  const source = request.source
  const read = isReadable(source)
    ? readNode(source, max, Math.max(max, drain))
    // Another platform's request: its own bounded reader (no draining).
    : request.text.pipe(
      HttpIncomingMessage.withMaxBodySize(Option.some(max)),
      Effect.map((text): Body => ({ _tag: "Text", text })),
      Effect.catchAll((error) =>
        Effect.succeed<Body>(
          error.cause instanceof Error && error.cause.message.includes("maxBytes")
            ? { _tag: "TooLarge" }
            : { _tag: "Failed", reason: error.message }
        )
      )
    )
  return Number.isFinite(declared) && declared > max && drain === 0 ? Effect.succeed({ _tag: "TooLarge" }) : read
}

/**
 * The caller's address as the edge reports it.
 *
 * @since 0.1.0
 * @category utils
 */
export const clientAddress = (request: HttpServerRequest.HttpServerRequest): string => {
  const remote = Option.getOrElse(request.remoteAddress, () => "unknown")
  const forwarded = request.headers["x-forwarded-for"]
  return forwarded === undefined ? remote : `${remote} (x-forwarded-for ${excerpt(forwarded, 100)})`
}

/**
 * What the edge reads of an `RpcGroup`: its RPCs by name, with their payload schemas.
 *
 * @since 0.1.0
 * @category models
 */
export interface RpcCatalog {
  readonly requests: ReadonlyMap<string, { readonly payloadSchema: Schema.Schema.All }>
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const isHeaderList = (u: unknown): boolean =>
  Array.isArray(u) &&
  u.every((pair) => Array.isArray(pair) && pair.length === 2 && pair.every((part) => typeof part === "string"))

/** The first problem of a decode, as `path: message`, bounded. */
const describeParseError = (error: ParseResult.ParseError): string => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  if (issue === undefined) return "invalid"
  const path = issue.path.length === 0 ? "payload" : `payload.${issue.path.map(String).join(".")}`
  const message = issue._tag === "Missing"
    ? "is missing"
    : issue._tag === "Unexpected"
    ? "is not allowed"
    : issue.message
  return `${path}: ${excerpt(message)}`
}

/**
 * Check one message; `Right` = the message to pass on (with `headers` filled in).
 */
const checkMessage = (
  group: RpcCatalog,
  message: unknown,
  index: number
): Either.Either<Record<string, unknown>, string> => {
  const where = `message ${index}`
  if (!isRecord(message)) return Either.left(`${where}: expected an object, got ${excerpt(JSON.stringify(message))}`)
  if (message._tag !== "Request") {
    // Ping, Ack, Interrupt, Eof: protocol messages the RPC server handles itself.
    return typeof message._tag === "string" && ["Ping", "Ack", "Interrupt", "Eof"].includes(message._tag)
      ? Either.right(message)
      : Either.left(`${where}: _tag must be "Request", got ${excerpt(JSON.stringify(message._tag) ?? "nothing")}`)
  }
  if (typeof message.id !== "string" || message.id.length === 0 || message.id.length > 64) {
    return Either.left(`${where}: id must be a non-empty string of at most 64 characters`)
  }
  if (typeof message.tag !== "string") return Either.left(`${where}: tag is missing (the RPC name, e.g. "ListJobs")`)
  const rpc = group.requests.get(message.tag)
  if (rpc === undefined) {
    return Either.left(
      `${where}: unknown RPC ${excerpt(JSON.stringify(message.tag))} (known: ${[...group.requests.keys()].join(", ")})`
    )
  }
  if (message.headers !== undefined && !isHeaderList(message.headers)) {
    return Either.left(`${where}: headers must be a list of [name, value] string pairs`)
  }
  const decoded = Schema.decodeUnknownEither(rpc.payloadSchema as Schema.Schema<unknown, unknown, never>, {
    onExcessProperty: "error"
  })(message.payload ?? {})
  if (Either.isLeft(decoded)) return Either.left(`${where} (${message.tag}): ${describeParseError(decoded.left)}`)
  return Either.right({ ...message, headers: message.headers ?? [] })
}

/**
 * Wrap the RPC HTTP app of `group` in the edge (see the module doc).
 *
 * @since 0.1.0
 * @category constructors
 */
export const guard = <E, R>(
  group: RpcCatalog,
  app: HttpApp.Default<E, R>,
  options: { readonly maxBodySize: number }
): HttpApp.Default<E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const tooLarge = `the body is larger than the limit of ${options.maxBodySize} bytes (http.maxBodySize)`
    const read = yield* readBody(request, options.maxBodySize).pipe(Effect.timeout(READ_TIMEOUT), Effect.option)
    if (Option.isNone(read)) {
      return reject(408, `the body did not arrive within ${Duration.format(READ_TIMEOUT)}`)
    }
    const text = read.value
    if (text._tag === "TooLarge") return reject(413, tooLarge)
    if (text._tag === "Failed") return reject(400, `the body could not be read: ${excerpt(text.reason)}`)
    let body: unknown
    try {
      body = JSON.parse(text.text)
    } catch (error) {
      return reject(
        400,
        `the body is not JSON (${error instanceof Error ? excerpt(error.message, 100) : "parse error"}): ${
          excerpt(JSON.stringify(excerpt(text.text, 60)))
        }`
      )
    }
    const messages = Array.isArray(body) ? body : [body]
    if (messages.length === 0) return reject(400, "the body holds no message")
    if (messages.length > MAX_MESSAGES) return reject(400, `at most ${MAX_MESSAGES} messages per request`)
    const checked: Array<Record<string, unknown>> = []
    for (let i = 0; i < messages.length; i++) {
      const result = checkMessage(group, messages[i], i)
      if (Either.isLeft(result)) return reject(400, result.left)
      checked.push(result.right)
    }
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(request.headers)) {
      if (name !== CLIENT_ADDRESS_HEADER && name !== "content-length") headers[name] = value
    }
    headers[CLIENT_ADDRESS_HEADER] = clientAddress(request)
    const inner = HttpServerRequest.fromWeb(
      new Request(`http://edge${request.url}`, {
        method: "POST",
        headers,
        body: JSON.stringify(Array.isArray(body) ? checked : checked[0])
      })
    )
    return yield* Effect.provideService(app, HttpServerRequest.HttpServerRequest, inner)
  })
