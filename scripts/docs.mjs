#!/usr/bin/env node
// `npm run docs`: the API reference of the library, generated from the JSDoc of its public modules into docs/api/
// (one Markdown page per import path, and docs/api/README.md listing them), with every `@example` type-checked and
// run. Every export must have a description; `npm run docs -- --no-enforce-descriptions` builds while some still
// lack one (docgen 0.5's own command-line flags are not applied, so this script sets the option in docgen.json).
//
// The generator is Effect's `@effect/docgen`, the tool that builds effect's own reference from the same JSDoc habits
// this code follows (`@since` on every export, `@category` groups, `@example` blocks that import the package by its
// public paths). It reads `package.json` and `docgen.json` from its working directory and wants a `homepage` in the
// former, so it runs in a staging directory (.tmp/docgen/) that holds a link to src/, a two-field package.json and
// a copy of scripts/docgen.json: the repository's top level and its package.json stay as they are.
//
// Examples import `effect-job-scheduler/<Module>`; docgen rewrites those imports to the sources (`../../src/<Module>`
// from its examples folder), type-checks them with `tsc` and runs them with `tsx`, both from node_modules/.bin.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..")
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"))
const stage = path.join(root, ".tmp", "docgen")
const out = path.join(root, "docs", "api")

fs.rmSync(stage, { recursive: true, force: true })
fs.mkdirSync(stage, { recursive: true })
fs.symlinkSync(path.join(root, "src"), path.join(stage, "src"), "dir")
fs.writeFileSync(path.join(stage, "package.json"), JSON.stringify({ name: pkg.name, homepage: "" }))
const args = process.argv.slice(2)
const unknown = args.filter((arg) => arg !== "--no-enforce-descriptions")
if (unknown.length > 0) {
  console.error(`npm run docs: unknown argument(s) ${unknown.join(" ")}; the one option is --no-enforce-descriptions`)
  process.exit(2)
}
const config = JSON.parse(fs.readFileSync(path.join(root, "scripts", "docgen.json"), "utf8"))
if (args.includes("--no-enforce-descriptions")) config.enforceDescriptions = false
fs.writeFileSync(path.join(stage, "docgen.json"), JSON.stringify(config, null, 2))

const bin = path.join(root, "node_modules", ".bin")
const docgen = spawnSync(
  process.execPath,
  [path.join(root, "node_modules", "@effect", "docgen", "bin.cjs")],
  {
    cwd: stage,
    stdio: "inherit",
    env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ""}` }
  }
)
if (docgen.status !== 0) {
  console.error("npm run docs: docgen failed (see above); docs/api/ was left as it was")
  process.exit(docgen.status ?? 1)
}

// Import path of each public module, from the exports map: "./JobStore/Redis" -> dist/lib/JobStore/Redis.js,
// whose source is src/JobStore/Redis.ts.
const importPaths = new Map()
for (const [key, target] of Object.entries(pkg.exports)) {
  const file = typeof target === "object" && target !== null ? target.default : undefined
  if (typeof file !== "string" || !file.startsWith("./dist/lib/")) continue
  const source = file.slice("./dist/lib/".length).replace(/\.js$/, ".ts")
  importPaths.set(source, key === "." ? pkg.name : `${pkg.name}/${key.slice(2)}`)
}

// docgen writes docs/modules/<path>.ts.md with Jekyll front matter (its output is meant for a GitHub Pages site);
// here each page becomes docs/api/<path>.md, titled by its import path, readable as plain Markdown.
const modules = path.join(stage, "docs", "modules")
const pages = fs.readdirSync(modules, { recursive: true })
  .map(String)
  .filter((file) => file.endsWith(".ts.md"))
  .sort()
const unexported = pages.map((page) => page.replace(/\.md$/, "")).filter((source) => !importPaths.has(source))
const undocumented = [...importPaths.keys()].filter((source) => !pages.includes(`${source}.md`))
if (unexported.length > 0 || undocumented.length > 0) {
  console.error(
    "npm run docs: the documented modules and the exports map of package.json disagree\n" +
      unexported.map((source) => `  src/${source} is documented but not exported\n`).join("") +
      undocumented.map((source) => `  src/${source} is exported but has no page\n`).join("")
  )
  process.exit(1)
}

fs.rmSync(out, { recursive: true, force: true })
const index = []
for (const page of pages) {
  const source = page.replace(/\.md$/, "")
  const importPath = importPaths.get(source)
  const target = page.replace(/\.ts\.md$/, ".md")
  const text = fs.readFileSync(path.join(modules, page), "utf8")
  // The front matter: a first line of `---` (or `***`, as docgen's formatter may print it) up to the next `---`.
  const body = text.replace(/^(?:---|\*\*\*)\n[\s\S]*?\n---\n/, "")
  const up = "../".repeat(target.split("/").length - 1) || "./"
  const header =
    `<!-- Generated by \`npm run docs\` from the JSDoc in src/${source}; edit the source, not this page. -->\n\n` +
    `# \`${importPath}\`\n\n[All modules](${up}README.md)\n`
  fs.mkdirSync(path.dirname(path.join(out, target)), { recursive: true })
  fs.writeFileSync(path.join(out, target), `${header}\n${body.trimStart()}`)
  index.push({ importPath, target, summary: overview(body) })
}
index.sort((a, b) => a.importPath === pkg.name ? -1 : b.importPath === pkg.name ? 1 : 0)
fs.writeFileSync(
  path.join(out, "README.md"),
  "<!-- Generated by `npm run docs`; edit the JSDoc in src/, not this page. -->\n\n" +
    `# ${pkg.name} ${pkg.version}: API reference\n\n` +
    "One page per import path of the package, generated from the JSDoc of its public modules; every example on these " +
    "pages is type-checked and run when the reference is built.\n\n" +
    "| Import path | Module |\n| --- | --- |\n" +
    index.map(({ importPath, summary, target }) => `| [\`${importPath}\`](${target}) | ${summary} |\n`).join("")
)
fs.rmSync(stage, { recursive: true, force: true })
console.log(`npm run docs: ${index.length} modules in ${path.relative(root, out)}/ (start at README.md)`)

// The first sentence of a page's module overview (the paragraph under its "## X overview" heading).
function overview(body) {
  const heading = /^## .* overview$/m.exec(body)
  if (heading === null) return ""
  const paragraph = body.slice(heading.index + heading[0].length).trimStart().split(/\n\s*\n/)[0]
  const text = paragraph.replace(/\s+/g, " ").trim()
  const sentence = /^.*?\.(?=\s|$)/.exec(text)?.[0] ?? text
  return sentence.replace(/\|/g, "\\|")
}
