import type { MemberTimers } from './member-options.js';

/**
 * One timer for "publish again at this moment". Arming it for a later moment than the one
 * already armed keeps the earlier timer: it fires early, the caller recomputes and arms again.
 * A leader's lease end moves later with every heartbeat answer; this makes that one timer per
 * lease window instead of a clear and a set per answer.
 */
export class WakeupTimer {
  private timer: NodeJS.Timeout | undefined;
  private atMs = 0;

  constructor(
    private readonly timers: MemberTimers,
    private readonly onWake: () => void,
  ) {}

  /** Wake at `atMs` (monotonic) or earlier; undefined disarms. */
  arm(nowMs: number, atMs: number | undefined): void {
    if (this.timer && atMs !== undefined && this.atMs <= atMs) return;
    this.clear();
    if (atMs === undefined) return;
    this.atMs = atMs;
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      this.onWake();
    }, Math.max(0, atMs - nowMs));
  }

  clear(): void {
    if (this.timer) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
