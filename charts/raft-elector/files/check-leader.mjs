// helm test: ask every member for /leader until all agree on one leader and term, with
// exactly one saying it leads; fail with the last answers after TIMEOUT_SECONDS.
import { promises as dns } from 'node:dns';

const srvName = process.env.SRV_NAME;
const httpPort = Number(process.env.HTTP_PORT);
const replicas = Number(process.env.REPLICAS);
const deadline = Date.now() + Number(process.env.TIMEOUT_SECONDS) * 1000;
let last = 'no answer yet';

async function address(host) {
  try {
    return (await dns.resolve4(host))[0];
  } catch {
    return `[${(await dns.resolve6(host))[0]}]`;
  }
}

async function ask(host) {
  try {
    const response = await fetch(`http://${await address(host)}:${httpPort}/leader`, { signal: AbortSignal.timeout(2000) });
    return { host, status: response.status, body: await response.json() };
  } catch (error) {
    return { host, error: String(error.message ?? error) };
  }
}

async function check() {
  const members = (await dns.resolveSrv(srvName)).map((r) => r.name).sort();
  if (members.length !== replicas) return `${srvName} lists ${members.length} members, want ${replicas}: ${members.join(', ')}`;
  const answers = await Promise.all(members.map(ask));
  const summary = answers.map((a) => `${a.host}: ${a.error ?? JSON.stringify(a.body)}`).join('; ');
  if (answers.some((a) => a.error || a.status !== 200)) return `not every member answers: ${summary}`;
  const leaders = new Set(answers.map((a) => a.body.leader));
  const terms = new Set(answers.map((a) => a.body.term));
  const leading = answers.filter((a) => a.body.isLeader === true).length;
  if (leaders.size !== 1 || leaders.has(null) || terms.size !== 1 || leading !== 1) return `members disagree: ${summary}`;
  console.log(`ok: ${members.length} members agree, leader ${[...leaders][0]} in term ${[...terms][0]}`);
  return null;
}

for (;;) {
  try {
    const problem = await check();
    if (problem === null) process.exit(0);
    last = problem;
  } catch (error) {
    last = `DNS ${srvName}: ${error.message ?? error}`;
  }
  if (Date.now() >= deadline) {
    console.error(`FAIL after ${process.env.TIMEOUT_SECONDS}s: ${last}`);
    process.exit(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
}
