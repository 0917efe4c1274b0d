/**
 * The admin routes, POST /leader/transfer and /leader/step-down: loopback only, a JSON body or
 * none, one transfer at a time; the member's typed refusals become 409/503 answers. The rest of
 * the API (api/server.ts) only reads the member; these ask it to act.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { Member } from '../cluster/interfaces.js';
import { podNameOf } from '../cluster/member-id.js';
import { HttpError, hasBody, readQuery, sendJson } from './http.js';
import { isLoopbackAddress } from './loopback.js';

export interface AdminRoutes {
  transfer: RequestHandler[];
  stepDown: RequestHandler[];
}

/** `express` comes from the caller, which loads it only when a request needs the router (api/server.ts). */
export function createAdminRoutes(o: { member: Member; log: Logger; maxBodyBytes: number; express: typeof import('express') }): AdminRoutes {
  const { member, log } = o;
  let transferInFlight = false;

  function adminOnly(req: Request, _res: Response, next: NextFunction): void {
    const remoteAddress = req.socket.remoteAddress;
    if (isLoopbackAddress(remoteAddress)) {
      next();
      return;
    }
    log.warn({ remoteAddress, method: req.method, path: req.path }, 'admin request from a non-loopback address refused');
    next(new HttpError(403, 'forbidden', `${req.path} only accepts requests from the loopback interface`));
  }

  function jsonBody(): RequestHandler[] {
    const parse = o.express.json({ limit: o.maxBodyBytes, type: 'application/json', strict: true });
    const requireJsonType: RequestHandler = (req, _res, next) => {
      // A body we would not parse must not silently turn "transfer to X" into "transfer to anyone".
      if (hasBody(req) && !req.is('application/json')) {
        next(new HttpError(415, 'unsupported_media_type', 'send the body as application/json, or send none'));
        return;
      }
      next();
    };
    return [requireJsonType, parse];
  }

  async function transfer(req: Request, res: Response): Promise<void> {
    readQuery(req, []);
    const body: unknown = req.body;
    let to: string | undefined;
    if (body !== undefined) {
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new HttpError(400, 'bad_body', 'the body must be a JSON object like {"to": "<member id>"}');
      }
      for (const key of Object.keys(body)) {
        if (key !== 'to') throw new HttpError(400, 'bad_body', `unknown field ${JSON.stringify(key)}; only "to" is accepted`);
      }
      const value = (body as { to?: unknown }).to;
      if (value !== undefined) {
        if (typeof value !== 'string' || value === '') {
          throw new HttpError(400, 'bad_body', '"to" must be a non-empty member id string');
        }
        to = value;
      }
    }
    if (to !== undefined) {
      const view = member.view();
      if (to === view.self) throw new HttpError(400, 'bad_body', `"to" names this member (${to}), which already leads`);
      const ids = member.members().map((m) => m.id);
      // A pod name stands for its one incarnation in the group.
      if (!ids.includes(to)) {
        const byPod = ids.filter((id) => podNameOf(id) === to);
        if (byPod.length === 1) to = byPod[0]!;
      }
      if (to === view.self) throw new HttpError(400, 'bad_body', `"to" names this member (${to}), which already leads`);
      if (!ids.includes(to)) {
        throw new HttpError(400, 'bad_body', `"to" names ${JSON.stringify(to)}, which is not a member (members: ${ids.sort().join(', ')})`);
      }
    }
    await runTransfer(res, to);
  }

  async function stepDown(req: Request, res: Response): Promise<void> {
    readQuery(req, []);
    await runTransfer(res, undefined);
  }

  async function runTransfer(res: Response, to: string | undefined): Promise<void> {
    const view = member.view();
    if (view.role !== 'Leader') {
      throw new HttpError(409, 'not_leader', `this member (${view.self}) is not the leader; ask the leader`, {
        leader: view.leader,
      });
    }
    // One transfer at a time: a second would race the first for the same followers.
    if (transferInFlight) throw new HttpError(409, 'transfer_in_progress', 'a leadership transfer is already under way');
    transferInFlight = true;
    log.info({ from: view.self, to: to ?? null, term: view.term }, 'leadership transfer requested');
    try {
      const result = await member.transferLeadership(to).catch((err: unknown) => {
        throw transferErrorToHttp(err, member);
      });
      log.info({ from: view.self, to: to ?? null, ...result }, 'leadership transfer finished');
      if (result.transferred) {
        sendJson(res, 200, { transferred: true, from: view.self, leader: result.leader });
      } else {
        throw new HttpError(503, 'transfer_incomplete', 'the transfer did not complete in time; this member may still lead', {
          leader: result.leader,
        });
      }
    } finally {
      transferInFlight = false;
    }
  }

  return { transfer: [adminOnly, ...jsonBody(), transfer], stepDown: [adminOnly, ...jsonBody(), stepDown] };
}

/**
 * The member refuses a transfer with a typed error (cluster/errors.ts codes); the state it names
 * changed between our check and the call, so it is the client's conflict, not a server fault.
 */
function transferErrorToHttp(err: unknown, member: Member): unknown {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  switch (code) {
    case 'NOT_LEADER':
      return new HttpError(409, 'not_leader', message, { leader: member.view().leader });
    case 'INVALID_TRANSFER_TARGET':
      return new HttpError(409, 'no_transfer_target', message);
    case 'TRANSFER_IN_PROGRESS':
      return new HttpError(409, 'transfer_in_progress', message);
    case 'MEMBER_STOPPED':
      return new HttpError(503, 'member_stopped', message);
    default:
      return err;
  }
}
