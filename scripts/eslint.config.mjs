// ESLint flat config, used as `eslint -c scripts/eslint.config.mjs` by `npm run lint` (check) and `npm run format`
// (`--fix`). It lives in scripts/ beside the other build configs so the repository's top level stays as it is; with
// `-c`, the `files` and `ignores` patterns below are relative to the working directory (the repository root).
//
// Formatting is Effect's: the `@effect/dprint` rule runs dprint's TypeScript formatter with the settings of the
// Effect repository (2 spaces, 120 columns, no semicolons, double quotes, no trailing commas, parenthesised arrow
// parameters) and reports every difference as a fixable problem; `@effect/eslint-plugin`'s dprint config turns off
// the core layout rules that would fight it. The TypeScript rules follow the same repository: `typescript-eslint`'s
// recommended set, with the checks that Effect-style code trips by design turned off (each says why below).
import * as effectEslint from "@effect/eslint-plugin"
import js from "@eslint/js"
import globals from "globals"
import tseslint from "typescript-eslint"

export default tseslint.config(
  {
    // Generated or installed trees, and the scratch directories of scripts and tests.
    ignores: ["**/node_modules/**", "dist/**", "docs/**", "data/**", ".tmp/**", "coverage/**"]
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  effectEslint.configs.dprint,
  {
    languageOptions: {
      parser: tseslint.parser,
      ecmaVersion: 2022,
      sourceType: "module",
      // The .mjs build scripts are plain Node programs; TypeScript files get their globals from tsc.
      globals: globals.node
    },
    rules: {
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 120,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          operatorPosition: "maintain",
          "arrowFunction.useParentheses": "force"
        }
      }],

      "object-shorthand": "error",
      // A spread into `push` puts every element on the stack: it throws RangeError on large arrays.
      "no-restricted-syntax": ["error", {
        selector: "CallExpression[callee.property.name='push'] > SpreadElement.arguments",
        message: "Do not use spread arguments in Array.push"
      }],
      // `Effect.gen(function*() { ... })` without a `yield*` is an ordinary way to build an effect.
      "require-yield": "off",

      // `ReadonlyArray<A>` / `Array<A>`, as Effect writes them, not `readonly A[]`.
      "@typescript-eslint/array-type": ["error", { default: "generic", readonly: "generic" }],
      // `import type` (or an inline `type` specifier) for what is only a type, so `isolatedModules` builds erase it.
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      // Unused locals and parameters are tsc errors already (`noUnusedLocals`, `noUnusedParameters`); this rule adds
      // the same check for the .mjs scripts. A leading `_` marks one that is unused on purpose.
      "no-unused-vars": "off",
      "@typescript-eslint/no-unused-vars": ["error", {
        argsIgnorePattern: "^_",
        varsIgnorePattern: "^_",
        caughtErrorsIgnorePattern: "^_"
      }],
      // Tests and scripts read JSON replies as `any`; the library itself is held to `unknown` below.
      "@typescript-eslint/no-explicit-any": "off",
      // `const self = this` before `Effect.gen(function*() { ... })` is the Effect idiom for a method whose body is a
      // generator; any other alias of `this` is still reported.
      "@typescript-eslint/no-this-alias": ["error", { allowedNames: ["self"] }]
    }
  },
  {
    files: ["src/**/*.ts"],
    ignores: ["src/service/**", "src/main.ts"],
    rules: {
      // The library logs through Effect's logger (`Logging.ts`), never to the console.
      "no-console": "error",
      // A published API says what it takes and returns; `unknown` plus a check is the honest form of "anything".
      "@typescript-eslint/no-explicit-any": "error",
      // One module per import (`effect/Duration`), never the `effect` barrel: a bundler keeps only what is used.
      "@effect/no-import-from-barrel-package": ["error", { packageNames: ["effect"] }]
    }
  }
)
