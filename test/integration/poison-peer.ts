/**
 * A minimal authenticated peer on today's frame protocol (cluster/handshake.ts, codec.ts): it
 * dials a member as `from`, completes the HMAC handshake with the shared secret, and then
 * sends whatever raft messages a test hands it. Same signature as the transport's shared
 * test/integration/peer-client.ts, which replaces this file at the merge.
 */
import WebSocket from 'ws';
import type { PeerTiming } from '../../cluster/interfaces.js';
import { encodeMessage, PROTOCOL_VERSION } from '../../cluster/codec.js';
import { computeMac, newNonce } from '../../cluster/handshake.js';
import { PEER_PATH } from '../../cluster/transport.js';
import type { Message } from '../../raft/index.js';

export interface PeerClientOptions {
  host: string;
  port: number;
  cluster: string;
  secret: Buffer;
  /** The member id to speak as; the member dials only larger ids, so `from` must sort before `to`. */
  from: string;
  to: string;
  /** Announced in the hello of the new protocol; today's protocol has no field for it. */
  timing?: PeerTiming;
}

export interface PeerClient {
  send(message: Message): void;
  close(): Promise<void>;
}

export async function connectAsPeer(o: PeerClientOptions): Promise<PeerClient> {
  const ws = new WebSocket(`ws://${o.host}:${o.port}${PEER_PATH}`, { perMessageDeflate: false });
  const dialerNonce = newNonce();
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string) => {
      ws.terminate();
      reject(new Error(`handshake with ${o.to} as ${o.from} failed: ${why}`));
    };
    const timer = setTimeout(() => fail('timed out'), 5_000);
    ws.once('error', (err) => fail(err.message));
    ws.once('close', (code, reason) => fail(`closed ${code} ${reason.toString()}`));
    ws.once('open', () => {
      ws.send(JSON.stringify({ kind: 'hello', v: PROTOCOL_VERSION, cluster: o.cluster, from: o.from, to: o.to, auth: 'hmac-sha256', nonce: dialerNonce }));
    });
    let step: 'challenge' | 'welcome' = 'challenge';
    ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString('utf8')) as { kind?: string; nonce?: string };
      if (step === 'challenge' && frame.kind === 'challenge' && typeof frame.nonce === 'string') {
        const mac = computeMac(o.secret, 'dialer', { cluster: o.cluster, dialer: o.from, acceptor: o.to, dialerNonce, acceptorNonce: frame.nonce });
        ws.send(JSON.stringify({ kind: 'proof', mac }));
        step = 'welcome';
      } else if (step === 'welcome' && frame.kind === 'welcome') {
        clearTimeout(timer);
        ws.removeAllListeners('close');
        ws.removeAllListeners('error');
        ws.removeAllListeners('message');
        ws.on('error', () => undefined);
        // Raft frames from the member (heartbeat responses and so on) are read and ignored.
        ws.on('message', () => undefined);
        resolve();
      }
    });
  });
  return {
    send: (message) => ws.send(encodeMessage(message, o.cluster)),
    close: () =>
      new Promise<void>((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close(1000, 'done');
      }),
  };
}
