/**
 * node:http and node:https through require rather than an ESM import. An ESM import builds a
 * facade that reads every export, and node:http's lazy WebSocket/CloseEvent/MessageEvent
 * getters then load Node's bundled undici: about 13 MB of RSS in a member that never uses it
 * (docs/benchmarks.md). Types still come from the real modules.
 */
import { createRequire } from 'node:module';
import type * as Http from 'node:http';
import type * as Https from 'node:https';

const require = createRequire(import.meta.url);

export const http = require('node:http') as typeof Http;
export const https = require('node:https') as typeof Https;
