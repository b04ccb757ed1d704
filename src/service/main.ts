/**
 * The service's entry point: `node main --mode job|rpc|all --config path` (see `--help`). Exit codes: 0 after a
 * graceful shutdown (SIGTERM/SIGINT), 2 for an invalid configuration (one line on stderr), 1 for any other failure.
 *
 * @since 0.1.0
 */
import { NodeRuntime } from "@effect/platform-node"
import * as App from "./App.js"

App.main(process.argv.slice(2), process.env).pipe(
  // The logger comes from the config (`Logging.layer`), so runMain must not add its own pretty logger.
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true, teardown: App.teardown })
)
