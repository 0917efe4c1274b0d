/**
 * The routes clients and probes poll, answered straight from node:http: `GET` without a query
 * string on /leader, /, /isLeader, /healthz, /readyz and /metrics. The same bytes and headers as
 * the express routes (a test compares them), at a fraction of the CPU (express's router and
 * response helpers cost about 1 ms per request), and a member that is only polled, probed and
 * scraped never loads express at all (about 8 MB of RSS, docs/benchmarks.md). Anything else, a
 * failure to compute an answer included, goes to express.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface PlainAnswer {
  status: number;
  /** As express would send it (`res.type()` adds the charset). */
  contentType: string;
  body: string;
}

export type PlainRoute = () => PlainAnswer | Promise<PlainAnswer>;

export const JsonContentType = 'application/json; charset=utf-8';

export function jsonAnswer(status: number, body: unknown): PlainAnswer {
  return { status, contentType: JsonContentType, body: JSON.stringify(body) };
}

export function writePlain(res: ServerResponse, answer: PlainAnswer): void {
  res.writeHead(answer.status, {
    'Cache-Control': 'no-store',
    'Content-Type': answer.contentType,
    'Content-Length': Buffer.byteLength(answer.body),
  });
  res.end(answer.body);
}

/**
 * Answers the request if it is a plain GET of one of `routes` and returns true; false leaves it
 * to express. An answer that throws (or rejects) is handed to `fallback`, which runs the request
 * through express, so a failure still gets express's 500.
 */
export function answerPlain(
  req: IncomingMessage,
  res: ServerResponse,
  routes: ReadonlyMap<string, PlainRoute>,
  fallback: () => void,
): boolean {
  if (req.method !== 'GET' || req.url === undefined) return false;
  const route = routes.get(req.url);
  if (!route) return false;
  let answer: PlainAnswer | Promise<PlainAnswer>;
  try {
    answer = route();
  } catch {
    return false;
  }
  if (answer instanceof Promise) {
    answer.then((a) => writePlain(res, a), fallback);
  } else {
    writePlain(res, answer);
  }
  return true;
}
