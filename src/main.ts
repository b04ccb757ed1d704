/**
 * `npm start`: a small example job set on the embedded defaults (in-memory store, single-node leadership).
 * The reference user service replaces this entry point.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { Job, Logging, RunContext, Scheduler } from "./index.js"

const heartbeat = Job.unsafeMake({
  name: "heartbeat",
  every: "2 seconds",
  handler: Effect.gen(function*() {
    const run = yield* RunContext
    yield* Effect.logDebug("beat").pipe(Effect.annotateLogs({ fence: run.fence }))
  })
})

const everyFiveSeconds = Job.unsafeMake({
  name: "every_five_seconds",
  cron: "*/5 * * * * *",
  timeout: "3 seconds",
  handler: Effect.sleep("100 millis")
})

Scheduler.layerMemory([heartbeat, everyFiveSeconds]).pipe(
  Layer.provide(Logging.layerFromEnv()),
  Layer.launch,
  // The logger comes from Logging (LOG_FORMAT), so runMain must not add its own pretty logger.
  (program) => NodeRuntime.runMain(program, { disablePrettyLogger: true })
)
