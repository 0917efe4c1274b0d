import type { Logger } from 'pino';
import { InvalidMessageError, type Message, type RaftError } from '../raft/index.js';

const RefusalLogIntervalMs = 10_000;
const MaxLoggedKeys = 256;

/** Peer messages refused at the raft boundary: counted by reason, logged at most once per peer and reason per interval. */
export class PeerRefusals {
  private readonly byReason = new Map<string, number>();
  private readonly lastLogged = new Map<string, { atMs: number; suppressed: number }>();

  constructor(private readonly logger: () => Logger) {}

  refused(m: Message, err: RaftError, nowMs: number): void {
    const reason = err instanceof InvalidMessageError ? err.reason : err.code;
    this.byReason.set(reason, (this.byReason.get(reason) ?? 0) + 1);
    // A misbehaving peer must not flood the log.
    const key = `${m.from}:${reason}`;
    const last = this.lastLogged.get(key);
    if (last === undefined || nowMs - last.atMs >= RefusalLogIntervalMs) {
      this.logger().warn(
        { peer: m.from, type: m.type, code: err.code, reason, err: err.message, repeated: last?.suppressed ?? 0 },
        'peer message refused by raft',
      );
      this.lastLogged.set(key, { atMs: nowMs, suppressed: 0 });
      if (this.lastLogged.size > MaxLoggedKeys) this.lastLogged.delete(this.lastLogged.keys().next().value as string);
    } else {
      last.suppressed++;
    }
  }

  /** By reason, sorted. */
  counts(): Record<string, number> {
    return Object.fromEntries([...this.byReason.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }
}
