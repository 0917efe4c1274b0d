import { describe, expect, it } from 'vitest';
import { FrameAuthError, FrameOpener, FrameSealer, TAG_CHARS, deriveLinkKeys, type FrameAuthFailure } from './frame-auth.js';
import { newNonce } from './handshake.js';

const secret = Buffer.from('0123456789abcdef0123456789abcdef');
const input = { cluster: 'demo', dialer: 'a', acceptor: 'b', dialerNonce: newNonce(), acceptorNonce: newNonce() };

function link(): { a: FrameSealer; b: FrameOpener; bToA: FrameSealer; aFromB: FrameOpener } {
  const ka = deriveLinkKeys(secret, 'dialer', input);
  const kb = deriveLinkKeys(secret, 'acceptor', input);
  return { a: new FrameSealer(ka.send), b: new FrameOpener(kb.receive), bToA: new FrameSealer(kb.send), aFromB: new FrameOpener(ka.receive) };
}

function failure(fn: () => unknown): FrameAuthFailure {
  try {
    fn();
  } catch (err) {
    if (err instanceof FrameAuthError) return err.failure;
    throw err;
  }
  throw new Error('accepted');
}

describe('per-frame authentication', () => {
  it('both sides derive matching keys per direction; the two directions differ', () => {
    const { a, b, bToA, aFromB } = link();
    expect(b.open(a.seal('m', '{"x":1}'))).toEqual({ kind: 'm', payload: '{"x":1}', seq: 0 });
    expect(b.open(a.seal('k', ''))).toEqual({ kind: 'k', payload: '', seq: 1 });
    expect(aFromB.open(bToA.seal('m', 'back'))).toMatchObject({ payload: 'back', seq: 0 });
    // A frame a sent cannot be reflected back to a as if b had sent it.
    const { a: a2, aFromB: reflectTarget } = link();
    expect(failure(() => reflectTarget.open(a2.seal('m', 'x')))).toBe('bad_tag');
  });

  it('keys depend on the secret, both nonces, the ids and the cluster', () => {
    const base = deriveLinkKeys(secret, 'dialer', input).send;
    for (const [s, i] of [
      [Buffer.from('another secret, also 32 bytes!!!'), input],
      [secret, { ...input, dialerNonce: newNonce() }],
      [secret, { ...input, acceptorNonce: newNonce() }],
      [secret, { ...input, dialer: 'c' }],
      [secret, { ...input, acceptor: 'c' }],
      [secret, { ...input, cluster: 'prod' }],
    ] as const) {
      expect(deriveLinkKeys(s, 'dialer', i).send.equals(base)).toBe(false);
    }
  });

  it('an injected frame (sealed without the key) is refused', () => {
    const { b } = link();
    const stranger = new FrameSealer(Buffer.alloc(32, 7));
    expect(failure(() => b.open(stranger.seal('m', '{"type":"MsgTimeoutNow"}')))).toBe('bad_tag');
    // Nor a raw v1-style frame with no seal at all.
    expect(failure(() => b.open('{"v":1,"cluster":"demo","msg":{}}'))).toBe('malformed');
  });

  it('an altered payload, seq, kind or tag is refused', () => {
    const { a } = link();
    const frame = a.seal('m', '{"term":5}');
    const dot = frame.indexOf('.');
    const tagStart = dot + 2;
    const tamper = [
      frame.replace('"term":5', '"term":6'),
      `1${frame}`,
      `${frame.slice(0, dot + 1)}k${frame.slice(dot + 2)}`,
      `${frame.slice(0, tagStart)}${frame[tagStart] === 'A' ? 'B' : 'A'}${frame.slice(tagStart + 1)}`,
    ];
    for (const t of tamper) {
      const { b } = link();
      expect(['bad_tag', 'malformed']).toContain(failure(() => b.open(t)));
    }
    // The payload itself altered by one character: always the tag.
    const { b } = link();
    expect(failure(() => b.open(frame.replace('"term":5', '"term":6')))).toBe('bad_tag');
  });

  it('a replayed, reordered or skipped frame is refused, and so is a frame cut short', () => {
    {
      const { a, b } = link();
      const f0 = a.seal('m', 'zero');
      b.open(f0);
      expect(failure(() => b.open(f0))).toBe('out_of_sequence'); // replay
    }
    {
      const { a, b } = link();
      a.seal('m', 'zero');
      const f1 = a.seal('m', 'one');
      expect(failure(() => b.open(f1))).toBe('out_of_sequence'); // reordered, or f0 removed
      expect(b.expected).toBe(0);
    }
    {
      const { a, b } = link();
      const f0 = a.seal('m', '{"type":"MsgHeartbeat"}');
      expect(failure(() => b.open(f0.slice(0, -3)))).toBe('bad_tag'); // truncated payload
      expect(failure(() => b.open(f0.slice(0, 5 + TAG_CHARS - 10)))).toBe('malformed'); // truncated tag
      expect(b.open(f0).payload).toBe('{"type":"MsgHeartbeat"}'); // nothing was consumed by the failures
    }
  });

  it('refuses malformed headers without throwing anything but FrameAuthError', () => {
    const { b } = link();
    for (const t of ['', '.', 'x.m', '01.m', '-1.m', '1e3.m', '99999999999999999.m', '0.z' + 'A'.repeat(TAG_CHARS), '0.m' + '!'.repeat(TAG_CHARS)]) {
      expect(failure(() => b.open(t)), t).toBe('malformed');
    }
  });

  it('insecure mode still derives per-connection keys, from the nonces alone', () => {
    const ka = deriveLinkKeys(undefined, 'dialer', input);
    const kb = deriveLinkKeys(undefined, 'acceptor', input);
    expect(new FrameOpener(kb.receive).open(new FrameSealer(ka.send).seal('m', 'p')).payload).toBe('p');
    expect(ka.send.equals(deriveLinkKeys(undefined, 'dialer', { ...input, dialerNonce: newNonce() }).send)).toBe(false);
  });
});
