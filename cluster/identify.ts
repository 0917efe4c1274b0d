/**
 * Who is behind a peer address. The headless Service's DNS lists pod IPs, not member ids, so a
 * member asks an IP `GET /identify?nonce=N` on the peer port. The answer names the member id
 * and proves the shared secret over (cluster, id, N) under a label of its own: it cannot be
 * replayed to another prober (fresh nonce), nor used as a handshake proof (other label). It is a
 * plain HTTP(S) request, not a link: no raft frame flows and nothing is registered.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PROTOCOL_VERSION, isValidClusterName, isValidMemberId } from './codec.js';
import { ClusterError } from './errors.js';
import { lengthPrefixedHmac } from './handshake.js';
import { http, https } from './node-http.js';
import type { TransportTlsOptions } from './transport-options.js';

export const IDENTIFY_PATH = '/identify';
const IDENTITY_LABEL = 'raft-elector/v2/identity';
const NONCE_BYTES = 32;
/** An identity answer is about 200 bytes; anything much larger is not one. */
const MAX_ANSWER_BYTES = 4096;

export interface IdentityAnswer {
  kind: 'identity';
  v: number;
  cluster: string;
  id: string;
  mac: string;
}

export function identityMac(secret: Buffer, cluster: string, id: string, nonce: string): string {
  return lengthPrefixedHmac(secret, [IDENTITY_LABEL, String(PROTOCOL_VERSION), cluster, id, nonce]);
}

function isNonce(nonce: string | null): nonce is string {
  return nonce !== null && nonce.length <= 64 && /^[A-Za-z0-9_-]+$/.test(nonce) && Buffer.from(nonce, 'base64url').length === NONCE_BYTES;
}

export interface IdentifyResponderOptions {
  selfId: string;
  clusterName: string;
  secret: Buffer | undefined;
  /** Answers allowed per second, burst included: a stranger cannot make this member spend CPU on MACs. */
  answersPerSecond: number;
  now(): number;
}

/** The peer port's answer to `GET /identify`; everything else on that port stays 426. */
export class IdentifyResponder {
  private tokens: number;
  private refilledAtMs: number;

  constructor(private readonly o: IdentifyResponderOptions) {
    this.tokens = o.answersPerSecond;
    this.refilledAtMs = o.now();
  }

  /** True when the request was an identify request (answered, or refused with a status). */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://peer');
    if (url.pathname !== IDENTIFY_PATH) return false;
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET', 'content-type': 'text/plain' }).end('GET only\n');
      return true;
    }
    const nonce = url.searchParams.get('nonce');
    if (!isNonce(nonce)) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`nonce must be ${NONCE_BYTES} random bytes in base64url\n`);
      return true;
    }
    if (!this.take()) {
      res.writeHead(429, { 'retry-after': '1', 'content-type': 'text/plain' }).end('too many identify requests\n');
      return true;
    }
    const answer: IdentityAnswer = {
      kind: 'identity',
      v: PROTOCOL_VERSION,
      cluster: this.o.clusterName,
      id: this.o.selfId,
      mac: this.o.secret ? identityMac(this.o.secret, this.o.clusterName, this.o.selfId, nonce) : '',
    };
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(answer));
    return true;
  }

  private take(): boolean {
    const now = this.o.now();
    const rate = this.o.answersPerSecond;
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAtMs) / 1000) * rate);
    this.refilledAtMs = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Checks an identity answer against the nonce this prober sent; returns the member id it proves. */
export function verifyIdentityAnswer(body: string, expect: { clusterName: string; secret: Buffer | undefined; nonce: string }): string {
  let obj: unknown;
  try {
    obj = JSON.parse(body);
  } catch {
    throw new ClusterError('IDENTIFY_FAILED', 'the identity answer is not JSON');
  }
  const a = obj as Partial<IdentityAnswer> | null;
  if (typeof a !== 'object' || a === null || a.kind !== 'identity') throw new ClusterError('IDENTIFY_FAILED', 'the answer is not an identity');
  if (a.v !== PROTOCOL_VERSION) throw new ClusterError('IDENTIFY_FAILED', `the peer speaks protocol version ${String(a.v)}, this member ${PROTOCOL_VERSION}`);
  if (!isValidClusterName(a.cluster) || a.cluster !== expect.clusterName) {
    throw new ClusterError('IDENTIFY_FAILED', `the peer is in cluster ${JSON.stringify(a.cluster)}, this member in ${JSON.stringify(expect.clusterName)}`);
  }
  if (!isValidMemberId(a.id)) throw new ClusterError('IDENTIFY_FAILED', 'the identity answer carries no valid member id');
  if (typeof a.mac !== 'string') throw new ClusterError('IDENTIFY_FAILED', 'the identity answer carries no mac');
  if (expect.secret) {
    const want = Buffer.from(identityMac(expect.secret, expect.clusterName, a.id, expect.nonce), 'hex');
    const got = /^[0-9a-f]{64}$/.test(a.mac) ? Buffer.from(a.mac, 'hex') : Buffer.alloc(0);
    if (got.length !== want.length || !timingSafeEqual(want, got)) {
      throw new ClusterError('IDENTIFY_FAILED', `the peer claiming ${JSON.stringify(a.id)} failed to prove the shared secret`);
    }
  } else if (a.mac !== '') {
    throw new ClusterError('IDENTIFY_FAILED', 'the peer authenticates with a shared secret but this member runs insecure');
  }
  return a.id;
}

export interface IdentifyOptions {
  clusterName: string;
  secret: Buffer | undefined;
  tls: TransportTlsOptions | undefined;
  timeoutMs: number;
}

/** Asks host:port who it is; resolves with the proven member id, or rejects with IDENTIFY_FAILED. */
export function identifyPeer(host: string, port: number, o: IdentifyOptions): Promise<string> {
  const nonce = randomBytes(NONCE_BYTES).toString('base64url');
  const hostname = host.includes(':') ? `[${host}]` : host;
  const url = `${o.tls ? 'https' : 'http'}://${hostname}:${port}${IDENTIFY_PATH}?nonce=${nonce}`;
  const tls = o.tls
    ? { cert: o.tls.cert, key: o.tls.key, ...(o.tls.ca ? { ca: o.tls.ca } : {}), ...(o.tls.serverName ? { servername: o.tls.serverName } : {}) }
    : {};
  return new Promise<string>((resolve, reject) => {
    const fail = (why: string) => reject(new ClusterError('IDENTIFY_FAILED', `identify ${host}:${port}: ${why}`));
    const req = (o.tls ? https : http).get(url, { timeout: o.timeoutMs, agent: false, ...tls }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        fail(`status ${res.statusCode ?? '?'}`);
        return;
      }
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > MAX_ANSWER_BYTES) {
          req.destroy();
          fail(`answer larger than ${MAX_ANSWER_BYTES} bytes`);
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        try {
          resolve(verifyIdentityAnswer(Buffer.concat(chunks).toString('utf8'), { clusterName: o.clusterName, secret: o.secret, nonce }));
        } catch (err) {
          fail((err as Error).message);
        }
      });
      res.on('error', (err) => fail(err.message));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)));
    req.on('error', (err) => fail(err.message));
  });
}
