/**
 * Pod watches of the test API server, as the real one streams them: a watch
 * without a resourceVersion (or "0") starts with synthetic ADDED events; one
 * from a resourceVersion older than the retained history gets an ERROR event
 * carrying a 410 Expired Status on an HTTP 200 stream; a selector watch sees
 * DELETED when an object stops matching and ADDED when it starts matching.
 */
import type http from 'node:http';
import { HttpStatusError, statusObject } from './api-status.js';
import type { Pod } from './api-types.js';
import type { HistoryEntry, PodStore, ResourceVersionCounter, WatchEventType } from './pod-store.js';
import { podTable } from './pod-table.js';
import { parseSelectors } from './request-info.js';
import { fieldsMatch, labelsMatch, type FieldRequirement, type LabelRequirement } from './selectors.js';

interface Watcher {
  response: http.ServerResponse;
  namespace: string | null;
  labels: LabelRequirement[];
  fields: FieldRequirement[];
  table: boolean;
  timers: NodeJS.Timeout[];
  closed: boolean;
}

export class PodWatches {
  private readonly watchers = new Set<Watcher>();

  constructor(
    private readonly pods: PodStore,
    private readonly versions: ResourceVersionCounter,
    /** BOOKMARK interval for watches that allow them; 0 disables periodic bookmarks. */
    private readonly bookmarkIntervalMs: number,
  ) {}

  get openCount(): number {
    return this.watchers.size;
  }

  /** Answers a watch request: streams from `query.resourceVersion` (or the current pods) until closed or timed out. */
  open(response: http.ServerResponse, query: Record<string, string>, namespace: string | null, table: boolean): void {
    const { labels, fields } = parseSelectors(query, namespace);
    const requested = query.resourceVersion;
    let from: number | null = null;
    if (requested !== undefined && requested !== '' && requested !== '0') {
      from = Number(requested);
      if (!Number.isInteger(from) || from < 0) throw new HttpStatusError(400, 'BadRequest', `resourceVersion: Invalid value: "${requested}": must be a non-negative integer`);
    }
    response.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    response.flushHeaders();
    const watcher: Watcher = { response, namespace, labels, fields, table, timers: [], closed: false };
    if (from !== null && from < this.pods.oldestResumableVersion) {
      this.writeEvent(watcher, 'ERROR', this.expiredStatus(from));
      response.end();
      return;
    }
    if (from === null) {
      for (const pod of this.pods.current()) this.deliver(watcher, { resourceVersion: Number(pod.metadata.resourceVersion), type: 'ADDED', previous: null, object: pod });
    } else {
      for (const entry of this.pods.changesAfter(from)) this.deliver(watcher, entry);
    }
    this.watchers.add(watcher);
    response.on('close', () => this.closeWatcher(watcher));
    const timeoutSeconds = query.timeoutSeconds !== undefined ? Number(query.timeoutSeconds) : 0;
    if (timeoutSeconds > 0) {
      watcher.timers.push(
        setTimeout(() => {
          this.closeWatcher(watcher);
          response.end();
        }, timeoutSeconds * 1000),
      );
    }
    if (query.allowWatchBookmarks === 'true' && this.bookmarkIntervalMs > 0) {
      const tick = (): void => {
        this.writeBookmark(watcher);
        watcher.timers.push(setTimeout(tick, this.bookmarkIntervalMs));
      };
      watcher.timers.push(setTimeout(tick, this.bookmarkIntervalMs));
    }
  }

  /** Sends a stored change to every open watch that sees it. */
  deliverToAll(entry: HistoryEntry): void {
    for (const watcher of this.watchers) this.deliver(watcher, entry);
  }

  /** Destroys the connections of all open watches (no final chunk); returns how many there were. */
  dropConnections(): number {
    const count = this.watchers.size;
    for (const watcher of [...this.watchers]) {
      this.closeWatcher(watcher);
      watcher.response.socket?.destroy();
    }
    return count;
  }

  /** Ends every open watch with an ERROR 410, as after the history they stand on was forgotten. */
  expireAll(): void {
    for (const watcher of [...this.watchers]) {
      this.writeEvent(watcher, 'ERROR', this.expiredStatus(0));
      this.closeWatcher(watcher);
      watcher.response.end();
    }
  }

  sendBookmarks(): void {
    for (const watcher of this.watchers) this.writeBookmark(watcher);
  }

  closeAll(): void {
    for (const watcher of [...this.watchers]) this.closeWatcher(watcher);
  }

  private deliver(watcher: Watcher, entry: HistoryEntry): void {
    if (watcher.closed) return;
    const visible = (pod: Pod | null): boolean =>
      pod !== null &&
      (watcher.namespace === null || pod.metadata.namespace === watcher.namespace) &&
      labelsMatch(watcher.labels, pod.metadata.labels) &&
      fieldsMatch(watcher.fields, pod);
    const before = entry.type !== 'ADDED' && visible(entry.previous);
    const after = visible(entry.object);
    let type: WatchEventType | null = null;
    if (entry.type === 'DELETED') type = before ? 'DELETED' : null;
    else if (before && after) type = 'MODIFIED';
    else if (after) type = 'ADDED';
    else if (before) type = 'DELETED';
    if (type !== null) this.writeEvent(watcher, type, watcher.table ? podTable([entry.object], 'Metadata', this.versions.current) : entry.object);
  }

  private writeEvent(watcher: Watcher, type: string, object: unknown): void {
    if (watcher.closed) return;
    watcher.response.write(`${JSON.stringify({ type, object })}\n`);
  }

  private writeBookmark(watcher: Watcher): void {
    this.writeEvent(watcher, 'BOOKMARK', { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: String(this.versions.current) } });
  }

  private closeWatcher(watcher: Watcher): void {
    watcher.closed = true;
    for (const timer of watcher.timers) clearTimeout(timer);
    this.watchers.delete(watcher);
  }

  private expiredStatus(requested: number): Record<string, unknown> {
    return statusObject(410, 'Expired', `too old resource version: ${requested} (${this.pods.oldestResumableVersion})`);
  }
}
