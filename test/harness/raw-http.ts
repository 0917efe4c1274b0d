/**
 * HTTP/1.1 over a raw socket from a chosen source address, for admission tests: a
 * client from 127.0.0.2 is a stranger to a server whose local CIDRs are
 * 127.0.0.1/32, all on this machine's loopback. fetch() cannot pick its source
 * address, and a flood of fetches would hide when each socket closes.
 */
import { connect, type Socket } from 'node:net';

export interface RawExchange {
  socket: Socket;
  /** The response status once the head arrived; rejects if the socket closes first. */
  status: Promise<number>;
  /** Everything received after the head, so far. */
  body(): string;
  /** Resolves when the socket closed, whoever closed it. */
  closed: Promise<void>;
  isClosed(): boolean;
}

/** Opens a socket from `localAddress` to 127.0.0.1:`port` that sends nothing. Errors (a reset) only close it. */
export function rawSocket(port: number, localAddress: string): { socket: Socket; connected: Promise<void>; closed: Promise<void>; isClosed(): boolean } {
  const socket = connect({ host: '127.0.0.1', port, localAddress });
  let isClosed = false;
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => reject(new Error(`socket from ${localAddress} closed before it connected`)));
  });
  connected.catch(() => {});
  return { socket, connected, closed, isClosed: () => isClosed };
}

/** Sends `GET path` from `localAddress` and reads the answer as it comes. */
export function rawGet(port: number, path: string, localAddress: string): RawExchange {
  const raw = rawSocket(port, localAddress);
  let received = '';
  let headEnd = -1;
  const status = new Promise<number>((resolve, reject) => {
    raw.socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
      if (headEnd < 0) {
        headEnd = received.indexOf('\r\n\r\n');
        if (headEnd >= 0) {
          const m = /^HTTP\/1\.1 (\d{3}) /.exec(received);
          if (m) resolve(Number(m[1]));
          else reject(new Error(`not an HTTP answer: ${JSON.stringify(received.slice(0, 80))}`));
        }
      }
    });
    raw.closed.then(() => reject(new Error(`GET ${path} from ${localAddress}: closed before an answer`)));
  });
  status.catch(() => {});
  raw.connected.then(
    () => raw.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`),
    () => {},
  );
  return {
    socket: raw.socket,
    status,
    body: () => (headEnd < 0 ? '' : received.slice(headEnd + 4)),
    closed: raw.closed,
    isClosed: raw.isClosed,
  };
}

/**
 * `count` silent sockets, the i-th from `localAddress(i)` (or all from one address), opened `batch`
 * at a time (bounded, so the accept queue keeps up).
 */
export async function silentSockets(
  port: number,
  localAddress: string | ((i: number) => string),
  count: number,
  batch = 100,
): Promise<ReturnType<typeof rawSocket>[]> {
  const from = typeof localAddress === 'string' ? () => localAddress : localAddress;
  const all: ReturnType<typeof rawSocket>[] = [];
  for (let i = 0; i < count; i += batch) {
    const wave = Array.from({ length: Math.min(batch, count - i) }, (_, j) => rawSocket(port, from(i + j)));
    // A socket the server refused may close before or after its connect; either settles it.
    await Promise.all(wave.map((s) => Promise.race([s.connected, s.closed]).catch(() => {})));
    all.push(...wave);
  }
  return all;
}

/** The value of one sample in a Prometheus text scrape, or undefined. */
export function sample(scrape: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of scrape.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}
