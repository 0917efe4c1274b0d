import type { Status } from '../raft/index.js';

/**
 * The leader's transfer target: the most up-to-date connected voter of the incoming
 * configuration (the one that stays when a joint configuration is left), ties broken by id,
 * skipping `exclude`.
 */
export function bestFollower(
  status: Status,
  self: string,
  connected: ReadonlySet<string>,
  exclude: ReadonlySet<string> = new Set(),
): string | undefined {
  let best: { id: string; match: number } | undefined;
  const voters = new Set(status.confState.voters);
  for (const id of Object.keys(status.progress).sort()) {
    const pr = status.progress[id]!;
    if (id === self || pr.isLearner || !voters.has(id) || !connected.has(id) || exclude.has(id)) continue;
    if (!best || pr.match > best.match) best = { id, match: pr.match };
  }
  return best?.id;
}
