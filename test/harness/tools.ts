/**
 * Test harness: external programs the tests run (promtool, chromium), found on the PATH or at Debian's paths. A
 * missing one fails the test with the apt package to install, never a silent skip.
 *
 * @since 0.1.0
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"

/**
 * The path of `binary` (looked up on the PATH, then at `candidates`), or a thrown error naming the Debian package.
 *
 * @since 0.1.0
 * @category harness
 */
export const requireBinary = (binary: string, aptPackage: string, candidates: ReadonlyArray<string> = []): string => {
  for (const candidate of candidates) if (fs.existsSync(candidate)) return candidate
  try {
    return execFileSync("sh", ["-c", `command -v ${binary}`], { encoding: "utf8" }).trim()
  } catch {
    throw new Error(`${binary} not found: apt-get update && apt-get install -y ${aptPackage}`)
  }
}

/**
 * Runs `promtool` with `args` (stdin = `input`), returning its exit code and output.
 *
 * @since 0.1.0
 * @category harness
 */
export const promtool = (args: ReadonlyArray<string>, input?: string) => {
  const binary = requireBinary("promtool", "prometheus")
  const result = spawnSync(binary, args, { input, encoding: "utf8", timeout: 60_000 })
  return { status: result.status, output: `${result.stdout ?? ""}${result.stderr ?? ""}` }
}
