#!/usr/bin/env node
// `npm run build:lib` (also run by `npm pack` through `prepack`): compiles the library, every module under src/
// except the reference service, to ESM `.js` + `.d.ts` + source maps in dist/lib/. The published package holds
// dist/lib and the sources the maps point to (see `files` in package.json); the service ships as its own bundle.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..")
const out = path.join(root, "dist", "lib")
// A module renamed or removed must not linger in the package from an earlier build.
fs.rmSync(out, { recursive: true, force: true })
const tsc = createRequire(path.join(root, "package.json")).resolve("typescript/bin/tsc")
execFileSync(process.execPath, [tsc, "-p", path.join(root, "scripts", "tsconfig.lib.json")], { stdio: "inherit" })
const leaked = fs.readdirSync(out, { recursive: true }).filter((file) => String(file).startsWith("service"))
if (leaked.length > 0) throw new Error(`the reference service leaked into dist/lib: ${leaked.join(", ")}`)
