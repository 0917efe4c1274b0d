/**
 * Event-loop responsiveness for /healthz: a timer that should fire every
 * `intervalMs` records how late it fired (monotonic clock), and the health check
 * reads the worst lateness within a recent window. A stall is therefore seen
 * after it ended too, for the whole window, so a liveness probe that polls less
 * often than the stall lasts still notices it.
 *
 * The timer can be someone else's: `record` takes the lateness of a periodic timer
 * the process runs anyway (the member's raft tick), so an idle process wakes once
 * for both instead of twice (start() is then not called).
 */
import { performance } from 'node:perf_hooks';

export class EventLoopLagProbe {
  /** The (time, lag) samples within the window, oldest first; bounded by maxSamples. */
  private readonly samples: { atMs: number; lagMs: number }[] = [];
  private readonly maxSamples: number;
  private timer: NodeJS.Timeout | null = null;
  private expectedAtMs = 0;
  private fed = false;

  constructor(
    private readonly intervalMs: number,
    private readonly windowMs: number,
  ) {
    // A fed timer may run faster than intervalMs: the bound allows one every 10 ms.
    this.maxSamples = Math.ceil(windowMs / Math.min(intervalMs, 10)) + 1;
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

  /** A sample from another periodic timer: it fired `lateMs` late, and fires again in `nextInMs`. */
  record(lateMs: number, nextInMs: number): void {
    const now = performance.now();
    this.push(now, Math.max(0, lateMs));
    this.expectedAtMs = now + nextInMs;
    this.fed = true;
  }

  /** Worst lateness within the window, including a probe that is overdue right now. */
  worstLagMs(): number {
    const now = performance.now();
    let worst = this.timer || this.fed ? Math.max(0, now - this.expectedAtMs) : 0;
    for (const s of this.samples) {
      if (now - s.atMs <= this.windowMs && s.lagMs > worst) worst = s.lagMs;
    }
    return worst;
  }

  /** Stops counting a fed timer as overdue (its owner stopped). */
  detach(): void {
    this.fed = false;
  }

  private sample(): void {
    const now = performance.now();
    this.push(now, Math.max(0, now - this.expectedAtMs));
    this.expectedAtMs = now + this.intervalMs;
  }

  private push(atMs: number, lagMs: number): void {
    while (this.samples.length > 0 && (atMs - this.samples[0]!.atMs > this.windowMs || this.samples.length >= this.maxSamples)) this.samples.shift();
    this.samples.push({ atMs, lagMs });
  }
}
