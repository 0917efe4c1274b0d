import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { STATE_FILE_NAME, parseStateBytes } from '../../cluster/state-file.js';
import { seededRandom } from '../../raft/index.js';
import { ProcessCluster } from './harness.js';

let cluster: ProcessCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('durability under SIGKILL', () => {
  it('no member ever votes twice in one term, and no term has two leaders, across random kills', async () => {
    const seed = Number(process.env.DURABILITY_SEED ?? Date.now() % 1_000_000);
    const rounds = Number(process.env.DURABILITY_ROUNDS ?? 20);
    console.log(`durability seed ${seed}, ${rounds} rounds (replay: DURABILITY_SEED=${seed} npx vitest run test/integration/durability.test.ts)`);
    const random = seededRandom(seed);
    // Short ticks make many elections; every kill may land before, during or after a vote.
    cluster = await ProcessCluster.start({ size: 3, tickMs: 20, electionTicks: 10, args: ['--max-clock-drift-ms', '40'] });
    const c = cluster;
    const ids = c.members.map((m) => m.id);
    let kills = 0;
    for (let round = 0; round < rounds; round++) {
      for (const m of c.members) if (!m.child) c.spawn(m);
      const leader = await c.agreedLeader(15_000);
      // Kill the leader, then often a survivor at a random point of the election that follows
      // (before, while or after it votes), then bring both back at random moments.
      await c.signal(leader.self, 'SIGKILL');
      kills++;
      if (random.nextInt(2) === 0) {
        await sleep(random.nextInt(600));
        const survivors = c.running();
        const victim = survivors[random.nextInt(survivors.length)];
        if (victim) {
          await c.signal(victim.id, 'SIGKILL');
          kills++;
        }
      }
      await sleep(random.nextInt(300));
    }
    for (const m of c.members) if (!m.child) c.spawn(m);
    const finalLeader = await c.agreedLeader(15_000);
    expect(finalLeader.term).toBeGreaterThan(1);

    const votes = new Map<string, string>();
    let votesSeen = 0;
    const leaders = new Map<number, string>();
    for (const id of ids) {
      for (const line of c.logs(id, 'vote granted')) {
        votesSeen++;
        const key = `${id}@${String(line.term)}`;
        const candidate = String(line.candidate);
        expect(votes.get(key) ?? candidate, `${id} voted for two candidates in term ${String(line.term)}`).toBe(candidate);
        votes.set(key, candidate);
      }
      for (const m of c.member(id).lines) {
        const match = /"msg":"role Leader, term (\d+),/.exec(m);
        if (!match) continue;
        const term = Number(match[1]);
        expect(leaders.get(term) ?? id, `two leaders in term ${term}`).toBe(id);
        leaders.set(term, id);
      }
      // The state file agrees with the last vote the member announced in its current term.
      const file = join(c.member(id).dataDir, STATE_FILE_NAME);
      const hs = parseStateBytes(readFileSync(file), file).state.hardState;
      if (hs.vote !== '' && votes.has(`${id}@${hs.term}`)) expect(hs.vote).toBe(votes.get(`${id}@${hs.term}`));
    }
    console.log(`durability: ${kills} kills, ${votesSeen} votes granted, ${leaders.size} terms with a leader, final term ${finalLeader.term}`);
    // Every round forced an election: the schedule really exercised voting.
    expect(leaders.size).toBeGreaterThan(rounds);
    expect(votesSeen).toBeGreaterThanOrEqual(rounds);
  }, 180_000);
});
