/**
 * One step of the handshake state machine (see handshake.ts for the protocol): reads
 * the frame the connection waits for, records what the peer announced, and sends this
 * side's answer. Throws HandshakeRefusal for anything wrong; returns the key input once
 * the other side is authenticated.
 */
import { buildHello, computeMac, HandshakeRefusal, newNonce, parseHello, parseProof, verifyMac, type AuthMode, type MacInput } from './handshake.js';
import type { PeerTiming } from './interfaces.js';
import type { Connection } from './peer-link.js';

export interface HandshakeContext {
  selfId: string;
  clusterName: string;
  auth: AuthMode;
  secret: Buffer | undefined;
  instanceId: string;
  localTiming: PeerTiming;
  isMember(id: string): boolean;
  /** Whether this member dials `id` (then `id` must not dial us). */
  weDial(id: string): boolean;
  /** Acceptor, after a valid proof: true if it closed the connection as a duplicate. */
  refuseDuplicate(conn: Connection): boolean;
}

export function handshakeStep(conn: Connection, text: string, ctx: HandshakeContext): MacInput | null {
  const secret = ctx.secret;
  const macInput = (): MacInput => {
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
  };
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
      conn.peerInstance = hello.instance;
      conn.peerTiming = hello.timing;
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
      conn.peerInstance = challenge.instance;
      conn.peerTiming = challenge.timing;
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
      if (ctx.refuseDuplicate(conn)) return null;
      conn.ws.send(JSON.stringify({ kind: 'welcome', mac: secret ? computeMac(secret, 'acceptor', macInput()) : '' }));
      return macInput();
    }
    case 'welcome': {
      const welcome = parseProof(text, 'welcome');
      if (secret ? !verifyMac(secret, 'acceptor', macInput(), welcome.mac) : welcome.mac !== '') {
        throw new HandshakeRefusal('wrong_secret', `peer ${conn.peerId} failed to prove the shared secret (wrong secret?)`);
      }
      return macInput();
    }
  }
}
