/**
 * The upgrade gate: everything that can be decided before a WebSocket upgrade is decided here and
 * answered with an HTTP status, so a refused client never gets a 101.
 */
import type { IncomingMessage } from 'node:http';
import { ANONYMOUS, type Identity } from '../node/client.js';
import type { FanoutNode } from '../node/node.js';

export type GateResult =
  | { readonly ok: true; readonly identity: Identity }
  | { readonly ok: false; readonly status: number; readonly reason: string; readonly headers?: Readonly<Record<string, string>> };

export interface Gate {
  /** Admits or refuses an upgrade request for `endpoint`. */
  check(req: IncomingMessage, endpoint: string): Promise<GateResult> | GateResult;
}

/** The core checks: the node must be running and under --max-connections. */
export class BasicGate implements Gate {
  constructor(private readonly node: FanoutNode) {}

  check(_req: IncomingMessage, _endpoint: string): GateResult {
    if (this.node.state !== 'running') return { ok: false, status: 503, reason: 'node is not accepting connections' };
    const max = this.node.config.maxConnections;
    if (max > 0 && this.node.clientCount >= max) return { ok: false, status: 503, reason: 'too many connections' };
    return { ok: true, identity: ANONYMOUS };
  }
}
