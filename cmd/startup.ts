/**
 * Start-up checks of the raft-elector command, run before the member joins: files the flags
 * name (bounded, regular, parsed), the data dir (writable), the fd headroom, the listeners.
 * Each refusal is a ConfigError whose message is the one line the operator sees, naming the
 * flag or file; the command prints it and exits 2.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import * as fs from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { DurableState } from '../raft/index.js';
import type { SaveOptions, StateStore } from '../cluster/interfaces.js';
import { ConfigError, type HostPort } from './config.js';

/** A shared secret is a line of text; more than this is not a secret file (or is /dev/zero). */
export const MAX_SECRET_FILE_BYTES = 4096;
/** A PEM certificate chain or CA bundle; a system bundle of ~150 roots is ~200 KiB. */
export const MAX_PEM_FILE_BYTES = 1024 * 1024;
/** Below this open-file limit the member refuses to start: peers, API clients and the state file need it. */
export const MIN_FD_LIMIT = 256;
/** Below this the member starts but warns: a flood of API or peer connections can exhaust it. */
export const LOW_FD_LIMIT = 4096;
const PROBE_NAME = '.raft-elector-probe';

/** Reads a file a flag names: a regular file of at most maxBytes, or a ConfigError naming the flag. */
export function readFlagFile(file: string, flag: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw new ConfigError(`${flag} ${file} cannot be read: ${errText(err)}`);
  }
  try {
    // fstat of the opened file: no race with a swap between the check and the read.
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new ConfigError(`${flag} ${file} is not a regular file`);
    if (stat.size > maxBytes) throw new ConfigError(`${flag} ${file} is ${stat.size} bytes, more than the ${maxBytes} it may hold`);
    const buf = Buffer.alloc(maxBytes + 1);
    let n = 0;
    for (let r = -1; r !== 0 && n < buf.length; n += r) r = fs.readSync(fd, buf, n, buf.length - n, null);
    if (n > maxBytes) throw new ConfigError(`${flag} ${file} holds more than the ${maxBytes} bytes it may hold`);
    return buf.subarray(0, n);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${flag} ${file} cannot be read: ${errText(err)}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** The shared peer secret: trimmed, at least 16 bytes. */
export function readSecretFile(file: string): Buffer {
  const secret = Buffer.from(readFlagFile(file, '--secret-file', MAX_SECRET_FILE_BYTES).toString('utf8').trim(), 'utf8');
  if (secret.length < 16) throw new ConfigError(`--secret-file ${file} holds ${secret.length} bytes; the shared secret must be at least 16`);
  return secret;
}

const PemCertificate = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function parseCertificates(pem: Buffer, flag: string, file: string): X509Certificate[] {
  const blocks = pem.toString('utf8').match(PemCertificate) ?? [];
  if (blocks.length === 0) throw new ConfigError(`${flag} ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new ConfigError(`${flag} ${file}: certificate ${i + 1} of ${blocks.length} cannot be parsed: ${errText(err)}`);
    }
  });
}

/** Reads and checks the three TLS files: each parses, the key matches the certificate. */
export function loadTls(files: { cert: string; key: string; ca: string }): { cert: Buffer; key: Buffer; ca: Buffer } {
  const cert = readFlagFile(files.cert, '--tls-cert', MAX_PEM_FILE_BYTES);
  const key = readFlagFile(files.key, '--tls-key', MAX_PEM_FILE_BYTES);
  const ca = readFlagFile(files.ca, '--tls-ca', MAX_PEM_FILE_BYTES);
  const leaf = parseCertificates(cert, '--tls-cert', files.cert)[0]!;
  parseCertificates(ca, '--tls-ca', files.ca);
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new ConfigError(`--tls-key ${files.key} holds no usable private key: ${errText(err)}`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new ConfigError(`--tls-key ${files.key} does not match the certificate in --tls-cert ${files.cert}`);
  }
  try {
    createSecureContext({ cert, key, ca });
  } catch (err) {
    throw new ConfigError(`--tls-cert ${files.cert}, --tls-key ${files.key}, --tls-ca ${files.ca} do not form a TLS context: ${errText(err)}`);
  }
  return { cert, key, ca };
}

/** Writes, fsyncs and removes a probe file: a read-only mount or a mode-555 dir fails here, not at the first vote. */
export function checkDataDirWritable(dataDir: string): void {
  const probe = path.join(dataDir, `${PROBE_NAME}-${process.pid}`);
  let step = 'create';
  try {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    step = 'write a probe file in';
    const fd = fs.openSync(probe, 'w', 0o600);
    try {
      fs.writeSync(fd, 'probe\n');
      step = 'fsync a probe file in';
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    step = 'remove a probe file from';
    fs.unlinkSync(probe);
  } catch (err) {
    throw new ConfigError(`--data-dir ${dataDir} is not writable: cannot ${step} it: ${errText(err)}`);
  }
}

export interface FdUsage {
  softLimit: number;
  open: number;
}

/** Linux: the soft RLIMIT_NOFILE from /proc/self/limits and the open count from /proc/self/fd; undefined elsewhere. */
export function readFdUsage(procDir = '/proc/self'): FdUsage | undefined {
  try {
    const limits = fs.readFileSync(path.join(procDir, 'limits'), 'utf8');
    const m = /^Max open files\s+(\d+|unlimited)\s+/m.exec(limits);
    if (!m) return undefined;
    const softLimit = m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
    return { softLimit, open: fs.readdirSync(path.join(procDir, 'fd')).length };
  } catch {
    return undefined;
  }
}

/** Refuses a limit below MIN_FD_LIMIT, warns below LOW_FD_LIMIT, naming the limit. */
export function checkFdHeadroom(usage: FdUsage | undefined, log: Logger): void {
  if (!usage) {
    log.debug('open-file limit not checked (no /proc/self/limits)');
    return;
  }
  const { softLimit, open } = usage;
  if (softLimit < MIN_FD_LIMIT || softLimit - open < MIN_FD_LIMIT / 2) {
    throw new ConfigError(
      `the open-file limit (RLIMIT_NOFILE, ulimit -n) is ${softLimit} with ${open} in use; raft-elector needs at least ${MIN_FD_LIMIT}: raise it`,
    );
  }
  if (softLimit < LOW_FD_LIMIT) {
    log.warn(
      { fdLimit: softLimit, fdOpen: open, recommendedFdLimit: LOW_FD_LIMIT },
      `the open-file limit (RLIMIT_NOFILE, ulimit -n) is low: ${softLimit}; a flood of connections can exhaust it, raise it to ${LOW_FD_LIMIT} or more`,
    );
  }
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** The one line for a listener that cannot bind, naming the flag and address. */
export function listenError(err: unknown, flag: string, address: HostPort): ConfigError {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === 'EADDRINUSE'
      ? 'is already in use'
      : code === 'EACCES'
        ? 'may not be bound by this user'
        : code === 'EADDRNOTAVAIL'
          ? 'is not an address of this host'
          : 'cannot be bound';
  return new ConfigError(`${flag} ${formatHostPort(address)} ${why} (${code ?? errText(err)})`);
}

/**
 * Binds and releases `address`: the peer listener is bound by the transport inside
 * member.start(), so this shows a taken port before anything starts.
 */
export async function probeListen(flag: string, address: HostPort): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenError(err, flag, address)));
    server.listen({ port: address.port, host: address.host, exclusive: true }, () => resolve());
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/**
 * The --peers store, refusing a restored vote for anyone outside the configured voters and the
 * file's own configuration, with one line naming the file and the flag. In-cluster it is not
 * used: the voters live in the log, and a vote for a member since removed is a sound vote.
 */
export function voteMustBeMember(store: StateStore & { filePath: string }, voters: readonly string[], votersFlag: string): StateStore {
  return {
    load(): DurableState | undefined {
      const state = store.load();
      const vote = state?.hardState.vote;
      const cs = state?.confState;
      const known = cs ? [...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext] : [];
      if (state && vote && !voters.includes(vote) && !known.includes(vote)) {
        throw new ConfigError(
          `state file ${store.filePath} records a vote for ${JSON.stringify(vote)} in term ${state.hardState.term}, who is not a voter (${votersFlag}: ${[...voters].sort().join(', ')}); restore the voter, or move the file away if this member's votes may be forgotten safely`,
        );
      }
      return state;
    },
    save(state: DurableState, options?: SaveOptions): void {
      store.save(state, options);
    },
    ...(store.saveInBackground ? { saveInBackground: store.saveInBackground.bind(store) } : {}),
  };
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
