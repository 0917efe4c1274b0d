/**
 * Test-only switches, each refused unless RAFT_ELECTOR_TEST_RUN=1 marks a test run.
 *
 * RAFT_ELECTOR_TEST_CLOCK_RATE=R runs this member's monotonic clock and its timers at R times
 * real time (0.9 to 1.1), so a fault run can skew members' clocks within the drift bound.
 *
 * Deliberately broken behaviour, for proving that the fault checker catches a real bug:
 * RAFT_ELECTOR_TEST_UNSAFE=lease-overrun[:MS] makes GET /leader keep answering isLeader for MS
 * (default 1500) after the API last saw this member hold its lease. Refused unless RAFT_ELECTOR_TEST_RUN=1
 * marks a test run, and logged loudly. It wraps the view the API serves; the member itself,
 * its raft core and everything else stay correct.
 */
import type { Logger } from 'pino';
import type { LeadershipView, Member } from '../cluster/interfaces.js';
import type { MemberTimers } from '../cluster/member.js';
import { ConfigError } from './config.js';

export const UnsafeEnv = 'RAFT_ELECTOR_TEST_UNSAFE';
export const TestRunEnv = 'RAFT_ELECTOR_TEST_RUN';
export const ClockRateEnv = 'RAFT_ELECTOR_TEST_CLOCK_RATE';

export interface UnsafeMode {
  kind: 'lease-overrun';
  overrunMs: number;
}

const DefaultOverrunMs = 1500;

export function parseUnsafe(env: NodeJS.ProcessEnv): UnsafeMode | undefined {
  const value = env[UnsafeEnv];
  if (value === undefined || value === '') return undefined;
  if (env[TestRunEnv] !== '1') throw new ConfigError(`${UnsafeEnv} is a test-only switch that breaks lease safety; refused without ${TestRunEnv}=1`);
  const m = /^lease-overrun(?::(\d{1,6}))?$/.exec(value);
  if (!m) throw new ConfigError(`${UnsafeEnv} must be lease-overrun or lease-overrun:MS, got "${value}"`);
  return { kind: 'lease-overrun', overrunMs: m[1] === undefined ? DefaultOverrunMs : Number(m[1]) };
}

export function parseClockRate(env: NodeJS.ProcessEnv): number | undefined {
  const value = env[ClockRateEnv];
  if (value === undefined || value === '') return undefined;
  if (env[TestRunEnv] !== '1') throw new ConfigError(`${ClockRateEnv} is a test-only switch; refused without ${TestRunEnv}=1`);
  const rate = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || rate < 0.9 || rate > 1.1) throw new ConfigError(`${ClockRateEnv} must be a number from 0.9 to 1.1, got "${value}"`);
  return rate;
}

/** A monotonic clock and timers that run at `rate` times real time, from now on. */
export function skewedClock(rate: number, log: Logger, realNowMs: () => number = () => performance.now()): { monotonicNowMs: () => number; timers: MemberTimers } {
  log.warn({ clockRate: rate }, `TEST SWITCH ${ClockRateEnv}: this member's clock runs at ${rate} times real time`);
  const originMs = realNowMs();
  return {
    monotonicNowMs: () => originMs + (realNowMs() - originMs) * rate,
    timers: {
      // A delay of d on this clock passes in d / rate of real time.
      setTimeout: (callback, delayMs) => setTimeout(callback, delayMs / rate),
      clearTimeout: (handle) => clearTimeout(handle),
    },
  };
}

/** The member as the API sees it, answering isLeader for overrunMs past the end of each lease. */
export function withLeaseOverrun(member: Member, mode: UnsafeMode, log: Logger, nowMs: () => number = () => performance.now()): Member {
  log.error({ unsafe: mode.kind, overrunMs: mode.overrunMs }, `UNSAFE TEST SWITCH ${UnsafeEnv}=${mode.kind}: /leader answers isLeader past the lease`);
  let lastClaimMs: number | undefined;
  let warnedTerm = -1;
  const view = (): LeadershipView => {
    const v = member.view();
    const now = nowMs();
    if (v.isLeader) {
      lastClaimMs = now;
      return v;
    }
    if (lastClaimMs === undefined || now - lastClaimMs >= mode.overrunMs) return v;
    if (warnedTerm !== v.term) {
      warnedTerm = v.term;
      log.error({ unsafe: mode.kind, term: v.term }, 'UNSAFE: answering isLeader after the lease ended');
    }
    return { ...v, isLeader: true, leaseExpiresInMs: lastClaimMs + mode.overrunMs - now };
  };
  return {
    id: member.id,
    view,
    members: () => member.members(),
    onChange: (listener) => member.onChange(() => listener(view())),
    forgetLeader: () => member.forgetLeader(),
    campaign: () => member.campaign(),
    transferLeadership: (to) => member.transferLeadership(to),
    lastLogId: () => member.lastLogId(),
    worstTickLatenessMs: () => member.worstTickLatenessMs(),
    membership: () => member.membership(),
    proposeConfChange: (cc) => member.proposeConfChange(cc),
    onMembershipChange: (listener) => member.onMembershipChange(listener),
  };
}
