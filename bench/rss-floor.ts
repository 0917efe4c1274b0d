/**
 * The RSS floor under a member: what bare Node.js, the built-ins a member uses, and each
 * library cost, each bundled with esbuild exactly as the image's entry (dist/bundle) is, run
 * with the image's V8 flag, and all sampled in the same window. Then V8 flags on the bundle
 * that loads every library. `node dist/bench/rss-floor.js` (after npm run build).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { cpuSeconds, rssMb } from './proc.js';

const settleMs = Number(process.env.RSS_SETTLE_MS ?? 4_000);
const windowMs = Number(process.env.RSS_WINDOW_MS ?? 6_000);
const ImageFlags = ['--max-semi-space-size=1'];

// node:http through require, as cluster/node-http.ts takes it: an ESM import of it loads undici.
const httpOnly = `const http = require('node:http'); http.createServer((q, r) => r.end('{}')).listen(0, '127.0.0.1');`;
const cryptoOnly = `import crypto from 'node:crypto'; crypto.createHmac('sha256', 'k').update('x').digest();`;
const builtins = `${httpOnly}\n${cryptoOnly}\nimport fs from 'node:fs'; fs.statSync('.');`;
const libs = {
  ws: `import { WebSocketServer } from 'ws'; new WebSocketServer({ port: 0, host: '127.0.0.1' });`,
  express: `import express from 'express'; const app = express(); app.get('/', (q, r) => r.json({})); app.listen(0, '127.0.0.1');`,
  pino: `import { pino } from 'pino'; pino(pino.destination({ dest: '/dev/null', sync: true })).info({ a: 1 }, 'x');`,
  'prom-client': `import { Registry, collectDefaultMetrics, Counter } from 'prom-client'; const r = new Registry(); collectDefaultMetrics({ register: r, eventLoopMonitoringPrecision: 100 }); new Counter({ name: 'x', help: 'x', registers: [r] }).inc(); void r.metrics();`,
};
const keepAlive = `setInterval(() => {}, 100);`;

const cases: Array<{ name: string; source: string; flags: string[] }> = [
  { name: 'bare node', source: keepAlive, flags: ImageFlags },
  { name: 'an http server (node:http)', source: httpOnly + keepAlive, flags: ImageFlags },
  { name: 'one HMAC (node:crypto)', source: cryptoOnly + keepAlive, flags: ImageFlags },
  { name: 'built-ins a member uses (http server, crypto, fs)', source: builtins + keepAlive, flags: ImageFlags },
  ...Object.entries(libs).map(([name, src]) => ({ name: `built-ins + ${name}`, source: builtins + src + keepAlive, flags: ImageFlags })),
  { name: 'built-ins + all four', source: builtins + Object.values(libs).join('\n') + keepAlive, flags: ImageFlags },
  { name: 'all four, no V8 flags', source: builtins + Object.values(libs).join('\n') + keepAlive, flags: [] },
  { name: 'all four, + --max-old-space-size=16', source: builtins + Object.values(libs).join('\n') + keepAlive, flags: [...ImageFlags, '--max-old-space-size=16'] },
  { name: 'all four, + --lite-mode', source: builtins + Object.values(libs).join('\n') + keepAlive, flags: [...ImageFlags, '--lite-mode'] },
  { name: 'all four, + --jitless', source: builtins + Object.values(libs).join('\n') + keepAlive, flags: [...ImageFlags, '--jitless'] },
];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rss-floor-'));
  const children: ChildProcess[] = [];
  try {
    const files: string[] = [];
    for (const [i, c] of cases.entries()) {
      const entry = join(dir, `case-${i}.mjs`);
      writeFileSync(entry, c.source);
      const out = join(dir, `case-${i}.bundle.mjs`);
      // The flags of `npm run bundle`.
      await build({
        entryPoints: [entry],
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node24',
        minify: true,
        outfile: out,
        nodePaths: [resolve(import.meta.dirname, '../../node_modules')],
        banner: { js: "import{createRequire as __r}from'node:module';const require=__r(import.meta.url);" },
        logLevel: 'error',
      });
      files.push(out);
    }
    for (const [i, c] of cases.entries()) children.push(spawn(process.execPath, [...c.flags, files[i]!], { stdio: 'ignore' }));
    await new Promise((r) => setTimeout(r, settleMs));
    const pids = children.map((c) => c.pid!);
    const cpu0 = pids.map((p) => cpuSeconds(p));
    const samples: number[][] = pids.map(() => []);
    for (let t = 0; t < windowMs; t += 500) {
      pids.forEach((pid, i) => samples[i]!.push(rssMb(pid)));
      await new Promise((r) => setTimeout(r, 500));
    }
    console.log(`rss-floor: each case bundled as dist/bundle is, median RSS over ${windowMs / 1000} s after ${settleMs / 1000} s, all in one window; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log('| what runs | flags | RSS (MB) | CPU over the window (s) |');
    console.log('|---|---|---|---|');
    cases.forEach((c, i) => {
      const s = samples[i]!.sort((a, b) => a - b);
      console.log(`| ${c.name} | ${c.flags.join(' ') || 'none'} | ${s[Math.floor(s.length / 2)]!.toFixed(1)} | ${(cpuSeconds(pids[i]!) - cpu0[i]!).toFixed(2)} |`);
    });
  } finally {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
