import { describe, expect, it } from 'vitest';
import type { ConfState } from '../raft/index.js';
import { captureLog } from '../test/k8s/harness.js';
import { waitUntilRemoved, type LeaveOutcome } from './leave-wait.js';

function conf(voters: string[], votersOutgoing: string[] = []): ConfState {
  return { voters, votersOutgoing, learners: [], learnersNext: [], autoLeave: false };
}

function setup(initial: ConfState, deleting = true, maxWaitMs = 5_000) {
  let cs = initial;
  const listeners = new Set<(c: ConfState) => void>();
  const timers: Array<{ callback: () => void; delayMs: number; cleared: boolean }> = [];
  let outcome: LeaveOutcome | undefined;
  void waitUntilRemoved({
    selfId: 'b',
    confState: () => cs,
    onMembershipChange: (l) => (listeners.add(l), () => listeners.delete(l)),
    ownPodDeleting: () => Promise.resolve(deleting),
    maxWaitMs,
    setTimeout: (callback, delayMs) => {
      const t = { callback, delayMs, cleared: false };
      timers.push(t);
      return t;
    },
    clearTimeout: (t) => ((t as { cleared: boolean }).cleared = true),
    logger: captureLog().logger,
  }).then((o) => (outcome = o));
  return {
    apply(next: ConfState) {
      cs = next;
      for (const l of [...listeners]) l(next);
    },
    fireTimer() {
      for (const t of timers) if (!t.cleared) t.callback();
    },
    outcome: async () => {
      for (let i = 0; i < 5; i++) await Promise.resolve();
      return outcome;
    },
    timers,
    listeners,
  };
}

describe('SIGTERM of a voter whose pod is deleting: it stays until the leader removes it', () => {
  it('resolves "removed" when an applied configuration no longer counts it, and stops listening', async () => {
    const s = setup(conf(['a', 'b', 'c']));
    expect(await s.outcome()).toBeUndefined();
    s.apply(conf(['a', 'c', 'd'], ['a', 'b', 'c'])); // joint: the outgoing half still counts b
    expect(await s.outcome()).toBeUndefined();
    s.apply(conf(['a', 'c', 'd']));
    expect(await s.outcome()).toBe('removed');
    expect(s.listeners.size).toBe(0);
    expect(s.timers[0]!.cleared).toBe(true);
  });

  it('leaves after maxWaitMs when nobody removes it', async () => {
    const s = setup(conf(['a', 'b', 'c']));
    expect(await s.outcome()).toBeUndefined();
    expect(s.timers[0]!.delayMs).toBe(5_000);
    s.fireTimer();
    expect(await s.outcome()).toBe('timed-out');
  });

  it('does not wait when its pod stays (a container restart), when it is no voter, when it is the last voter, or when disabled', async () => {
    expect(await setup(conf(['a', 'b', 'c']), false).outcome()).toBe('not-deleting');
    expect(await setup(conf(['b'], ['a', 'b', 'c'])).outcome()).toBeUndefined(); // joint: not the last voter
    expect(await setup(conf(['a', 'c'])).outcome()).toBe('not-a-voter');
    expect(await setup(conf(['b'])).outcome()).toBe('last-voter');
    expect(await setup(conf(['a', 'b', 'c']), true, 0).outcome()).toBe('disabled');
  });
});
