/**
 * Label and field selectors as the API server parses them (k8s.io/apimachinery
 * labels.Parse and fields.ParseSelector), for the subset kubectl and
 * raft-elector send: =, ==, !=, in, notin, exists, !exists.
 */

export type LabelRequirement =
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | '!exists' };

export class SelectorParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SelectorParseError';
  }
}

const labelKeyPattern = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const labelValuePattern = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Splits on commas that are not inside parentheses (`a in (x,y),b` is two terms). */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of selector) {
    if (char === '(') depth += 1;
    if (char === ')') depth -= 1;
    if (char === ',' && depth === 0) {
      terms.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  terms.push(current);
  return terms.map((term) => term.trim()).filter((term) => term.length > 0);
}

function checkKey(key: string, term: string): string {
  if (!labelKeyPattern.test(key)) throw new SelectorParseError(`unable to parse requirement: invalid label key "${key}" in "${term}"`);
  return key;
}

function checkValue(value: string, term: string): string {
  if (!labelValuePattern.test(value)) throw new SelectorParseError(`unable to parse requirement: invalid label value "${value}" in "${term}"`);
  return value;
}

export function parseLabelSelector(selector: string): LabelRequirement[] {
  const requirements: LabelRequirement[] = [];
  for (const term of splitTerms(selector)) {
    const setMatch = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term);
    if (setMatch) {
      const [, key = '', op, list = ''] = setMatch;
      const values = list.split(',').map((value) => checkValue(value.trim(), term));
      requirements.push({ key: checkKey(key, term), op: op === 'in' ? 'in' : 'notin', values });
      continue;
    }
    const notEqual = /^([^!=\s]+)\s*!=\s*(\S*)$/.exec(term);
    if (notEqual) {
      const [, key = '', value = ''] = notEqual;
      requirements.push({ key: checkKey(key, term), op: 'notin', values: [checkValue(value, term)] });
      continue;
    }
    const equal = /^([^!=\s]+)\s*==?\s*(\S*)$/.exec(term);
    if (equal) {
      const [, key = '', value = ''] = equal;
      requirements.push({ key: checkKey(key, term), op: 'in', values: [checkValue(value, term)] });
      continue;
    }
    const notExists = /^!\s*(\S+)$/.exec(term);
    if (notExists) {
      requirements.push({ key: checkKey(notExists[1] ?? '', term), op: '!exists' });
      continue;
    }
    if (/^\S+$/.test(term)) {
      requirements.push({ key: checkKey(term, term), op: 'exists' });
      continue;
    }
    throw new SelectorParseError(`unable to parse requirement: found '${term}', expected: in, notin, =, ==, !=, !`);
  }
  return requirements;
}

export function labelsMatch(requirements: LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const present = labels ?? {};
  return requirements.every((requirement) => {
    const has = Object.prototype.hasOwnProperty.call(present, requirement.key);
    const value = present[requirement.key];
    switch (requirement.op) {
      case 'exists':
        return has;
      case '!exists':
        return !has;
      case 'in':
        return has && value !== undefined && requirement.values.includes(value);
      case 'notin':
        // As in apimachinery: a missing key satisfies `notin` and `!=`.
        return !has || value === undefined || !requirement.values.includes(value);
    }
  });
}

export interface FieldRequirement {
  field: 'metadata.name' | 'metadata.namespace' | 'status.phase' | 'spec.nodeName';
  equals: boolean;
  value: string;
}

const supportedFields = new Set(['metadata.name', 'metadata.namespace', 'status.phase', 'spec.nodeName']);

export function parseFieldSelector(selector: string): FieldRequirement[] {
  return splitTerms(selector).map((term) => {
    const match = /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
    if (!match) throw new SelectorParseError(`invalid selector: '${term}'; can't understand '${term}'`);
    const [, field = '', op, value = ''] = match;
    if (!supportedFields.has(field)) throw new SelectorParseError(`field label not supported: ${field}`);
    return { field: field as FieldRequirement['field'], equals: op !== '!=', value };
  });
}

export function fieldValue(object: PodLike, field: FieldRequirement['field']): string {
  switch (field) {
    case 'metadata.name':
      return object.metadata.name;
    case 'metadata.namespace':
      return object.metadata.namespace;
    case 'status.phase':
      return object.status?.phase ?? '';
    case 'spec.nodeName':
      return object.spec?.nodeName ?? '';
  }
}

export interface PodLike {
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec?: { nodeName?: string };
  status?: { phase?: string };
}

export function fieldsMatch(requirements: FieldRequirement[], object: PodLike): boolean {
  return requirements.every((requirement) => (fieldValue(object, requirement.field) === requirement.value) === requirement.equals);
}
