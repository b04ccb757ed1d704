/**
 * A run's log annotations (the scope's, then `job`, `run_id`, `fire_time`), built only when something reads them.
 *
 * Every run's root fiber carries its annotations, so that each line the handler logs names its run. A persistent
 * `HashMap` of three more entries is ~1.5 KB of nodes, closures and options made per run, and most runs of a busy
 * scheduler never read it (a handler that logs nothing; the scheduler's own lines about the run are written from
 * their fields). So the fiber gets this object instead: an instance of effect's `HashMap` (its prototype, so every
 * `HashMap` function, `Equal`, `Hash`, iteration and printing take it as one), whose internal fields are getters
 * that build the real map on first use and read through it after.
 *
 * It depends on the names of `HashMap`'s internal fields (`_editable`, `_edit`, `_root`, `_size`): a test holds it
 * to the same results as the map it stands for, so that an effect upgrade that renames them fails there.
 *
 * @internal
 */
import * as HashMap from "effect/HashMap"

/** The fields effect's `HashMap` functions read on a map. */
interface HashMapFields {
  readonly _editable: boolean
  readonly _edit: number
  readonly _root: unknown
  readonly _size: number
}

class RunAnnotations {
  private built: HashMapFields | undefined = undefined
  constructor(
    private readonly base: HashMap.HashMap<string, unknown>,
    private readonly job: string,
    private readonly runId: string,
    private readonly fireTime: string
  ) {}
  private get map(): HashMapFields {
    return this.built ??= HashMap.mutate(this.base, (map) => {
      HashMap.set(map, "job", this.job)
      HashMap.set(map, "run_id", this.runId)
      HashMap.set(map, "fire_time", this.fireTime)
    }) as unknown as HashMapFields
  }
  get _editable(): boolean {
    return false
  }
  get _edit(): number {
    return this.map._edit
  }
  get _root(): unknown {
    return this.map._root
  }
  get _size(): number {
    return this.map._size
  }
}
Object.setPrototypeOf(RunAnnotations.prototype, Object.getPrototypeOf(HashMap.empty()))

/** The scope's annotations `base` with the run's `job`, `run_id` and `fire_time`, as a `HashMap` made when read. */
export const runAnnotations = (
  base: HashMap.HashMap<string, unknown>,
  job: string,
  runId: string,
  fireTime: string
): HashMap.HashMap<string, unknown> =>
  new RunAnnotations(base, job, runId, fireTime) as unknown as HashMap.HashMap<string, unknown>
