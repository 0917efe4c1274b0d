/**
 * Per-frame authentication of an established peer link (protocol v2).
 *
 * After the handshake both sides derive two keys, one per direction, with
 * HKDF-SHA256 over the shared secret, salted with both handshake nonces and bound
 * to the cluster and both member ids. So a key is fresh for every connection and a
 * frame sealed for a→b can never be accepted on b→a or on another connection.
 *
 * Every frame after the handshake is one text frame
 *
 *   <seq>.<kind><tag><payload>
 *
 * - seq: the sender's frame counter on this link, decimal, from 0, +1 per frame;
 * - kind: 'm' (a raft message envelope, see codec.ts) or 'k' (a keepalive: empty, or '?' to ask
 *   for one back, the duplicate check's liveness question; any other payload is ignored);
 * - tag: HMAC-SHA256(key, u64be(seq) ‖ kind ‖ payload), base64url (43 characters).
 *
 * The receiver accepts a frame only if its tag is valid and its seq is exactly the
 * next expected one; anything injected, altered, replayed, reordered, cut short or
 * with a frame missing before it fails, and the link is closed (the caller's job).
 * The seq travels in the clear only so that the failure can be named; the tag
 * covers it. In insecure mode (no secret) the key comes from the nonces alone: it
 * still catches corruption and mis-sequencing, but anyone can forge it.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

const KEY_LABEL = 'raft-elector/v2/frame-key';
const KEY_BYTES = 32;
const TAG_BYTES = 32;
/** base64url of 32 bytes, unpadded. */
export const TAG_CHARS = 43;
/** The longest header (seq digits, '.', kind, tag) a frame carries before its payload. */
export const MAX_FRAME_OVERHEAD_BYTES = 16 + 1 + 1 + TAG_CHARS;

export type FrameKind = 'm' | 'k';

export interface FrameKeyInput {
  cluster: string;
  dialer: string;
  acceptor: string;
  dialerNonce: string;
  acceptorNonce: string;
}

export interface LinkKeys {
  send: Buffer;
  receive: Buffer;
}

/** Why a received frame was refused; stable, for logs and tests. */
export type FrameAuthFailure = 'malformed' | 'bad_tag' | 'out_of_sequence';

export class FrameAuthError extends Error {
  override name = 'FrameAuthError';
  constructor(
    readonly failure: FrameAuthFailure,
    message: string,
  ) {
    super(message);
  }
}

function lengthPrefixed(parts: string[]): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const bytes = Buffer.from(part, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    chunks.push(len, bytes);
  }
  return Buffer.concat(chunks);
}

function deriveKey(secret: Buffer, direction: 'dialer-to-acceptor' | 'acceptor-to-dialer', input: FrameKeyInput): Buffer {
  const salt = lengthPrefixed([input.dialerNonce, input.acceptorNonce]);
  const info = lengthPrefixed([KEY_LABEL, direction, input.cluster, input.dialer, input.acceptor]);
  return Buffer.from(hkdfSync('sha256', secret, salt, info, KEY_BYTES));
}

/** The two keys of one link as `role` sees them. `secret` undefined is insecure mode. */
export function deriveLinkKeys(secret: Buffer | undefined, role: 'dialer' | 'acceptor', input: FrameKeyInput): LinkKeys {
  const ikm = secret ?? Buffer.alloc(0);
  const toAcceptor = deriveKey(ikm, 'dialer-to-acceptor', input);
  const toDialer = deriveKey(ikm, 'acceptor-to-dialer', input);
  return role === 'dialer' ? { send: toAcceptor, receive: toDialer } : { send: toDialer, receive: toAcceptor };
}

function tag(key: Buffer, seq: number, kind: FrameKind, payload: string): Buffer {
  const head = Buffer.alloc(9);
  head.writeBigUInt64BE(BigInt(seq));
  head.write(kind, 8, 'latin1');
  return createHmac('sha256', key).update(head).update(payload, 'utf8').digest();
}

/** Seals outgoing frames of one direction of one link. */
export class FrameSealer {
  private nextSeq = 0;
  constructor(private readonly key: Buffer) {}

  seal(kind: FrameKind, payload: string): string {
    const seq = this.nextSeq++;
    return `${seq}.${kind}${tag(this.key, seq, kind, payload).toString('base64url')}${payload}`;
  }
}

/** Opens incoming frames of one direction of one link; throws FrameAuthError on anything but the next genuine frame. */
export class FrameOpener {
  private expectedSeq = 0;
  constructor(private readonly key: Buffer) {}

  /** The seq the next frame must carry. */
  get expected(): number {
    return this.expectedSeq;
  }

  open(text: string): { kind: FrameKind; payload: string; seq: number } {
    const dot = text.indexOf('.');
    if (dot < 1 || dot > 16) throw new FrameAuthError('malformed', 'frame does not start with a sequence number');
    const seqText = text.slice(0, dot);
    if (!/^(0|[1-9][0-9]*)$/.test(seqText)) throw new FrameAuthError('malformed', 'frame sequence number is not a decimal integer');
    const seq = Number(seqText);
    if (!Number.isSafeInteger(seq)) throw new FrameAuthError('malformed', 'frame sequence number is out of range');
    const kind = text[dot + 1];
    if (kind !== 'm' && kind !== 'k') throw new FrameAuthError('malformed', 'frame kind is neither a message nor a keepalive');
    const tagText = text.slice(dot + 2, dot + 2 + TAG_CHARS);
    const got = Buffer.from(tagText, 'base64url');
    // The re-encoding check refuses the spare bits of the last base64 character (one tag, one spelling).
    if (tagText.length !== TAG_CHARS || got.length !== TAG_BYTES || got.toString('base64url') !== tagText) throw new FrameAuthError('malformed', 'frame tag is cut short');
    const payload = text.slice(dot + 2 + TAG_CHARS);
    if (!timingSafeEqual(tag(this.key, seq, kind, payload), got)) {
      throw new FrameAuthError('bad_tag', `frame ${seq} fails its authentication tag (injected, altered or cut short)`);
    }
    if (seq !== this.expectedSeq) {
      throw new FrameAuthError(
        'out_of_sequence',
        `frame ${seq} arrived where ${this.expectedSeq} was expected (${seq < this.expectedSeq ? 'replayed or reordered' : 'reordered, or frames were removed'})`,
      );
    }
    this.expectedSeq++;
    return { kind, payload, seq };
  }
}
