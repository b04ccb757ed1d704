import { describe, expect, it } from "@effect/vitest"
import { termOfToken, tokenWithTerm } from "../src/internal/lockTerm.js"

// A lock token carries the term it was taken under; a token made for one term never names another (the text of
// the last term is reused, so a change of term must be seen at once).
describe("lock tokens with a term", () => {
  it("each token names the term it was made for, through changes of term in any order", () => {
    const terms = [1, 1, 2, 1, 10, 10, 0, 9007199254740991]
    const tokens = terms.map((term, i) => tokenWithTerm(term, `r${i}`))
    expect(tokens.map(termOfToken)).toEqual(terms)
    expect(tokens[3]).toBe("term:1:r3")
    expect(tokens[4]).toBe("term:10:r4")
  })

  it("a token without the term prefix, or with a bad term, names no term", () => {
    expect(termOfToken("abc")).toBeUndefined()
    expect(termOfToken("term:x1:abc")).toBeUndefined()
    expect(termOfToken("term:12")).toBeUndefined()
  })
})
