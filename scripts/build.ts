/**
 * Builds the reference service for deployment, into `dist/service/`:
 *
 * - `effect-job-scheduler.cjs`: the whole program (src/service/main.ts and every dependency) in one CommonJS file,
 *   runnable with `node dist/service/effect-job-scheduler.cjs` from any directory, without `node_modules`.
 * - `better_sqlite3.node` (the SQLite native addon) and `proto/*.proto` (etcd's gRPC definitions, read when the
 *   etcd client loads) beside it: the bundle finds them next to itself.
 * - `config/default.yaml`: the default config, picked up when the program runs from `dist/service/`.
 * - `effect-job-scheduler`: a Node single executable application (the bundle injected into a copy of this `node`
 *   binary). The addon and protos are also embedded in it as SEA assets: it runs alone, from any directory; on
 *   first start it extracts them to `$TMPDIR/effect-job-scheduler-<hash>/` (content-addressed, shared by every run
 *   of the same build). Files beside the executable, when present, win over the embedded copies.
 *
 * The addon is built for this machine's Node ABI and platform: build on (or for) the platform you deploy to.
 *
 * Usage: node scripts/run.mjs scripts/build.ts [--no-sea]
 *
 * @since 0.1.0
 */
import { build, type Plugin } from "esbuild"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { root } from "./root.js"

const require = createRequire(path.join(root, "package.json"))
const outDir = path.join(root, "dist", "service")
const NAME = "effect-job-scheduler"
const bundleFile = path.join(outDir, `${NAME}.cjs`)

/** The files the program reads at run time, as `[name in dist/service and in the SEA, source path]`. */
const resources: ReadonlyArray<readonly [string, string]> = [
  [
    "better_sqlite3.node",
    path.join(path.dirname(require.resolve("better-sqlite3/package.json")), "build/Release/better_sqlite3.node")
  ],
  ...["rpc.proto", "kv.proto", "auth.proto"].map((file) =>
    [`proto/${file}`, path.join(path.dirname(require.resolve("etcd3/package.json")), "proto", file)] as const
  )
]

/**
 * The run-time side of the resources, as a virtual module of the bundle: where the addon and protos are (beside the
 * program, or extracted from the single executable's assets) and how the addon is loaded (`process.dlopen`, since a
 * single executable's `require` only loads built-in modules).
 */
const RESOURCES_MODULE = `
"use strict"
const fs = require("node:fs")
const os = require("node:os")
const path = require("node:path")
const crypto = require("node:crypto")
const NAMES = ${JSON.stringify(resources.map(([name]) => name))}
let sea
try { sea = require("node:sea") } catch { sea = undefined }
const isSea = sea !== undefined && typeof sea.isSea === "function" && sea.isSea()
const beside = isSea ? path.dirname(process.execPath) : __dirname
let dir
function extract() {
  // Content-addressed: every run of one build shares one directory; a new build gets a new one.
  const hash = crypto.createHash("sha256")
  for (const name of NAMES) hash.update(name).update(new Uint8Array(sea.getRawAsset(name)))
  const target = path.join(os.tmpdir(), "${NAME}-" + hash.digest("hex").slice(0, 16))
  if (fs.existsSync(path.join(target, ".complete"))) return target
  // Written into a private directory, then renamed into place: concurrent first starts never see half a file.
  const staging = fs.mkdtempSync(target + ".tmp-")
  for (const name of NAMES) {
    fs.mkdirSync(path.dirname(path.join(staging, name)), { recursive: true })
    fs.writeFileSync(path.join(staging, name), new Uint8Array(sea.getRawAsset(name)))
  }
  fs.writeFileSync(path.join(staging, ".complete"), "")
  try {
    fs.renameSync(staging, target)
  } catch {
    fs.rmSync(staging, { recursive: true, force: true })
  }
  return target
}
function resourceDir() {
  if (dir !== undefined) return dir
  dir = !isSea || NAMES.every((name) => fs.existsSync(path.join(beside, name))) ? beside : extract()
  return dir
}
exports.resourcePath = (name) => path.join(resourceDir(), name)
exports.loadAddon = (name) => {
  if (name !== "better_sqlite3.node") throw new Error("no bundled native addon " + name)
  const module = { exports: {} }
  process.dlopen(module, exports.resourcePath(name))
  return module.exports
}
`

/** Routes native addon loading and etcd's proto path through the resources module. */
const resourcesPlugin: Plugin = {
  name: "resources",
  setup(build) {
    build.onResolve({ filter: /^service-resources$/ }, () => ({ path: "service-resources", namespace: "resources" }))
    build.onLoad({ filter: /.*/, namespace: "resources" }, () => ({ contents: RESOURCES_MODULE, loader: "js" }))
    // better-sqlite3 calls require('bindings')('better_sqlite3.node'), which searches node_modules at run time.
    build.onResolve({ filter: /^bindings$/ }, () => ({ path: "bindings", namespace: "bindings-shim" }))
    build.onLoad({ filter: /.*/, namespace: "bindings-shim" }, () => ({
      contents: `module.exports = (name) => require("service-resources").loadAddon(name)`,
      loader: "js",
      resolveDir: root
    }))
    // etcd3 loads its service definitions from `${__dirname}/../proto/rpc.proto` when its module is first loaded.
    build.onLoad({ filter: /etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const source = fs.readFileSync(args.path, "utf8")
      const needle = "`${__dirname}/../proto/rpc.proto`"
      if (!source.includes(needle)) throw new Error(`etcd3 changed: ${needle} not found in ${args.path}`)
      return {
        contents: source.replace(needle, `require("service-resources").resourcePath("proto/rpc.proto")`),
        loader: "js"
      }
    })
  }
}

/**
 * Optional dependencies that their packages `require` inside a try/catch and do without (msgpackr's native
 * extractor, ws' native helpers, debug's color detection). They are bundled as modules that throw "not found", as they
 * would be without node_modules: a single executable's `require` of a non-built-in module would print a warning.
 */
const OPTIONAL = ["msgpackr-extract", "bufferutil", "utf-8-validate", "supports-color"]

const optionalPlugin: Plugin = {
  name: "optional-dependencies",
  setup(build) {
    build.onResolve(
      { filter: new RegExp(`^(${OPTIONAL.join("|")})$`) },
      (args) => ({ path: args.path, namespace: "optional" })
    )
    build.onLoad({ filter: /.*/, namespace: "optional" }, (args) => ({
      contents: `const error = new Error("Cannot find module '${args.path}' (not bundled)")
error.code = "MODULE_NOT_FOUND"
throw error`,
      loader: "js"
    }))
  }
}

const bundle = async () => {
  fs.rmSync(outDir, { recursive: true, force: true })
  fs.mkdirSync(outDir, { recursive: true })
  const result = await build({
    entryPoints: [path.join(root, "src/service/main.ts")],
    outfile: bundleFile,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    minify: false,
    sourcemap: false,
    legalComments: "none",
    plugins: [resourcesPlugin, optionalPlugin],
    logLevel: "warning"
  })
  if (result.errors.length > 0) throw new Error("bundle failed")
  for (const [name, source] of resources) {
    fs.mkdirSync(path.dirname(path.join(outDir, name)), { recursive: true })
    fs.copyFileSync(source, path.join(outDir, name))
  }
  fs.mkdirSync(path.join(outDir, "config"), { recursive: true })
  fs.copyFileSync(path.join(root, "config/default.yaml"), path.join(outDir, "config/default.yaml"))
  console.log(`bundle: ${path.relative(root, bundleFile)} (${(fs.statSync(bundleFile).size / 1e6).toFixed(1)} MB)`)
}

/** Node's single executable application: blob from the bundle and assets, injected into a copy of `node`. */
const singleExecutable = () => {
  const seaConfig = path.join(outDir, "sea-config.json")
  const blob = path.join(outDir, "sea-prep.blob")
  const binary = path.join(outDir, process.platform === "win32" ? `${NAME}.exe` : NAME)
  fs.writeFileSync(
    seaConfig,
    JSON.stringify(
      {
        main: bundleFile,
        output: blob,
        disableExperimentalSEAWarning: true,
        assets: Object.fromEntries(resources.map(([name]) => [name, path.join(outDir, name)]))
      },
      null,
      2
    )
  )
  execFileSync(process.execPath, ["--experimental-sea-config", seaConfig], { stdio: "inherit" })
  fs.copyFileSync(process.execPath, binary)
  fs.chmodSync(binary, 0o755)
  if (process.platform === "darwin") execFileSync("codesign", ["--remove-signature", binary], { stdio: "inherit" })
  const postject = path.join(path.dirname(require.resolve("postject/package.json")), "dist/cli.js")
  execFileSync(process.execPath, [
    postject,
    binary,
    "NODE_SEA_BLOB",
    blob,
    // The fuse Node's binary checks to know it carries a SEA blob (fixed by Node, see its SEA documentation).
    "--sentinel-fuse",
    "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2",
    ...(process.platform === "darwin" ? ["--macho-segment-name", "NODE_SEA"] : [])
  ], { stdio: "pipe" }) // postject warns about ELF note sections on Linux; a failure still throws with its output.
  if (process.platform === "darwin") execFileSync("codesign", ["--sign", "-", binary], { stdio: "inherit" })
  fs.rmSync(blob)
  fs.rmSync(seaConfig)
  console.log(`single executable: ${path.relative(root, binary)} (${(fs.statSync(binary).size / 1e6).toFixed(0)} MB)`)
}

await bundle()
if (!process.argv.includes("--no-sea")) singleExecutable()
