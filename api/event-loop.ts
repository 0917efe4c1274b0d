/**
 * Event-loop responsiveness for /healthz: a timer that should fire every
 * `intervalMs` records how late it fired (monotonic clock), and the health check
 * reads the worst lateness within a recent window. A stall is therefore seen
 * after it ended too, for the whole window, so a liveness probe that polls less
 * often than the stall lasts still notices it.
 */
import { performance } from 'node:perf_hooks';

export class EventLoopLagProbe {
  /** Ring of (time, lag) samples covering the window; bounded by window / interval. */
  private readonly samples: { atMs: number; lagMs: number }[] = [];
  private readonly maxSamples: number;
  private timer: NodeJS.Timeout | null = null;
  private expectedAtMs = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly windowMs: number,
  ) {
    this.maxSamples = Math.ceil(windowMs / intervalMs) + 1;
  }

  start(): void {
    if (this.timer) return;
    this.expectedAtMs = performance.now() + this.intervalMs;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    // The probe must not keep the process alive on its own.
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Worst lateness within the window, including a probe that is overdue right now. */
  worstLagMs(): number {
    const now = performance.now();
    let worst = this.timer ? Math.max(0, now - this.expectedAtMs) : 0;
    for (const s of this.samples) {
      if (now - s.atMs <= this.windowMs && s.lagMs > worst) worst = s.lagMs;
    }
    return worst;
  }

  private sample(): void {
    const now = performance.now();
    this.samples.push({ atMs: now, lagMs: Math.max(0, now - this.expectedAtMs) });
    if (this.samples.length > this.maxSamples) this.samples.shift();
    this.expectedAtMs = now + this.intervalMs;
  }
}
