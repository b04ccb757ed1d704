/**
 * The Redis client through Sentinel (test/harness/sentinel.ts: a primary, a replica, three sentinels with a 1 s
 * down-after), in one process: it finds the primary by name, and after `kill -9` of the primary it follows the
 * failover by itself, every command meanwhile failing within its bound (no hang, no offline queue). Measured figures
 * print as `[sentinel] ...`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redis from "../src/Redis.js"
import { poll } from "./harness/node.js"
import { uniquePrefix } from "./harness/redis.js"
import { startSentinels } from "./harness/sentinel.js"

/** The command bound of the client under test: short, so that the outage is sampled often. */
const COMMAND_TIMEOUT = Duration.millis(500)

/**
 * How long after the sentinels announce the new primary (`+switch-master`) the client must work again. The client
 * hears the announcement itself (failover detector) and reconnects at once; without it the next reconnect attempt
 * comes within 1 s (`reconnectDelayMillis`). 1.5 s on top leaves room for a loaded machine.
 */
const RECOVERY_AFTER_SWITCH_MS = 2_500

describe("Redis through Sentinel", () => {
  it.scopedLive("finds the primary by name and follows a kill -9 failover by itself", () =>
    Effect.gen(function*() {
      const setup = yield* startSentinels()
      const redis = yield* Redis.make({
        sentinel: { sentinels: setup.sentinels, name: setup.name },
        keyPrefix: uniquePrefix("sentinel"),
        commandTimeout: COMMAND_TIMEOUT
      })
      const key = `${redis.keyPrefix}:probe`
      yield* redis.run("set", (client) => client.set(key, "before"))
      assert.strictEqual(
        yield* redis.run("role", (client) => client.call("ROLE").then((r) => (r as Array<string>)[0])),
        "master"
      )
      yield* setup.waitInSync()

      const killedAt = Date.now()
      yield* setup.primary.kill()
      // Write every 20 ms until a write succeeds again; each failing call must end within its bound.
      let slowest = 0
      let failures = 0
      let recoveredAt = 0
      while (Date.now() - killedAt < 30_000) {
        const started = Date.now()
        const result = yield* Effect.either(redis.run("set", (client) => client.set(key, "after")))
        const took = Date.now() - started
        if (Either.isRight(result)) {
          recoveredAt = Date.now()
          break
        }
        failures++
        slowest = Math.max(slowest, took)
        yield* Effect.sleep("20 millis")
      }
      // The client may learn of the new primary (from its own sentinel query) before an announcement is read here.
      // A missing one is the assertion's failure below, not the poll's.
      yield* Effect.exit(poll("+switch-master", "10 seconds", () => setup.switches()[0]))
      const switched = setup.switches()[0]
      const figures = {
        switch_master_ms: switched === undefined ? "none" : switched.at - killedAt,
        recovered_ms: recoveredAt === 0 ? "never" : recoveredAt - killedAt,
        recovered_after_switch_ms: switched === undefined || recoveredAt === 0 ? "n/a" : recoveredAt - switched.at,
        failed_calls: failures,
        slowest_failed_call_ms: slowest
      }
      console.log(`[sentinel] kill -9 of the primary, one client: ${JSON.stringify(figures)}`)
      assert.isDefined(switched, "the sentinels promoted the replica")
      assert.strictEqual(switched!.to, setup.replica.port)
      assert.isAbove(recoveredAt, 0, "writes work again")
      assert.isAtMost(recoveredAt - switched!.at, RECOVERY_AFTER_SWITCH_MS)
      // No call outlived its bound (command timeout + the 100 ms slack of `run`), and some did fail: the outage was
      // real and typed, never a hang.
      assert.isAbove(failures, 0)
      assert.isAtMost(slowest, Duration.toMillis(COMMAND_TIMEOUT) + 400)
      // The write before the kill was replicated (the replica was in sync), and the client talks to the new primary.
      assert.strictEqual(yield* redis.run("get", (client) => client.get(key)), "after")
      assert.strictEqual(yield* setup.primaryPort(), setup.replica.port)
      const role = yield* redis.run("role", (client) => client.call("ROLE").then((r) => (r as Array<string>)[0]))
      assert.strictEqual(role, "master")
    }), 60_000)

  it.scopedLive("no sentinel reachable: connecting fails with a StoreError within the connect bound", () =>
    Effect.gen(function*() {
      const started = Date.now()
      const error = yield* Effect.flip(Redis.make({
        sentinel: { sentinels: [{ host: "127.0.0.1", port: 1 }], name: "nobody" },
        keyPrefix: "x",
        connectTimeout: "1 second"
      }))
      assert.strictEqual(error._tag, "StoreError")
      assert.include(error.message, "sentinel nobody via 127.0.0.1:1")
      assert.isBelow(Date.now() - started, 5_000)
    }))
})
