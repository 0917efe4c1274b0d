import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LocalMessageTypes, MessageTypes, makeMessage, type Message, type MessageType } from '../raft/index.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  MAX_CONTEXT_LENGTH,
  MAX_ENTRIES_PER_MESSAGE,
  MAX_ID_LENGTH,
  decodeFrame,
  isValidMemberId,
  encodeMessage,
} from './codec.js';
import { ClusterError } from './errors.js';

/** SEED=<n> replays a failing run. */
function propertySeed(): number {
  return process.env.SEED !== undefined ? Number(process.env.SEED) : Math.floor(Math.random() * 2 ** 31);
}

const opts = { clusterName: 'demo', maxFrameBytes: DEFAULT_MAX_FRAME_BYTES };
const wireTypes = MessageTypes.filter((t) => !LocalMessageTypes.has(t));

function frame(msg: Record<string, unknown>, env: Record<string, unknown> = {}): string {
  const base = encodeMessage(makeMessage({ type: 'MsgHeartbeat', to: 'b', from: 'a', term: 3, commit: 2, context: '7' }), 'demo');
  const parsed = JSON.parse(base) as { msg: Record<string, unknown> };
  return JSON.stringify({ ...parsed, ...env, msg: { ...parsed.msg, ...msg } });
}

function decodeError(data: string | Buffer, options = opts): ClusterError {
  try {
    decodeFrame(data, options);
  } catch (err) {
    if (err instanceof ClusterError) return err;
    throw err;
  }
  throw new Error('decode accepted a bad frame');
}

describe('codec', () => {
  it('round-trips a heartbeat, an append with entries and a snapshot', () => {
    const msgs: Message[] = [
      makeMessage({ type: 'MsgHeartbeat', to: 'b', from: 'a', term: 3, commit: 2, context: '7' }),
      makeMessage({
        type: 'MsgApp',
        to: 'pod-1',
        from: 'pod-0',
        term: 5,
        logTerm: 4,
        index: 10,
        commit: 9,
        entries: [
          { index: 11, term: 4 },
          { index: 12, term: 5 },
        ],
      }),
      makeMessage({ type: 'MsgSnap', to: 'b', from: 'a', term: 5, snapshot: { index: 40, term: 5 } }),
      makeMessage({ type: 'MsgVoteResp', to: 'a', from: 'c', term: 9, reject: true, context: 'LeaseSkipped' }),
    ];
    for (const m of msgs) expect(decodeFrame(encodeMessage(m, 'demo'), opts)).toEqual(m);
    expect(decodeFrame(Buffer.from(encodeMessage(msgs[0]!, 'demo')), opts)).toEqual(msgs[0]);
  });

  it('tolerates a few unknown fields (forward-compatible additions) but not many', () => {
    expect(decodeFrame(frame({ extra1: 1, extra2: 'x' }, { note: true }), opts).type).toBe('MsgHeartbeat');
    expect(decodeError(frame({ a1: 1, a2: 1, a3: 1, a4: 1, a5: 1 })).message).toMatch(/msg has more than 4 unknown fields/);
  });

  const bad: Array<{ name: string; data: () => string; code: string; message: RegExp }> = [
    { name: 'not JSON', data: () => '{"v":1,', code: 'FRAME_MALFORMED', message: /not valid JSON/ },
    { name: 'a JSON array', data: () => '[]', code: 'FRAME_MALFORMED', message: /frame must be an object/ },
    { name: 'a JSON string', data: () => '"hi"', code: 'FRAME_MALFORMED', message: /frame must be an object/ },
    { name: 'deep nesting', data: () => '['.repeat(30000) + ']'.repeat(30000), code: 'FRAME_MALFORMED', message: /./ },
    { name: 'no version', data: () => JSON.stringify({ cluster: 'demo', msg: {} }), code: 'FRAME_MALFORMED', message: /frame\.v is missing/ },
    { name: 'version 1', data: () => frame({}, { v: 1 }), code: 'FRAME_UNSUPPORTED_VERSION', message: /version 1.*speaks 2/ },
    { name: 'version 3', data: () => frame({}, { v: 3 }), code: 'FRAME_UNSUPPORTED_VERSION', message: /version 3.*speaks 2/ },
    { name: 'version as a string', data: () => frame({}, { v: '1' }), code: 'FRAME_MALFORMED', message: /frame\.v must be/ },
    { name: 'another cluster', data: () => frame({}, { cluster: 'prod' }), code: 'FRAME_WRONG_CLUSTER', message: /"prod".*"demo"/ },
    { name: 'no msg', data: () => JSON.stringify({ v: 2, cluster: 'demo' }), code: 'FRAME_MALFORMED', message: /frame\.msg is missing/ },
    { name: 'an unknown type', data: () => frame({ type: 'MsgBogus' }), code: 'FRAME_MALFORMED', message: /msg\.type must be a raft message type/ },
    { name: 'a local-only type', data: () => frame({ type: 'MsgHup' }), code: 'FRAME_MALFORMED', message: /MsgHup is local/ },
    { name: 'MsgForgetLeader from a peer', data: () => frame({ type: 'MsgForgetLeader' }), code: 'FRAME_MALFORMED', message: /local/ },
    { name: 'an empty from', data: () => frame({ from: '' }), code: 'FRAME_MALFORMED', message: /msg\.from must be a member id/ },
    { name: 'a numeric to', data: () => frame({ to: 5 }), code: 'FRAME_MALFORMED', message: /msg\.to must be a member id/ },
    { name: 'a long id', data: () => frame({ from: 'x'.repeat(MAX_ID_LENGTH + 1) }), code: 'FRAME_MALFORMED', message: /msg\.from/ },
    { name: 'an id with a newline', data: () => frame({ from: 'a\nb' }), code: 'FRAME_MALFORMED', message: /msg\.from/ },
    { name: 'a negative term', data: () => frame({ term: -1 }), code: 'FRAME_MALFORMED', message: /msg\.term must be a non-negative safe integer, got -1/ },
    { name: 'a fractional index', data: () => frame({ index: 1.5 }), code: 'FRAME_MALFORMED', message: /msg\.index/ },
    { name: 'an unsafe commit', data: () => frame({ commit: 2 ** 60 }), code: 'FRAME_MALFORMED', message: /msg\.commit/ },
    { name: 'a string term', data: () => frame({ term: '3' }), code: 'FRAME_MALFORMED', message: /msg\.term/ },
    { name: 'a missing logTerm', data: () => frame({ logTerm: undefined }), code: 'FRAME_MALFORMED', message: /msg\.logTerm is missing/ },
    { name: 'reject as a number', data: () => frame({ reject: 0 }), code: 'FRAME_MALFORMED', message: /msg\.reject must be a boolean/ },
    { name: 'a long context', data: () => frame({ context: 'c'.repeat(MAX_CONTEXT_LENGTH + 1) }), code: 'FRAME_MALFORMED', message: /msg\.context/ },
    { name: 'context as an object', data: () => frame({ context: {} }), code: 'FRAME_MALFORMED', message: /msg\.context/ },
    { name: 'entries as an object', data: () => frame({ entries: {} }), code: 'FRAME_MALFORMED', message: /msg\.entries must be an array/ },
    { name: 'entries on a heartbeat', data: () => frame({ entries: [{ index: 1, term: 1 }] }), code: 'FRAME_MALFORMED', message: /must be empty on MsgHeartbeat/ },
    {
      name: 'a gap in MsgApp entries',
      data: () => frame({ type: 'MsgApp', index: 4, logTerm: 1, entries: [{ index: 5, term: 1 }, { index: 7, term: 1 }] }),
      code: 'FRAME_MALFORMED',
      message: /entries\[1\]\.index is 7, expected 6/,
    },
    {
      name: 'MsgApp entries not after index',
      data: () => frame({ type: 'MsgApp', index: 4, logTerm: 1, entries: [{ index: 4, term: 1 }] }),
      code: 'FRAME_MALFORMED',
      message: /entries\[0\]\.index is 4, expected 5/,
    },
    {
      name: 'an entry with a string term',
      data: () => frame({ type: 'MsgApp', index: 0, entries: [{ index: 1, term: 'x' }] }),
      code: 'FRAME_MALFORMED',
      message: /entries\[0\]\.term/,
    },
    {
      name: 'too many entries',
      data: () =>
        frame({
          type: 'MsgApp',
          entries: Array.from({ length: MAX_ENTRIES_PER_MESSAGE + 1 }, (_, i) => ({ index: i + 1, term: 0 })),
        }),
      code: 'FRAME_MALFORMED',
      message: /at most 4096/,
    },
    { name: 'MsgSnap without snapshot', data: () => frame({ type: 'MsgSnap' }), code: 'FRAME_MALFORMED', message: /msg\.snapshot is missing/ },
    { name: 'a snapshot on a heartbeat', data: () => frame({ snapshot: { index: 1, term: 1 } }), code: 'FRAME_MALFORMED', message: /only allowed on MsgSnap/ },
    { name: 'a bad snapshot', data: () => frame({ type: 'MsgSnap', snapshot: { index: -3, term: 1 } }), code: 'FRAME_MALFORMED', message: /msg\.snapshot\.index/ },
  ];
  for (const c of bad) {
    it(`rejects ${c.name}`, () => {
      const err = decodeError(c.data(), { ...opts, maxFrameBytes: 1024 * 1024 });
      expect(err.code).toBe(c.code);
      expect(err.message).toMatch(c.message);
    });
  }

  it('nasty numbers and prototype keys: rejected, or read as plain own fields', () => {
    const base = frame({});
    const numbers: Array<[string, RegExp]> = [
      ['"NaN"', /msg\.term must be a non-negative safe integer, got "NaN"/],
      ['1e400', /msg\.term must be a non-negative safe integer, got Infinity/],
      ['-1e-300', /msg\.term/],
      ['9007199254740993', /msg\.term/],
    ];
    for (const [raw, message] of numbers) {
      const err = decodeError(base.replace('"term":3', `"term":${raw}`));
      expect(err.code, raw).toBe('FRAME_MALFORMED');
      expect(err.message, raw).toMatch(message);
    }
    // -0 is a safe integer; it must come out as a plain 0.
    expect(Object.is(decodeFrame(base.replace('"term":3', '"term":-0'), opts).term, 0)).toBe(true);
    // "__proto__" from JSON.parse is an own key: it neither supplies missing fields nor pollutes anything.
    const viaProto = base.replace('"msg":{"type":"MsgHeartbeat",', '"msg":{"__proto__":{"type":"MsgVote"},');
    expect(decodeError(viaProto).message).toMatch(/msg\.type is missing/);
    const withProto = base.replace('"msg":{', '"msg":{"__proto__":{"polluted":true},');
    const m = decodeFrame(withProto, opts);
    expect(m.type).toBe('MsgHeartbeat');
    expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(m)).not.toContain('__proto__');
  });

  it('rejects a frame above the limit before parsing it', () => {
    const err = decodeError('x'.repeat(2000), { ...opts, maxFrameBytes: 1999 });
    expect(err.code).toBe('FRAME_OVERSIZED');
    expect(err.message).toMatch(/2000 bytes exceeds the limit of 1999/);
    expect(decodeError(Buffer.alloc(2000, 0x20), { ...opts, maxFrameBytes: 1999 }).code).toBe('FRAME_OVERSIZED');
  });

  const idArb = fc.string({ minLength: 1, maxLength: 20, unit: 'grapheme-ascii' }).filter((s) => isValidMemberId(s));
  const nat = fc.nat({ max: Number.MAX_SAFE_INTEGER });
  const messageArb: fc.Arbitrary<Message> = fc
    .record({
      type: fc.constantFrom(...(wireTypes as MessageType[])),
      to: idArb,
      from: idArb,
      term: nat,
      logTerm: fc.nat({ max: 1000 }),
      index: fc.nat({ max: 1_000_000 }),
      commit: nat,
      reject: fc.boolean(),
      rejectHint: nat,
      context: fc.string({ maxLength: 50 }),
      entryTerms: fc.array(fc.nat({ max: 50 }), { maxLength: 20 }),
      snapshot: fc.record({ index: nat, term: nat }),
    })
    .map((r) => {
      const entries =
        r.type === 'MsgApp'
          ? [...r.entryTerms].sort((a, b) => a - b).map((t, i) => ({ index: r.index + 1 + i, term: r.logTerm + t }))
          : [];
      return makeMessage({
        type: r.type,
        to: r.to,
        from: r.from,
        term: r.term,
        logTerm: r.logTerm,
        index: r.index,
        commit: r.commit,
        reject: r.reject,
        rejectHint: r.rejectHint,
        context: r.context,
        entries,
        ...(r.type === 'MsgSnap' ? { snapshot: r.snapshot } : {}),
      });
    });

  it('decode(encode(m)) equals m for every valid message (property)', () => {
    const seed = propertySeed();
    console.log(`codec round-trip property seed=${seed}`);
    fc.assert(
      fc.property(messageArb, (m) => {
        expect(decodeFrame(encodeMessage(m, 'demo'), opts)).toEqual(m);
      }),
      { seed, numRuns: 500 },
    );
  });

  it('random garbage and mutated frames only ever throw ClusterError (property)', () => {
    const seed = propertySeed();
    console.log(`codec garbage property seed=${seed}`);
    const mutated = fc.tuple(messageArb, fc.nat(), fc.string({ maxLength: 5 })).map(([m, at, s]) => {
      const text = encodeMessage(m, 'demo');
      const i = at % text.length;
      return text.slice(0, i) + s + text.slice(i + 1);
    });
    const garbage = fc.oneof(fc.string({ maxLength: 300 }), fc.json(), mutated, fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)));
    fc.assert(
      fc.property(garbage, (data) => {
        try {
          decodeFrame(data, opts);
        } catch (err) {
          expect(err).toBeInstanceOf(ClusterError);
        }
      }),
      { seed, numRuns: 2000 },
    );
  });
});
