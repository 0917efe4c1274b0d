import { WebSocket } from 'ws';
import { describe, expect, it } from 'vitest';
import { DuplicateCheck } from './duplicate-check.js';
import type { Connection } from './peer-link.js';

function link(instance: string, state: Connection['state'], lastAuthAt = 0): Connection {
  return {
    peerId: 'b',
    peerInstance: instance,
    state,
    step: state === 'handshake' ? 'admission' : 'welcome',
    closedByUs: null,
    question: null,
    lastAuthAt,
    sendSealed: () => {},
    ws: { readyState: WebSocket.OPEN },
  } as unknown as Connection;
}

function setup(nowMs: () => number) {
  const current = link('old', 'open');
  const refused: Connection[] = [];
  const admitted: Connection[] = [];
  const check = new DuplicateCheck({
    linkOf: () => current,
    liveWindowMs: () => 1000,
    maxQuestionWaitMs: 500,
    refuse: (c) => refused.push(c),
    admit: (c) => admitted.push(c),
    changed: () => {},
    now: nowMs,
  });
  return { current, refused, admitted, check };
}

describe('DuplicateCheck', () => {
  it('a newcomer that closes while its question waits takes the question with it: the next newcomer is asked, not refused', () => {
    let now = 10_000;
    const { current, refused, check } = setup(() => now);
    const first = link('new', 'handshake');
    expect(check.check(first)).toBe('checking');
    // The restarting process gave up on that connection (its handshake timed out) and dials again.
    first.state = 'closed';
    check.closedBeforeAdmission(first);
    expect(current.question).toBeNull();
    now += 10;
    const second = link('new', 'handshake');
    expect(check.check(second)).toBe('checking');
    expect(refused).toEqual([]);
    expect(current.question?.newcomer).toBe(second);
  });

  it('the live window is judged on the injected clock: a link heard from moments ago refuses the newcomer', () => {
    let now = 10_000;
    const { current, refused, check } = setup(() => now);
    current.lastAuthAt = now - 999;
    expect(check.check(link('new', 'handshake'))).toBe('refused');
    expect(refused).toHaveLength(1);
    now += 2;
    expect(check.check(link('new', 'handshake'))).toBe('checking');
    expect(current.question?.dueAt).toBe(now + 500);
  });
});
