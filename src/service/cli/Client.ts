/**
 * The CLI's side of a node's API: the job RPCs over `POST {url}/rpc` (JSON), with `Authorization: Bearer <token>`
 * when a token is given, each call bounded by `CALL_TIMEOUT`. Every failure is a `CliFailure` with one line saying
 * what went wrong (the node's typed error, or that the node cannot be reached at that URL).
 *
 * @since 0.1.0
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as RpcClient from "@effect/rpc/RpcClient"
import type * as RpcClientError from "@effect/rpc/RpcClientError"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { JobRpcs, RPC_PATH } from "../server/Rpcs.js"

/**
 * Represents an error that occurs when a CLI command cannot do what was asked: the node refused it or cannot be
 * reached. `message` is the one line the CLI prints.
 *
 * @since 0.1.0
 * @category errors
 */
export class CliFailure extends Schema.TaggedError<CliFailure>()("CliFailure", {
  reason: Schema.String
}) {
  get message(): string {
    return this.reason
  }
}

/**
 * Bound on one call to a node: a trigger forwarded to the leader takes at most 5 s there, plus the round trip.
 *
 * @since 0.1.0
 * @category constants
 */
export const CALL_TIMEOUT = Duration.seconds(15)

/**
 * Where the CLI talks to.
 *
 * @since 0.1.0
 * @category models
 */
export interface Target {
  readonly url: string
  readonly token: Option.Option<string>
}

const describe = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    if ("cause" in error && error.cause !== undefined && error.cause !== error) return describe(error.cause)
    if ("message" in error && typeof error.message === "string" && error.message !== "") return error.message
  }
  return String(error)
}

/**
 * A job RPC client.
 *
 * @since 0.1.0
 * @category client
 */
export type Client = RpcClient.FromGroup<typeof JobRpcs, RpcClientError.RpcClientError>

/**
 * Run `f` with a job RPC client of the node at `target`.
 *
 * @since 0.1.0
 * @category client
 */
export const call = <A, E extends { readonly message: string }>(
  target: Target,
  f: (client: Client) => Effect.Effect<A, E>
): Effect.Effect<A, CliFailure> =>
  Effect.gen(function*() {
    const client = yield* RpcClient.make(JobRpcs)
    return yield* f(client)
  }).pipe(
    Effect.scoped,
    Effect.provide(
      RpcClient.layerProtocolHttp({ url: `${target.url.replace(/\/+$/, "")}${RPC_PATH}` }).pipe(
        Layer.provide([RpcSerialization.layerJson, FetchHttpClient.layer])
      )
    ),
    RpcClient.withHeaders(Option.match(target.token, {
      onNone: () => ({}),
      onSome: (token) => ({ authorization: `Bearer ${token}` })
    })),
    Effect.timeoutFail({
      duration: CALL_TIMEOUT,
      onTimeout: () =>
        new CliFailure({ reason: `${target.url} did not answer within ${Duration.format(CALL_TIMEOUT)}` })
    }),
    Effect.catchAll((error: unknown) =>
      Effect.fail(
        error instanceof CliFailure
          ? error
          : typeof error === "object" && error !== null && "_tag" in error && error._tag === "RpcClientError"
          ? new CliFailure({ reason: `cannot reach the node at ${target.url}: ${describe(error)}` })
          : new CliFailure({ reason: describe(error) })
      )
    )
  )
