import { parseArgs } from 'node:util';
import { CidrError, DEFAULT_LOCAL_CIDRS, parseCidr } from '../api/local-networks.js';
import { DEFAULT_API_OPTIONS } from '../api/options.js';

/** A bad flag, environment variable or combination; the message names it. */
export class ConfigError extends Error {
  readonly code = 'INVALID_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Kind = 'string' | 'boolean' | 'integer';

interface OptionSpec {
  kind: Kind;
  help: string;
  default?: string | boolean | number;
  /** Shown in --help instead of the default. */
  placeholder?: string;
}

/** Every flag; each also reads RAFT_ELECTOR_<NAME> (upper snake case). Flags win over the environment. */
export const optionSpecs = {
  id: { kind: 'string', help: 'this member id (in Kubernetes: the pod name, from POD_NAME)', placeholder: 'ID' },
  peers: {
    kind: 'string',
    help: 'every voter as id=host:port, comma separated, this member included',
    placeholder: 'a=h:p,b=h:p',
  },
  listen: { kind: 'string', default: '0.0.0.0:4041', help: 'peer (raft) listen address host:port' },
  http: { kind: 'string', default: '0.0.0.0:4040', help: 'HTTP API listen address host:port (admin routes answer loopback only)' },
  'api-local-cidrs': {
    kind: 'string',
    default: DEFAULT_LOCAL_CIDRS.join(','),
    help: 'HTTP API clients from these CIDRs are local (the app in the pod) and have watch, long-poll and connection slots strangers cannot take; admin routes stay loopback-only',
    placeholder: 'CIDR,...',
  },
  'api-max-connections': {
    kind: 'integer',
    default: DEFAULT_API_OPTIONS.maxConnections,
    help: `HTTP API open connections at most (each is a file descriptor); ${DEFAULT_API_OPTIONS.localReservedConnections} of them are kept for local clients`,
  },
  'api-idle-connection-timeout-ms': {
    kind: 'integer',
    default: DEFAULT_API_OPTIONS.idleConnectionTimeoutMs,
    help: 'an HTTP API connection that sends no request within this is closed',
  },
  'data-dir': { kind: 'string', default: '/var/lib/raft-elector', help: 'directory of the durable state file (term, vote, log)' },
  'cluster-name': { kind: 'string', default: 'raft-elector', help: 'name of the group; peers of another group are refused' },
  'tick-ms': { kind: 'integer', default: 100, help: 'logical clock tick in milliseconds' },
  'election-ticks': { kind: 'integer', default: 10, help: 'election timeout in ticks (randomized in [n, 2n))' },
  'heartbeat-ticks': { kind: 'integer', default: 1, help: 'leader heartbeat interval in ticks' },
  'max-clock-drift-ms': {
    kind: 'integer',
    default: 100,
    help: 'clock drift tolerated over one lease window; the lease is (election-ticks - 1) * tick-ms minus this',
  },
  'secret-file': { kind: 'string', help: 'file holding the shared peer secret (HMAC handshake)', placeholder: 'PATH' },
  insecure: { kind: 'boolean', default: false, help: 'run without peer authentication (local experiments only)' },
  'tls-cert': { kind: 'string', help: 'PEM certificate for wss between peers', placeholder: 'PATH' },
  'tls-key': { kind: 'string', help: 'PEM private key for --tls-cert', placeholder: 'PATH' },
  'tls-ca': { kind: 'string', help: 'PEM CA bundle that signs peer certificates (all three TLS flags go together)', placeholder: 'PATH' },
  'max-frame-bytes': { kind: 'integer', default: 65536, help: 'largest peer frame accepted; larger ones close the link' },
  'log-level': { kind: 'string', default: 'info', help: 'trace, debug, info, warn, error or fatal' },
  'no-forget-on-disconnect': {
    kind: 'boolean',
    default: false,
    help: 'wait an election timeout when the link to the leader closes, instead of electing a successor at once',
  },
  kubernetes: {
    kind: 'boolean',
    default: false,
    help: 'in-cluster mode (also on when KUBERNETES_SERVICE_HOST is set): id POD_NAME@POD_UID, membership follows the pods of --pod-selector',
  },
  replicas: { kind: 'integer', help: 'ignored (accepted for old manifests): the voters now follow the pods, up to --max-voters', placeholder: 'N' },
  'max-voters': {
    kind: 'integer',
    default: 5,
    help: 'in-cluster: at most this many members vote (odd, 1..7); further pods follow as learners',
    placeholder: 'N',
  },
  'leave-wait-ms': {
    kind: 'integer',
    default: 5000,
    help: 'in-cluster: on SIGTERM of a voter whose pod is deleting, keep running until the leader has removed it from the configuration, at most this long (0: exit at once); keep it below terminationGracePeriodSeconds',
    placeholder: 'MS',
  },
  service: { kind: 'string', help: 'in-cluster: the headless Service whose DNS lists the peers', placeholder: 'NAME' },
  namespace: { kind: 'string', help: 'in-cluster: the namespace (default: POD_NAMESPACE from the downward API)', placeholder: 'NS' },
  'cluster-domain': { kind: 'string', default: 'cluster.local', help: 'in-cluster: the cluster DNS domain' },
  'dns-server': { kind: 'string', help: 'in-cluster: resolve peers through this DNS server host:port instead of the system resolver', placeholder: 'HOST:PORT' },
  'pod-selector': {
    kind: 'string',
    help: 'in-cluster: label selector of the group\'s pods, for the pod watch and label cleanup (e.g. app.kubernetes.io/instance=demo)',
    placeholder: 'SELECTOR',
  },
  'label-key': { kind: 'string', default: 'raft-role', help: 'in-cluster: pod label that names the role' },
  'label-leader': { kind: 'string', default: 'leader', help: 'in-cluster: label value on the leader pod' },
  'label-follower': { kind: 'string', default: 'follower', help: 'in-cluster: label value on the other pods' },
  'container-name': { kind: 'string', default: 'raft-elector', help: 'in-cluster: name of this sidecar container (its termination means the member is gone)' },
  'lease-name': {
    kind: 'string',
    help: 'in-cluster: the coordination.k8s.io Lease that mirrors the leader for Lease readers (default: --cluster-name)',
    placeholder: 'NAME',
  },
  'no-lease-mirror': { kind: 'boolean', default: false, help: 'in-cluster: do not mirror the leader into a Lease' },
  'kube-token-file': {
    kind: 'string',
    default: '/var/run/secrets/kubernetes.io/serviceaccount/token',
    help: 'in-cluster: ServiceAccount token file',
  },
  'kube-ca-file': {
    kind: 'string',
    default: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
    help: 'in-cluster: CA bundle of the API server',
  },
  'check-config': { kind: 'boolean', default: false, help: 'validate the configuration, print it as JSON and exit' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
  version: { kind: 'boolean', default: false, help: 'print the version' },
} satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof optionSpecs;

export interface HostPort {
  host: string;
  port: number;
}

export interface PeerSpec extends HostPort {
  id: string;
}

export interface ElectorConfig {
  id: string;
  peers: PeerSpec[];
  listen: HostPort;
  http: HostPort;
  /** HTTP API admission (api/options.ts has the rest of the limits). */
  api: { localCidrs: string[]; maxConnections: number; idleConnectionTimeoutMs: number };
  dataDir: string;
  clusterName: string;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  maxClockDriftMs: number;
  secretFile: string | undefined;
  insecure: boolean;
  tls: { cert: string; key: string; ca: string } | undefined;
  maxFrameBytes: number;
  logLevel: string;
  checkConfig: boolean;
  forgetLeaderOnDisconnect: boolean;
  /** Present in in-cluster mode. */
  kubernetes: KubernetesConfig | undefined;
}

export interface KubernetesConfig {
  podName: string;
  namespace: string;
  /** --replicas as given: ignored since membership follows the pods (cmd warns once). */
  replicasIgnored: number | undefined;
  /** Voter cap of the reconciler (issue 11): odd, 1..7. */
  maxVoters: number;
  /** SIGTERM of a deleting voter: how long it may wait to be removed before it exits. */
  leaveWaitMs: number;
  /** POD_UID (downward API metadata.uid): the member id is `<podName>@<podUid>`. */
  podUid: string;
  service: string;
  clusterDomain: string;
  dnsServer: HostPort | undefined;
  podSelector: string;
  labelKey: string;
  labelLeader: string;
  labelFollower: string;
  containerName: string;
  /** The Lease that mirrors the leader, or undefined with --no-lease-mirror. */
  leaseName: string | undefined;
  tokenFile: string;
  caFile: string;
}

export type ParseResult = { kind: 'help'; text: string } | { kind: 'version' } | { kind: 'run'; config: ElectorConfig };

export function envName(option: string): string {
  return `RAFT_ELECTOR_${option.toUpperCase().replace(/-/g, '_')}`;
}

export function helpText(): string {
  const lines = ['Usage: raft-elector [options]', '', 'Options (each also read from the environment variable shown):'];
  for (const [name, spec] of Object.entries(optionSpecs) as [string, OptionSpec][]) {
    const value = spec.kind === 'boolean' ? '' : ` <${spec.placeholder ?? (spec.kind === 'integer' ? 'N' : 'VALUE')}>`;
    const def = spec.default !== undefined && spec.kind !== 'boolean' ? ` (default ${String(spec.default)})` : '';
    lines.push(`  --${name}${value}`, `      ${spec.help}${def}. Env: ${envName(name)}`);
  }
  return lines.join('\n');
}

const LogLevels = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);
const IdPattern = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export function parseHostPort(value: string, what: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(value.trim());
  if (!m) throw new ConfigError(`${what} must be host:port (IPv6 as [addr]:port), got "${value}"`);
  const host = (m[1] ?? m[2])!;
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(`${what} port must be at most 65535, got ${port}`);
  return { host, port };
}

export function parsePeers(value: string): PeerSpec[] {
  const peers: PeerSpec[] = [];
  for (const part of value.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--peers entry "${part}" must be id=host:port`);
    const id = part.slice(0, eq);
    if (!IdPattern.test(id)) throw new ConfigError(`--peers id "${id}" must be a DNS-1123 name (lowercase letters, digits, -, .)`);
    if (peers.some((p) => p.id === id)) throw new ConfigError(`--peers names ${id} twice`);
    peers.push({ id, ...parseHostPort(part.slice(eq + 1), `--peers address of ${id}`) });
  }
  return peers.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

const SelectorPattern = /^[A-Za-z0-9./_-]+(!?=[A-Za-z0-9._-]*)?(,[A-Za-z0-9./_-]+(!?=[A-Za-z0-9._-]*)?)*$/;
const LabelValuePattern = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const LeaseNamePattern = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function parseKubernetes(
  str: (name: OptionName) => string | undefined,
  int: (name: OptionName, min: number, max: number) => number,
  env: NodeJS.ProcessEnv,
): KubernetesConfig {
  const podName = env.POD_NAME ?? '';
  if (podName === '') throw new ConfigError('in-cluster mode needs POD_NAME (set it from the downward API: metadata.name)');
  const namespace = str('namespace') ?? env.POD_NAMESPACE ?? '';
  if (namespace === '') {
    throw new ConfigError('in-cluster mode needs --namespace or POD_NAMESPACE (downward API: metadata.namespace)');
  }
  const replicasIgnored = str('replicas') === undefined ? undefined : int('replicas', 1, 99);
  const maxVoters = int('max-voters', 1, 7);
  const leaveWaitMs = int('leave-wait-ms', 0, 600_000);
  if (maxVoters % 2 === 0) {
    throw new ConfigError(`--max-voters ${maxVoters} is even: a group of ${maxVoters} voters tolerates no more failures than ${maxVoters - 1}; use an odd number from 1 to 7`);
  }
  const podUid = env.POD_UID ?? '';
  if (podUid === '') throw new ConfigError('in-cluster mode needs POD_UID (set it from the downward API: metadata.uid): a member is one pod incarnation');
  if (podUid.length > 64 || !/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(podUid)) {
    throw new ConfigError(`POD_UID ${JSON.stringify(podUid)} is not a pod UID (set it from the downward API: metadata.uid)`);
  }
  const service = str('service');
  if (!service) throw new ConfigError('in-cluster mode needs --service: the headless Service that lists the peers');
  const dnsServer = str('dns-server');
  const podSelector = str('pod-selector');
  if (!podSelector) throw new ConfigError('in-cluster mode needs --pod-selector: the label selector of this group\'s pods');
  if (!SelectorPattern.test(podSelector)) {
    throw new ConfigError(`--pod-selector "${podSelector}" must be key=value pairs separated by commas`);
  }
  const labelKey = str('label-key')!;
  const labelLeader = str('label-leader')!;
  const labelFollower = str('label-follower')!;
  for (const [flag, value] of [['--label-leader', labelLeader], ['--label-follower', labelFollower]] as const) {
    if (!LabelValuePattern.test(value)) throw new ConfigError(`${flag} "${value}" is not a valid label value`);
  }
  if (labelLeader === labelFollower) throw new ConfigError('--label-leader and --label-follower must differ');
  const leaseName = str('no-lease-mirror') === 'true' ? undefined : (str('lease-name') ?? str('cluster-name')!);
  if (leaseName !== undefined && !LeaseNamePattern.test(leaseName)) {
    throw new ConfigError(`--lease-name "${leaseName}" is not a valid object name (lowercase letters, digits, '-' and '.', at most 253)`);
  }
  return {
    podName,
    namespace,
    replicasIgnored,
    maxVoters,
    leaveWaitMs,
    podUid,
    service,
    clusterDomain: str('cluster-domain')!,
    dnsServer: dnsServer ? parseHostPort(dnsServer, '--dns-server') : undefined,
    podSelector,
    labelKey,
    labelLeader,
    labelFollower,
    containerName: str('container-name')!,
    leaseName,
    tokenFile: str('kube-token-file')!,
    caFile: str('kube-ca-file')!,
  };
}

/** Parses flags and environment once, up front; every error names the flag or the broken relation. */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ParseResult {
  const parseOptions: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const [name, spec] of Object.entries(optionSpecs) as [string, OptionSpec][]) {
    parseOptions[name] = { type: spec.kind === 'boolean' ? 'boolean' : 'string' };
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options: parseOptions, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}; see --help`);
  }
  const raw = (name: OptionName): string | boolean | undefined => {
    if (values[name] !== undefined) return values[name];
    const fromEnv = env[envName(name)];
    if (fromEnv !== undefined && fromEnv !== '') {
      if (optionSpecs[name].kind !== 'boolean') return fromEnv;
      if (/^(1|true|yes)$/i.test(fromEnv)) return true;
      if (/^(0|false|no)$/i.test(fromEnv)) return false;
      throw new ConfigError(`${envName(name)} must be true or false, got "${fromEnv}"`);
    }
    return (optionSpecs[name] as OptionSpec).default as string | boolean | undefined;
  };
  const str = (name: OptionName): string | undefined => {
    const v = raw(name);
    return v === undefined ? undefined : String(v);
  };
  const bool = (name: OptionName): boolean => raw(name) === true;
  const int = (name: OptionName, min: number, max: number): number => {
    const v = raw(name);
    const n = typeof v === 'number' ? v : Number(v);
    if (!Number.isInteger(n) || n < min || n > max || (typeof v === 'string' && !/^\d+$/.test(v.trim()))) {
      throw new ConfigError(`--${name} must be an integer from ${min} to ${max}, got "${String(v)}"`);
    }
    return n;
  };

  if (bool('help')) return { kind: 'help', text: helpText() };
  if (bool('version')) return { kind: 'version' };

  const inCluster = bool('kubernetes') || (env.KUBERNETES_SERVICE_HOST ?? '') !== '';
  const kubernetes = inCluster ? parseKubernetes(str, int, env) : undefined;
  const name = kubernetes ? kubernetes.podName : str('id');
  if (!name) throw new ConfigError(`--id is required (or ${envName('id')})`);
  if (!IdPattern.test(name)) throw new ConfigError(`${kubernetes ? 'POD_NAME' : '--id'} "${name}" must be a DNS-1123 name (lowercase letters, digits, -, .)`);
  // In-cluster a member is one pod incarnation (cluster/member-id.ts).
  const id = kubernetes ? `${name}@${kubernetes.podUid}` : name;
  if (kubernetes && str('id') !== undefined && str('id') !== kubernetes.podName) {
    throw new ConfigError(`--id ${str('id')} differs from POD_NAME ${kubernetes.podName}: in-cluster, the id is POD_NAME@POD_UID`);
  }
  const peersValue = str('peers');
  if (kubernetes && peersValue) {
    throw new ConfigError('--peers and in-cluster mode exclude each other: voters follow the pods, addresses come from the pod watch');
  }
  if (!kubernetes && !peersValue) {
    throw new ConfigError(`--peers is required (or ${envName('peers')}): every voter as id=host:port`);
  }
  const peers = peersValue ? parsePeers(peersValue) : [];
  if (!kubernetes && !peers.some((p) => p.id === id)) {
    throw new ConfigError(`--id ${id} must be one of the voters in --peers (${peers.map((p) => p.id).join(', ')})`);
  }

  const tickMs = int('tick-ms', 1, 60_000);
  const electionTicks = int('election-ticks', 2, 10_000);
  const heartbeatTicks = int('heartbeat-ticks', 1, 10_000);
  if (heartbeatTicks >= electionTicks) {
    throw new ConfigError(`--heartbeat-ticks (${heartbeatTicks}) must be less than --election-ticks (${electionTicks})`);
  }
  const maxClockDriftMs = int('max-clock-drift-ms', 0, 3_600_000);
  const leaseWindowMs = (electionTicks - 1) * tickMs - maxClockDriftMs;
  if (leaseWindowMs <= 0) {
    throw new ConfigError(
      `(--election-ticks - 1) * --tick-ms must exceed --max-clock-drift-ms: (${electionTicks} - 1) * ${tickMs} <= ${maxClockDriftMs}`,
    );
  }

  const secretFile = str('secret-file');
  const insecure = bool('insecure');
  if (insecure && secretFile) throw new ConfigError('--insecure and --secret-file exclude each other');
  if (!insecure && !secretFile) {
    throw new ConfigError('--secret-file is required to authenticate peers; pass --insecure to run without (local experiments only)');
  }

  const cert = str('tls-cert');
  const key = str('tls-key');
  const ca = str('tls-ca');
  // Peers verify each other against the CA, so TLS needs all three files.
  const tlsSet = [cert, key, ca].filter((v) => v !== undefined).length;
  if (tlsSet !== 0 && tlsSet !== 3) throw new ConfigError('--tls-cert, --tls-key and --tls-ca go together');

  const localCidrs = str('api-local-cidrs')!.split(',').map((c) => c.trim()).filter((c) => c !== '');
  if (localCidrs.length === 0) throw new ConfigError('--api-local-cidrs must list at least one CIDR (default: loopback)');
  for (const cidr of localCidrs) {
    try {
      parseCidr(cidr);
    } catch (err) {
      if (err instanceof CidrError) throw new ConfigError(`--api-local-cidrs: ${err.message}`);
      throw err;
    }
  }
  const api = {
    localCidrs,
    // Room for the local reserve and as much again for strangers.
    maxConnections: int('api-max-connections', 2 * DEFAULT_API_OPTIONS.localReservedConnections, 1_000_000),
    idleConnectionTimeoutMs: int('api-idle-connection-timeout-ms', 100, 3_600_000),
  };

  const logLevel = str('log-level')!;
  if (!LogLevels.has(logLevel)) throw new ConfigError(`--log-level must be one of ${[...LogLevels].join(', ')}, got "${logLevel}"`);

  return {
    kind: 'run',
    config: {
      id,
      peers,
      listen: parseHostPort(str('listen')!, '--listen'),
      http: parseHostPort(str('http')!, '--http'),
      api,
      dataDir: str('data-dir')!,
      clusterName: str('cluster-name')!,
      tickMs,
      electionTicks,
      heartbeatTicks,
      maxClockDriftMs,
      secretFile,
      insecure,
      tls: cert !== undefined && key !== undefined && ca !== undefined ? { cert, key, ca } : undefined,
      maxFrameBytes: int('max-frame-bytes', 1024, 16 * 1024 * 1024),
      logLevel,
      checkConfig: bool('check-config'),
      forgetLeaderOnDisconnect: !bool('no-forget-on-disconnect'),
      kubernetes,
    },
  };
}
