import { describe, expect, it } from 'vitest';
import { isValidMemberId } from './codec.js';
import { makeIncarnationId, parseMemberId, podNameOf, podUidOf } from './member-id.js';

describe('member ids', () => {
  it('an incarnation id is <podName>@<podUid> and parses back', () => {
    const id = makeIncarnationId('orders-7d9c-x2k4q', '3f2a1c5e-8b7d-4e6f-9a0b-1c2d3e4f5a6b');
    expect(id).toBe('orders-7d9c-x2k4q@3f2a1c5e-8b7d-4e6f-9a0b-1c2d3e4f5a6b');
    expect(parseMemberId(id)).toEqual({ podName: 'orders-7d9c-x2k4q', podUid: '3f2a1c5e-8b7d-4e6f-9a0b-1c2d3e4f5a6b' });
    expect(podNameOf(id)).toBe('orders-7d9c-x2k4q');
    expect(isValidMemberId(id)).toBe(true);
  });

  it('a plain id is its own pod name', () => {
    expect(parseMemberId('node-a')).toEqual({ podName: 'node-a', podUid: null });
    expect(podNameOf('node-a')).toBe('node-a');
    expect(podUidOf('node-a')).toBeNull();
  });

  it('a 253-character pod name with a UID is still a valid id on the wire', () => {
    const name = 'a'.repeat(253);
    expect(isValidMemberId(makeIncarnationId(name, '3f2a1c5e-8b7d-4e6f-9a0b-1c2d3e4f5a6b'))).toBe(true);
  });

  it('refuses a pod name with @ and a UID with odd characters, naming the downward API', () => {
    expect(() => makeIncarnationId('a@b', 'u1')).toThrow(/contain no '@'/);
    expect(() => makeIncarnationId('web-0', 'u 1')).toThrow(/POD_UID from the downward API/);
    expect(() => makeIncarnationId('web-0', '')).toThrow(/POD_UID/);
  });
});
