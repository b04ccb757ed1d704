import { describe, expect, it } from "@effect/vitest"
import { build } from "esbuild"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"

const root = path.resolve(import.meta.dirname, "..")
const exec = promisify(execFile)

/**
 * Runs node with `args` to its end, asynchronously (a test worker blocked for long stops answering vitest); a
 * non-zero exit is returned with the output, for the assertion to show.
 */
const runNode = async (
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv }
) => {
  try {
    const { stderr, stdout } = await exec(process.execPath, args, { encoding: "utf8", timeout: 120_000, ...options })
    return { status: 0, output: stdout + stderr }
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string; message: string }
    return {
      status: typeof failed.code === "number" ? failed.code : -1,
      output: `${failed.message}\n${failed.stdout ?? ""}${failed.stderr ?? ""}`
    }
  }
}
const readme = () => fs.readFileSync(path.join(root, "README.md"), "utf8")

/** The TypeScript block that follows the `<!-- marker ... -->` comment in README.md, exactly as written there. */
const markedBlock = (marker: string): string => {
  const match = new RegExp(`<!-- ${marker}[^>]*-->\\s*\`\`\`ts\\n([\\s\\S]*?)\`\`\``).exec(readme())
  if (match === null) throw new Error(`README.md has no ${marker} block`)
  return match[1]!
}

/** Every TypeScript block of the README. */
const allBlocks = (): ReadonlyArray<string> => [...readme().matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!)

/** A scratch directory inside the checkout, so that node and tsc resolve the examples' imports from node_modules. */
const scratch = (label: string): string => {
  fs.mkdirSync(path.join(root, ".tmp"), { recursive: true })
  return fs.mkdtempSync(path.join(root, ".tmp", `${label}-`))
}

describe("README", () => {
  it("the library example runs as written: jobs fire every second, outcomes are recorded, it exits 0", async () => {
    const dir = scratch("readme-example")
    try {
      const source = path.join(dir, "example.ts")
      fs.writeFileSync(source, markedBlock("readme-example"))
      const outfile = path.join(dir, "example.mjs")
      await build({
        entryPoints: [source],
        bundle: true,
        platform: "node",
        format: "esm",
        target: "node20",
        outfile,
        // The package name resolves to this checkout's source (test/Package.test.ts covers the built package);
        // every other package stays external and loads from node_modules as in an application.
        alias: { "effect-job-scheduler": path.join(root, "src/index.ts") },
        packages: "external",
        logLevel: "error"
      })
      const { output, status } = await runNode([outfile], {})
      expect(status, output).toBe(0)
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

  it("the testing recipe passes as a vitest file of its own", async () => {
    const dir = scratch("readme-test")
    try {
      fs.writeFileSync(path.join(dir, "recipe.test.ts"), markedBlock("readme-test"))
      // The package's import paths resolve to this checkout's sources: the root to src/index.ts, a subpath such as
      // `effect-job-scheduler/Testing` to its module.
      const alias = [
        { find: /^effect-job-scheduler$/, replacement: path.join(root, "src/index.ts") },
        { find: /^effect-job-scheduler\/(.*)$/, replacement: `${path.join(root, "src")}/$1.ts` }
      ]
      fs.writeFileSync(
        path.join(dir, "vitest.config.mjs"),
        `export default { resolve: { alias: [${
          alias.map(({ find, replacement }) => `{ find: ${find}, replacement: ${JSON.stringify(replacement)} }`)
            .join(", ")
        }] }, test: { include: ["recipe.test.ts"] } }\n`
      )
      const vitest = path.join(root, "node_modules", "vitest", "vitest.mjs")
      const { output, status } = await runNode([vitest, "run", "--root", dir, "--config", "vitest.config.mjs"], {
        cwd: dir,
        env: { ...process.env, CI: "true" }
      })
      expect(status, output).toBe(0)
      expect(output).toMatch(/1 passed/)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 150_000)

  it("every TypeScript block of the README type-checks against the package's import paths", async () => {
    const dir = scratch("readme-types")
    try {
      const blocks = allBlocks()
      expect(blocks.length).toBeGreaterThanOrEqual(3)
      const files = blocks.map((block, i) => {
        const file = `block${i}.ts`
        // Each block is a module of its own (top-level names do not clash across blocks).
        fs.writeFileSync(path.join(dir, file), `${block}\nexport {}\n`)
        return file
      })
      fs.writeFileSync(
        path.join(dir, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            strict: true,
            noEmit: true,
            skipLibCheck: true,
            types: ["node"],
            paths: {
              "effect-job-scheduler": [path.join(root, "src/index.ts")],
              "effect-job-scheduler/*": [path.join(root, "src/*.ts")]
            }
          },
          files
        })
      )
      const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc")
      const { output, status } = await runNode([tsc, "-p", dir], {})
      expect(status, output).toBe(0)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 150_000)
})
