/**
 * The build of this program: its package version, read from package.json at bundle time (so a bundle or a single
 * executable reports the version it was built from, not whatever package.json lies beside it).
 *
 * @since 0.1.0
 */
import pkg from "../../package.json" with { type: "json" }

/**
 * The package version (`0.1.0`).
 *
 * @since 0.1.0
 * @category constants
 */
export const version: string = pkg.version

/**
 * The program's name, as the CLI and `build_info` show it.
 *
 * @since 0.1.0
 * @category constants
 */
export const name = "effect-job-scheduler"
