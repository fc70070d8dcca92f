/**
 * The WebSocket the SDK runs on: the browser's (or any global `WebSocket`), else Node's `ws`
 * package, loaded on demand so a browser never fetches it. Only the WHATWG surface is used
 * (`onopen`/`onmessage`/`onclose`/`onerror`, `send`, `close`), which `ws` implements too.
 */

/** The part of a WebSocket the SDK uses. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { readonly data: unknown }) => void) | null;
  onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** A WebSocket class: the global one, `ws`'s, or a test double. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** WebSocket.OPEN in every implementation. */
export const OPEN = 1;

/** The given constructor, else the global `WebSocket`, else `ws` (Node). */
export async function resolveWebSocket(given?: WebSocketConstructor): Promise<WebSocketConstructor> {
  if (given) return given;
  const native = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof native === 'function') return native;
  // A variable specifier keeps browsers and bundlers from resolving `ws`: only Node gets here.
  const specifier = 'ws';
  const mod = (await import(specifier)) as { WebSocket?: WebSocketConstructor; default?: WebSocketConstructor };
  const ctor = mod.WebSocket ?? mod.default;
  if (typeof ctor !== 'function') throw new Error('no WebSocket: run in a browser, install the "ws" package, or pass options.WebSocket');
  return ctor;
}

/** The HTTP status of a refused upgrade, when the implementation says (ws: "Unexpected server response: 401"). */
export function refusedStatus(event: unknown): number | undefined {
  const message = (event as { message?: unknown; error?: { message?: unknown } } | null)?.message ?? (event as { error?: { message?: unknown } } | null)?.error?.message;
  if (typeof message !== 'string') return undefined;
  const match = /Unexpected server response: (\d{3})/.exec(message);
  return match ? Number(match[1]) : undefined;
}

/** A one-line description of a socket error event, for logs. */
export function errorText(event: unknown): string {
  const message = (event as { message?: unknown } | null)?.message;
  return typeof message === 'string' && message !== '' ? message : 'WebSocket error';
}
