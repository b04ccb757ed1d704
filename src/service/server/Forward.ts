/**
 * A manual trigger made on a node that does not lead, carried to the leader: the leader's URL comes from its record
 * in the `LeaderDirectory`, the call is the leader's own `TriggerJob` RPC (so the leader checks the token and the job
 * again), bounded by `FORWARD_TIMEOUT`. A forwarded request carries `FORWARDED_HEADER`: a node that receives one and
 * does not lead answers `NoLeader` instead of forwarding again, so a request never travels in a loop.
 *
 * @since 0.1.0
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as Headers from "@effect/platform/Headers"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { NoLeader } from "../Errors.js"
import type { LeaderRecord } from "./Directory.js"
import { LeaderDirectory } from "./Directory.js"
import { JobRpcs, RPC_PATH } from "./Rpcs.js"

/**
 * Bound on one forwarded trigger, connection included. The leader answers once the run has begun (one store round
 * trip), so this leaves room for a slow store while keeping an operator's command from hanging on a dead leader.
 *
 * @since 0.1.0
 * @category constants
 */
export const FORWARD_TIMEOUT = Duration.seconds(5)

/**
 * Set on a forwarded request, to the id of the node that forwarded it.
 *
 * @since 0.1.0
 * @category constants
 */
export const FORWARDED_HEADER = "x-scheduler-forwarded-by"

const describe = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"
    ? error.message
    : String(error)

/**
 * Send `TriggerJob {job}` to the leader named by `record`, with the caller's `Authorization` header.
 *
 * @since 0.1.0
 * @category forwarding
 */
export const triggerOn = (
  record: LeaderRecord,
  job: string,
  options: {
    readonly authorization: string | undefined
    readonly forwardedBy: string
    readonly payload?: unknown
  }
) =>
  Effect.gen(function*() {
    const client = yield* RpcClient.make(JobRpcs)
    const headers: Record<string, string> = { [FORWARDED_HEADER]: options.forwardedBy }
    if (options.authorization !== undefined) headers.authorization = options.authorization
    return yield* client.TriggerJob(options.payload === undefined ? { job } : { job, payload: options.payload }, {
      headers
    })
  }).pipe(
    Effect.scoped,
    Effect.provide(
      RpcClient.layerProtocolHttp({ url: `${record.url.replace(/\/+$/, "")}${RPC_PATH}` }).pipe(
        Layer.provide([RpcSerialization.layerJson, FetchHttpClient.layer])
      )
    ),
    Effect.timeoutFail({
      duration: FORWARD_TIMEOUT,
      onTimeout: () =>
        new NoLeader({
          operation: "trigger",
          reason: `the leader ${record.nodeId} at ${record.url} did not answer within ${
            Duration.format(FORWARD_TIMEOUT)
          }`
        })
    }),
    Effect.catchTag("RpcClientError", (error) =>
      Effect.fail(
        new NoLeader({
          operation: "trigger",
          reason: `the leader ${record.nodeId} at ${record.url} cannot be reached: ${describe(error.cause ?? error)}`
        })
      ))
  )

/**
 * Forward a trigger received with `headers` to the current leader (see the module doc).
 *
 * @since 0.1.0
 * @category forwarding
 */
export const trigger = (
  job: string,
  headers: Headers.Headers,
  self: string,
  payload?: unknown
): Effect.Effect<
  Effect.Effect.Success<ReturnType<typeof triggerOn>>,
  Effect.Effect.Error<ReturnType<typeof triggerOn>>,
  LeaderDirectory
> =>
  Effect.gen(function*() {
    const via = headers[FORWARDED_HEADER]
    if (via !== undefined) {
      return yield* new NoLeader({
        operation: "trigger",
        reason: `forwarded by ${via} to ${self}, which does not lead (leadership moved); try again`
      })
    }
    const record = yield* Effect.flatMap(LeaderDirectory, (directory) => directory.current)
    if (Option.isNone(record)) {
      return yield* new NoLeader({
        operation: "trigger",
        reason: "no leader is published in the shared store (is a job node running, and do all nodes share the store?)"
      })
    }
    if (record.value.nodeId === self) {
      return yield* new NoLeader({
        operation: "trigger",
        reason: `the store names ${self} as leader, but it no longer leads (leadership moving); try again`
      })
    }
    return yield* triggerOn(record.value, job, {
      authorization: headers["authorization"],
      forwardedBy: self,
      payload
    })
  })
