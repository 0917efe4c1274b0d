/**
 * One step of the handshake state machine (see handshake.ts for the protocol): reads
 * the frame the connection waits for, records what the peer announced, and sends this
 * side's answer. Throws HandshakeRefusal for anything wrong; returns the key input once
 * the other side is authenticated.
 */
import { buildHello, computeMac, HandshakeRefusal, newNonce, parseHello, parseProof, verifyMac, type AuthMode, type Hello, type MacInput } from './handshake.js';
import type { PeerTiming } from './interfaces.js';
import type { Connection } from './peer-link.js';
import type { TimingRecord } from './timing-record.js';

export interface HandshakeContext {
  selfId: string;
  clusterName: string;
  auth: AuthMode;
  secret: Buffer | undefined;
  instanceId: string;
  localTiming: PeerTiming;
  /** What this side announces as freshVoteDelayMs (handshake.ts); absent: nothing. */
  freshVoteDelayMs?: () => number;
  /** What this side announces of its timing record (longest refusal and lease windows); absent: nothing. */
  timingRecord?: () => TimingRecord;
  isMember(id: string): boolean;
  /** Whether this member dials `id` (then `id` must not dial us). */
  weDial(id: string): boolean;
  /**
   * Acceptor, after a valid proof: whether another live process holds the id. 'refused': it
   * closed the connection as a duplicate; 'checking': it asked the current link and finishes
   * this handshake with `welcome` (or refuses it) once the answer or its deadline comes.
   */
  checkDuplicate(conn: Connection): 'unique' | 'refused' | 'checking';
}

function macInputOf(conn: Connection, ctx: Pick<HandshakeContext, 'selfId' | 'clusterName'>): MacInput {
  const dialer = conn.role === 'dialer' ? ctx.selfId : conn.peerId!;
  const acceptor = conn.role === 'dialer' ? conn.peerId! : ctx.selfId;
  return {
    cluster: ctx.clusterName,
    dialer,
    acceptor,
    dialerNonce: conn.dialerNonce,
    acceptorNonce: conn.acceptorNonce,
    hello: conn.helloText,
    challenge: conn.challengeText,
  };
}

/** Acceptor: the last step, after the proof and the duplicate check; returns the key input. */
export function welcome(conn: Connection, ctx: Pick<HandshakeContext, 'selfId' | 'clusterName' | 'secret'>): MacInput {
  const input = macInputOf(conn, ctx);
  conn.ws.send(JSON.stringify({ kind: 'welcome', mac: ctx.secret ? computeMac(ctx.secret, 'acceptor', input) : '' }));
  return input;
}

/** The optional fields this side's hello or challenge carries. */
export function optionalAnnouncements(ctx: Pick<HandshakeContext, 'freshVoteDelayMs' | 'timingRecord'>): {
  freshVoteDelayMs?: number;
  longestRefusalWindowMs?: number;
  longestLeaseWindowMs?: number;
} {
  const ms = (v: number) => Math.max(0, Math.ceil(v));
  const record = ctx.timingRecord?.();
  return {
    ...(ctx.freshVoteDelayMs ? { freshVoteDelayMs: ms(ctx.freshVoteDelayMs()) } : {}),
    ...(record ? { longestRefusalWindowMs: ms(record.longestRefusalWindowMs), longestLeaseWindowMs: ms(record.longestLeaseWindowMs) } : {}),
  };
}

/** What the peer's hello or challenge announced, kept on the connection until it is established. */
function notePeerAnnouncements(conn: Connection, h: Hello): void {
  conn.peerInstance = h.instance;
  conn.peerTiming = h.timing;
  conn.peerFreshVoteDelayMs = h.freshVoteDelayMs ?? null;
  conn.peerFreshVoteDelayAnnounced = h.freshVoteDelayAnnounced ?? null;
  conn.peerLongestRefusalWindowMs = h.longestRefusalWindowMs ?? null;
  conn.peerLongestRefusalWindowAnnounced = h.longestRefusalWindowAnnounced ?? null;
  conn.peerLongestLeaseWindowMs = h.longestLeaseWindowMs ?? null;
  conn.peerLongestLeaseWindowAnnounced = h.longestLeaseWindowAnnounced ?? null;
}

export function handshakeStep(conn: Connection, text: string, ctx: HandshakeContext): MacInput | null {
  const secret = ctx.secret;
  const macInput = (): MacInput => macInputOf(conn, ctx);
  const isMember = ctx.isMember;
  switch (conn.step) {
    case 'hello': {
      const hello = parseHello(text, { kind: 'hello', cluster: ctx.clusterName, self: ctx.selfId, auth: ctx.auth, isMember });
      conn.peerId = hello.from;
      // The dial rule keeps one connection per pair; checked before any proof is exchanged.
      if (ctx.weDial(hello.from)) {
        throw new HandshakeRefusal('wrong_dial_direction', `peer ${hello.from} dialed, but ${ctx.selfId} dials it (the smaller id dials)`);
      }
      conn.dialerNonce = hello.nonce;
      notePeerAnnouncements(conn, hello);
      conn.helloText = text;
      conn.acceptorNonce = newNonce();
      conn.step = 'proof';
      conn.challengeText = buildHello({
        kind: 'challenge',
        cluster: ctx.clusterName,
        from: ctx.selfId,
        to: hello.from,
        auth: ctx.auth,
        nonce: conn.acceptorNonce,
        instance: ctx.instanceId,
        timing: ctx.localTiming,
        ...optionalAnnouncements(ctx),
      });
      conn.ws.send(conn.challengeText);
      return null;
    }
    case 'challenge': {
      const challenge = parseHello(text, {
        kind: 'challenge',
        cluster: ctx.clusterName,
        self: ctx.selfId,
        auth: ctx.auth,
        isMember,
        expectedPeer: conn.peerId!,
      });
      conn.acceptorNonce = challenge.nonce;
      notePeerAnnouncements(conn, challenge);
      conn.challengeText = text;
      conn.step = 'welcome';
      conn.ws.send(JSON.stringify({ kind: 'proof', mac: secret ? computeMac(secret, 'dialer', macInput()) : '' }));
      return null;
    }
    case 'proof': {
      const proof = parseProof(text, 'proof');
      if (secret ? !verifyMac(secret, 'dialer', macInput(), proof.mac) : proof.mac !== '') {
        throw new HandshakeRefusal('wrong_secret', `peer ${conn.peerId} failed to prove the shared secret (wrong secret?)`);
      }
      const verdict = ctx.checkDuplicate(conn);
      if (verdict === 'refused') return null;
      if (verdict === 'checking') {
        conn.step = 'admission';
        return null;
      }
      return welcome(conn, ctx);
    }
    case 'admission':
      throw new HandshakeRefusal('malformed', 'a frame before the welcome');
    case 'welcome': {
      const answer = parseProof(text, 'welcome');
      if (secret ? !verifyMac(secret, 'acceptor', macInput(), answer.mac) : answer.mac !== '') {
        throw new HandshakeRefusal('wrong_secret', `peer ${conn.peerId} failed to prove the shared secret (wrong secret?)`);
      }
      return macInput();
    }
  }
}
