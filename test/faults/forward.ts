/**
 * Runs inside the hub namespace (node strips the types; node:* imports only): accepts TCP on
 * HOST:PORT and pipes each connection to a Unix socket the test process serves. Unix sockets
 * bound to a path cross network namespaces, so members reach the test API server (which
 * listens in the root namespace) over the never-faulted obs bridge, with nothing added to the
 * root namespace's network.
 *
 *   node test/faults/forward.ts 198.18.1.254 6443 /tmp/dir/api.sock
 */
import { connect, createServer } from 'node:net';

const [host, port, path] = process.argv.slice(2);
if (!host || !port || !path) {
  process.stderr.write('usage: forward.ts HOST PORT UNIX_SOCKET_PATH\n');
  process.exit(2);
}
const server = createServer((client) => {
  const upstream = connect(path);
  client.pipe(upstream).pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
server.on('error', (err) => {
  process.stderr.write(`forward: ${err.message}\n`);
  process.exit(1);
});
server.listen(Number(port), host, () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
