import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { encodeRecordJson } from "../src/internal/recordJson.js"
import { RunRecord } from "../src/Run.js"

const schemaJson = Schema.encodeSync(Schema.parseJson(RunRecord))

const base = {
  runId: "0b6f7d9e-run",
  job: "report:tenant-42",
  kind: "scheduled" as const,
  fireTime: new Date(Date.UTC(2026, 0, 1, 2)),
  startedAt: new Date(Date.UTC(2026, 0, 1, 2, 0, 0, 3)),
  finishedAt: new Date(Date.UTC(2026, 0, 1, 2, 0, 1, 7)),
  durationMs: 1004,
  node: "node-a",
  attempt: 2,
  fence: 17
}

describe("the run record's JSON, written by hand", () => {
  it("is the schema's encoding, byte for byte: success, an error with and without a code, a manual run", () => {
    const records = [
      new RunRecord({ ...base, outcome: "success" }),
      new RunRecord({ ...base, outcome: "system_error", error: { tag: "MailDown", code: "SMTP", message: "down" } }),
      new RunRecord({ ...base, outcome: "timeout", error: { tag: "JobTimeout", message: "run exceeded its timeout" } }),
      new RunRecord({ ...base, kind: "manual", outcome: "business_error", error: { tag: "X", message: "a \"q\"\n" } })
    ]
    for (const record of records) expect(encodeRecordJson(record)).toEqual(Either.right(schemaJson(record)))
  })

  it("a record it does not cover (an invalid date) goes through the schema", () => {
    const record = new RunRecord({ ...base, fireTime: new Date(Number.NaN), outcome: "success" }, true)
    expect(encodeRecordJson(record)).toEqual(Schema.encodeEither(Schema.parseJson(RunRecord))(record))
  })
})
