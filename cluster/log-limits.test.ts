import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LineBudget, RepeatLimiter, TransportLog, hostOf } from './log-limits.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { lines, log };
}

/** A clock the test moves by hand: no sleeps, no fake timers. */
function fakeClock(startMs = 5_000) {
  let now = startMs;
  return { nowMs: () => now, advance: (ms: number) => void (now += ms) };
}

describe('RepeatLimiter', () => {
  it('passes the first occurrence, folds repeats inside the interval, and reports their count once it is over', () => {
    const clock = fakeClock();
    const r = new RepeatLimiter(1_000, clock.nowMs);
    expect(r.check('a')).toBe(0);
    clock.advance(999);
    expect(r.check('a')).toBeUndefined();
    expect(r.check('a')).toBeUndefined();
    // Another key has its own interval.
    expect(r.check('b')).toBe(0);
    clock.advance(1);
    expect(r.check('a')).toBe(2);
    expect(r.check('a')).toBeUndefined();
  });

  it('follows the injected clock, not the wall clock: a clock that stands still keeps folding', () => {
    const clock = fakeClock();
    const r = new RepeatLimiter(10, clock.nowMs);
    expect(r.check('k')).toBe(0);
    for (let i = 0; i < 100; i++) expect(r.check('k')).toBeUndefined();
    clock.advance(10);
    expect(r.check('k')).toBe(100);
  });
});

describe('LineBudget', () => {
  it('grants `limit` lines per interval, counts the refused ones, and refills when the interval is over', () => {
    const clock = fakeClock();
    const b = new LineBudget(2, 1_000, clock.nowMs);
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([true, true, false, false]);
    expect(b.suppressed).toBe(2);
    clock.advance(999);
    expect(b.take()).toBe(false);
    clock.advance(1);
    expect([b.take(), b.take(), b.take()]).toEqual([true, true, false]);
    expect(b.suppressed).toBe(4);
  });
});

describe('TransportLog', () => {
  it('strangers: one line per host and reason per interval, at most the budget across hosts, the rest reported on the next line', () => {
    const clock = fakeClock();
    const { lines, log } = capture();
    const t = new TransportLog(log, 1_000, 2, clock.nowMs);
    for (let i = 0; i < 5; i++) t.warnStranger('x', `10.0.0.${i}:4000`, 'handshake_failed', 'bad handshake');
    // Same host, another port: folded with the first.
    t.warnStranger('x', '10.0.0.0:4001', 'handshake_failed', 'bad handshake');
    expect(lines.map((l) => l.remote)).toEqual(['10.0.0.0:4000', '10.0.0.1:4000']);
    expect(lines[0]).toMatchObject({ claimedId: 'x', reason: 'handshake_failed', repeated: 0 });
    expect(lines[0]).not.toHaveProperty('peer');
    clock.advance(1_000);
    t.warnStranger(null, '10.0.0.0:4000', 'handshake_failed', 'bad handshake');
    expect(lines.at(-1)).toMatchObject({ remote: '10.0.0.0:4000', repeated: 1, suppressedOthers: 3 });
  });

  it('peers: once per peer and reason per interval, with the count of repeats', () => {
    const clock = fakeClock();
    const { lines, log } = capture();
    const t = new TransportLog(log, 1_000, 2, clock.nowMs);
    t.warnOnce('b', '10.0.0.2:4000', 'send_failed', 'send failed');
    t.warnOnce('b', '10.0.0.2:4000', 'send_failed', 'send failed');
    t.warnOnce('c', '10.0.0.3:4000', 'send_failed', 'send failed');
    clock.advance(1_000);
    t.warnOnce('b', '10.0.0.2:4000', 'send_failed', 'send failed');
    expect(lines.map((l) => `${String(l.peer)}:${String(l.repeated)}`)).toEqual(['b:0', 'c:0', 'b:1']);
  });
});

describe('hostOf', () => {
  it('drops the port, IPv6 hosts included', () => {
    expect(hostOf('10.0.0.1:4000')).toBe('10.0.0.1');
    expect(hostOf('::1:4000')).toBe('::1');
    expect(hostOf('nohost')).toBe('nohost');
  });
});
