/**
 * The acceptor's duplicate check: a newcomer from another process (another instance id) while
 * the current link for that id is alive means two live processes claim one member id. The
 * established link is kept and the newcomer refused, instead of flapping between them. A link
 * that delivered an authenticated frame within the live window is alive. Links carry no
 * keepalives every quarter window (an idle member would wake for them), so a quieter link is
 * asked: a keepalive frame with a question, which the peer answers with one of its own. Any
 * authenticated frame before the deadline refuses the newcomer; none (or the link closing)
 * admits it, replacing the link of a process that is gone or restarted.
 */
import { WebSocket } from 'ws';
import type { Connection } from './peer-link.js';

/** The payload of a keepalive frame that asks for one back (an answer has an empty payload). */
export const LivenessQuestion = '?';

export interface DuplicateCheckHost {
  /** The established link of member `id`, if any. */
  linkOf(id: string): Connection | null | undefined;
  /** How long a link may stay silent and still count as a live process. */
  liveWindowMs(conn: Connection): number;
  /** Bound on the wait for an answer (the newcomer's handshake must not time out meanwhile). */
  maxQuestionWaitMs: number;
  /** Refuse the newcomer: another live process holds its id (logged, counted, closed). */
  refuse(newcomer: Connection, current: Connection): void;
  /** Finish the newcomer's handshake: it takes the place of the current link. */
  admit(newcomer: Connection): void;
  /** A question's deadline was set or cleared (LinkUpkeep re-arms its timer). */
  changed(): void;
  /** Monotonic ms, the clock of Connection.lastAuthAt (the transport's). */
  now(): number;
}

export class DuplicateCheck {
  constructor(private readonly host: DuplicateCheckHost) {}

  /** After a valid proof: 'unique', 'refused' (closed), or 'checking' (answered, or admitted at the deadline). */
  check(conn: Connection): 'unique' | 'refused' | 'checking' {
    const current = this.host.linkOf(conn.peerId!);
    if (!current || current.state !== 'open' || current.peerInstance === conn.peerInstance) return 'unique';
    const now = this.host.now();
    const silentMs = now - current.lastAuthAt;
    // A second newcomer while one waits: the first is live too, so this one is a duplicate either way.
    if (silentMs < this.host.liveWindowMs(current) || current.question) {
      this.host.refuse(conn, current);
      return 'refused';
    }
    const waitMs = Math.min(this.host.liveWindowMs(current), this.host.maxQuestionWaitMs);
    current.question = { dueAt: now + waitMs, newcomer: conn };
    current.sendSealed('k', LivenessQuestion);
    this.host.changed();
    return 'checking';
  }

  /** An authenticated frame arrived on a link with a question: the newcomer that waited is a duplicate. */
  answered(current: Connection): void {
    const newcomer = current.question!.newcomer;
    current.question = null;
    this.host.changed();
    if (awaitsAdmission(newcomer)) this.host.refuse(newcomer, current);
  }

  /**
   * A connection closed before it was admitted: if it is the newcomer a question waits for, the
   * question goes too. Left standing, it would refuse the next newcomer (a restart retrying) as
   * "a second newcomer while one waits" until its deadline, though nobody waits any more.
   */
  closedBeforeAdmission(conn: Connection): void {
    if (conn.peerId === null) return;
    const current = this.host.linkOf(conn.peerId);
    if (current?.question?.newcomer !== conn) return;
    current.question = null;
    this.host.changed();
  }

  /** The link stayed silent past its question's deadline, or closed: the newcomer takes its place. */
  unanswered(current: Connection): void {
    const newcomer = current.question?.newcomer;
    current.question = null;
    this.host.changed();
    if (newcomer && awaitsAdmission(newcomer)) this.host.admit(newcomer);
  }
}

function awaitsAdmission(conn: Connection): boolean {
  return conn.state === 'handshake' && conn.step === 'admission' && !conn.closedByUs && conn.ws.readyState === WebSocket.OPEN;
}
