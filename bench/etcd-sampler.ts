/**
 * The etcd side of test/faults/sampler.ts: runs inside the hub namespace (node strips the
 * types; node:* imports only) and asks every etcd member `POST /v3/maintenance/status` on its
 * own loop, one request in flight per member. Prints one JSON line per answer:
 * {m, s, r, self, l, t} = member, sent and received (CLOCK_MONOTONIC ms, the harness's clock),
 * the member's own id, the leader id it knows ('0' for none), the raft term.
 */
import { request, Agent } from 'node:http';

interface Target {
  id: string;
  url: string;
}

const config = JSON.parse(process.argv[2] ?? '{}') as { everyMs: number; timeoutMs: number; members: Target[] };
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

function post(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, method: 'POST', timeout: config.timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end('{}');
  });
}

async function loop(t: Target): Promise<void> {
  while (!stopping) {
    const s = nowMs();
    try {
      const body = JSON.parse(await post(t.url)) as { header?: { member_id?: string }; leader?: string; raftTerm?: string };
      const r = nowMs();
      pending.push(`${JSON.stringify({ m: t.id, s, r, self: body.header?.member_id ?? '', l: body.leader ?? '0', t: Number(body.raftTerm ?? 0) })}\n`);
    } catch {
      // down, refused or past the timeout
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
