import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeMessage, type ConfState, type DurableState } from '../raft/index.js';
import { DEFAULT_MAX_FRAME_BYTES, MAX_CONF_CHANGES, PROTOCOL_VERSION, decodeFrame, encodeMessage } from './codec.js';
import { ClusterError } from './errors.js';
import { StateFile, STATE_FILE_NAME } from './state-file.js';

const opts = { clusterName: 'demo', maxFrameBytes: DEFAULT_MAX_FRAME_BYTES };
const joint: ConfState = { voters: ['b', 'c', 'd'], votersOutgoing: ['a', 'b', 'c'], learners: ['e'], learnersNext: [], autoLeave: true };

function decodeError(data: string): ClusterError {
  try {
    decodeFrame(data, opts);
  } catch (err) {
    if (err instanceof ClusterError) return err;
    throw err;
  }
  throw new Error('decode accepted a bad frame');
}

describe('codec: membership', () => {
  it('round-trips conf-change entries and a snapshot with its ConfState', () => {
    const app = makeMessage({
      type: 'MsgApp',
      to: 'b',
      from: 'a',
      term: 2,
      index: 1,
      logTerm: 1,
      entries: [
        { index: 2, term: 2 },
        { index: 3, term: 2, confChange: { transition: 'Auto', changes: [{ type: 'AddNode', nodeId: 'd' }, { type: 'RemoveNode', nodeId: 'a' }] } },
        { index: 4, term: 2, confChange: { transition: 'Auto', changes: [] } },
      ],
    });
    expect(decodeFrame(encodeMessage(app, 'demo'), opts)).toEqual(app);
    const snap = makeMessage({ type: 'MsgSnap', to: 'b', from: 'a', term: 2, snapshot: { index: 9, term: 2 }, confState: joint });
    expect(decodeFrame(encodeMessage(snap, 'demo'), opts)).toEqual(snap);
  });

  it('refuses malformed membership data, naming the field', () => {
    const app = (confChange: unknown): string =>
      JSON.stringify({ v: PROTOCOL_VERSION, cluster: 'demo', msg: { ...JSON.parse(encodeMessage(makeMessage({ type: 'MsgApp', to: 'b', from: 'a', term: 1 }), 'demo')).msg, entries: [{ index: 1, term: 1, confChange }] } });
    expect(decodeError(app({ transition: 'Sideways', changes: [] })).message).toMatch(/msg\.entries\[0\]\.confChange\.transition must be one of Auto/);
    expect(decodeError(app({ transition: 'Auto', changes: [{ type: 'AddNode', nodeId: '' }] })).message).toMatch(/changes\[0\]\.nodeId must be a member id/);
    expect(decodeError(app({ transition: 'Auto', changes: [{ type: 'Promote', nodeId: 'x' }] })).message).toMatch(/changes\[0\]\.type must be one of/);
    const many = Array.from({ length: MAX_CONF_CHANGES + 1 }, () => ({ type: 'AddNode', nodeId: 'x' }));
    expect(decodeError(app({ transition: 'Auto', changes: many })).message).toMatch(/at most 64 changes/);
    const snapFrame = (confState: unknown, type = 'MsgSnap'): string =>
      JSON.stringify({ v: PROTOCOL_VERSION, cluster: 'demo', msg: { ...JSON.parse(encodeMessage(makeMessage({ type: 'MsgSnap', to: 'b', from: 'a', term: 1, snapshot: { index: 1, term: 1 } }), 'demo')).msg, type, confState } });
    expect(decodeError(snapFrame({ ...joint, voters: ['b', 'b'] })).message).toMatch(/msg\.confState\.voters repeats a member id/);
    expect(decodeError(snapFrame({ ...joint, autoLeave: 'yes' })).message).toMatch(/msg\.confState\.autoLeave must be a boolean/);
    expect(decodeError(snapFrame(joint, 'MsgHeartbeat')).message).toMatch(/msg\.(snapshot|confState) is only allowed on MsgSnap/);
    for (const e of [decodeError(snapFrame({ ...joint, voters: 'b' }))]) expect(e.code).toBe('FRAME_MALFORMED');
  });
});

describe('state file: membership', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'state-file-membership-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const store = (): StateFile => new StateFile(path.join(dir, 'data'), pino({ level: 'silent' }), { memberId: 'a', group: 'raft-elector' });

  it('round-trips the ConfState and conf-change entries', () => {
    const state: DurableState = {
      hardState: { term: 3, vote: 'b', commit: 12 },
      snapshot: { index: 10, term: 2 },
      confState: joint,
      entries: [
        { index: 11, term: 3, confChange: { transition: 'Auto', changes: [] } },
        { index: 12, term: 3 },
      ],
    };
    store().save(state);
    expect(store().load()).toEqual(state);
  });

  it('reads a file written before membership changes (no confState) as before', () => {
    const state: DurableState = { hardState: { term: 3, vote: 'b', commit: 1 }, snapshot: { index: 0, term: 0 }, entries: [{ index: 1, term: 3 }] };
    store().save(state);
    const loaded = store().load();
    expect(loaded).toEqual(state);
    expect(loaded && 'confState' in loaded).toBe(false);
  });

  it('a damaged ConfState is STATE_FILE_CORRUPT naming the field', () => {
    const state: DurableState = { hardState: { term: 1, vote: '', commit: 0 }, snapshot: { index: 0, term: 0 }, confState: joint, entries: [] };
    store().save(state);
    const file = path.join(dir, 'data', STATE_FILE_NAME);
    // Slot 0 of the version-3 file, rewritten as a version-2 file (one document).
    const slot = JSON.parse(fs.readFileSync(file, 'utf8').split('\n')[0]!) as { identity: unknown; state: { confState: { learners: unknown } } };
    slot.state.confState.learners = [''];
    // Re-sealed as a version-2 file is (the checksum covers identity and state), so only the field is wrong.
    const sha256 = createHash('sha256').update(JSON.stringify({ identity: slot.identity, state: slot.state }), 'utf8').digest('hex');
    fs.writeFileSync(file, JSON.stringify({ format: 'raft-elector-state', version: 2, sha256, identity: slot.identity, state: slot.state }));
    let err: unknown;
    try {
      store().load();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ClusterError);
    expect((err as ClusterError).code).toBe('STATE_FILE_CORRUPT');
    expect((err as ClusterError).message).toMatch(/state\.confState\.learners\[0\] must be a member id/);
  });
});
