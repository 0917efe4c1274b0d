/**
 * A Kubernetes watch stream with client-node's `Watch.watch` contract, which k8s/pod-watch.ts
 * was written against:
 *
 * - `watch(path, query, onEvent, done)` asks for `path?watch=true&…` and resolves with an
 *   AbortController once the answer's headers came (or the attempt failed);
 * - `onEvent(type, object, event)` for each JSON line (ADDED, MODIFIED, DELETED, BOOKMARK, and
 *   ERROR with a Status, e.g. 410 Expired); a line that is not JSON is skipped;
 * - `done(err)` exactly once: null when the server ends the stream, the error otherwise (an
 *   answer other than 200 is a KubeHttpError carrying the status and the Status body; a cut
 *   connection is an ECONNRESET error; aborting through the controller gives an AbortError).
 *
 * Objects arrive as the API server sent them (timestamps are strings). Until the headers come
 * the request timeout applies; after that, a silent stream is the caller's to judge (PodWatch
 * reopens one after its idle timeout), and TCP keepalive notices a dead peer.
 */
import type * as Http from 'node:http';
import { KubeRequestTimeoutError } from './api-errors.js';
import { KubeHttpError, ResponseTooLargeError, type KubeHttp, type Query } from './kube-http.js';

/** A refusal's Status body is small; more than this is not read. */
const MaxErrorBodyBytes = 64 * 1024;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- client-node's signature: the object is whatever the server sent
export type WatchEventHandler = (type: string, object: any, event: any) => void;

function abortError(): Error {
  return new DOMException('This operation was aborted', 'AbortError');
}

export class KubeWatch {
  constructor(private readonly http: KubeHttp) {}

  async watch(path: string, query: Query, onEvent: WatchEventHandler, done: (err: unknown) => void): Promise<AbortController> {
    const controller = new AbortController();
    const url = this.http.url(path, { watch: 'true', ...query });
    let request: Http.ClientRequest | undefined;
    let finished = false;
    let connectTimer: NodeJS.Timeout | undefined;
    const finish = (err: unknown): void => {
      if (finished) return;
      finished = true;
      clearTimeout(connectTimer);
      request?.destroy();
      done(err);
    };
    controller.signal.addEventListener('abort', () => finish(abortError()), { once: true });
    await new Promise<void>((headersCame) => {
      try {
        request = this.http.open('GET', url);
      } catch (err) {
        finish(err);
        headersCame();
        return;
      }
      connectTimer = setTimeout(() => {
        finish(new KubeRequestTimeoutError(this.http.requestTimeoutMs));
        headersCame();
      }, this.http.requestTimeoutMs);
      request.on('error', (err) => {
        finish(err);
        headersCame();
      });
      request.on('response', (response) => {
        clearTimeout(connectTimer);
        if (response.statusCode !== 200) {
          this.refusal(response, url, (err) => {
            finish(err);
            headersCame();
          });
          return;
        }
        this.stream(response, onEvent, finish, () => finished);
        headersCame();
      });
      request.end();
    });
    return controller;
  }

  /** Reads the (bounded) Status body of a refused watch, then reports it. */
  private refusal(response: Http.IncomingMessage, url: URL, report: (err: unknown) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    const status = response.statusCode ?? 0;
    const error = () => new KubeHttpError(status, Buffer.concat(chunks).toString('utf8'), 'GET', url.pathname);
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MaxErrorBodyBytes) chunks.push(chunk);
      else response.destroy();
    });
    response.on('end', () => report(error()));
    response.on('close', () => report(error()));
    response.on('error', () => report(error()));
  }

  private stream(response: Http.IncomingMessage, onEvent: WatchEventHandler, finish: (err: unknown) => void, finished: () => boolean): void {
    const maxLineBytes = this.http.maxResponseBytes;
    let pending = '';
    const deliver = (line: string): void => {
      if (line.trim() === '') return;
      let event: { type?: unknown; object?: unknown };
      try {
        event = JSON.parse(line) as { type?: unknown; object?: unknown };
      } catch {
        return; // as client-node: a line that is not JSON is skipped
      }
      try {
        onEvent(event.type as string, event.object, event);
      } catch {
        // As client-node: a handler's exception must not end the stream (PodWatch catches its own).
      }
    };
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      pending += chunk;
      let newline = pending.indexOf('\n');
      while (newline >= 0 && !finished()) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        deliver(line);
        newline = pending.indexOf('\n');
      }
      // One event is one line: a line without end is bounded like a response (in characters, at most its bytes).
      if (pending.length > maxLineBytes) finish(new ResponseTooLargeError(maxLineBytes));
    });
    response.on('end', () => {
      if (!finished()) deliver(pending);
      finish(null);
    });
    response.on('error', finish);
    response.on('close', () => {
      if (!response.complete) finish(Object.assign(new Error('the watch connection closed before the stream ended'), { code: 'ECONNRESET' }));
    });
  }
}
