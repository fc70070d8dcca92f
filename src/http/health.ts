/**
 * `/healthz` (the process answers), `/readyz` (the node serves and its bus is connected: HAProxy's
 * check) and `/livez` (the node serves, bus or not: HAProxy's check of the fallback servers it
 * uses when no node is ready, so a broker outage degrades to local delivery instead of refusing
 * every client).
 */
import type { NodeState } from '../node/core.js';
import { sendJson, type Router } from '../transport/router.js';

/** What the health routes read of their node. */
export interface HealthProbe {
  readonly id: string;
  readonly state: NodeState;
  readonly clientCount: number;
  readonly ready: boolean;
  readonly bus: { readonly connected: boolean };
}

export function addHealthRoutes(router: Router, node: HealthProbe): void {
  router.add('GET', '/healthz', (_req, res) => {
    sendJson(res, 200, { status: 'ok', node: node.id, state: node.state, connections: node.clientCount });
  });
  router.add('GET', '/livez', (_req, res) => {
    const live = node.state === 'running';
    sendJson(res, live ? 200 : 503, { status: live ? 'live' : 'unavailable', node: node.id, state: node.state });
  });
  router.add('GET', '/readyz', (_req, res) => {
    const ready = node.ready;
    sendJson(res, ready ? 200 : 503, {
      status: ready ? 'ready' : 'unavailable',
      node: node.id,
      state: node.state,
      bus: node.bus.connected ? 'connected' : 'disconnected',
    });
  });
}
