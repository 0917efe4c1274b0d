import { describe, expect, it } from 'vitest';
import type { MemberTimers } from './member-options.js';
import { WakeupTimer } from './wakeup-timer.js';

/** Timers under test control: what is armed, and firing the earliest by hand. */
function fakeTimers(): MemberTimers & { armed: Map<number, { at: number; fn: () => void }>; sets: number; now: number; fireNext(): void } {
  let next = 1;
  const t = {
    armed: new Map<number, { at: number; fn: () => void }>(),
    sets: 0,
    now: 0,
    setTimeout(fn: () => void, delayMs: number): NodeJS.Timeout {
      const id = next++;
      t.sets++;
      t.armed.set(id, { at: t.now + delayMs, fn });
      return id as unknown as NodeJS.Timeout;
    },
    clearTimeout(handle: NodeJS.Timeout): void {
      t.armed.delete(handle as unknown as number);
    },
    fireNext(): void {
      const [id, e] = [...t.armed].sort((a, b) => a[1].at - b[1].at)[0]!;
      t.armed.delete(id);
      t.now = e.at;
      e.fn();
    },
  };
  return t;
}

describe('WakeupTimer', () => {
  it('keeps the armed timer when asked for a later moment, re-arms for an earlier one, disarms on undefined', () => {
    const timers = fakeTimers();
    const wakes: number[] = [];
    const w = new WakeupTimer(timers, () => wakes.push(timers.now));
    const arm = (now: number, at: number | undefined): void => {
      timers.now = now;
      w.arm(now, at);
    };
    arm(0, 800);
    for (let at = 900; at <= 2000; at += 100) arm(at - 800, at);
    expect(timers.sets).toBe(1);
    expect([...timers.armed.values()].map((e) => e.at)).toEqual([800]);
    arm(100, 500);
    expect([...timers.armed.values()].map((e) => e.at)).toEqual([500]);
    timers.fireNext();
    expect(wakes).toEqual([500]);
    // After it fired, the next arm sets a new timer.
    arm(500, 1300);
    expect([...timers.armed.values()].map((e) => e.at)).toEqual([1300]);
    arm(600, undefined);
    expect(timers.armed.size).toBe(0);
  });
});
