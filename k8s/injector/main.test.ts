import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseInjectConfig } from './main.js';

const bin = join(import.meta.dirname, '../../dist/cmd/raft-elector.js');

describe('raft-elector inject configuration', () => {
  it('takes the defaults and the flags', () => {
    const c = parseInjectConfig(['--cert-secret=s', '--cert-dns=a.b.svc', '--cert-validity-seconds=60'], { POD_NAMESPACE: 'raft' });
    expect(c).toMatchObject({ listen: { host: '0.0.0.0', port: 8443 }, certSecret: 's', certDns: ['a.b.svc'], certValidityMs: 60_000, namespace: 'raft' });
  });

  it.each([
    [[], 'inject needs --cert-secret'],
    [['--cert-secret=s'], '--cert-secret needs --cert-dns or --cert-ip'],
    [['--tls-cert-file=c'], '--tls-cert-file and --tls-key-file go together'],
    [['--cert-secret=s', '--cert-ip=127.0.0.1', '--namespace=n', '--listen=nope'], '--listen must be HOST:PORT'],
    [['--cert-secret=s', '--cert-ip=127.0.0.1', '--namespace=n', '--cert-check-ms=1'], '--cert-check-ms must be a whole number of at least 100'],
    [['--bogus'], "Unknown option '--bogus'"],
  ])('refuses %j naming the flag', (argv, message) => {
    expect(() => parseInjectConfig(argv, {})).toThrow(message);
  });

  it('exits 2 with one line and no stack trace on a bad flag or a missing template', () => {
    const bad = spawnSync(process.execPath, [bin, 'inject', '--cert-secret=s'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('raft-elector: --cert-secret needs --cert-dns or --cert-ip: the names the API server calls the webhook by\n');
    const missing = spawnSync(process.execPath, [bin, 'inject', '--tls-cert-file=/nonexistent/c', '--tls-key-file=/nonexistent/k', '--template-file=/nonexistent/t.json'], { encoding: 'utf8' });
    expect(missing.status).toBe(2);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toContain('/nonexistent/t.json');
  });
});
