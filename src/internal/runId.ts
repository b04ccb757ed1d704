/**
 * Run ids: random UUIDs kept as one flat string.
 *
 * Node builds `crypto.randomUUID()` by concatenating 2-character hex pieces, so V8 holds the result as a tree of
 * about 13 cons strings over the shared pieces: some 490 bytes per id where the flat 36 characters take 65. A run
 * id lives as long as its record (a job's last run, the memory store's records), so at 100,000 jobs that have run
 * the trees alone are over 40 MB. Copying the id through a `Buffer` gives a flat string made by native code (the
 * tree is young garbage at once).
 *
 * @internal
 */

/** A random (version 4) UUID as a flat string. */
export const newRunId = (): string => Buffer.from(crypto.randomUUID(), "latin1").toString("latin1")
