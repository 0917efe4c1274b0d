import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LinkUpkeep } from './link-upkeep.js';
import type { Connection } from './peer-link.js';

function fakeLink(): Connection {
  return { state: 'open', pongDueAt: 0, lastPingAt: -Infinity, question: null, sendSealed: () => {}, ws: { ping: () => {} } } as unknown as Connection;
}

const HourMs = 3_600_000;

// The wall clock steps (NTP, a VM resumed); link deadlines run on the monotonic clock and must not.
describe('LinkUpkeep deadlines and the wall clock', () => {
  let overdue: Connection[];
  let upkeep: LinkUpkeep;
  let link: Connection;
  let other: Connection;
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    overdue = [];
    link = fakeLink();
    other = fakeLink();
    upkeep = new LinkUpkeep({ pingIntervalMs: 2000, pongTimeoutMs: 3000 }, { links: () => [link, other], pongOverdue: (c) => overdue.push(c), questionUnanswered: () => {} });
  });
  afterEach(() => {
    upkeep.close();
    vi.useRealTimers();
  });

  it('a wall-clock step forward does not drop a link whose pong is not late', () => {
    upkeep.sent(link); // pings: the pong is due in 3 s
    upkeep.sent(other);
    vi.setSystemTime(Date.now() + HourMs);
    vi.advanceTimersByTime(50);
    upkeep.pong(other); // the timer is re-armed
    vi.advanceTimersByTime(50);
    expect(overdue).toEqual([]);
    vi.advanceTimersByTime(2900);
    expect(overdue).toEqual([link]);
    expect(vi.getTimerCount()).toBe(1);
  });

  it('a wall-clock step back does not keep a dead link for the length of the step', () => {
    upkeep.sent(link);
    upkeep.sent(other);
    vi.setSystemTime(Date.now() - HourMs);
    upkeep.changed();
    vi.advanceTimersByTime(2999);
    expect(overdue).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(overdue).toEqual([link, other]);
  });
});
