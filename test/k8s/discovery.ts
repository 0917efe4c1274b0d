/** The discovery documents (/api, /apis, /version...) of the test API server: pods and events only. */

const AllVerbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function namespacedResource(kind: string, name: string, shortName: string, storageVersionHash: string, extra: Record<string, unknown> = {}) {
  return { name, singularName: kind.toLowerCase(), namespaced: true, kind, verbs: AllVerbs, shortNames: [shortName], ...extra, storageVersionHash };
}

const podResource = namespacedResource('Pod', 'pods', 'po', 'xPOwRZ+Yhw8=', { categories: ['all'] });
const eventResource = namespacedResource('Event', 'events', 'ev', 'r2yiGXH7wu8=');
const eventsV1 = { groupVersion: 'events.k8s.io/v1', version: 'v1' };
const eventsGroup = { name: 'events.k8s.io', versions: [eventsV1], preferredVersion: eventsV1 };

/** The discovery document served at `path`, or undefined when the path is not a discovery path. */
export function discoveryDocument(path: string, port: number): Record<string, unknown> | undefined {
  switch (path) {
    case '/api':
      return {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${port}` }],
      };
    case '/apis':
      return {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [eventsGroup],
      };
    case '/api/v1':
      return {
        kind: 'APIResourceList',
        groupVersion: 'v1',
        resources: [
          eventResource,
          podResource,
          { name: 'pods/status', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get', 'patch', 'update'] },
        ],
      };
    case '/apis/events.k8s.io':
      return { kind: 'APIGroup', apiVersion: 'v1', ...eventsGroup };
    case '/apis/events.k8s.io/v1':
      return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: 'events.k8s.io/v1', resources: [eventResource] };
  }
  return undefined;
}

export function versionDocument(gitVersion: string): Record<string, string> {
  const [, major = '1', minor = '32'] = /^v(\d+)\.(\d+)/.exec(gitVersion) ?? [];
  return {
    major,
    minor,
    gitVersion,
    gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean',
    buildDate: '2025-01-01T00:00:00Z',
    goVersion: 'go1.23.6',
    compiler: 'gc',
    platform: 'linux/amd64',
  };
}
