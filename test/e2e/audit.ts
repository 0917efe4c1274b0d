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
