/**
 * Owner tokens that carry the leadership term under which a lock was taken: `term:{term}:{random}`. A `begin` made
 * under a newer term may take over a lock whose token names an older term (its holder's term has ended, so its
 * runs were interrupted when that node stepped down). Any other value (a token of `JobLockModel.acquireLock`, a
 * lock taken by a Go service, a manual run on a node that does not lead) names no term and is never taken over.
 *
 * @internal
 */

const PREFIX = "term:"

/** The last term a token was made for, and its `term:<n>:` text. */
let lastTerm = Number.NaN
let lastHead = ""

/** The token for a lock taken under `term` (see `isUsableTerm`), around a random part unique to this lock. */
export const tokenWithTerm = (term: number, random: string): string => {
  // A leader's locks all carry its one term: the `term:<n>:` text is made once per term, not once per lock.
  if (term !== lastTerm) {
    lastTerm = term
    lastHead = `${PREFIX}${term}:`
  }
  return lastHead + random
}
/**
 * Whether `term` can be written into a token (and so take over older terms' locks): a whole number >= 0 (etcd
 * revisions) below 2^53, where JavaScript and Redis' Lua compare numbers exactly.
 */
export const isUsableTerm = (term: number | undefined): term is number =>
  term !== undefined && Number.isSafeInteger(term) && term >= 0

/** The term a token names, or undefined for a token without one. */
export const termOfToken = (token: string): number | undefined => {
  if (!token.startsWith(PREFIX)) return undefined
  const end = token.indexOf(":", PREFIX.length)
  if (end < 0) return undefined
  const digits = token.slice(PREFIX.length, end)
  if (!/^[0-9]+$/.test(digits)) return undefined
  const term = Number(digits)
  return Number.isSafeInteger(term) ? term : undefined
}
