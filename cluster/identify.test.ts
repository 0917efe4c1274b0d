import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, node, otherSecret, secret } from '../test/harness/transport-kit.js';
import { identifyPeer, identityMac, IdentifyResponder, verifyIdentityAnswer } from './identify.js';

afterEach(closeAll);

const nonceA = Buffer.alloc(32, 1).toString('base64url');
const nonceB = Buffer.alloc(32, 2).toString('base64url');

function answer(id: string, nonce: string, key = secret): string {
  return JSON.stringify({ kind: 'identity', v: 2, cluster: 'demo', id, mac: identityMac(key, 'demo', id, nonce) });
}

describe('GET /identify on the peer port: which member is behind an address', () => {
  it('a member proves its id over the prober\'s nonce; the same answer is refused for another nonce or another secret', () => {
    expect(verifyIdentityAnswer(answer('web-b@u2', nonceA), { clusterName: 'demo', secret, nonce: nonceA })).toBe('web-b@u2');
    expect(() => verifyIdentityAnswer(answer('web-b@u2', nonceA), { clusterName: 'demo', secret, nonce: nonceB })).toThrow(/failed to prove the shared secret/);
    expect(() => verifyIdentityAnswer(answer('web-b@u2', nonceA, otherSecret), { clusterName: 'demo', secret, nonce: nonceA })).toThrow(/failed to prove/);
    expect(() => verifyIdentityAnswer(answer('web-b@u2', nonceA), { clusterName: 'shop', secret, nonce: nonceA })).toThrow(/cluster "demo"/);
    expect(() => verifyIdentityAnswer('{"kind":"identity","v":2,"cluster":"demo","id":"x y","mac":""}', { clusterName: 'demo', secret, nonce: nonceA })).toThrow(/no valid member id/);
  });

  it('end to end over the real peer port: the id comes back; a member with another secret is refused', async () => {
    const b = await node('web-b@u2', []);
    const c = await node('web-c@u3', [], { secret: otherSecret });
    const opts = { clusterName: 'demo', secret, tls: undefined, timeoutMs: 2_000 };
    await expect(identifyPeer('127.0.0.1', b.t.port, opts)).resolves.toBe('web-b@u2');
    await expect(identifyPeer('127.0.0.1', c.t.port, opts)).rejects.toMatchObject({ code: 'IDENTIFY_FAILED' });
    // Any other request on the peer port is still told to upgrade.
    const other = await fetch(`http://127.0.0.1:${b.t.port}/leader`);
    expect(other.status).toBe(426);
    const bad = await fetch(`http://127.0.0.1:${b.t.port}/identify?nonce=short`);
    expect(bad.status).toBe(400);
  });

  it('answers at most answersPerSecond, so a stranger cannot make a member spend CPU on MACs', () => {
    let nowMs = 0;
    const r = new IdentifyResponder({ selfId: 'b', clusterName: 'demo', secret, answersPerSecond: 3, now: () => nowMs });
    const statuses: number[] = [];
    const ask = () => {
      const res = { writeHead: (status: number) => (statuses.push(status), { end: () => undefined }) };
      r.handle({ url: `/identify?nonce=${nonceA}`, method: 'GET' } as never, res as never);
    };
    for (let i = 0; i < 5; i++) ask();
    nowMs = 1_000;
    ask();
    expect(statuses).toEqual([200, 200, 200, 429, 429, 200]);
  });
});
