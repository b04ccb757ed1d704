/**
 * ISO-8601 text of epoch-millisecond times, remembering the last one made. The scheduler writes the same few times
 * over and over: the runs of one fire batch share their fire time and the time their `begin` was sent, and the lines
 * of one bookkeeping batch are written within a few milliseconds of each other. A run's `job finished` line and its
 * log annotations each carry such times, so this is on every run's path.
 *
 * @internal
 */
export class IsoTime {
  private lastMs = Number.NaN
  private lastText = ""

  /** `new Date(ms).toISOString()`. */
  of(ms: number): string {
    if (ms !== this.lastMs) {
      this.lastText = new Date(ms).toISOString()
      this.lastMs = ms
    }
    return this.lastText
  }
}
