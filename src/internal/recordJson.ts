/**
 * The JSON of a run record as the Redis store keeps it, written by hand: `Schema.encode(Schema.parseJson(RunRecord))`
 * builds the same text, but its walk over the schema cost more per run than the rest of a run's bookkeeping on
 * Redis. The text is the schema's encoding, field for field and in its order (test/RecordJson.test.ts checks both
 * against each other); anything the hand-written form does not cover (a record that is not a `RunRecord`, an
 * invalid date) goes through the schema.
 *
 * @internal
 */
import * as Either from "effect/Either"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { RunRecord } from "../Run.js"

const RecordJson = Schema.parseJson(RunRecord)
const encodeWithSchema = Schema.encodeEither(RecordJson)

const isValidDate = (date: unknown): date is Date => date instanceof Date && !Number.isNaN(date.getTime())

/** The record's JSON, or the schema's error for a record it cannot encode. */
export const encodeRecordJson = (record: RunRecord): Either.Either<string, ParseResult.ParseError> => {
  if (
    !(record instanceof RunRecord) || !isValidDate(record.fireTime) || !isValidDate(record.startedAt) ||
    !isValidDate(record.finishedAt)
  ) return encodeWithSchema(record)
  const error = record.error
  return Either.right(JSON.stringify({
    runId: record.runId,
    job: record.job,
    kind: record.kind,
    fireTime: record.fireTime.getTime(),
    startedAt: record.startedAt.getTime(),
    finishedAt: record.finishedAt.getTime(),
    durationMs: record.durationMs,
    node: record.node,
    attempt: record.attempt,
    fence: record.fence,
    outcome: record.outcome,
    error: error === undefined
      ? undefined
      : error.code === undefined
      ? { tag: error.tag, message: error.message }
      : { tag: error.tag, code: error.code, message: error.message }
  }))
}
