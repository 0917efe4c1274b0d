/**
 * Runs inside the hub namespace (node strips the types; node:* imports only) and samples
 * every member's GET /leader on its own loop, one request in flight per member. Prints one
 * JSON line per answer: {m, s, r, l, t, i, d, L} = member, sent and received (CLOCK_MONOTONIC ms,
 * the clock the harness uses too), leader, term, isLeader, selfId and leaderId (raft ids). A member that does not answer
 * (down, paused past the timeout) gives no line: no answer is not a claim.
 *
 *   node test/faults/sampler.ts '{"everyMs":5,"timeoutMs":15000,"members":[{"id":"m1","url":"http://198.18.1.1:4040/leader"}]}'
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

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, timeout: config.timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function loop(t: Target): Promise<void> {
  while (!stopping) {
    const s = nowMs();
    try {
      const body = JSON.parse(await get(t.url)) as { leader: string | null; term: number; isLeader: boolean; selfId?: string; leaderId?: string | null };
      const r = nowMs();
      pending.push(`${JSON.stringify({ m: t.id, s, r, l: body.leader, t: body.term, i: body.isLeader, d: body.selfId, L: body.leaderId })}\n`);
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
