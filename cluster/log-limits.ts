/**
 * Rate limits for log lines, some of which strangers can trigger. Time is monotonic ms, injectable
 * (default performance.now, as the transport's `now`): a wall-clock step (NTP) must neither
 * silence a warning for long nor let a burst through, and tests drive it without sleeping.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';

/** Monotonic ms. */
export type NowMs = () => number;

const monotonicNowMs: NowMs = () => performance.now();

/** Logs the first occurrence of a key, then at most once per interval with the count of repeats in between. */
export class RepeatLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  constructor(
    private readonly intervalMs: number,
    private readonly nowMs: NowMs = monotonicNowMs,
  ) {}

  /** Returns the number of suppressed repeats to report, or undefined to stay silent. */
  check(key: string): number | undefined {
    const now = this.nowMs();
    const entry = this.last.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return undefined;
    }
    // Keys include ids claimed by strangers: keep the map bounded.
    if (!entry && this.last.size >= 1024) this.last.clear();
    const suppressed = entry?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    return suppressed;
  }
}

/** At most `limit` grants per interval in all: the last line of defence against log flooding from many sources. */
export class LineBudget {
  private windowStart = -Infinity;
  private used = 0;
  /** Lines refused since the last granted one, reported on it. */
  suppressed = 0;
  constructor(
    private readonly limit: number,
    private readonly intervalMs: number,
    private readonly nowMs: NowMs = monotonicNowMs,
  ) {}

  take(): boolean {
    const now = this.nowMs();
    if (now - this.windowStart >= this.intervalMs) {
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used >= this.limit) {
      this.suppressed++;
      return false;
    }
    this.used++;
    return true;
  }
}

/** `host` of `host:port` (IPv6 hosts contain colons too). */
export function hostOf(remote: string): string {
  const i = remote.lastIndexOf(':');
  return i < 0 ? remote : remote.slice(0, i);
}

/** The transport's rate-limited warnings. */
export class TransportLog {
  readonly limiter: RepeatLimiter;
  private readonly strangerLines: LineBudget;

  constructor(
    private readonly log: Logger,
    intervalMs: number,
    maxStrangerLinesPerInterval: number,
    nowMs: NowMs = monotonicNowMs,
  ) {
    this.limiter = new RepeatLimiter(intervalMs, nowMs);
    this.strangerLines = new LineBudget(maxStrangerLinesPerInterval, intervalMs, nowMs);
  }

  /** About an authenticated peer (or our own dial): once per (peer, reason) per interval. */
  warnOnce(peerId: string | null, remote: string, reason: string, message: string): void {
    const n = this.limiter.check(`${peerId ?? remote}:${reason}`);
    if (n === undefined) return;
    this.log.warn({ peer: peerId ?? undefined, remote, reason, repeated: n }, message);
  }

  /**
   * A warning caused by an unauthenticated connection: folded per (source host, reason)
   * and, across all sources, at most maxStrangerLinesPerInterval lines per interval.
   */
  warnStranger(claimedId: string | null, remote: string, reason: string, message: string, extra: Record<string, unknown> = {}): void {
    const n = this.limiter.check(`stranger:${hostOf(remote)}:${reason}`);
    if (n === undefined || !this.strangerLines.take()) return;
    const suppressedOthers = this.strangerLines.suppressed;
    this.strangerLines.suppressed = 0;
    // The id is what the stranger claims, never logged as `peer`: it proves nothing.
    this.log.warn(
      { claimedId: claimedId ?? undefined, remote, reason, repeated: n, ...(suppressedOthers > 0 ? { suppressedOthers } : {}), ...extra },
      message,
    );
  }
}
