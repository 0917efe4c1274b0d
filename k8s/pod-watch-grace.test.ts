/**
 * The follower's grace before it forgets a leader whose pod is deleting gracefully: that
 * leader hands over by itself, and a follower that forgot it would ignore its MsgTimeoutNow.
 * Fake time: each rule is checked at the millisecond it must act.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { captureLog, ScriptedMember } from '../test/k8s/harness.js';
import { ForgetLeaderOnPodExit, type PodExitEvent, type PodExitReason } from './pod-watch.js';

const voters = ['shop-0@u0', 'shop-1@u1', 'shop-2@u2'];

/** The pod watch as the reaction reads it, driven by the test. */
class StubWatch {
  private readonly listeners = new Set<(e: PodExitEvent) => void>();
  private readonly exits = new Map<string, PodExitReason>();
  onPodExit(listener: (e: PodExitEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  exitReason(pod: string): PodExitReason | null {
    return this.exits.get(pod) ?? null;
  }
  isRunning(pod: string): boolean {
    return !this.exits.has(pod);
  }
  uidOf(pod: string): string | null {
    return `u${pod.slice(-1)}`;
  }
  exit(pod: string, reason: PodExitReason): void {
    this.exits.set(pod, reason);
    for (const l of [...this.listeners]) l({ pod, uid: `u${pod.slice(-1)}`, reason });
  }
}

let reactions: ForgetLeaderOnPodExit[] = [];
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  for (const r of reactions) r.stop();
  reactions = [];
  vi.useRealTimers();
});

/** shop-1, a follower of shop-0 at term 3; shop-1 is the lowest running follower, so it campaigns. */
function follower(handoverGraceMs?: number): { member: ScriptedMember; watch: StubWatch; log: ReturnType<typeof captureLog> } {
  const member = new ScriptedMember('shop-1@u1');
  member.follow('shop-0@u0', 3);
  const watch = new StubWatch();
  const log = captureLog();
  const reaction = new ForgetLeaderOnPodExit({ member, podWatch: watch, voters, logger: log.logger, campaignDelayMs: 25, ...(handoverGraceMs === undefined ? {} : { handoverGraceMs }) });
  reaction.start();
  reactions.push(reaction);
  return { member, watch, log };
}

describe('ForgetLeaderOnPodExit: grace for a leader pod deleting gracefully', () => {
  it('waits the grace (default 1000 ms) before forgetting, then the chosen follower campaigns', () => {
    const { member, watch } = follower();
    watch.exit('shop-0', 'deleting');
    vi.advanceTimersByTime(999);
    expect(member.forgetLeaderCalls).toBe(0);
    vi.advanceTimersByTime(1);
    expect(member.forgetLeaderCalls).toBe(1);
    expect(member.campaignCalls).toBe(0);
    vi.advanceTimersByTime(25);
    expect(member.campaignCalls).toBe(1);
  });

  it('a leader that hands over within the grace is never forgotten, and no one campaigns', () => {
    const { member, watch, log } = follower();
    watch.exit('shop-0', 'deleting');
    vi.advanceTimersByTime(40);
    member.follow('shop-2@u2', 4); // the transfer's winner
    vi.advanceTimersByTime(2_000);
    expect(member.forgetLeaderCalls).toBe(0);
    expect(member.campaignCalls).toBe(0);
    expect(log.lines().some((l) => String(l.msg).includes('waiting up to 1000 ms'))).toBe(true);
  });

  it('a pod that goes further (gone) during the grace is forgotten at once, once', () => {
    const { member, watch } = follower();
    watch.exit('shop-0', 'deleting');
    vi.advanceTimersByTime(50);
    watch.exit('shop-0', 'deleted');
    expect(member.forgetLeaderCalls).toBe(1);
    vi.advanceTimersByTime(2_000);
    expect(member.forgetLeaderCalls).toBe(1);
    expect(member.campaignCalls).toBe(1);
  });

  it('failed, succeeded, a terminated sidecar and a gone pod get no grace', () => {
    for (const reason of ['failed', 'succeeded', 'container-terminated', 'deleted'] as const) {
      const { member, watch } = follower();
      watch.exit('shop-0', reason);
      expect(member.forgetLeaderCalls, reason).toBe(1);
    }
  });

  it('handoverGraceMs 0 forgets a deleting leader at once; a negative grace is refused', () => {
    const { member, watch } = follower(0);
    watch.exit('shop-0', 'deleting');
    expect(member.forgetLeaderCalls).toBe(1);
    expect(() => follower(-1)).toThrow(/handoverGraceMs must be >= 0/);
  });

  it('repeated signals for the same leadership start one grace; stop() cancels it', () => {
    const { member, watch } = follower();
    watch.exit('shop-0', 'deleting');
    member.set({ isLeader: false }); // a view change re-checks the leader's pod
    vi.advanceTimersByTime(10);
    watch.exit('shop-0', 'deleting');
    for (const r of reactions) r.stop();
    vi.advanceTimersByTime(2_000);
    expect(member.forgetLeaderCalls).toBe(0);
  });

  it('a deleting follower pod starts no grace and forgets nothing', () => {
    const { member, watch } = follower();
    watch.exit('shop-2', 'deleting');
    vi.advanceTimersByTime(2_000);
    expect(member.forgetLeaderCalls).toBe(0);
  });
});
