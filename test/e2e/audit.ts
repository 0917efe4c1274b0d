/** Reads the kube-apiserver audit log (JSON lines, level Metadata) the e2e control plane writes. */
import { existsSync, readFileSync } from 'node:fs';

export const AuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    userGroups: ["system:masters", "system:nodes"]
  - level: Metadata
`;

interface AuditEvent {
  stage: string;
  verb: string;
  userAgent?: string;
  user: { username: string };
  objectRef?: { resource?: string; subresource?: string };
}

/** "verb resource" → the User-Agents `username` sent them with. */
export function auditedUserAgents(file: string, username: string): Map<string, Set<string>> {
  const agents = new Map<string, Set<string>>();
  if (!existsSync(file)) return agents;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    const event = JSON.parse(line) as AuditEvent;
    if (event.user.username !== username || !event.objectRef?.resource) continue;
    const key = `${event.verb} ${event.objectRef.resource}${event.objectRef.subresource ? `/${event.objectRef.subresource}` : ''}`;
    const set = agents.get(key) ?? new Set<string>();
    set.add(event.userAgent ?? '(none)');
    agents.set(key, set);
  }
  return agents;
}

export interface AuditedWatch {
  pod: string;
  /** When the API server started answering it (the watch is live from then). */
  startedAt: number;
  /** The resourceVersion it resumed from; null for a watch after a fresh list. */
  resourceVersion: string | null;
}

/** The pod watches `username` (per bound pod) had answered after `since` (ms epoch). */
export function auditedWatches(file: string, username: string, since: number): AuditedWatch[] {
  if (!existsSync(file)) return [];
  const watches: AuditedWatch[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    const event = JSON.parse(line) as AuditEvent & { stageTimestamp: string; requestURI: string; responseStatus?: { code?: number }; user: { extra?: Record<string, string[]> } };
    if (event.user.username !== username || event.verb !== 'watch' || event.objectRef?.resource !== 'pods') continue;
    if (event.stage !== 'ResponseStarted' || event.responseStatus?.code !== 200) continue;
    const startedAt = Date.parse(event.stageTimestamp);
    if (startedAt < since) continue;
    const pod = event.user.extra?.['authentication.kubernetes.io/pod-name']?.[0] ?? '?';
    watches.push({ pod, startedAt, resourceVersion: new URL(event.requestURI, 'https://x').searchParams.get('resourceVersion') });
  }
  return watches;
}
