/**
 * prom-client's `nodejs_eventloop_lag_*` series, fed by the raft tick instead of a timer of
 * their own. prom-client samples event-loop delay with `monitorEventLoopDelay`, a timer that
 * wakes an idle sidecar on top of its tick (docs/benchmarks.md), and records the whole interval
 * between samples (so its figures read about the sampling period, 0.1 s at 100 ms). Here each
 * tick's lateness against its schedule is recorded, so the figures are the lag itself: 0 on a
 * responsive loop. Same names, same types, reset at every scrape as prom-client does.
 */
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/** Every series prom-client's event-loop collector registers; ElectorMetrics replaces them. */
export const EventLoopLagNames = [
  'nodejs_eventloop_lag_seconds',
  'nodejs_eventloop_lag_min_seconds',
  'nodejs_eventloop_lag_max_seconds',
  'nodejs_eventloop_lag_mean_seconds',
  'nodejs_eventloop_lag_stddev_seconds',
  'nodejs_eventloop_lag_p50_seconds',
  'nodejs_eventloop_lag_p90_seconds',
  'nodejs_eventloop_lag_p99_seconds',
] as const;

export class EventLoopLagMetrics {
  private readonly histogram: RecordableHistogram = createHistogram();

  constructor(registry: Registry) {
    const registers = [registry];
    const [now, min, max, mean, stddev, p50, p90, p99] = EventLoopLagNames;
    // Registered first: its collect sets the others before the registry reads them.
    const lag = new Gauge({
      name: now,
      help: 'Lag of event loop in seconds (a setImmediate at scrape time).',
      registers,
      // One collect sets every series, as prom-client's does.
      collect: async () => {
        const h = this.histogram;
        const empty = h.count === 0;
        const s = (ns: number): number => (empty ? NaN : ns / 1e9);
        summary.min.set(s(h.min));
        summary.max.set(s(h.max));
        summary.mean.set(s(h.mean));
        summary.stddev.set(s(h.stddev));
        summary.p50.set(s(h.percentile(50)));
        summary.p90.set(s(h.percentile(90)));
        summary.p99.set(s(h.percentile(99)));
        h.reset();
        const started = performance.now();
        await new Promise((resolve) => setImmediate(resolve));
        lag.set((performance.now() - started) / 1000);
      },
    });
    const summary: Record<'min' | 'max' | 'mean' | 'stddev' | 'p50' | 'p90' | 'p99', Gauge> = {
      min: new Gauge({ name: min, help: 'The minimum lateness of a raft tick since the last scrape.', registers }),
      max: new Gauge({ name: max, help: 'The maximum lateness of a raft tick since the last scrape.', registers }),
      mean: new Gauge({ name: mean, help: 'The mean lateness of a raft tick since the last scrape.', registers }),
      stddev: new Gauge({ name: stddev, help: 'The standard deviation of the lateness of a raft tick since the last scrape.', registers }),
      p50: new Gauge({ name: p50, help: 'The 50th percentile of the lateness of a raft tick since the last scrape.', registers }),
      p90: new Gauge({ name: p90, help: 'The 90th percentile of the lateness of a raft tick since the last scrape.', registers }),
      p99: new Gauge({ name: p99, help: 'The 99th percentile of the lateness of a raft tick since the last scrape.', registers }),
    };
  }

  /** One tick's lateness (ms). */
  record(lateMs: number): void {
    // The histogram counts integers of at least 1 (ns).
    this.histogram.record(Math.max(1, Math.round(lateMs * 1e6)));
  }
}
