/** The objects and request descriptions the test API server stores, answers and logs. */
export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

export interface ContainerState {
  running?: { startedAt: string };
  terminated?: { exitCode: number; reason?: string; startedAt?: string; finishedAt: string };
  waiting?: { reason: string; message?: string };
}

export interface ContainerStatus {
  name: string;
  ready: boolean;
  restartCount: number;
  started?: boolean;
  image: string;
  imageID: string;
  containerID?: string;
  state: ContainerState;
}

export interface Pod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    creationTimestamp: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
    deletionGracePeriodSeconds?: number;
    [key: string]: unknown;
  };
  spec: {
    containers: Array<{ name: string; image: string }>;
    terminationGracePeriodSeconds: number;
    nodeName?: string;
    [key: string]: unknown;
  };
  status: {
    phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
    podIP?: string;
    conditions?: Array<{ type: string; status: string }>;
    containerStatuses?: ContainerStatus[];
    [key: string]: unknown;
  };
}

export interface StoredEventObject {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; creationTimestamp: string; [key: string]: unknown };
  [key: string]: unknown;
}

export interface CreatePodInput {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  phase?: Pod['status']['phase'];
  containers?: string[];
  terminationGracePeriodSeconds?: number;
  podIP?: string;
}

export interface RequestLogEntry {
  method: string;
  path: string;
  query: Record<string, string>;
  verb: Verb | null;
  group: string;
  resource: string | null;
  namespace: string | null;
  name: string | null;
  contentType: string | null;
  accept: string | null;
  userAgent: string | null;
  body: string | null;
  /** The HTTP status sent; null while the request is open (a watch) or when it hung / was dropped. */
  status: number | null;
}

export interface RuleMatch {
  verb?: Verb;
  resource?: string;
  group?: string;
  namespace?: string;
  name?: string;
}

/** What a request asks for, parsed from its method, path and query. */
export interface RequestInfo {
  verb: Verb | null;
  group: string;
  version: string;
  resource: string | null;
  subresource: string | null;
  namespace: string | null;
  name: string | null;
}
