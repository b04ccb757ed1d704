/**
 * The project root for scripts: the nearest directory above the running script with this project's package.json.
 * `scripts/run.mjs` runs a bundled copy from `.tmp/run/` and sets argv[1] to the original script's path, so the
 * search starts there.
 */
import * as fs from "node:fs"
import * as path from "node:path"

const findRoot = (from: string): string => {
  for (let dir = from;; dir = path.dirname(dir)) {
    const manifest = path.join(dir, "package.json")
    if (fs.existsSync(manifest) && JSON.parse(fs.readFileSync(manifest, "utf8")).name === "effect-job-scheduler") {
      return dir
    }
    if (path.dirname(dir) === dir) throw new Error(`no effect-job-scheduler package.json above ${from}`)
  }
}

export const root: string = findRoot(path.dirname(path.resolve(process.argv[1] ?? ".")))
