/**
 * An on-path attacker without the secret: a TCP relay between two members that
 * reads the WebSocket frames going from the dialer to the acceptor and, when armed,
 * tampers with the next raft frame after the handshake. It forwards everything else
 * byte for byte. The other direction is piped untouched.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { LinkProxy } from './proxy.js';

export type TamperMode = 'inject' | 'alter' | 'replay' | 'reorder' | 'remove' | 'truncate';

interface WsFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/** One complete client frame at the start of `buf`, unmasked, and its length; undefined if incomplete. */
function parseFrame(buf: Buffer): { frame: WsFrame; bytes: number } | undefined {
  if (buf.length < 2) return undefined;
  const b0 = buf[0]!;
  const b1 = buf[1]!;
  let len = b1 & 0x7f;
  let at = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    at = 4;
  } else if (len === 127) {
    if (buf.length < 10) return undefined;
    len = Number(buf.readBigUInt64BE(2));
    at = 10;
  }
  const masked = (b1 & 0x80) !== 0;
  const mask = masked ? buf.subarray(at, at + 4) : undefined;
  if (masked) at += 4;
  if (buf.length < at + len) return undefined;
  const payload = Buffer.from(buf.subarray(at, at + len));
  if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
  return { frame: { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload }, bytes: at + len };
}

/** A masked client frame, as a browser or ws would write it. */
function buildFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const mask = randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0, 0x80 | len]) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (len >= 126 && len < 65536) {
    head[1] = 0x80 | 126;
    head.writeUInt16BE(len, 2);
  } else if (len >= 65536) {
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  head[0] = (fin ? 0x80 : 0) | opcode;
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= mask[i % 4]!;
  return Buffer.concat([head, mask, body]);
}

export class TamperProxy extends LinkProxy {
  private armed: TamperMode | null = null;
  /** Modes carried out, in order. */
  readonly done: TamperMode[] = [];
  /** Builds the raft envelope an `inject` writes, given the last sequence number seen on the wire. */
  injectPayload: (lastSeq: number) => string = () => '{}';

  /** Tamper with the next raft frame (not the handshake) of the dialer→acceptor stream. */
  arm(mode: TamperMode): void {
    this.armed = mode;
  }

  protected override forward(client: Socket, upstream: Socket): void {
    let pending = Buffer.alloc(0);
    let upgraded = false;
    let textFrames = 0;
    let lastSeq = -1;
    let held: Buffer | null = null;
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      if (!upgraded) {
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        upstream.write(pending.subarray(0, end + 4));
        pending = pending.subarray(end + 4);
        upgraded = true;
      }
      for (;;) {
        const parsed = parseFrame(pending);
        if (!parsed) return;
        const raw = Buffer.from(pending.subarray(0, parsed.bytes));
        pending = pending.subarray(parsed.bytes);
        const { frame } = parsed;
        if (frame.opcode !== 1) {
          upstream.write(raw); // control frames pass
          continue;
        }
        textFrames++;
        const text = frame.payload.toString('utf8');
        const seq = /^(\d+)\./.exec(text)?.[1];
        // Frames 1 and 2 are the hello and the proof; sealed frames follow.
        const mode = textFrames > 2 && seq !== undefined ? this.armed : null;
        if (held) {
          upstream.write(raw);
          upstream.write(held);
          held = null;
          continue;
        }
        if (seq !== undefined) lastSeq = Number(seq);
        if (mode === null) {
          upstream.write(raw);
          continue;
        }
        this.armed = null;
        this.done.push(mode);
        switch (mode) {
          case 'inject': {
            // The best guess without the key: the right next sequence number, a random tag.
            const forged = `${lastSeq}.m${randomBytes(32).toString('base64url')}${this.injectPayload(lastSeq)}`;
            upstream.write(buildFrame(1, Buffer.from(forged)));
            upstream.write(raw);
            break;
          }
          case 'alter': {
            const i = frame.payload.length - 2;
            const altered = Buffer.from(frame.payload);
            altered[i] = altered[i] === 0x30 ? 0x31 : 0x30;
            upstream.write(buildFrame(1, altered));
            break;
          }
          case 'replay':
            upstream.write(raw);
            upstream.write(raw);
            break;
          case 'reorder':
            held = raw;
            break;
          case 'remove':
            break;
          case 'truncate':
            upstream.write(buildFrame(1, frame.payload.subarray(0, frame.payload.length - 7)));
            break;
        }
      }
    });
  }
}
