/**
 * The cost of a 20-member group (issue 11): 20 in-cluster members (5 voters, 15 learners at
 * the default --max-voters) on loopback, their membership through the test API server
 * (test/k8s) exactly as in a cluster: all pods created at once, one bootstraps, the leader's
 * reconciler adds the others as learners and promotes up to the cap. Once it has converged,
 * 30 s idle: CPU % (of one core) and RSS per member, as medians of the learners, of the voters
 * other than the leader, and the leader's. The anchor is a 3-member group made the same way in
 * the same run (before and after the 20, so drifting machine load shows in the anchor twice).
 *
 *   npm run bench:members20       # about 3 minutes; BENCH_IDLE_MS (default 30000), BENCH_MEMBERS (20)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ElectorBin, freePort } from '../test/integration/harness.js';
import { TestApiServer } from '../test/k8s/apiserver.js';
import { idleCost } from './proc.js';

const Namespace = 'bench';
const Service = 'web';
const TickMs = 100;
const ElectionTicks = 10;
const MaxVoters = 5;
/** The V8 flag the image's ENTRYPOINT and the command's shebang use. */
const NodeArgs = ['--max-semi-space-size=1'];
const idleMs = Number(process.env.BENCH_IDLE_MS ?? 30_000);
const bigSize = Number(process.env.BENCH_MEMBERS ?? 20);
const AnchorSize = 3;
/** A pod's IP: its own loopback address, so every member listens on the same peer port. */
const podIp = (i: number): string => `127.0.20.${i + 1}`;

interface Pod {
  name: string;
  uid: string;
  httpPort: number;
  child: ChildProcess;
  lines: string[];
}

interface Answer {
  selfId: string;
  leaderId: string | null;
  isLeader: boolean;
  term: number;
  members: { id: string; membership: string }[];
}

async function portFreeOnAll(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    const ok = await Promise.all(
      Array.from({ length: n }, (_, i) => new Promise<boolean>((resolve) => {
        const s = createServer();
        s.once('error', () => resolve(false));
        s.listen(port, podIp(i), () => s.close(() => resolve(true)));
      })),
    );
    if (ok.every(Boolean)) return port;
  }
  throw new Error('no port free on every pod address');
}

async function answer(p: Pod): Promise<Answer | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${p.httpPort}/leader`, { signal: AbortSignal.timeout(2_000) });
    return (await res.json()) as Answer;
  } catch {
    return undefined;
  }
}

class Group {
  readonly pods: Pod[] = [];
  private constructor(
    readonly api: TestApiServer,
    readonly dir: string,
  ) {}

  static async start(size: number): Promise<Group> {
    const api = await TestApiServer.start({ tls: true, token: `bench-${randomBytes(8).toString('hex')}`, serviceAccount: `${Namespace}:${Service}` });
    const layout = api.writeInClusterLayout(Namespace);
    const dir = mkdtempSync(join(tmpdir(), 'raft-elector-members20-'));
    const secret = join(dir, 'secret');
    writeFileSync(secret, randomBytes(32).toString('hex'), { mode: 0o600 });
    const g = new Group(api, dir);
    const peerPort = await portFreeOnAll(size);
    const specs = [];
    for (let i = 0; i < size; i++) {
      const name = `${Service}-${i}`;
      const pod = api.createPod({ name, namespace: Namespace, labels: { app: Service }, phase: 'Running', containers: ['app', 'raft-elector'], podIP: podIp(i) });
      specs.push({ name, uid: pod.metadata.uid, ip: podIp(i), httpPort: await freePort() });
    }
    for (const s of specs) {
      const child = spawn(
        process.execPath,
        [
          ...NodeArgs, ElectorBin,
          '--service', Service,
          '--pod-selector', `app=${Service}`,
          '--no-lease-mirror',
          '--max-voters', String(MaxVoters),
          '--tick-ms', String(TickMs),
          '--election-ticks', String(ElectionTicks),
          '--listen', `${s.ip}:${peerPort}`,
          '--http', `127.0.0.1:${s.httpPort}`,
          '--data-dir', join(dir, s.name),
          '--secret-file', secret,
          '--kube-token-file', layout.tokenFile,
          '--kube-ca-file', layout.caFile,
        ],
        { env: { ...process.env, ...layout.env, POD_NAME: s.name, POD_NAMESPACE: Namespace, POD_UID: s.uid }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const p: Pod = { name: s.name, uid: s.uid, httpPort: s.httpPort, child, lines: [] };
      const keep = (chunk: Buffer): void => {
        p.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        if (p.lines.length > 200) p.lines.splice(0, p.lines.length - 200);
      };
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);
      g.pods.push(p);
    }
    return g;
  }

  /** Every member names one leader and term, the leader claims it, and its configuration holds every pod: min(size, cap) voters, the rest learners. */
  async converged(deadlineMs: number): Promise<{ leader: Pod; ms: number }> {
    const started = performance.now();
    const voters = Math.min(this.pods.length, MaxVoters);
    while (performance.now() - started < deadlineMs) {
      const answers = await Promise.all(this.pods.map(answer));
      const first = answers[0];
      const lead = first?.leaderId;
      const leaderAnswer = answers.find((a) => a?.selfId === lead);
      if (lead && answers.every((a) => a?.leaderId === lead && a.term === first.term) && leaderAnswer?.isLeader) {
        const roles = new Map(leaderAnswer.members.map((m) => [m.id, m.membership]));
        const ids = this.pods.map((p) => `${p.name}@${p.uid}`);
        const v = ids.filter((id) => roles.get(id) === 'voter').length;
        const l = ids.filter((id) => roles.get(id) === 'learner').length;
        if (v === voters && l === this.pods.length - voters) return { leader: this.pods.find((p) => `${p.name}@${p.uid}` === lead)!, ms: performance.now() - started };
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`the ${this.pods.length}-member group did not converge in ${deadlineMs} ms; last lines of ${this.pods[0]!.name}:\n${this.pods[0]!.lines.slice(-10).join('\n')}`);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.pods.map(async (p) => {
        if (p.child.exitCode !== null) return;
        const exited = new Promise((r) => p.child.once('exit', r));
        p.child.kill('SIGKILL');
        await exited;
      }),
    );
    await this.api.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

interface Figures {
  size: number;
  convergedMs: number;
  leader: { cpuPercent: number; rssMb: number };
  voters: { cpuPercent: number; rssMb: number; n: number };
  learners: { cpuPercent: number; rssMb: number; n: number } | undefined;
  totalCpuPercent: number;
  totalRssMb: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function measure(size: number): Promise<Figures> {
  const g = await Group.start(size);
  try {
    const { leader, ms } = await g.converged(120_000);
    // The membership the leader reported at convergence: who votes and who learns.
    const a = (await answer(leader))!;
    const role = new Map(a.members.map((m) => [m.id, m.membership]));
    const costs = await idleCost(g.pods.map((p) => p.child.pid!), idleMs);
    // Only a note: on a starved machine twenty /leader answers may not line up within the deadline.
    const after = await g.converged(20_000).catch(() => undefined);
    if (after?.leader !== leader) process.stdout.write(`  note: ${size} members: ${after ? `the leader changed during the idle window (${leader.name} -> ${after.leader.name})` : 'convergence not re-confirmed within 20 s after the idle window'}\n`);
    const pick = (want: (p: Pod) => boolean): { cpuPercent: number; rssMb: number; n: number } => {
      const xs = g.pods.map((p, i) => ({ p, c: costs[i]! })).filter(({ p }) => want(p));
      return { cpuPercent: median(xs.map((x) => x.c.cpuPercent)), rssMb: median(xs.map((x) => x.c.rssMb)), n: xs.length };
    };
    const idOf = (p: Pod): string => `${p.name}@${p.uid}`;
    const learners = pick((p) => role.get(idOf(p)) === 'learner');
    return {
      size,
      convergedMs: ms,
      leader: pick((p) => p === leader),
      voters: pick((p) => p !== leader && role.get(idOf(p)) === 'voter'),
      learners: learners.n > 0 ? learners : undefined,
      totalCpuPercent: costs.reduce((s, c) => s + c.cpuPercent, 0),
      totalRssMb: costs.reduce((s, c) => s + c.rssMb, 0),
    };
  } finally {
    await g.stop();
  }
}

const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

async function main(): Promise<void> {
  const load0 = loadavg()[0]!;
  process.stdout.write(`members20: ${bigSize} members (${MaxVoters} voters) against ${AnchorSize}, idle ${idleMs / 1000} s each, tick ${TickMs} ms, election ${ElectionTicks} ticks, node ${NodeArgs.join(' ')}; load average ${load0.toFixed(1)}\n`);
  const anchorBefore = await measure(AnchorSize);
  const big = await measure(bigSize);
  const anchorAfter = await measure(AnchorSize);
  const load1 = loadavg()[0]!;
  const avg = (f: (x: Figures) => number): number => (f(anchorBefore) + f(anchorAfter)) / 2;
  const anchorLeaderCpu = avg((x) => x.leader.cpuPercent);
  const anchorLeaderRss = avg((x) => x.leader.rssMb);
  const anchorVoterCpu = avg((x) => x.voters.cpuPercent);
  const anchorVoterRss = avg((x) => x.voters.rssMb);
  const rows: [string, number, number, number, number][] = [
    ['leader', big.leader.cpuPercent, anchorLeaderCpu, big.leader.rssMb, anchorLeaderRss],
    [`voter (median of ${big.voters.n})`, big.voters.cpuPercent, anchorVoterCpu, big.voters.rssMb, anchorVoterRss],
    [`learner (median of ${big.learners?.n ?? 0})`, big.learners?.cpuPercent ?? NaN, anchorVoterCpu, big.learners?.rssMb ?? NaN, anchorVoterRss],
  ];
  process.stdout.write(`\n| member | CPU % (${bigSize}) | CPU % (${AnchorSize}) | ratio | RSS MB (${bigSize}) | RSS MB (${AnchorSize}) | ratio |\n|---|---|---|---|---|---|---|\n`);
  for (const [name, cpu, aCpu, rss, aRss] of rows) {
    process.stdout.write(`| ${name} | ${fmt(cpu, 2)} | ${fmt(aCpu, 2)} | ${fmt(cpu / aCpu, 2)} | ${fmt(rss)} | ${fmt(aRss)} | ${fmt(rss / aRss, 2)} |\n`);
  }
  process.stdout.write(
    `| whole group | ${fmt(big.totalCpuPercent, 1)} | ${fmt(avg((x) => x.totalCpuPercent), 1)} | ${fmt(big.totalCpuPercent / avg((x) => x.totalCpuPercent), 2)} | ${fmt(big.totalRssMb, 0)} | ${fmt(avg((x) => x.totalRssMb), 0)} | ${fmt(big.totalRssMb / avg((x) => x.totalRssMb), 2)} |\n`,
  );
  process.stdout.write(
    `\nanchor (${AnchorSize} members) before / after: leader CPU ${fmt(anchorBefore.leader.cpuPercent, 2)} / ${fmt(anchorAfter.leader.cpuPercent, 2)} %, voter CPU ${fmt(anchorBefore.voters.cpuPercent, 2)} / ${fmt(anchorAfter.voters.cpuPercent, 2)} %, ` +
      `leader RSS ${fmt(anchorBefore.leader.rssMb)} / ${fmt(anchorAfter.leader.rssMb)} MB; ` +
      `pods to converged: ${AnchorSize} in ${fmt(anchorBefore.convergedMs / 1000)} / ${fmt(anchorAfter.convergedMs / 1000)} s, ${bigSize} in ${fmt(big.convergedMs / 1000)} s; load average ${load0.toFixed(1)} -> ${load1.toFixed(1)}\n`,
  );
  process.stdout.write('The learner ratio is against the 3-member group\'s voters (a 3-member group has no learners).\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`members20: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
