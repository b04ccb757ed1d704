import { describe, expect, it } from "@effect/vitest"
import { build } from "esbuild"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")

/** The TypeScript block that follows the `readme-example` marker in README.md, exactly as written there. */
const readmeExample = (): string => {
  const readme = fs.readFileSync(path.join(root, "README.md"), "utf8")
  const match = /<!-- readme-example[^>]*-->\s*```ts\n([\s\S]*?)```/.exec(readme)
  if (match === null) throw new Error("README.md has no readme-example block")
  return match[1]!
}

describe("README", () => {
  it("the library example runs as written: jobs fire every second, outcomes are recorded, it exits 0", async () => {
    // Inside the checkout, so that node resolves the example's dependencies from its node_modules.
    fs.mkdirSync(path.join(root, ".tmp"), { recursive: true })
    const dir = fs.mkdtempSync(path.join(root, ".tmp", "readme-example-"))
    try {
      const source = path.join(dir, "example.ts")
      fs.writeFileSync(source, readmeExample())
      const outfile = path.join(dir, "example.mjs")
      // The package name resolves to this checkout's source; everything else from node_modules.
      await build({
        entryPoints: [source],
        bundle: true,
        platform: "node",
        format: "esm",
        target: "node20",
        outfile,
        // The package name resolves to this checkout's source; every other package stays external and loads
        // from node_modules as in an application (etcd3 finds its .proto files there).
        alias: { "effect-job-scheduler": path.join(root, "src/index.ts") },
        packages: "external",
        logLevel: "error"
      })
      const result = spawnSync(process.execPath, [outfile], { encoding: "utf8", timeout: 60_000 })
      const output = result.stdout + result.stderr
      expect(result.status, output).toBe(0)
      expect(output).toContain("job finished")
      const recorded = /recorded runs: (.*)/.exec(output)
      expect(recorded, output).not.toBeNull()
      const outcomes = recorded![1]!.split(", ")
      // 3.5 s of a every-second job: 3 or 4 runs, each success or business_error.
      expect(outcomes.length).toBeGreaterThanOrEqual(3)
      for (const outcome of outcomes) expect(["success", "business_error"]).toContain(outcome)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 90_000)
})
