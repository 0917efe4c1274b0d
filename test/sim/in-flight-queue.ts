/** The simulator's in-flight messages, delivered in (slot, send sequence) order. */
import type { Message } from '../../raft/index.js';

export interface InFlight {
  slot: number;
  seq: number;
  sentSlot: number;
  /** Send order on this link, to count reordering. */
  linkSeq: number;
  message: Message;
}

/** A binary min-heap of in-flight messages by (delivery slot, send sequence). */
export class InFlightQueue {
  private readonly heap: InFlight[] = [];

  get size(): number {
    return this.heap.length;
  }

  countSentBefore(slot: number): number {
    let n = 0;
    for (const f of this.heap) if (f.sentSlot < slot) n++;
    return n;
  }

  peek(): InFlight | undefined {
    return this.heap[0];
  }

  push(item: InFlight): void {
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  pop(): InFlight | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
    return top;
  }
}

function before(a: InFlight, b: InFlight): boolean {
  return a.slot < b.slot || (a.slot === b.slot && a.seq < b.seq);
}
