/** Reading a request as the API server does: its verb and object, its selectors, its wanted format. */
import { HttpStatusError } from './api-status.js';
import type { RequestInfo } from './api-types.js';
import { parseFieldSelector, parseLabelSelector, SelectorParseError, type FieldRequirement, type LabelRequirement } from './selectors.js';

export function requestInfo(method: string, path: string, query: Record<string, string>): RequestInfo {
  const info: RequestInfo = { verb: null, group: '', version: '', resource: null, subresource: null, namespace: null, name: null };
  const parts = path.split('/').filter((part) => part.length > 0);
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 2) {
    info.version = parts[1] ?? '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    info.group = parts[1] ?? '';
    info.version = parts[2] ?? '';
    rest = parts.slice(3);
  } else {
    return info;
  }
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    info.namespace = rest[1] ?? null;
    rest = rest.slice(2);
  }
  info.resource = rest[0] ?? null;
  info.name = rest[1] ?? null;
  info.subresource = rest[2] ?? null;
  if (info.resource === null) return info;
  const watch = query.watch === 'true' || query.watch === '1';
  switch (method) {
    case 'GET':
      info.verb = info.name !== null ? 'get' : watch ? 'watch' : 'list';
      break;
    case 'POST':
      info.verb = 'create';
      break;
    case 'PUT':
      info.verb = 'update';
      break;
    case 'PATCH':
      info.verb = 'patch';
      break;
    case 'DELETE':
      info.verb = info.name !== null ? 'delete' : 'deletecollection';
      break;
  }
  return info;
}

/** `kubectl get` asks for the server-side Table format in its Accept header. */
export function wantsTable(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some((part) => part.includes('as=Table') && part.includes('g=meta.k8s.io'));
}

export function parseSelectors(query: Record<string, string>, namespace: string | null): { labels: LabelRequirement[]; fields: FieldRequirement[] } {
  try {
    const labels = query.labelSelector ? parseLabelSelector(query.labelSelector) : [];
    const fields = query.fieldSelector ? parseFieldSelector(query.fieldSelector) : [];
    if (namespace !== null) fields.push({ field: 'metadata.namespace', equals: true, value: namespace });
    return { labels, fields };
  } catch (error) {
    if (error instanceof SelectorParseError) throw new HttpStatusError(400, 'BadRequest', error.message);
    throw error;
  }
}
