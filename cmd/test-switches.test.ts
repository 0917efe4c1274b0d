import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { FakeMember } from '../api/fake-member.js';
import { ConfigError } from './config.js';
import { parseClockRate, parseUnsafe, skewedClock, withLeaseOverrun } from './test-switches.js';

describe('the test-only unsafe switch', () => {
  it('is off without the variable', () => {
    expect(parseUnsafe({})).toBeUndefined();
  });

  it('is refused outside a test run, naming both variables', () => {
    expect(() => parseUnsafe({ RAFT_ELECTOR_TEST_UNSAFE: 'lease-overrun' })).toThrow(ConfigError);
    expect(() => parseUnsafe({ RAFT_ELECTOR_TEST_UNSAFE: 'lease-overrun' })).toThrow(/RAFT_ELECTOR_TEST_UNSAFE .*RAFT_ELECTOR_TEST_RUN=1/);
  });

  it('parses the overrun and rejects anything else', () => {
    const run = { RAFT_ELECTOR_TEST_RUN: '1' };
    expect(parseUnsafe({ ...run, RAFT_ELECTOR_TEST_UNSAFE: 'lease-overrun' })).toEqual({ kind: 'lease-overrun', overrunMs: 1500 });
    expect(parseUnsafe({ ...run, RAFT_ELECTOR_TEST_UNSAFE: 'lease-overrun:400' })).toEqual({ kind: 'lease-overrun', overrunMs: 400 });
    expect(() => parseUnsafe({ ...run, RAFT_ELECTOR_TEST_UNSAFE: 'double-vote' })).toThrow(/must be lease-overrun/);
  });

  it('answers isLeader for the overrun after the lease ends, then stops', () => {
    const member = new FakeMember('a');
    let now = 0;
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const wrapped = withLeaseOverrun(member, { kind: 'lease-overrun', overrunMs: 500 }, log, () => now);
    expect(lines.join('')).toContain('UNSAFE TEST SWITCH');
    member.update({ leader: 'a', term: 3, role: 'Leader', isLeader: true, leaseExpiresInMs: 800 });
    expect(wrapped.view().isLeader).toBe(true);
    now = 100;
    member.update({ isLeader: false, leaseExpiresInMs: null });
    expect(wrapped.view()).toMatchObject({ isLeader: true, term: 3, leaseExpiresInMs: 400 });
    now = 499;
    expect(wrapped.view().isLeader).toBe(true);
    now = 500;
    expect(wrapped.view().isLeader).toBe(false);
  });

  it('runs a clock at a rate only inside a test run and within 0.9 to 1.1', () => {
    expect(parseClockRate({})).toBeUndefined();
    expect(() => parseClockRate({ RAFT_ELECTOR_TEST_CLOCK_RATE: '1.02' })).toThrow(/refused without RAFT_ELECTOR_TEST_RUN=1/);
    expect(parseClockRate({ RAFT_ELECTOR_TEST_RUN: '1', RAFT_ELECTOR_TEST_CLOCK_RATE: '1.02' })).toBe(1.02);
    expect(() => parseClockRate({ RAFT_ELECTOR_TEST_RUN: '1', RAFT_ELECTOR_TEST_CLOCK_RATE: '1.5' })).toThrow(/from 0.9 to 1.1/);
    let real = 1000;
    const clock = skewedClock(1.05, pino({ level: 'silent' }), () => real);
    expect(clock.monotonicNowMs()).toBe(1000);
    real = 2000;
    expect(clock.monotonicNowMs()).toBe(2050);
  });
});
