#!/usr/bin/env -S node --max-semi-space-size=1
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import { createApiServer, ElectorMetrics } from '../api/index.js';
import { isClusterError } from '../cluster/errors.js';
import { RaftMember } from '../cluster/member.js';
import { StateFile } from '../cluster/state-file.js';
import { WsTransport } from '../cluster/transport.js';
import { ConfigError, parseConfig, type ElectorConfig } from './config.js';
import { parseClockRate, parseUnsafe, skewedClock, withLeaseOverrun, type UnsafeMode } from './test-switches.js';

const ExitConfig = 2;
const ExitFailure = 1;

function version(): string {
  const require = createRequire(import.meta.url);
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      return (require(candidate) as { version: string }).version;
    } catch {
      // dist/cmd and cmd sit at different depths.
    }
  }
  return 'unknown';
}

function readFileOrExit(path: string, what: string, log: Logger): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    log.fatal({ file: path, err: (err as Error).message }, `cannot read the ${what}`);
    process.exit(ExitConfig);
  }
}

function readSecret(config: ElectorConfig, log: Logger): Buffer | undefined {
  if (config.insecure || !config.secretFile) {
    log.warn('peer authentication is OFF (--insecure): any process that reaches the peer port can join this group');
    return undefined;
  }
  const secret = Buffer.from(readFileOrExit(config.secretFile, 'shared secret file', log).toString('utf8').trim(), 'utf8');
  if (secret.length < 16) {
    log.fatal({ file: config.secretFile }, 'the shared secret must be at least 16 bytes');
    process.exit(ExitConfig);
  }
  return secret;
}

function selfAddress(config: ElectorConfig): string {
  const self = config.peers.find((p) => p.id === config.id)!;
  return self.host.includes(':') ? `[${self.host}]:${self.port}` : `${self.host}:${self.port}`;
}

async function run(config: ElectorConfig, unsafe?: UnsafeMode, clockRate?: number): Promise<void> {
  // Synchronous writes: a line logged before a crash (a granted vote, a role change) is never lost.
  const log = pino(
    {
      level: config.logLevel,
      base: { member: config.id },
      redact: { paths: ['secret', '*.secret', 'headers.authorization'], censor: '[redacted]' },
    },
    pino.destination({ dest: 1, sync: true }),
  );
  const k = config.kubernetes;
  const inCluster = k ? await import('./in-cluster.js') : undefined;
  let voters = config.peers.map((p) => p.id);
  let transportPeers: { id: string; host?: string; port?: number }[] = config.peers.filter((p) => p.id !== config.id);
  let selfAddr = k ? '' : selfAddress(config);
  let identity: import('../k8s/voters.js').InClusterIdentity | undefined;
  if (k && inCluster) {
    try {
      identity = inCluster.inClusterIdentity(k);
      for (const warning of identity.warnings) log.warn({ replicas: identity.replicas }, warning);
      voters = identity.voters;
      transportPeers = voters.filter((id) => id !== config.id).map((id) => ({ id }));
      selfAddr = `${config.id}.${k.service}.${k.namespace}.svc.${k.clusterDomain}:${config.listen.port}`;
      inCluster.validateDiscovery(config, k, identity, log);
    } catch (err) {
      process.stderr.write(`raft-elector: ${(err as Error).message}\n`);
      process.exit(ExitConfig);
    }
  }
  if (config.checkConfig) {
    process.stdout.write(`${JSON.stringify({ ok: true, voters, config }, null, 2)}\n`);
    return;
  }
  const secret = readSecret(config, log);
  const tls = config.tls
    ? {
        cert: readFileOrExit(config.tls.cert, 'TLS certificate', log),
        key: readFileOrExit(config.tls.key, 'TLS key', log),
        ca: readFileOrExit(config.tls.ca, 'TLS CA bundle', log),
      }
    : undefined;

  const metrics = new ElectorMetrics();
  let transport: WsTransport | undefined;
  let parts: import('./in-cluster.js').InClusterParts | undefined;
  const member = new RaftMember({
    id: config.id,
    voters,
    tickMs: config.tickMs,
    electionTicks: config.electionTicks,
    heartbeatTicks: config.heartbeatTicks,
    maxClockDriftMs: config.maxClockDriftMs,
    selfAddress: selfAddr,
    onFatal: () => process.exit(ExitFailure),
    forgetLeaderOnDisconnect: config.forgetLeaderOnDisconnect,
    store: new StateFile(config.dataDir, log),
    ...(clockRate === undefined ? {} : skewedClock(clockRate, log)),
    logger: log,
    metrics,
    createTransport: (events) =>
      (transport = new WsTransport({
        selfId: config.id,
        clusterName: config.clusterName,
        listen: config.listen,
        peers: transportPeers,
        ...(secret ? { secret } : { insecure: true }),
        ...(tls ? { tls } : {}),
        maxFrameBytes: config.maxFrameBytes,
        logger: log,
        events: {
          ...events,
          onUnreachable: (peer) => {
            events.onUnreachable(peer);
            parts?.peerUnreachable(peer);
          },
        },
      })),
  });
  if (k && inCluster && identity) {
    try {
      parts = inCluster.createInClusterParts(config, k, identity, member, () => transport!, log);
    } catch (err) {
      log.fatal({ code: (err as { code?: string }).code, err: (err as Error).message }, 'cannot set up the Kubernetes client');
      process.exit(ExitFailure);
    }
  }
  const api = createApiServer({ member: unsafe ? withLeaseOverrun(member, unsafe, log) : member, logger: log, metrics });

  try {
    await member.start();
  } catch (err) {
    if (isClusterError(err)) {
      log.fatal({ code: err.code, err: err.message }, 'member cannot start');
      process.exit(ExitFailure);
    }
    throw err;
  }
  const bound = await api.listen(config.http.host, config.http.port);
  await parts?.start();
  log.info(
    {
      http: `${bound.address}:${bound.port}`,
      listen: `${config.listen.host}:${config.listen.port}`,
      voters,
      inCluster: k !== undefined,
      tickMs: config.tickMs,
      electionTicks: config.electionTicks,
      leaseWindowMs: member.leaseWindowMs,
    },
    'raft-elector running',
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting at once');
      process.exit(ExitFailure);
    }
    stopping = true;
    log.info({ signal }, 'stopping: handing leadership over first if this member leads');
    void (async () => {
      try {
        await member.shutdown();
        await parts?.stop();
        await api.close();
        log.info('stopped');
        process.exit(0);
      } catch (err) {
        log.error({ err }, 'unclean stop');
        process.exit(ExitFailure);
      }
    })();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function main(): Promise<void> {
  let parsed;
  let unsafe: UnsafeMode | undefined;
  let clockRate: number | undefined;
  try {
    parsed = parseConfig(process.argv.slice(2), process.env);
    unsafe = parseUnsafe(process.env);
    clockRate = parseClockRate(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`raft-elector: ${err.message}\n`);
      process.exit(ExitConfig);
    }
    throw err;
  }
  if (parsed.kind === 'help') {
    process.stdout.write(`${parsed.text}\n`);
    return;
  }
  if (parsed.kind === 'version') {
    process.stdout.write(`raft-elector ${version()}\n`);
    return;
  }
  await run(parsed.config, unsafe, clockRate);
}

main().catch((err: unknown) => {
  process.stderr.write(`raft-elector: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(ExitFailure);
});
