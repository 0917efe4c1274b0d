/**
 * Starts test/faults/sampler.ts in the hub namespace of a FaultNet and hands every JSON line
 * it prints to the caller, whole lines only. Shared by the fault harness (raft-elector's
 * GET /leader) and the partition bench (etcd's status too).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { ElectorBin } from '../integration/harness.js';
import type { FaultNet } from './netns.js';

export interface SamplerTarget {
  id: string;
  url: string;
}

/** What sampler.ts takes as its one argument (JSON); `probe` names what it asks each member. */
export interface SamplerConfig {
  probe?: 'leader' | 'etcd-status';
  everyMs: number;
  timeoutMs: number;
  members: SamplerTarget[];
}

/** The sampler runs from the source tree (node strips its types), also when the caller runs from dist/. */
const SamplerScript = join(dirname(dirname(dirname(ElectorBin))), 'test/faults/sampler.ts');

/** `label` prefixes what the sampler writes to stderr. */
export function startHubSampler<Line>(net: FaultNet, config: SamplerConfig, label: string, onLine: (line: Line) => void): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', net.hub, process.execPath, SamplerScript, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString('utf8');
    const cut = text.lastIndexOf('\n');
    partial = text.slice(cut + 1);
    for (const line of text.slice(0, cut + 1).split('\n')) {
      if (line) onLine(JSON.parse(line) as Line);
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(`${label}: ${chunk.toString('utf8')}`));
  return child;
}
