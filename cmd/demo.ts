/**
 * `npm run demo`: three real raft-elector processes on loopback, a live view of who
 * leads, and keys to kill, stop and restart members to watch failover.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, writeFileSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

interface DemoMember {
  id: string;
  peerPort: number;
  httpPort: number;
  dataDir: string;
  logFile: string;
  child: ChildProcess | undefined;
  paused: boolean;
  view: LeaderView | undefined;
}

interface LeaderView {
  leader: string | null;
  isLeader: boolean;
  term: number;
  leaseExpiresInMs: number | null;
}

const TickMs = 100;
const ElectionTicks = 10;
const Ids = ['m1', 'm2', 'm3'];
const elector = join(fileURLToPath(new URL('.', import.meta.url)), 'raft-elector.js');
const demoDir = resolve(process.env.RAFT_ELECTOR_DEMO_DIR ?? '.raft-elector-demo');
const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
const events: string[] = [];
const MaxEvents = 12;

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

function stamp(): string {
  return new Date().toISOString().slice(11, 23);
}

function note(line: string): void {
  const entry = `${stamp()}  ${line}`;
  events.push(entry);
  if (events.length > MaxEvents) events.shift();
  if (!interactive) process.stdout.write(`${entry}\n`);
}

function start(m: DemoMember, peers: string, secretFile: string): void {
  const out = openSync(m.logFile, 'a');
  const child = spawn(
    process.execPath,
    [
      // As the image runs it: a small young generation keeps an idle member's RSS near 60 MB.
      '--max-semi-space-size=1',
      elector,
      '--id', m.id,
      '--peers', peers,
      '--listen', `127.0.0.1:${m.peerPort}`,
      '--http', `127.0.0.1:${m.httpPort}`,
      '--data-dir', m.dataDir,
      '--secret-file', secretFile,
      '--tick-ms', String(TickMs),
      '--election-ticks', String(ElectionTicks),
    ],
    { stdio: ['ignore', out, out] },
  );
  closeSync(out);
  m.child = child;
  m.paused = false;
  note(`${m.id} started (pid ${child.pid})`);
  child.on('exit', (code, signal) => {
    if (m.child === child) {
      m.child = undefined;
      m.view = undefined;
      note(`${m.id} exited (${signal ?? `code ${code}`})`);
    }
  });
}

async function poll(m: DemoMember): Promise<void> {
  if (!m.child || m.paused) {
    if (!m.child) m.view = undefined;
    return;
  }
  try {
    const res = await fetch(`http://127.0.0.1:${m.httpPort}/leader`, { signal: AbortSignal.timeout(150) });
    m.view = (await res.json()) as LeaderView;
  } catch {
    m.view = undefined;
  }
}

function render(members: DemoMember[]): string {
  const rows = members.map((m) => {
    const v = m.view;
    const state = !m.child ? 'down' : m.paused ? 'paused' : v ? (v.isLeader ? 'LEADER' : v.leader === m.id ? 'leader*' : 'follower') : 'starting';
    const lease = v?.isLeader && v.leaseExpiresInMs !== null ? `${v.leaseExpiresInMs} ms` : '';
    return `  ${m.id.padEnd(6)} ${String(m.child?.pid ?? '-').padEnd(8)} ${state.padEnd(9)} ${String(v?.term ?? '').padEnd(5)} ${(v?.leader ?? (v ? 'none' : '')).padEnd(7)} ${lease}`;
  });
  return [
    `raft-elector demo: ${members.length} members on loopback, tick ${TickMs} ms, election timeout ${ElectionTicks} ticks`,
    `logs and state: ${demoDir}`,
    '',
    '  member pid      role      term  leader  lease',
    ...rows,
    '',
    '  1-3 kill -9 / restart that member   k kill -9 the leader   t SIGTERM the leader (handover)',
    '  p pause/resume the leader (SIGSTOP/SIGCONT)                q quit',
    '',
    ...events,
  ].join('\n');
}

function leaderOf(members: DemoMember[]): DemoMember | undefined {
  return members.find((m) => m.view?.leader === m.id && m.child && !m.paused);
}

async function main(): Promise<void> {
  mkdirSync(demoDir, { recursive: true });
  const secretFile = join(demoDir, 'secret');
  writeFileSync(secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const members: DemoMember[] = [];
  for (const id of Ids) {
    members.push({
      id,
      peerPort: await freePort(),
      httpPort: await freePort(),
      dataDir: join(demoDir, id),
      logFile: join(demoDir, `${id}.log`),
      child: undefined,
      paused: false,
      view: undefined,
    });
  }
  const peers = members.map((m) => `${m.id}=127.0.0.1:${m.peerPort}`).join(',');
  for (const m of members) start(m, peers, secretFile);

  let lastAnnounced = '';
  let quitting = false;
  const refresh = async (): Promise<void> => {
    await Promise.all(members.map(poll));
    const leader = leaderOf(members);
    const agreed = leader ? `${leader.id}@${leader.view!.term}` : '';
    if (agreed && agreed !== lastAnnounced) {
      lastAnnounced = agreed;
      note(`leader is ${leader!.id} (term ${leader!.view!.term})`);
    }
    if (interactive && !quitting) process.stdout.write(`\x1b[2J\x1b[H${render(members)}\n`);
  };
  const timer = setInterval(() => void refresh(), 200);

  const quit = async (): Promise<void> => {
    if (quitting) return;
    quitting = true;
    clearInterval(timer);
    note('stopping all members');
    for (const m of members) {
      if (m.paused) m.child?.kill('SIGCONT');
      m.child?.kill('SIGTERM');
    }
    await Promise.all(
      members.map((m) => (m.child ? new Promise((r) => m.child!.once('exit', r)) : Promise.resolve())),
    );
    process.exit(0);
  };

  const command = (key: string): void => {
    const index = Number(key) - 1;
    const target = members[index];
    if (target) {
      if (target.child) {
        target.child.kill('SIGKILL');
        note(`${target.id} killed with SIGKILL`);
      } else {
        start(target, peers, secretFile);
      }
      return;
    }
    const leader = leaderOf(members) ?? members.find((m) => m.paused);
    switch (key) {
      case 'k':
        if (leader?.child) {
          leader.child.kill('SIGKILL');
          note(`leader ${leader.id} killed with SIGKILL`);
        }
        return;
      case 't':
        if (leader?.child) {
          leader.child.kill('SIGTERM');
          note(`leader ${leader.id} sent SIGTERM (it hands over first)`);
        }
        return;
      case 'p':
        if (leader?.child) {
          leader.paused = !leader.paused;
          leader.child.kill(leader.paused ? 'SIGSTOP' : 'SIGCONT');
          note(`${leader.id} ${leader.paused ? 'paused (SIGSTOP)' : 'resumed (SIGCONT)'}`);
        }
        return;
      case 'q':
      case '\u0003':
        void quit();
        return;
      default:
        return;
    }
  };

  process.on('SIGINT', () => void quit());
  process.on('SIGTERM', () => void quit());
  if (interactive) {
    process.stdin.setRawMode(true);
    process.stdin.resume();
    process.stdin.on('data', (buf: Buffer) => {
      for (const key of buf.toString('utf8')) command(key);
    });
  } else {
    note('non-interactive: type 1-3, k, t, p or q and Enter');
    const lines = createInterface({ input: process.stdin });
    lines.on('line', (line) => command(line.trim().slice(0, 1)));
    lines.on('close', () => undefined);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
