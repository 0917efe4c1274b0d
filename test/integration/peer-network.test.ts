/**
 * The peer port against an on-path attacker, a second process with one member id,
 * and strangers holding every handshake slot: real processes, the built member.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { encodeMessage } from '../../cluster/codec.js';
import { makeMessage } from '../../raft/index.js';
import { ElectorBin, ProcessCluster, freePort, waitFor, type ProcessMember } from './harness.js';
import { connectAsPeer } from './peer-client.js';
import { assertSafe, sampleWhile } from './sampling.js';
import { TamperProxy, type TamperMode } from './tamper-proxy.js';

let cluster: ProcessCluster | undefined;
const extra: ChildProcess[] = [];
afterEach(async () => {
  for (const c of extra.splice(0)) c.kill('SIGKILL');
  await cluster?.stop();
  cluster = undefined;
});

async function metrics(c: ProcessCluster, id: string): Promise<string> {
  return (await fetch(`http://127.0.0.1:${c.member(id).httpPort}/metrics`)).text();
}

function counter(text: string, name: string, label: string): number {
  const m = new RegExp(`^${name}\\{${label}\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** A member's JSON log lines that contain `text`. */
function linesWith(lines: string[], text: string): Record<string, unknown>[] {
  return lines.filter((l) => l.includes(text)).flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

const timing = { tickMs: 100, electionTicks: 10, maxClockDriftMs: 100 };

describe('the peer network against hostile neighbours (real processes)', () => {
  it('an on-path relay without the secret injects, alters, replays, reorders, removes and truncates frames: none reaches raft, the group keeps its leader', async () => {
    const relays = new Map<string, TamperProxy>();
    cluster = await ProcessCluster.start({
      size: 3,
      proxied: true,
      relay: (from, to, port) => {
        const r = new TamperProxy(port);
        relays.set(`${from}->${to}`, r);
        return r;
      },
    });
    const leader = await cluster.agreedLeader(15_000);
    // Tamper with a stream into a follower, which would campaign at once on a MsgTimeoutNow.
    const [dialer, acceptor] = leader.self === 'm3' ? ['m1', 'm2'] : ['m1', 'm3'];
    const relay = relays.get(`${dialer}->${acceptor}`)!;
    relay.injectPayload = () =>
      encodeMessage(makeMessage({ type: 'MsgTimeoutNow', from: dialer, to: acceptor, term: leader.term }), 'raft-elector');
    const modes: TamperMode[] = ['inject', 'alter', 'replay', 'reorder', 'remove', 'truncate'];
    const { samples } = await sampleWhile(cluster, async () => {
      for (const [i, mode] of modes.entries()) {
        relay.arm(mode);
        await waitFor(`${mode} carried out`, 10_000, () => (relay.done.length === i + 1 ? true : undefined));
        const dropped = async (): Promise<true | undefined> =>
          counter(await metrics(cluster!, acceptor), 'raft_elector_messages_dropped_total', 'reason="frame_auth_failed"') >= i + 1 ? true : undefined;
        await waitFor(`${acceptor} refuses the ${mode} frame`, 10_000, dropped);
        // The dialer redials through the same relay: wait for the link before the next attack.
        await waitFor('link back', 10_000, async () => {
          const a = await cluster!.leader(acceptor);
          return a.members.find((m) => m.id === dialer)?.connected ? true : undefined;
        });
      }
    });
    expect(relay.done).toEqual(modes);
    const lines = linesWith(cluster.member(acceptor).lines, '"reason":"frame_auth_failed"');
    expect(lines.length).toBeGreaterThanOrEqual(1); // rate-limited: the first is logged, repeats are counted
    expect(lines[0]).toMatchObject({ level: 40, peer: dialer });
    expect(String(lines[0]!.remote)).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(String(lines[0]!.msg)).toMatch(/failed authentication/);
    // The forged MsgTimeoutNow never reached raft: no transfer election anywhere, same leader, same term.
    for (const m of cluster.members) {
      expect(counter(await metrics(cluster, m.id), 'raft_elector_elections_started_total', 'kind="transfer"'), m.id).toBe(0);
    }
    const after = await cluster.agreedLeader(5_000);
    expect([after.self, after.term]).toEqual([leader.self, leader.term]);
    assertSafe(samples);
  });

  it('a second live process with the same member id (another data dir) is refused with a warning on both sides, and never flaps in', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    const leader = await cluster.agreedLeader(15_000);
    // m1 dials both others; a second m1 with its own data dir and ports does the same.
    const m1 = cluster.member('m1');
    const twin: ProcessMember = { ...m1, peerPort: await freePort(), httpPort: await freePort(), dataDir: join(cluster.dir, 'm1-twin'), child: undefined, lines: [], exits: [] };
    const child = spawn(process.execPath, [ElectorBin, ...cluster.argsFor(twin)], { stdio: ['ignore', 'pipe', 'pipe'] });
    extra.push(child);
    const twinLines: string[] = [];
    child.stdout!.on('data', (d: Buffer) => twinLines.push(...d.toString().split('\n').filter(Boolean)));
    const connectedBefore = { m2: cluster.logs('m2', 'peer connected').length, m3: cluster.logs('m3', 'peer connected').length };
    const { samples } = await sampleWhile(cluster, async () => {
      for (const id of ['m2', 'm3']) {
        await waitFor(`${id} warns about two processes with id m1`, 15_000, () =>
          cluster!.member(id).lines.some((l) => l.includes('"reason":"duplicate_member"') && l.includes('two live processes claim member id m1')) ? true : undefined,
        );
      }
      await waitFor('the twin logs that another process holds its id', 15_000, () =>
        twinLines.some((l) => l.includes('refused_by_peer:duplicate_member') && l.includes('another live process holds member id m1')) ? true : undefined,
      );
      // Watch for a while: the twin keeps retrying, and must never be let in.
      await new Promise((r) => setTimeout(r, 5_000));
    });
    for (const id of ['m2', 'm3']) {
      const w = linesWith(cluster.member(id).lines, '"reason":"duplicate_member"')[0]!;
      expect(w).toMatchObject({ level: 40, peer: 'm1' });
      expect(w.instance).not.toBe(w.newcomerInstance);
      expect(String(w.newcomerRemote)).toMatch(/^127\.0\.0\.1:\d+$/);
      // No link replacements: m1's link was never handed to the twin and back.
      expect(cluster.logs(id, 'peer connected').length - connectedBefore[id as 'm2' | 'm3']).toBe(0);
      expect(counter(await metrics(cluster, id), 'raft_elector_messages_dropped_total', 'reason="duplicate_member"')).toBeGreaterThan(1);
    }
    const refusedLines = twinLines.filter((l) => l.includes('refused_by_peer:duplicate_member'));
    expect(refusedLines.length).toBeLessThanOrEqual(2); // one per peer per interval, however often it retries
    const after = await cluster.agreedLeader(5_000);
    expect([after.self, after.term]).toEqual([leader.self, leader.term]);
    assertSafe(samples);
  });

  it('strangers from several addresses holding every handshake slot do not keep a restarted member out', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    await cluster.agreedLeader(15_000);
    // m3 is dialed by m1 and m2. Strangers from five addresses keep 40 connections at its port, redialing
    // as soon as one closes: more than the 32 shared handshake slots, 8 per address.
    const victim = cluster.member('m3');
    let flooding = true;
    const squatters = new Set<WebSocket>();
    const squat = (host: string): void => {
      const ws = new WebSocket(`ws://127.0.0.1:${victim.peerPort}/raft`, { localAddress: host });
      ws.on('error', () => {});
      ws.on('close', () => {
        squatters.delete(ws);
        if (flooding) setTimeout(() => squat(host), 20);
      });
      squatters.add(ws);
    };
    try {
      await cluster.signal('m3', 'SIGKILL');
      const leader = await cluster.agreedLeader(15_000, ['m1', 'm2']);
      for (let h = 2; h <= 6; h++) for (let i = 0; i < 8; i++) squat(`127.0.0.${h}`);
      const restartedAt = Date.now();
      cluster.spawn(victim);
      await waitFor('the restarted member rejoins while strangers hold every shared slot', 10_000, async () => {
        const a = await cluster!.leader('m3');
        return a.leader === leader.self && a.members.every((m) => m.connected) ? true : undefined;
      });
      const rejoinMs = Date.now() - restartedAt;
      const open = [...squatters].filter((w) => w.readyState === WebSocket.OPEN).length;
      console.log(`restarted member rejoined ${rejoinMs} ms after its restart (process start included), ${open} stranger connections open`);
      // The strangers did hold every slot: later ones were refused, and counted.
      await waitFor('stranger refusals counted', 10_000, async () =>
        counter(await metrics(cluster!, 'm3'), 'raft_elector_messages_dropped_total', 'reason="admission_refused"') > 0 ? true : undefined,
      );
      expect(linesWith(victim.lines, 'too many unauthenticated connections').length).toBeGreaterThan(0);
    } finally {
      flooding = false;
      for (const w of squatters) w.terminate();
    }
    await cluster.agreedLeader(5_000);
  });

  it('a secret holder (the test peer client) reaches raft through the real framing: its heartbeat then MsgTimeoutNow start a transfer election', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    await cluster.agreedLeader(15_000);
    // m1 must not be running: a live m1 would hold the id (duplicate_member).
    await cluster.signal('m1', 'SIGKILL');
    const leader = await cluster.agreedLeader(15_000, ['m2', 'm3']);
    const target = leader.self === 'm2' ? 'm3' : 'm2';
    const secret = readFileSync(cluster.secretFile, 'utf8').trim();
    const peer = await connectAsPeer({ host: '127.0.0.1', port: cluster.member(target).peerPort, cluster: 'raft-elector', secret, from: 'm1', to: target, timing });
    // A MsgTimeoutNow counts only from the target's leader: the heartbeat makes m1 that (raft.go's
    // rule), and the target's own vote then marks the real leader's lease as skipped.
    peer.send(makeMessage({ type: 'MsgHeartbeat', from: 'm1', to: target, term: leader.term }));
    peer.send(makeMessage({ type: 'MsgTimeoutNow', from: 'm1', to: target, term: leader.term }));
    await waitFor(`${target} campaigns on the forged transfer`, 10_000, async () =>
      counter(await metrics(cluster!, target), 'raft_elector_elections_started_total', 'kind="transfer"') === 1 ? true : undefined,
    );
    await peer.close();
    await cluster.agreedLeader(10_000, ['m2', 'm3']);
  });
});
