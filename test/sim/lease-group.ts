/**
 * The driving the lease simulations share: real RaftMembers on the in-memory bus with a
 * random delay per message, advanced StepMs at a time under vitest's fake timers, every
 * member's view sampled after each step. A sample fails the run when two members answer
 * isLeader, when a term has two leaders, or on a violation a member callback recorded.
 * Subclasses say how a member starts (its store, timing, bootstrap).
 */
import { vi } from 'vitest';
import type { RaftMember } from '../../cluster/member.js';
import { seededRandom } from '../../raft/index.js';
import { type BackgroundSync, Bus, type MemoryStore } from '../harness/member-bus.js';

/** Half the random schedules sync off the event loop (as the state file does), half synchronously (as a plain store). */
export const syncsInBackground = (seed: number): boolean => seed % 2 === 1;

/** Simulated time between two samples. */
export const StepMs = 10;

export abstract class LeaseGroup {
  readonly bus = new Bus();
  readonly members = new Map<string, RaftMember>();
  readonly leaderOfTerm = new Map<number, string>();
  /** Found inside member callbacks, which must not throw; sample() fails the run on them. */
  readonly violations: string[] = [];
  samples = 0;
  claims = 0;
  private readonly timers: (() => void)[] = [];
  /** Each store's syncs, when the members sync off the event loop (as with the state file). */
  protected readonly backgroundSync: BackgroundSync | undefined;
  abstract readonly stores: Map<string, MemoryStore>;

  /** `syncInBackground`: synced writes take 0 to 8 ms (a few 1 to 3 s), with peers' messages and ticks going on meanwhile. */
  constructor(
    protected readonly seed: number,
    options: { syncInBackground?: boolean } = {},
  ) {
    const delays = seededRandom(seed ^ 0x5bd1e995);
    this.bus.tracing = false;
    // Up to 20 ms per message, independently: reordering comes with it.
    this.bus.delayMs = () => delays.nextInt(21);
    if (options.syncInBackground) {
      const disk = seededRandom(seed ^ 0x85ebca6b);
      // One sync in 50 stalls for one to three election timeouts (a disk hiccup): the member's
      // shown role and term lag raft's for that long, and what it owes its peers waits.
      const delayMs = () => (disk.nextInt(50) === 0 ? 1_000 + disk.nextInt(2_001) : disk.nextInt(9));
      this.backgroundSync = { delayMs, keptOnKill: () => disk.nextInt(2) === 1 };
    }
  }

  abstract start(id: string): Promise<void>;

  async crash(id: string): Promise<void> {
    const m = this.members.get(id);
    if (!m) return;
    this.members.delete(id);
    // Before stop(), which waits for a sync under way: a killed process does not finish it.
    this.stores.get(id)?.kill();
    await m.stop();
    this.bus.crash(id);
  }

  /** Runs `action` after `ms` of simulated time, unless the group stops first. */
  later(ms: number, action: () => void | Promise<void>): void {
    const timer = setTimeout(() => void action(), ms);
    this.timers.push(() => clearTimeout(timer));
  }

  /** Advances simulated time, sampling every member after each step. */
  async run(ms: number): Promise<void> {
    for (let t = 0; t < ms; t += StepMs) {
      await vi.advanceTimersByTimeAsync(StepMs);
      this.sample();
    }
  }

  /** Runs until `done` holds (sampling throughout), or fails after `limitMs`. */
  async runUntil(what: string, done: () => boolean, limitMs: number): Promise<void> {
    for (let t = 0; !done(); t += StepMs) {
      if (t >= limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
      await this.run(StepMs);
    }
  }

  /** One member answers isLeader and every member names it, in its term. */
  agreedClaim(): boolean {
    const views = [...this.members.values()].map((m) => m.view());
    const claimer = views.find((v) => v.isLeader);
    return claimer !== undefined && views.every((v) => v.leader === claimer.self && v.term === claimer.term);
  }

  sample(): void {
    this.samples++;
    if (this.violations.length > 0) throw new Error(this.violations.join('; '));
    const views = [...this.members.values()].map((m) => m.view());
    const claiming = views.filter((v) => v.isLeader).map((v) => v.self);
    if (claiming.length > 1) {
      const detail = views.map((v) => `${v.self}: ${v.role} term ${v.term} leader ${v.leader} lease ${v.leaseExpiresInMs}`).join('; ');
      throw new Error(`at ${Date.now()} ms ${claiming.join(' and ')} both answer isLeader (${detail})`);
    }
    this.claims += claiming.length;
    for (const v of views) {
      if (v.role !== 'Leader') continue;
      const seen = this.leaderOfTerm.get(v.term);
      if (seen !== undefined && seen !== v.self) throw new Error(`term ${v.term} has two leaders: ${seen} and ${v.self}`);
      this.leaderOfTerm.set(v.term, v.self);
    }
  }

  async stop(): Promise<void> {
    for (const cancel of this.timers) cancel();
    for (const store of this.stores.values()) store.kill();
    for (const m of this.members.values()) await m.stop();
  }
}
