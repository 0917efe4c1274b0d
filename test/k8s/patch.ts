/**
 * The three patch formats the API server accepts for a built-in type:
 * JSON merge patch (RFC 7386), strategic merge patch (here: merge semantics
 * for maps, which is what it does for metadata.labels and annotations; list
 * merge keys are not modelled), and JSON Patch (RFC 6902).
 */

export class PatchError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 409 | 422 = 422,
  ) {
    super(message);
    this.name = 'PatchError';
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = applyMergePatch(result[key], value);
  }
  return result;
}

/** Strategic merge patch on maps; directives (`$patch`, `$setElementOrder/…`, `$retainKeys`) are honoured where simple. */
export function applyStrategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  if (patch.$patch === 'delete') return undefined;
  if (patch.$patch === 'replace') {
    const { $patch: _directive, ...rest } = patch;
    return clone(rest);
  }
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) continue;
    if (value === null) delete result[key];
    else {
      const merged = applyStrategicMergePatch(result[key], value);
      if (merged === undefined) delete result[key];
      else result[key] = merged;
    }
  }
  return result;
}

function decodePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new PatchError(`invalid JSON pointer "${pointer}"`, 422);
  return pointer
    .slice(1)
    .split('/')
    .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'));
}

interface Location {
  parent: Record<string, unknown> | unknown[];
  key: string;
}

function locate(document: unknown, pointer: string): Location {
  const tokens = decodePointer(pointer);
  const last = tokens.pop();
  if (last === undefined) throw new PatchError('the root document cannot be the target of this operation', 422);
  let node: unknown = document;
  for (const token of tokens) {
    if (Array.isArray(node)) node = node[Number(token)];
    else if (isObject(node)) node = node[token];
    else node = undefined;
    if (node === undefined) throw new PatchError(`doc is missing path: "${pointer}": missing value`, 422);
  }
  if (!Array.isArray(node) && !isObject(node)) throw new PatchError(`doc is missing path: "${pointer}": missing value`, 422);
  return { parent: node, key: last };
}

function read(location: Location, pointer: string): unknown {
  const value = Array.isArray(location.parent) ? location.parent[Number(location.key)] : location.parent[location.key];
  if (value === undefined) throw new PatchError(`doc is missing path: "${pointer}": missing value`, 422);
  return value;
}

function write(location: Location, value: unknown, insert: boolean): void {
  if (Array.isArray(location.parent)) {
    const index = location.key === '-' ? location.parent.length : Number(location.key);
    if (!Number.isInteger(index) || index < 0 || index > location.parent.length) throw new PatchError(`index out of range: ${location.key}`, 422);
    if (insert) location.parent.splice(index, 0, value);
    else location.parent[index] = value;
  } else {
    location.parent[location.key] = value;
  }
}

function remove(location: Location, pointer: string): unknown {
  const value = read(location, pointer);
  if (Array.isArray(location.parent)) location.parent.splice(Number(location.key), 1);
  else delete location.parent[location.key];
  return value;
}

export interface JsonPatchOperation {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: unknown;
}

export function applyJsonPatch(target: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations)) throw new PatchError('json: cannot unmarshal object into Go value of type jsonpatch.Patch', 400);
  const document = clone(target);
  for (const raw of operations) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') throw new PatchError('invalid JSON Patch operation', 400);
    const operation = raw as unknown as JsonPatchOperation;
    switch (operation.op) {
      case 'add':
        write(locate(document, operation.path), clone(operation.value), true);
        break;
      case 'remove':
        remove(locate(document, operation.path), operation.path);
        break;
      case 'replace': {
        const location = locate(document, operation.path);
        read(location, operation.path);
        write(location, clone(operation.value), false);
        break;
      }
      case 'move': {
        const from = operation.from ?? '';
        const value = remove(locate(document, from), from);
        write(locate(document, operation.path), value, true);
        break;
      }
      case 'copy': {
        const from = operation.from ?? '';
        write(locate(document, operation.path), clone(read(locate(document, from), from)), true);
        break;
      }
      case 'test': {
        const actual = read(locate(document, operation.path), operation.path);
        if (JSON.stringify(actual) !== JSON.stringify(operation.value)) {
          throw new PatchError(`testing value ${operation.path} failed: test failed`, 422);
        }
        break;
      }
      default:
        throw new PatchError(`Unexpected kind: ${String((operation as { op: unknown }).op)}`, 400);
    }
  }
  return document;
}
