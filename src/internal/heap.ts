/**
 * A binary min-heap of entries ordered by time, for `Timer`.
 *
 * @internal
 */
export interface HeapEntry<A> {
  readonly time: number
  readonly value: A
}

export class MinHeap<A> {
  private readonly items: Array<HeapEntry<A>> = []

  get size(): number {
    return this.items.length
  }

  peek(): HeapEntry<A> | undefined {
    return this.items[0]
  }

  push(entry: HeapEntry<A>): void {
    const items = this.items
    items.push(entry)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (items[parent]!.time <= entry.time) break
      items[i] = items[parent]!
      i = parent
    }
    items[i] = entry
  }

  pop(): HeapEntry<A> | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) return top
    let i = 0
    const n = items.length
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && items[right]!.time < items[left]!.time ? right : left
      if (items[child]!.time >= last.time) break
      items[i] = items[child]!
      i = child
    }
    items[i] = last
    return top
  }

  clear(): void {
    this.items.length = 0
  }

  /** Keep only the entries `keep` accepts, and restore the heap order (O(n)). */
  retain(keep: (value: A) => boolean): void {
    const items = this.items
    let n = 0
    for (const item of items) if (keep(item.value)) items[n++] = item
    items.length = n
    for (let i = (n >> 1) - 1; i >= 0; i--) this.siftDown(i)
  }

  private siftDown(start: number): void {
    const items = this.items
    const n = items.length
    const entry = items[start]!
    let i = start
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && items[right]!.time < items[left]!.time ? right : left
      if (items[child]!.time >= entry.time) break
      items[i] = items[child]!
      i = child
    }
    items[i] = entry
  }
}
