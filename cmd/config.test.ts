import { describe, expect, it } from 'vitest';
import { ConfigError, envName, helpText, optionSpecs, parseConfig } from './config.js';

const base = ['--id', 'a', '--peers', 'a=127.0.0.1:4041,b=127.0.0.1:4042,c=127.0.0.1:4043', '--insecure'];

function run(argv: string[], env: Record<string, string> = {}) {
  const parsed = parseConfig(argv, env);
  if (parsed.kind !== 'run') throw new Error(`expected a run config, got ${parsed.kind}`);
  return parsed.config;
}

describe('parseConfig', () => {
  it('fills the documented defaults', () => {
    const c = run(base);
    expect(c).toMatchObject({
      id: 'a',
      tickMs: 100,
      electionTicks: 10,
      heartbeatTicks: 1,
      listen: { host: '0.0.0.0', port: 4041 },
      http: { host: '0.0.0.0', port: 4040 },
      maxFrameBytes: 65536,
      clusterName: 'raft-elector',
      insecure: true,
    });
    expect(c.peers.map((p) => p.id)).toEqual(['a', 'b', 'c']);
  });

  it('reads RAFT_ELECTOR_* and lets flags win over them', () => {
    const c = run(base, { RAFT_ELECTOR_TICK_MS: '50', RAFT_ELECTOR_ELECTION_TICKS: '20' });
    expect(c.tickMs).toBe(50);
    expect(c.electionTicks).toBe(20);
    expect(run([...base, '--tick-ms', '70'], { RAFT_ELECTOR_TICK_MS: '50' }).tickMs).toBe(70);
    const fromEnv = parseConfig([], {
      RAFT_ELECTOR_ID: 'b',
      RAFT_ELECTOR_PEERS: 'a=h:1,b=h:2,c=h:3',
      RAFT_ELECTOR_INSECURE: 'true',
    });
    expect(fromEnv.kind === 'run' && fromEnv.config.id).toBe('b');
  });

  it('reads the API admission flags, loopback and the documented limits by default', () => {
    expect(run(base).api).toEqual({ localCidrs: ['127.0.0.0/8', '::1/128'], maxConnections: 512, idleConnectionTimeoutMs: 5000 });
    const c = run([...base, '--api-local-cidrs', '127.0.0.1/32, fd00::/8', '--api-max-connections', '2000'], {
      RAFT_ELECTOR_API_IDLE_CONNECTION_TIMEOUT_MS: '750',
    });
    expect(c.api).toEqual({ localCidrs: ['127.0.0.1/32', 'fd00::/8'], maxConnections: 2000, idleConnectionTimeoutMs: 750 });
  });

  it('accepts IPv6 peers in brackets', () => {
    const c = run(['--id', 'a', '--peers', 'a=[::1]:4041,b=[::1]:4042', '--insecure']);
    expect(c.peers[0]).toEqual({ id: 'a', host: '::1', port: 4041 });
  });

  it.each([
    [[], '--id is required'],
    [['--id', 'a', '--insecure'], '--peers is required'],
    [['--id', 'x', '--peers', 'a=h:1', '--insecure'], '--id x must be one of the voters'],
    [['--id', 'a', '--peers', 'a=h:1,a=h:2', '--insecure'], 'names a twice'],
    [['--id', 'a', '--peers', 'a=h', '--insecure'], 'must be host:port'],
    [['--id', 'a', '--peers', 'a=h:70000', '--insecure'], 'at most 65535'],
    [['--id', 'A', '--peers', 'A=h:1', '--insecure'], 'DNS-1123'],
    [[...base, '--tick-ms', '0'], '--tick-ms must be an integer from 1'],
    [[...base, '--tick-ms', '1.5'], '--tick-ms must be an integer'],
    [[...base, '--tick-ms', 'fast'], '--tick-ms must be an integer'],
    [[...base, '--heartbeat-ticks', '10'], '--heartbeat-ticks (10) must be less than --election-ticks (10)'],
    [[...base, '--max-clock-drift-ms', '900'], 'must exceed --max-clock-drift-ms'],
    [['--id', 'a', '--peers', 'a=h:1'], '--secret-file is required'],
    [[...base, '--secret-file', '/s'], '--insecure and --secret-file exclude each other'],
    [[...base, '--tls-cert', '/c'], '--tls-cert, --tls-key and --tls-ca go together'],
    [[...base, '--tls-cert', '/c', '--tls-key', '/k'], '--tls-cert, --tls-key and --tls-ca go together'],
    [[...base, '--log-level', 'loud'], '--log-level must be one of'],
    [[...base, '--bogus'], "Unknown option '--bogus'"],
    [[...base, '--api-local-cidrs', '10.0.0.0/33'], '--api-local-cidrs: "10.0.0.0/33" is not a CIDR (the prefix must be 0 to 32)'],
    [[...base, '--api-local-cidrs', 'localhost'], '--api-local-cidrs: "localhost" is not a CIDR'],
    [[...base, '--api-local-cidrs', ','], '--api-local-cidrs must list at least one CIDR'],
    [[...base, '--api-max-connections', '100'], '--api-max-connections must be an integer from 256'],
    [[...base, '--api-idle-connection-timeout-ms', '0'], '--api-idle-connection-timeout-ms must be an integer from 100'],
  ])('rejects %j with a message naming the problem', (argv, message) => {
    expect(() => parseConfig(argv, {})).toThrow(ConfigError);
    expect(() => parseConfig(argv, {})).toThrow(message);
  });

  it('rejects a non-boolean environment value for a switch', () => {
    expect(() => parseConfig(['--id', 'a', '--peers', 'a=h:1'], { RAFT_ELECTOR_INSECURE: 'maybe' })).toThrow(
      'RAFT_ELECTOR_INSECURE must be true or false',
    );
  });

  it('--help lists every flag with its environment variable', () => {
    const parsed = parseConfig(['--help'], {});
    expect(parsed.kind).toBe('help');
    const text = helpText();
    for (const name of Object.keys(optionSpecs)) {
      expect(text).toContain(`--${name}`);
      expect(text).toContain(envName(name));
    }
  });

  describe('in-cluster mode', () => {
    const uid = '3f2a1c5e-8b7d-4e6f-9a0b-1c2d3e4f5a6b';
    const env = { KUBERNETES_SERVICE_HOST: '10.0.0.1', POD_NAME: 'demo-1', POD_NAMESPACE: 'apps', POD_UID: uid };
    const args = ['--service', 'demo', '--pod-selector', 'app.kubernetes.io/instance=demo', '--insecure'];
    it('takes the id from POD_NAME@POD_UID and the namespace from POD_NAMESPACE', () => {
      const c = run(args, env);
      expect(c.id).toBe(`demo-1@${uid}`);
      expect(c.peers).toEqual([]);
      expect(c.kubernetes).toMatchObject({ podName: 'demo-1', podUid: uid, namespace: 'apps', service: 'demo', labelKey: 'raft-role', clusterDomain: 'cluster.local' });
    });
    it('defaults --max-voters to 5', () => {
      expect(run(args, env).kubernetes).toMatchObject({ maxVoters: 5, replicasIgnored: undefined });
      expect(run([...args, '--max-voters', '3'], env).kubernetes).toMatchObject({ maxVoters: 3 });
    });
    it('accepts --replicas from an old manifest and ignores it', () => {
      expect(run([...args, '--replicas', '3'], env).kubernetes).toMatchObject({ replicasIgnored: 3 });
    });
    it('is chosen by --kubernetes too', () => {
      const c = run(['--kubernetes', ...args], { POD_NAME: 'demo-0', POD_NAMESPACE: 'apps', POD_UID: uid });
      expect(c.kubernetes?.podName).toBe('demo-0');
    });
    it.each([
      [{ POD_NAME: '' }, args, 'needs POD_NAME'],
      [{ POD_UID: '' }, args, 'in-cluster mode needs POD_UID (set it from the downward API: metadata.uid)'],
      [{ POD_NAMESPACE: '' }, args, 'needs --namespace or POD_NAMESPACE'],
      [{}, [...args, '--replicas', '0'], '--replicas must be an integer from 1'],
      [{}, ['--pod-selector', 'a=b', '--insecure'], 'needs --service'],
      [{}, ['--service', 'demo', '--insecure'], 'needs --pod-selector'],
      [{}, [...args, '--peers', 'a=h:1'], '--peers and in-cluster mode exclude each other'],
      [{}, [...args, '--id', 'other'], 'differs from POD_NAME'],
      [{}, [...args, '--label-leader', 'follower'], 'must differ'],
      [{}, [...args, '--dns-server', 'nope'], '--dns-server must be host:port'],
      [{}, [...args, '--max-voters', '4'], '--max-voters 4 is even'],
      [{}, [...args, '--max-voters', '9'], '--max-voters must be an integer from 1'],
      [{ POD_UID: 'a b' }, args, 'POD_UID "a b" is not a pod UID'],
    ])('rejects %j %j', (envChange, argv, message) => {
      expect(() => parseConfig(argv, { ...env, ...envChange })).toThrow(message);
    });
  });
});
