import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ClaimLog } from './claim-log.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { lines, log };
}

const view = (isLeader: boolean) => ({ term: 4, role: 'Leader', isLeader, leaseExpiresInMs: isLeader ? 80 : null });

describe('ClaimLog', () => {
  it('ordinary claims and ends are logged as they happen', () => {
    const { lines, log } = capture();
    const c = new ClaimLog(log, 60_000, 10);
    c.flipped(0, view(true));
    c.flipped(5_000, view(false));
    c.flipped(9_000, view(true));
    expect(lines.map((l) => l.msg)).toEqual(['claiming leadership (lease held)', 'no longer claiming leadership', 'claiming leadership (lease held)']);
  });

  it('past the flicker budget, a new term or role is still logged at once (a deposition must not wait for the summary)', () => {
    const { lines, log } = capture();
    const c = new ClaimLog(log, 60_000, 10);
    for (let t = 0; t < 1_000; t += 50) c.flipped(t, view((t / 50) % 2 === 0));
    const logged = lines.length;
    c.flipped(1_000, { term: 5, role: 'Follower', isLeader: false, leaseExpiresInMs: null });
    expect(lines.slice(logged)).toEqual([expect.objectContaining({ msg: 'no longer claiming leadership', term: 5, role: 'Follower' })]);
  });

  it('a flickering isLeader logs the first flips of an interval, then one summary with the state at its end', () => {
    const { lines, log } = capture();
    const c = new ClaimLog(log, 60_000, 10);
    // Flips every 50 ms for 2 minutes: 2,400 of them.
    let t = 0;
    for (; t < 120_000; t += 50) c.flipped(t, view((t / 50) % 2 === 0));
    c.flush(t, view(true));
    const flickers = lines.filter((l) => String(l.msg).startsWith('isLeader flickered'));
    expect(lines.length).toBeLessThanOrEqual(2 * 11 + 1);
    expect(flickers.length).toBeGreaterThanOrEqual(2);
    expect(flickers[0]).toMatchObject({ level: 40, claims: 595, ends: 595 });
    // Flips stop: the next view published after the interval still says what holds now.
    const before = lines.length;
    c.flush(t + 60_000, view(false));
    c.flush(t + 120_000, view(false));
    expect(lines.slice(before).length).toBeLessThanOrEqual(1);
    expect(lines.at(-1)).toMatchObject({ isLeader: expect.any(Boolean) });
  });
});
