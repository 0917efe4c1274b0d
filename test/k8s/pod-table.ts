/**
 * Pods in the server-side Table format `kubectl get` asks for: its columns,
 * and the object of each row as `includeObject` (None, Object, or Metadata by default) wants.
 */
import type { Pod } from './api-types.js';

function ageOf(timestamp: string, nowMs: number): string {
  const seconds = Math.max(0, Math.floor((nowMs - Date.parse(timestamp)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h`;
}

export function podTable(pods: Pod[], includeObject: string | undefined, resourceVersion: number): Record<string, unknown> {
  const now = Date.now();
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion: String(resourceVersion) },
    columnDefinitions: [
      { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: 0 },
      { name: 'Ready', type: 'string', format: '', description: 'The aggregate readiness state of this pod for accepting traffic.', priority: 0 },
      { name: 'Status', type: 'string', format: '', description: 'The aggregate status of the containers in this pod.', priority: 0 },
      { name: 'Restarts', type: 'string', format: '', description: 'The number of times the containers in this pod have been restarted.', priority: 0 },
      { name: 'Age', type: 'string', format: '', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.', priority: 0 },
      { name: 'IP', type: 'string', format: '', description: 'IP address allocated to the pod.', priority: 1 },
      { name: 'Node', type: 'string', format: '', description: 'Name of the Node this pod is scheduled on.', priority: 1 },
    ],
    rows: pods.map((pod) => {
      const statuses = pod.status.containerStatuses ?? [];
      const ready = statuses.filter((status) => status.ready).length;
      const restarts = statuses.reduce((sum, status) => sum + status.restartCount, 0);
      const state = pod.metadata.deletionTimestamp !== undefined ? 'Terminating' : pod.status.phase === 'Succeeded' ? 'Completed' : pod.status.phase === 'Failed' ? 'Error' : pod.status.phase;
      const cells = [pod.metadata.name, `${ready}/${pod.spec.containers.length}`, state, restarts, ageOf(pod.metadata.creationTimestamp, now), pod.status.podIP ?? '<none>', pod.spec.nodeName ?? '<none>'];
      const object =
        includeObject === 'None'
          ? undefined
          : includeObject === 'Object'
            ? pod
            : { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: pod.metadata };
      return object === undefined ? { cells } : { cells, object };
    }),
  };
}
