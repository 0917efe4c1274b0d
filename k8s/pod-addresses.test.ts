import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ClusterError } from '../cluster/errors.js';
import { PodAddresses, podAddresses } from './pod-addresses.js';
import type { GroupPod } from './pod-watch.js';

const pod = (name: string, extra: Partial<GroupPod> = {}): GroupPod => ({
  name,
  uid: `${name}-u`,
  phase: 'Running',
  podIP: '10.0.0.9',
  createdAtMs: 0,
  exit: null,
  member: false,
  ...extra,
});

describe('podAddresses', () => {
  it('lists Running pods with an IP as <name>@<uid> at podIP:port; pending, IP-less and deleting pods are skipped', () => {
    const pods = [pod('b', { podIP: '10.0.0.2' }), pod('a', { podIP: 'fd00::1' }), pod('c', { phase: 'Pending' }), pod('d', { podIP: null }), pod('e', { exit: 'deleting' })];
    expect(podAddresses(pods, 4041)).toEqual([
      { id: 'a@a-u', host: 'fd00::1', port: 4041 },
      { id: 'b@b-u', host: '10.0.0.2', port: 4041 },
    ]);
  });
});

describe('PodAddresses', () => {
  it('pushes new and moved addresses once, skips itself, and logs a refused add without stopping', () => {
    let pods = [pod('self', { uid: 's' }), pod('a', { podIP: '10.0.0.1' })];
    let listener = (): void => {};
    const calls: string[] = [];
    const dropped: string[] = [];
    const lines: Record<string, unknown>[] = [];
    const transport = {
      setPeerAddress(id: string, host: string, port: number): void {
        if (id.startsWith('full')) throw new ClusterError('TOO_MANY_PEERS', 'full');
        calls.push(`${id}=${host}:${port}`);
      },
      dropJoiner: (id: string) => dropped.push(id),
    };
    const p = new PodAddresses({
      selfId: 'self@s',
      peerPort: 4041,
      transport,
      pods: { snapshot: () => pods, onPodsChange: (l) => ((listener = l), () => {}) },
      logger: pino({}, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) }),
    });
    p.start();
    listener();
    expect(calls).toEqual(['a@a-u=10.0.0.1:4041']);
    pods = [...pods.slice(0, 1), pod('a', { podIP: '10.0.0.7' }), pod('full')];
    listener();
    listener();
    expect(calls).toEqual(['a@a-u=10.0.0.1:4041', 'a@a-u=10.0.0.7:4041']);
    expect(lines.filter((l) => l.code === 'TOO_MANY_PEERS' && l.peer === 'full@full-u')).toHaveLength(1);
    // A pod that left the list is dropped from the transport unless it is in the configuration (the transport decides).
    pods = pods.slice(0, 1);
    listener();
    expect(dropped).toEqual(['a@a-u']);
  });

  it('dials the seed (the bootstrap decision\'s list) before the watch\'s first list, which then takes over', () => {
    let pods: GroupPod[] = [];
    let synced = false;
    let listener = (): void => {};
    const calls: string[] = [];
    const dropped: string[] = [];
    const p = new PodAddresses({
      selfId: 'self@s',
      peerPort: 4041,
      transport: { setPeerAddress: (id, host, port) => calls.push(`${id}=${host}:${port}`), dropJoiner: (id) => dropped.push(id) },
      pods: { snapshot: () => pods, onPodsChange: (l) => ((listener = l), () => {}), get synced() { return synced; } },
      seed: [pod('self', { uid: 's' }), pod('leader', { podIP: '10.0.0.1' }), pod('gone', { podIP: '10.0.0.3' })],
      logger: pino({ level: 'silent' }),
    });
    p.start();
    expect(calls).toEqual(['gone@gone-u=10.0.0.3:4041', 'leader@leader-u=10.0.0.1:4041']);
    // An empty snapshot before the first list is no news: nothing is dropped.
    listener();
    expect(dropped).toEqual([]);
    pods = [pod('self', { uid: 's' }), pod('leader', { podIP: '10.0.0.1' })];
    synced = true;
    listener();
    expect(calls).toHaveLength(2);
    expect(dropped).toEqual(['gone@gone-u']);
  });
});
