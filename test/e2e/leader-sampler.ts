/**
 * Samples GET /leader on every running member every few ms while a test changes the group,
 * and judges what a user would see: no two members claiming isLeader at once, and the longest
 * time with no claim anywhere. A claim happened somewhere between a request's send and its
 * answer, so an overlap is certain only when one member's claim of an older term was sent
 * after another member's claim of a newer term was answered, or when two members claim one term.
 */
import type { LeaderAnswer } from '../integration/harness.js';

export interface Target {
  key: string;
  url: string;
}

export interface Sample {
  key: string;
  term: number;
  isLeader: boolean;
  sentAt: number;
  receivedAt: number;
}

export class LeaderSampler {
  readonly samples: Sample[] = [];
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly targets: () => Target[],
    private readonly everyMs = 5,
  ) {}

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await Promise.all(this.targets().map((t) => this.sample(t)));
        await new Promise((r) => setTimeout(r, this.everyMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private async sample(t: Target): Promise<void> {
    const sentAt = performance.now();
    try {
      const res = await fetch(t.url, { signal: AbortSignal.timeout(500) });
      const body = (await res.json()) as LeaderAnswer;
      this.samples.push({ key: t.key, term: body.term, isLeader: body.isLeader, sentAt, receivedAt: performance.now() });
    } catch {
      // A member stopping or starting: no answer is no claim.
    }
  }

  /**
   * Certain overlaps, described; empty when there is none. `keep` narrows the judgement to the
   * samples of one group (terms restart at 1 when a new group forms).
   */
  overlaps(keep: (s: Sample) => boolean = () => true): string[] {
    const claims = this.samples.filter((s) => s.isLeader && keep(s));
    const out: string[] = [];
    const byTerm = new Map<number, Set<string>>();
    for (const c of claims) byTerm.set(c.term, (byTerm.get(c.term) ?? new Set()).add(c.key));
    for (const [term, keys] of byTerm) if (keys.size > 1) out.push(`term ${term} claimed by ${[...keys].sort().join(', ')}`);
    // The newest-term claim answered so far, scanning claims in send order.
    const bySent = [...claims].sort((a, b) => a.sentAt - b.sentAt);
    const byReceived = [...claims].sort((a, b) => a.receivedAt - b.receivedAt);
    let j = 0;
    let newest: Sample | undefined;
    for (const c of bySent) {
      while (j < byReceived.length && byReceived[j]!.receivedAt < c.sentAt) {
        const r = byReceived[j++]!;
        if (!newest || r.term > newest.term) newest = r;
      }
      if (newest && newest.key !== c.key && newest.term > c.term) {
        out.push(`${c.key} claimed term ${c.term} after ${newest.key} claimed term ${newest.term}`);
      }
    }
    return out.slice(0, 10);
  }

  /** The longest time between two answered claims (any member) within [fromMs, toMs]. */
  longestGapMs(fromMs = -Infinity, toMs = Infinity): number {
    const times = this.samples.filter((s) => s.isLeader && s.receivedAt >= fromMs && s.receivedAt <= toMs).map((s) => s.receivedAt).sort((a, b) => a - b);
    let gap = 0;
    for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
    return gap;
  }
}
