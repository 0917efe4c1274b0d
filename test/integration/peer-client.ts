/**
 * A small authenticated test peer: it runs the dialer's half of the real handshake
 * with the shared secret and sends raft messages through the real framing (sealed,
 * in sequence), so a test can put any message, valid or not, in front of a member's
 * raft boundary, as a secret holder could.
 *
 * Rules the member enforces that a caller must respect:
 * - only the smaller id dials: `from` must sort before `to` (plain string order);
 * - `from` must be a voter of the group, and no live process may hold a link under
 *   that id to `to` (or the member refuses this one as duplicate_member): use the id
 *   of a voter that is not running.
 */
import { WebSocket } from 'ws';
import { encodeMessage } from '../../cluster/codec.js';
import { FrameSealer, deriveLinkKeys } from '../../cluster/frame-auth.js';
import { buildHello, computeMac, newInstanceId, newNonce, verifyMac } from '../../cluster/handshake.js';
import type { PeerTiming } from '../../cluster/interfaces.js';
import { PEER_PATH } from '../../cluster/transport.js';
import type { Message } from '../../raft/index.js';

export interface PeerClientOptions {
  host: string;
  port: number;
  cluster: string;
  /** The bytes the member uses: its --secret-file content, trimmed (as cmd/raft-elector.ts reads it). */
  secret: Buffer | string;
  from: string;
  to: string;
  timing: PeerTiming;
  /** Per-process id announced in the hello; a fresh one by default. */
  instance?: string;
  timeoutMs?: number;
}

export interface PeerClient {
  /** Encodes and seals one raft message, exactly as a member sends it. */
  send(message: Message): void;
  /** Seals any payload text (a hand-made envelope) as the next frame. */
  sendRaw(payload: string): void;
  close(): Promise<void>;
  /** Resolves when the member closes the link, with its close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
}

export async function connectAsPeer(o: PeerClientOptions): Promise<PeerClient> {
  const secret = Buffer.isBuffer(o.secret) ? o.secret : Buffer.from(o.secret, 'utf8');
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  const ws = new WebSocket(`ws://${host}:${o.port}${PEER_PATH}`, { perMessageDeflate: false });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const inbox: string[] = [];
  let wake: (() => void) | undefined;
  ws.on('message', (data) => {
    inbox.push(data.toString());
    wake?.();
  });
  ws.on('error', () => {});
  const deadline = Date.now() + (o.timeoutMs ?? 5000);
  const next = async (what: string): Promise<string> => {
    while (inbox.length === 0) {
      if (ws.readyState === WebSocket.CLOSED) throw new Error(`member closed the connection while waiting for the ${what}: ${JSON.stringify(await closed)}`);
      if (Date.now() > deadline) throw new Error(`no ${what} from the member in time`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 20);
      });
    }
    return inbox.shift()!;
  };
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const dialerNonce = newNonce();
  const hello = buildHello({
    kind: 'hello',
    cluster: o.cluster,
    from: o.from,
    to: o.to,
    auth: 'hmac-sha256',
    nonce: dialerNonce,
    instance: o.instance ?? newInstanceId(),
    timing: o.timing,
  });
  ws.send(hello);
  const challenge = await next('challenge');
  const acceptorNonce = String((JSON.parse(challenge) as { nonce?: unknown }).nonce);
  const input = { cluster: o.cluster, dialer: o.from, acceptor: o.to, dialerNonce, acceptorNonce, hello, challenge };
  ws.send(JSON.stringify({ kind: 'proof', mac: computeMac(secret, 'dialer', input) }));
  const welcome = JSON.parse(await next('welcome')) as { mac?: unknown };
  if (!verifyMac(secret, 'acceptor', input, String(welcome.mac))) throw new Error('the member failed to prove the shared secret');
  const sealer = new FrameSealer(deriveLinkKeys(secret, 'dialer', input).send);
  return {
    send: (message) => ws.send(sealer.seal('m', encodeMessage(message, o.cluster))),
    sendRaw: (payload) => ws.send(sealer.seal('m', payload)),
    close: async () => {
      ws.close(1000);
      await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
      ws.terminate();
    },
    closed,
  };
}
