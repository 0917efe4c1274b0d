/**
 * Runs inside the hub namespace (node strips the types; node:* imports only) and asks every
 * member for its leader on its own loop, one request in flight per member. Prints one JSON
 * line per answer, {m, s, r, ...} = member, sent and received (CLOCK_MONOTONIC ms, the clock
 * the harness uses too), then what the probe reads:
 *
 *   leader (default): raft-elector's GET /leader, {l, t, i, d, L} = leader, term, isLeader,
 *     selfId and leaderId (raft ids)
 *   etcd-status: etcd's POST /v3/maintenance/status, {self, l, t} = the member's own id, the
 *     leader id it knows ('0' for none), the raft term (bench/partition.ts)
 *
 * A member that does not answer (down, paused past the timeout) gives no line: no answer is
 * not a claim.
 *
 *   node test/faults/sampler.ts '{"everyMs":5,"timeoutMs":15000,"members":[{"id":"m1","url":"http://198.18.1.1:4040/leader"}]}'
 */
import { request, Agent } from 'node:http';
// A type-only import: node strips it, so the script still loads nothing but node:* modules.
import type { SamplerConfig, SamplerTarget } from './hub-sampler.js';

interface LeaderBody {
  leader: string | null;
  term: number;
  isLeader: boolean;
  selfId?: string;
  leaderId?: string | null;
}

interface EtcdStatusBody {
  header?: { member_id?: string };
  leader?: string;
  raftTerm?: string;
}

const probes = {
  leader: {
    method: 'GET',
    body: undefined,
    fields: (body: LeaderBody) => ({ l: body.leader, t: body.term, i: body.isLeader, d: body.selfId, L: body.leaderId }),
  },
  'etcd-status': {
    method: 'POST',
    body: '{}',
    fields: (body: EtcdStatusBody) => ({ self: body.header?.member_id ?? '', l: body.leader ?? '0', t: Number(body.raftTerm ?? 0) }),
  },
};

const config = JSON.parse(process.argv[2] ?? '{}') as SamplerConfig;
const probe = probes[config.probe ?? 'leader'];
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
let pending: string[] = [];
let stopping = false;

function flush(): void {
  if (pending.length === 0) return;
  process.stdout.write(pending.join(''));
  pending = [];
}
setInterval(flush, 50).unref();

function ask(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, method: probe.method, timeout: config.timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(probe.body);
  });
}

async function loop(t: SamplerTarget): Promise<void> {
  while (!stopping) {
    const s = nowMs();
    try {
      const body = JSON.parse(await ask(t.url)) as LeaderBody & EtcdStatusBody;
      const r = nowMs();
      pending.push(`${JSON.stringify({ m: t.id, s, r, ...probe.fields(body) })}\n`);
    } catch {
      // down, refused or paused past the timeout
    }
    await new Promise((resolve) => setTimeout(resolve, config.everyMs));
  }
}

process.on('SIGTERM', () => {
  stopping = true;
  flush();
  process.exit(0);
});
for (const t of config.members) void loop(t);
