/**
 * Run ids: random (version 4) UUIDs, each made as one flat string.
 *
 * Node builds `crypto.randomUUID()` by concatenating 2-character hex pieces, so V8 holds the result as a tree of
 * about 13 cons strings over the shared pieces: some 490 bytes per id where the flat 36 characters take 65. A run
 * id lives as long as its record (a job's last run, the memory store's records), so at 100,000 jobs that have run
 * the trees alone would be over 40 MB. Here the 36 characters are written into a buffer and decoded once, which
 * gives a flat string made by native code, with no tree to throw away (one id per run: this is on the run path).
 * The random bytes come from the system's generator, 256 ids' worth at a time.
 *
 * @internal
 */
import { randomFillSync } from "node:crypto"

const IDS_PER_FILL = 256
const random = Buffer.allocUnsafe(16 * IDS_PER_FILL)
let next = IDS_PER_FILL * 16

/** The two hex digits of each byte value, as character codes: `hex[2 * b]`, `hex[2 * b + 1]`. */
const hex = new Uint8Array(512)
for (let b = 0; b < 256; b++) {
  const digits = b.toString(16).padStart(2, "0")
  hex[2 * b] = digits.charCodeAt(0)
  hex[2 * b + 1] = digits.charCodeAt(1)
}

const text = Buffer.alloc(36)
const DASH = 0x2d

/** A random (version 4) UUID as a flat string. */
export const newRunId = (): string => {
  if (next === random.length) {
    randomFillSync(random)
    next = 0
  }
  const at = next
  next += 16
  // Version 4: the version nibble is 4, the variant bits are 10.
  random[at + 6] = (random[at + 6]! & 0x0f) | 0x40
  random[at + 8] = (random[at + 8]! & 0x3f) | 0x80
  let o = 0
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) text[o++] = DASH
    const b = random[at + i]!
    text[o++] = hex[2 * b]!
    text[o++] = hex[2 * b + 1]!
  }
  return text.toString("latin1")
}
