/**
 * HTTP plumbing of the API: the typed error every refusal is thrown as, and strict
 * readers of the query (a typo or a repeated parameter is a 400 naming it).
 */
import type { IncomingMessage } from 'node:http';
import type { Request, Response } from 'express';

/** An answer with a status, a stable error code and a message; the error handler turns it into JSON. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export function sendJson(res: Response, status: number, body: unknown): void {
  res.status(status).json(body);
}

export function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
}

export function isClientError(err: unknown): err is { status: number; message: string; type?: string } {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { status?: unknown; expose?: unknown };
  return typeof e.status === 'number' && e.status >= 400 && e.status < 500 && e.expose === true;
}

/** The query as single values; unknown or repeated parameters are a 400 naming them (a typo must not pass silently). */
export function readQuery(req: Request, allowed: readonly string[]): Map<string, string> {
  const result = new Map<string, string>();
  const query = req.query as Record<string, unknown>;
  for (const [name, value] of Object.entries(query)) {
    if (!allowed.includes(name)) {
      throw badParam(name, allowed.length ? `is not a parameter of ${req.path} (accepted: ${allowed.join(', ')})` : `is not a parameter of ${req.path}, which takes none`);
    }
    if (typeof value !== 'string') throw badParam(name, 'must be given once');
    result.set(name, value);
  }
  return result;
}

export function parseInteger(query: Map<string, string>, name: string, min: number, max: number): number {
  const raw = query.get(name) ?? '';
  const value = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw badParam(name, `must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function parseBoolean(query: Map<string, string>, name: string): boolean {
  const raw = query.get(name);
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw badParam(name, `must be true or false, got ${JSON.stringify(raw)}`);
}

export function badParam(name: string, message: string): HttpError {
  return new HttpError(400, 'bad_parameter', `query parameter ${name} ${message}`, { parameter: name });
}
