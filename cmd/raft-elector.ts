#!/usr/bin/env -S node --max-semi-space-size=1
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import { createApiServer, ElectorMetrics } from '../api/index.js';
import { DataDirError, DataDirLock } from '../cluster/data-dir-lock.js';
import { isClusterError } from '../cluster/errors.js';
import { RaftMember } from '../cluster/member.js';
import { StateFile } from '../cluster/state-file.js';
import { TimingRecordFile } from '../cluster/timing-record.js';
import { WsTransport } from '../cluster/transport.js';
import { warmUpElectionPath } from '../cluster/warm-up.js';
import type { StateStore } from '../cluster/interfaces.js';
import type { DurableState } from '../raft/index.js';
import { ConfigError, parseConfig, type ElectorConfig } from './config.js';
import {
  checkDataDirWritable,
  checkFdHeadroom,
  listenError,
  loadTls,
  probeListen,
  readFdUsage,
  readSecretFile,
  voteMustBeMember,
} from './startup.js';
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

function readSecret(config: ElectorConfig, log: Logger): Buffer | undefined {
  if (config.insecure || !config.secretFile) {
    log.warn('peer authentication is OFF (--insecure): any process that reaches the peer port can join this group');
    return undefined;
  }
  return readSecretFile(config.secretFile);
}

/** Start-up refusals that are the operator's to fix: one line, exit 2. Anything else is a crash. */
function configErrorLine(err: unknown): string | undefined {
  if (err instanceof ConfigError) return err.message;
  if (err instanceof DataDirError && err.code !== 'LOCK_UNAVAILABLE') return err.message;
  if (isClusterError(err, 'STATE_FILE_IDENTITY_MISMATCH')) return err.message;
  return undefined;
}

/** The store, handing out a state already read (for the bootstrap decision) on the first load. */
function loadedOnce(store: StateStore, loaded: DurableState | undefined): StateStore {
  let first = true;
  return {
    load() {
      if (!first) return store.load();
      first = false;
      return loaded;
    },
    save: (state, options) => store.save(state, options),
    ...(store.saveInBackground ? { saveInBackground: store.saveInBackground.bind(store) } : {}),
  };
}

function selfAddress(config: ElectorConfig): string {
  const self = config.peers.find((p) => p.id === config.id)!;
  return self.host.includes(':') ? `[${self.host}]:${self.port}` : `${self.host}:${self.port}`;
}

/**
 * Runs the election path once in a throwaway in-process group, so that the first real handover
 * does not pay for V8's lazy compilation and empty inline caches (cluster/warm-up.ts).
 */
async function warmUp(config: ElectorConfig, log: Logger): Promise<void> {
  const started = performance.now();
  try {
    const result = await warmUpElectionPath({
      tickMs: config.tickMs,
      electionTicks: config.electionTicks,
      heartbeatTicks: config.heartbeatTicks,
      maxClockDriftMs: config.maxClockDriftMs,
    });
    log.debug({ ...result, durationMs: Math.round(performance.now() - started) }, 'warmed up the election path');
  } catch (err) {
    // Only a cost saving: the real member does not depend on it.
    log.warn({ err }, 'the election warm-up failed; starting without it');
  }
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
  // --peers: a fixed voter set. In-cluster: the voters live in the log and follow the pods.
  const voters = config.peers.map((p) => p.id);
  const transportPeers = config.peers.filter((p) => p.id !== config.id);
  let selfAddr = k ? '' : selfAddress(config);
  if (k && inCluster) {
    try {
      inCluster.inClusterIdentity(k);
      const podIp = process.env.POD_IP ?? '';
      selfAddr = `${podIp === '' ? k.podName : podIp.includes(':') ? `[${podIp}]` : podIp}:${config.listen.port}`;
    } catch (err) {
      process.stderr.write(`raft-elector: ${(err as Error).message}\n`);
      process.exit(ExitConfig);
    }
    if (k.replicasIgnored !== undefined) {
      log.warn({ replicas: k.replicasIgnored }, '--replicas is ignored: the voters follow the pods of --pod-selector, up to --max-voters; drop the flag');
    }
  }
  if (config.checkConfig) {
    process.stdout.write(`${JSON.stringify({ ok: true, voters: k ? 'from the pods' : voters, config }, null, 2)}\n`);
    return;
  }
  const secret = readSecret(config, log);
  const tls = config.tls ? loadTls(config.tls) : undefined;
  // Before anything reads or writes the data dir: a second process on it could vote twice.
  const lock = DataDirLock.acquire(config.dataDir, config.id);
  checkDataDirWritable(config.dataDir);
  checkFdHeadroom(readFdUsage(), log);
  // CPU work that can run while the bootstrap decision waits for the API server.
  const warmedUp = warmUp(config, log);

  const stateFile = new StateFile(config.dataDir, log, { memberId: config.id, group: config.clusterName, ...(k ? { podUid: k.podUid } : {}) });
  let kube: import('../k8s/kube-client.js').KubeClient | undefined;
  let bootstrap: { voters: readonly string[] } | undefined = { voters };
  let seedPods: import('../k8s/pod-watch.js').GroupPod[] | undefined;
  let store: StateStore = voteMustBeMember(stateFile, voters, '--peers');
  if (k && inCluster) {
    try {
      kube = inCluster.createKube(k);
    } catch (err) {
      log.fatal({ code: (err as { code?: string }).code, err: (err as Error).message }, 'cannot set up the Kubernetes client');
      process.exit(ExitFailure);
    }
    const loaded = stateFile.load();
    store = loadedOnce(stateFile, loaded);
    bootstrap = undefined;
    // Exactly once per group (k8s/bootstrap.ts); a member with state never bootstraps again.
    if (loaded === undefined) {
      const decision = await inCluster.decideInClusterBootstrap(kube, k, log);
      if (decision.bootstrap) bootstrap = { voters: [config.id] };
      seedPods = decision.pods ?? undefined;
    }
  }

  const metrics = new ElectorMetrics();
  let transport: WsTransport | undefined;
  let parts: import('./in-cluster.js').InClusterParts | undefined;
  const linkListeners = new Set<(peerId: string) => void>();
  const member: RaftMember = new RaftMember({
    id: config.id,
    ...(bootstrap ? { bootstrap } : {}),
    tickMs: config.tickMs,
    electionTicks: config.electionTicks,
    heartbeatTicks: config.heartbeatTicks,
    maxClockDriftMs: config.maxClockDriftMs,
    selfAddress: selfAddr,
    onFatal: () => process.exit(ExitFailure),
    forgetLeaderOnDisconnect: config.forgetLeaderOnDisconnect,
    store,
    timingRecord: new TimingRecordFile(config.dataDir),
    ...(clockRate === undefined ? {} : skewedClock(clockRate, log)),
    logger: log,
    metrics,
    createTransport: (events) =>
      (transport = new WsTransport({
        selfId: config.id,
        clusterName: config.clusterName,
        listen: config.listen,
        peers: transportPeers,
        // In-cluster, peers come and go with the pods: a joiner must reach the leader before it is added.
        dynamicPeers: k !== undefined,
        localTiming: { tickMs: config.tickMs, electionTicks: config.electionTicks, maxClockDriftMs: config.maxClockDriftMs },
        freshVoteDelayMs: () => member.freshVoteDelayBoundMs(),
        timingRecord: () => member.announcedTimingRecord(),
        ...(secret ? { secret } : { insecure: true }),
        ...(tls ? { tls } : {}),
        maxFrameBytes: config.maxFrameBytes,
        logger: log,
        events: {
          ...events,
          onPeerConnectionChange: (peer, connected) => {
            events.onPeerConnectionChange?.(peer, connected);
            if (connected) for (const listener of linkListeners) listener(peer);
          },
        },
      })),
  });
  if (k && inCluster && kube) {
    try {
      const onPeerLinked = (listener: (peerId: string) => void) => {
        linkListeners.add(listener);
        return () => linkListeners.delete(listener);
      };
      parts = inCluster.createInClusterParts(config, k, kube, member, () => transport!, log, { onPeerLinked, ...(seedPods ? { seedPods } : {}) });
    } catch (err) {
      log.fatal({ code: (err as { code?: string }).code, err: (err as Error).message }, 'cannot set up the Kubernetes client');
      process.exit(ExitFailure);
    }
  }
  const api = createApiServer({ member: unsafe ? withLeaseOverrun(member, unsafe, log) : member, logger: log, metrics, options: config.api });

  // Both listeners before the transport dials or raft ticks: a taken port is a clean refusal.
  await probeListen('--listen', config.listen);
  const bound = await api.listen(config.http.host, config.http.port).catch((err: unknown) => {
    throw listenError(err, '--http', config.http);
  });
  await warmedUp;
  try {
    await member.start();
  } catch (err) {
    if (configErrorLine(err) !== undefined) throw err;
    if ((err as NodeJS.ErrnoException).syscall === 'listen') throw listenError(err, '--listen', config.listen);
    if (isClusterError(err)) {
      log.fatal({ code: err.code, err: err.message }, 'member cannot start');
      // The operator must act on the data dir; restarting the same way cannot help.
      process.exit(isClusterError(err, 'STATE_TERM_NO_HEADROOM') ? ExitConfig : ExitFailure);
    }
    throw err;
  }
  await parts?.start();
  log.info(
    {
      http: `${bound.address}:${bound.port}`,
      listen: `${config.listen.host}:${config.listen.port}`,
      voters: member.membership().confState.voters,
      bootstrapped: bootstrap !== undefined,
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
        if (parts) {
          // A leader hands over first: it waits for a handover already under way, else hands over
          // to the newest caught-up voter. Then a deleting voter stays until the leader has removed
          // it: leaving at once could take the quorum with it when several pods go together.
          await parts.handOver();
          if (member.view().role === 'Leader') {
            await member.transferLeadership().then(
              (result) => log.info({ ...result }, result.transferred ? 'handed leadership over' : 'leadership handover timed out'),
              (err: unknown) => log.warn({ err }, 'no follower to hand leadership to'),
            );
          }
          await parts.awaitLeave();
        }
        await member.shutdown();
        await parts?.stop();
        await api.close();
        lock.release();
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
  // No reload: the configuration is validated once, at start. A restart applies a change.
  process.on('SIGHUP', (signal) => {
    log.info({ signal }, 'SIGHUP: raft-elector has no configuration reload; stopping gracefully (restart it to apply a change)');
    stop(signal);
  });
  process.on('SIGUSR2', (signal) => log.info({ signal }, 'SIGUSR2 ignored: raft-elector defines no action for it'));
}

async function main(): Promise<void> {
  if (process.argv[2] === 'inject') return runInjectCommand(process.argv.slice(3));
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

/** `raft-elector inject`: the sidecar injector webhook (k8s/injector/). */
async function runInjectCommand(argv: string[]): Promise<void> {
  const injector = await import('../k8s/injector/main.js');
  const { TemplateError } = await import('../k8s/injector/template.js');
  try {
    const config = injector.parseInjectConfig(argv, process.env);
    if (config === 'help') {
      process.stdout.write(`${injector.InjectHelp}\n`);
      return;
    }
    await injector.runInject(config, process.env);
  } catch (err) {
    if (err instanceof injector.InjectConfigError || err instanceof TemplateError || (err as NodeJS.ErrnoException).code === 'ENOENT') {
      process.stderr.write(`raft-elector: ${(err as Error).message}\n`);
      process.exit(ExitConfig);
    }
    throw err;
  }
}

main().catch((err: unknown) => {
  const line = configErrorLine(err);
  if (line !== undefined) {
    process.stderr.write(`raft-elector: ${line}\n`);
    process.exit(ExitConfig);
  }
  if (err instanceof DataDirError) {
    // LOCK_UNAVAILABLE: a broken install (the native lock binding is missing), not a crash to debug.
    process.stderr.write(`raft-elector: ${err.message}\n`);
    process.exit(ExitFailure);
  }
  process.stderr.write(`raft-elector: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(ExitFailure);
});
