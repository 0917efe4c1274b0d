import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CloseCodes,
  HandshakeRefusal,
  MaxFreshVoteDelayMs,
  MaxRefusalWindowMs,
  buildHello,
  computeMac,
  newInstanceId,
  newNonce,
  parseHello,
  parseProof,
  refusalForCloseCode,
  verifyMac,
  type Hello,
} from './handshake.js';

const secret = Buffer.from('0123456789abcdef0123456789abcdef');
const timing = { tickMs: 100, electionTicks: 10, maxClockDriftMs: 100 };
const input = {
  cluster: 'demo',
  dialer: 'a',
  acceptor: 'b',
  dialerNonce: newNonce(),
  acceptorNonce: newNonce(),
  hello: '{"kind":"hello"}',
  challenge: '{"kind":"challenge"}',
};
const expectation = { kind: 'hello' as const, cluster: 'demo', self: 'b', auth: 'hmac-sha256' as const, isMember: (id: string) => id === 'a' };

function refusal(fn: () => unknown): HandshakeRefusal {
  try {
    fn();
  } catch (err) {
    if (err instanceof HandshakeRefusal) return err;
    throw err;
  }
  throw new Error('accepted');
}

describe('handshake', () => {
  it('the two directions use different MACs, so a proof cannot be reflected', () => {
    const dialerProof = computeMac(secret, 'dialer', input);
    expect(verifyMac(secret, 'dialer', input, dialerProof)).toBe(true);
    expect(verifyMac(secret, 'acceptor', input, dialerProof)).toBe(false);
    expect(computeMac(secret, 'acceptor', input)).not.toBe(dialerProof);
  });

  it('every input is bound: nonce, ids, cluster and secret all change the MAC', () => {
    const mac = computeMac(secret, 'dialer', input);
    for (const changed of [
      { ...input, dialerNonce: newNonce() },
      { ...input, acceptorNonce: newNonce() },
      { ...input, dialer: 'c' },
      { ...input, acceptor: 'c' },
      { ...input, cluster: 'prod' },
      // The hello and challenge texts are covered byte for byte (instance id, timing, anything).
      { ...input, hello: '{"kind":"hello" }' },
      { ...input, challenge: '{"kind":"challenge","timing":{}}' },
      // Length prefixes: moving a character across a field boundary is a different input.
      { ...input, dialer: 'ab', acceptor: '' },
    ]) {
      expect(verifyMac(secret, 'dialer', changed, mac)).toBe(false);
    }
    expect(verifyMac(Buffer.from('another secret, also 32 bytes!!!'), 'dialer', input, mac)).toBe(false);
  });

  it('rejects MACs of the wrong length or alphabet without throwing', () => {
    const mac = computeMac(secret, 'dialer', input);
    for (const bad of ['', mac.slice(0, 62), mac + '00', mac.toUpperCase(), 'zz'.repeat(32)]) {
      expect(verifyMac(secret, 'dialer', input, bad)).toBe(false);
    }
  });

  it('checks the hello: version first, then cluster, member, addressee and auth mode', () => {
    const hello = { kind: 'hello', v: 2, cluster: 'demo', from: 'a', to: 'b', auth: 'hmac-sha256', nonce: newNonce(), instance: newInstanceId(), timing };
    expect(parseHello(JSON.stringify(hello), expectation)).toMatchObject({ from: 'a', instance: hello.instance, timing });
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      // A v1 member (before per-frame authentication) is refused: no fallback, so no downgrade.
      [{ v: 1, cluster: 'other' }, 'bad_version', /version 1, this member speaks 2/],
      [{ v: 3 }, 'bad_version', /version 3/],
      [{ cluster: 'other' }, 'wrong_cluster', /"other"/],
      [{ from: 'z' }, 'unknown_member', /"z" is not a peer/],
      [{ from: 'b' }, 'unknown_member', /"b"/],
      [{ to: 'c' }, 'wrong_member', /wanted member c/],
      [{ auth: 'none' }, 'auth_mode_mismatch', /runs insecure/],
      [{ nonce: 'short' }, 'malformed', /nonce/],
      [{ kind: 'proof' }, 'malformed', /expected a hello/],
      [{ from: 42 }, 'malformed', /hello\.from must be a member id/],
      [{ instance: 'short' }, 'malformed', /instance/],
      [{ instance: undefined }, 'malformed', /instance is missing/],
      [{ timing: undefined }, 'malformed', /timing is missing/],
      [{ timing: { ...timing, tickMs: 0 } }, 'malformed', /timing\.tickMs must be an integer in 1\.\.60000/],
      [{ timing: { ...timing, electionTicks: 1.5 } }, 'malformed', /electionTicks/],
      [{ timing: { tickMs: 100, electionTicks: 10 } }, 'malformed', /maxClockDriftMs is missing/],
    ];
    for (const [patch, reason, message] of cases) {
      const r = refusal(() => parseHello(JSON.stringify({ ...hello, ...patch }), expectation));
      expect(r.reason).toBe(reason);
      expect(r.message).toMatch(message);
      expect(r.closeCode).toBe(CloseCodes[r.reason]);
      expect(refusalForCloseCode(r.closeCode)).toBe(reason);
    }
    expect(refusal(() => parseHello('{', expectation)).reason).toBe('malformed');
    expect(refusal(() => parseHello(JSON.stringify({ ...hello, from: 'z' }), expectation)).claimedId).toBe('z');
  });

  it('buildHello writes what parseHello reads, with the timing fields only', () => {
    const text = buildHello({
      kind: 'challenge',
      cluster: 'demo',
      from: 'b',
      to: 'a',
      auth: 'hmac-sha256',
      nonce: newNonce(),
      instance: newInstanceId(),
      timing: { ...timing, extra: 1 } as typeof timing,
    });
    const parsed = parseHello(text, { kind: 'challenge', cluster: 'demo', self: 'a', auth: 'hmac-sha256', isMember: () => true, expectedPeer: 'b' });
    expect(parsed.timing).toEqual(timing);
    expect(JSON.parse(text)).toMatchObject({ v: 2, timing });
    expect(text).not.toContain('extra');
  });

  it('freshVoteDelayMs is optional both ways: announced, it is read back; absent (an older member), the hello still parses', () => {
    const exp = { kind: 'challenge' as const, cluster: 'demo', self: 'a', auth: 'hmac-sha256' as const, isMember: () => true, expectedPeer: 'b' };
    const base = { kind: 'challenge' as const, cluster: 'demo', from: 'b', to: 'a', auth: 'hmac-sha256' as const, nonce: newNonce(), instance: newInstanceId(), timing };
    expect(parseHello(buildHello({ ...base, freshVoteDelayMs: 1800 }), exp).freshVoteDelayMs).toBe(1800);
    const old = buildHello(base);
    expect(old).not.toContain('freshVoteDelayMs');
    expect(parseHello(old, exp).freshVoteDelayMs).toBeUndefined();
    for (const bad of ['5', null, [], {}, true]) {
      expect(refusal(() => parseHello(JSON.stringify({ ...base, v: 2, freshVoteDelayMs: bad }), exp)).reason).toBe('malformed');
    }
  });

  it('an out-of-range freshVoteDelayMs (another build) is taken, never shorter than announced, and flagged', () => {
    const exp = { kind: 'challenge' as const, cluster: 'demo', self: 'a', auth: 'hmac-sha256' as const, isMember: () => true, expectedPeer: 'b' };
    const base = { kind: 'challenge', v: 2, cluster: 'demo', from: 'b', to: 'a', auth: 'hmac-sha256', nonce: newNonce(), instance: newInstanceId(), timing };
    const read = (ms: number) => {
      const h = parseHello(JSON.stringify({ ...base, freshVoteDelayMs: ms }), exp);
      return { ms: h.freshVoteDelayMs, announced: h.freshVoteDelayAnnounced };
    };
    expect(read(MaxFreshVoteDelayMs)).toEqual({ ms: MaxFreshVoteDelayMs, announced: undefined });
    expect(read(0)).toEqual({ ms: 0, announced: undefined });
    expect(read(1.5)).toEqual({ ms: 2, announced: 1.5 });
    expect(read(-1)).toEqual({ ms: 0, announced: -1 });
    // Above the bound this build cannot say when it ends: not over (Infinity), rather than cut to the bound.
    expect(read(MaxFreshVoteDelayMs + 1)).toEqual({ ms: Infinity, announced: MaxFreshVoteDelayMs + 1 });
    expect(parseHello(`${buildHello({ ...base, kind: 'challenge', auth: 'hmac-sha256' }).slice(0, -1)},"freshVoteDelayMs":1e400}`, exp).freshVoteDelayMs).toBe(Infinity);
    for (const ms of [-1e6, -0.5, 0.1, 1799.01, 2 ** 53, MaxFreshVoteDelayMs + 0.5]) {
      expect(read(ms).ms, String(ms)).toBeGreaterThanOrEqual(ms);
    }
  });

  it('longestRefusalWindowMs and longestLeaseWindowMs (the timing record) are optional both ways, kept apart from the current timing', () => {
    const exp = { kind: 'challenge' as const, cluster: 'demo', self: 'a', auth: 'hmac-sha256' as const, isMember: () => true, expectedPeer: 'b' };
    const base = { kind: 'challenge' as const, cluster: 'demo', from: 'b', to: 'a', auth: 'hmac-sha256' as const, nonce: newNonce(), instance: newInstanceId(), timing };
    const text = buildHello({ ...base, longestRefusalWindowMs: 4_500, longestLeaseWindowMs: 4_400 });
    expect(JSON.parse(text)).toMatchObject({ timing, longestRefusalWindowMs: 4_500, longestLeaseWindowMs: 4_400 });
    const parsed = parseHello(text, exp);
    expect(parsed.longestRefusalWindowMs).toBe(4_500);
    expect(parsed.longestLeaseWindowMs).toBe(4_400);
    expect(parsed.longestRefusalWindowAnnounced).toBeUndefined();
    expect(parsed.longestLeaseWindowAnnounced).toBeUndefined();
    expect(parsed.timing).toEqual(timing);
    // An older member sends none: its hello still parses, and nothing is made up for it.
    const old = buildHello(base);
    expect(old).not.toContain('longestRefusalWindowMs');
    expect(old).not.toContain('longestLeaseWindowMs');
    expect(parseHello(old, exp).longestRefusalWindowMs).toBeUndefined();
    expect(parseHello(old, exp).longestLeaseWindowMs).toBeUndefined();
    for (const name of ['longestRefusalWindowMs', 'longestLeaseWindowMs']) {
      for (const bad of ['900', null, [], {}, true]) {
        expect(refusal(() => parseHello(JSON.stringify({ ...base, v: 2, [name]: bad }), exp)).reason).toBe('malformed');
      }
    }
  });

  it.each([
    ['longestRefusalWindowMs', (h: Hello) => ({ ms: h.longestRefusalWindowMs, announced: h.longestRefusalWindowAnnounced })],
    ['longestLeaseWindowMs', (h: Hello) => ({ ms: h.longestLeaseWindowMs, announced: h.longestLeaseWindowAnnounced })],
  ] as const)('an out-of-range %s is taken, never shorter than announced up to the bound, and flagged', (name, of) => {
    const exp = { kind: 'challenge' as const, cluster: 'demo', self: 'a', auth: 'hmac-sha256' as const, isMember: () => true, expectedPeer: 'b' };
    const base = { kind: 'challenge', v: 2, cluster: 'demo', from: 'b', to: 'a', auth: 'hmac-sha256', nonce: newNonce(), instance: newInstanceId(), timing };
    const read = (ms: number) => of(parseHello(JSON.stringify({ ...base, [name]: ms }), exp));
    expect(MaxRefusalWindowMs).toBe(9_999 * 60_000);
    expect(read(MaxRefusalWindowMs)).toEqual({ ms: MaxRefusalWindowMs, announced: undefined });
    expect(read(0)).toEqual({ ms: 0, announced: undefined });
    expect(read(899.2)).toEqual({ ms: 900, announced: 899.2 });
    expect(read(-5)).toEqual({ ms: 0, announced: -5 });
    // Above the bound: the bound (no leader of this build counts a longer window), a finite wait.
    expect(read(MaxRefusalWindowMs + 1)).toEqual({ ms: MaxRefusalWindowMs, announced: MaxRefusalWindowMs + 1 });
    expect(of(parseHello(`${buildHello({ ...base, kind: 'challenge', auth: 'hmac-sha256' }).slice(0, -1)},"${name}":1e400}`, exp)).ms).toBe(MaxRefusalWindowMs);
    for (const ms of [-1e6, -0.5, 0.1, 1799.01, MaxRefusalWindowMs - 0.5]) {
      expect(read(ms).ms, String(ms)).toBeGreaterThanOrEqual(ms);
    }
  });

  it('a challenge must come from the member that was dialed', () => {
    const challenge = { kind: 'challenge', v: 2, cluster: 'demo', from: 'c', to: 'a', auth: 'hmac-sha256', nonce: newNonce(), instance: newInstanceId(), timing };
    const r = refusal(() =>
      parseHello(JSON.stringify(challenge), { kind: 'challenge', cluster: 'demo', self: 'a', auth: 'hmac-sha256', isMember: () => true, expectedPeer: 'b' }),
    );
    expect(r.reason).toBe('wrong_member');
    expect(r.message).toMatch(/dialed member b but c answered/);
  });

  it('parses proofs strictly', () => {
    expect(parseProof('{"kind":"proof","mac":"ab"}', 'proof').mac).toBe('ab');
    expect(refusal(() => parseProof('{"kind":"welcome","mac":"ab"}', 'proof')).reason).toBe('malformed');
    expect(refusal(() => parseProof('{"kind":"proof","mac":5}', 'proof')).reason).toBe('malformed');
  });

  it('a hello or challenge missing kind or v is a malformed refusal, not a stray exception', () => {
    for (const text of ['{}', '{"kind":"hello"}', '{"v":1}', '[]', 'null', '"hello"']) {
      expect(refusal(() => parseHello(text, expectation)).reason, text).toBe('malformed');
    }
    expect(refusal(() => parseHello('{"kind":"challenge"}', { ...expectation, kind: 'challenge', expectedPeer: 'a' })).reason).toBe('malformed');
  });

  it('any text, or any mutation of a valid hello or proof, only ever throws HandshakeRefusal (property)', () => {
    const seed = process.env.SEED !== undefined ? Number(process.env.SEED) : Math.floor(Math.random() * 2 ** 31);
    console.log(`handshake garbage property seed=${seed}`);
    const hello = { kind: 'hello', v: 2, cluster: 'demo', from: 'a', to: 'b', auth: 'hmac-sha256', nonce: newNonce(), instance: newInstanceId(), timing, longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 };
    const keys = Object.keys(hello);
    // Drop, retype or add fields of a valid hello: the shapes a confused or hostile dialer sends.
    const mutatedHello = fc
      .tuple(fc.subarray(keys), fc.dictionary(fc.constantFrom(...keys, '__proto__', 'constructor', 'x'), fc.jsonValue({ maxDepth: 3 })))
      .map(([kept, extra]) => JSON.stringify({ ...Object.fromEntries(kept.map((k) => [k, hello[k as keyof typeof hello]])), ...extra }));
    const texts = fc.oneof(fc.string({ maxLength: 200 }), fc.json({ maxDepth: 4 }), mutatedHello);
    fc.assert(
      fc.property(texts, (text) => {
        for (const parse of [() => parseHello(text, expectation), () => parseProof(text, 'proof')]) {
          try {
            parse();
          } catch (err) {
            expect(err).toBeInstanceOf(HandshakeRefusal);
          }
        }
      }),
      { seed, numRuns: 2000 },
    );
  });
});
