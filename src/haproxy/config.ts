/**
 * Generates a complete haproxy.cfg for a Fanout cluster. docs/operations.md explains each line.
 *
 * Requests whose path begins with /ws go to the WebSocket backend (long-lived tunnels after the
 * 101), /ws/echo to a backend of its own; everything else (health, the publish API) to the HTTP
 * backend, /ws/v1/sse (the SSE transport) to one with a long `timeout server`. The other backends' servers track the WebSocket backend's checks so each node is
 * checked once. /metrics is refused at the frontend: Prometheus scrapes each node directly.
 *
 * Balancing is `leastconn` by default: WebSocket connections live for hours, so the count of
 * open connections, not the order of arrival, is what keeps nodes even (and a restarted node
 * fills up again). Echo sockets are counted apart from the others because the demo page opens
 * one of each: in one backend, every page's second socket would land on the node its first
 * socket avoided, and two pages could never show two nodes.
 *
 * Every node is listed twice: as a primary server checked on GET /readyz (serving and connected
 * to the broker) and as a backup tracking a check on GET /livez (serving, broker or not). While
 * any node is ready only ready nodes get clients; when none is (a broker outage), the live ones
 * do, so the outage degrades to per-node delivery instead of refusing everyone.
 */

import { isIP } from 'node:net';

export interface HaproxyServer {
  readonly host: string;
  readonly port: number;
}

export interface HaproxyOptions {
  readonly servers: readonly HaproxyServer[];
  /** Frontend port. */
  readonly port: number;
  /** Frontend bind address. */
  readonly host: string;
  readonly balance: 'roundrobin' | 'leastconn';
  /** Global and frontend connection cap. Keep it under half the process file limit: each proxied connection costs two descriptors. */
  readonly maxconn: number;
  /** Health-check interval, in milliseconds. */
  readonly checkInterval: number;
  /** Port of an optional stats page. */
  readonly statsPort?: number | undefined;
  /**
   * PEM file holding the certificate chain and its private key: HAProxy terminates TLS on `port`
   * (https and wss) and talks plain HTTP to the nodes.
   */
  readonly tlsCert?: string | undefined;
  /** With tlsCert: a plain-HTTP port that redirects every request to https on `port`. */
  readonly redirectPort?: number | undefined;
  /** With tlsCert: Strict-Transport-Security max-age in seconds (0 leaves the header out). */
  readonly hstsMaxAge?: number | undefined;
  /**
   * The local address HAProxy connects to the nodes from (`source` in `defaults`), an IPv4 or IPv6
   * literal. A box has about 28 000 ephemeral ports per source address and destination, so
   * several proxies on one box each need their own (docs/operations.md, "A large set-up").
   */
  readonly source?: string | undefined;
}

/**
 * How long HAProxy keeps an idle client connection open between requests (`timeout
 * http-keep-alive`), in seconds, announced to clients in a `Keep-Alive: timeout=` header. It must be
 * longer than the idle timeouts of common clients so that the client closes first: a client that
 * reuses a connection at the moment HAProxy closes it gets "socket hang up" for a request it cannot
 * know was not served. Node's default agent drops idle sockets after 5 s and fetch (undici) after
 * 4 s, or 1 s before an announced timeout; at 5 s, a back end calling the API every ~5 s lost
 * requests (docs/operations.md). It stays under `timeout client` (30 s), which caps it.
 */
export const HTTP_KEEP_ALIVE_SECONDS = 15;

export const HAPROXY_DEFAULTS = {
  port: 8080,
  host: '0.0.0.0',
  balance: 'leastconn',
  maxconn: 8000,
  checkInterval: 2000,
  hstsMaxAge: 31536000,
} as const;

/**
 * Checks a --source address: an IPv4 or IPv6 literal (IPv6 with or without brackets); returns it
 * as HAProxy's `source` takes it (IPv6 in brackets). Throws a message for a bad one.
 */
export function sourceAddress(value: string): string {
  const bare = /^\[(.*)\]$/.exec(value)?.[1] ?? value;
  const family = isIP(bare);
  if (family === 0) throw new Error(`expected an IP address of the proxy's machine, e.g. 127.0.0.2, got ${JSON.stringify(value)}`);
  return family === 6 ? `[${bare}]` : bare;
}

/** Parses `host:port,host:port`; throws a message naming the bad entry. */
export function parseServers(list: string): HaproxyServer[] {
  const servers = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
      const port = m ? Number(m[2]) : NaN;
      if (!m || port < 1 || port > 65535) throw new Error(`expected host:port, got ${JSON.stringify(entry)}`);
      return { host: m[1]!, port };
    });
  if (servers.length === 0) throw new Error('expected at least one host:port');
  return servers;
}

export function haproxyConfig(options: HaproxyOptions): string {
  const { servers, host, balance, maxconn, checkInterval } = options;
  const bindHost = host.includes(':') ? `[${host}]` : host;
  const check = `check inter ${checkInterval}ms fall 2 rise 2`;
  const addr = (s: HaproxyServer) => `${s.host}:${s.port}`;
  const wsServers = servers.flatMap((s, i) => [
    `    server node${i + 1} ${addr(s)} ${check}`,
    `    server node${i + 1}-live ${addr(s)} backup track fanout_live/node${i + 1}`,
  ]);
  const trackingServers = servers.flatMap((s, i) => [
    `    server node${i + 1} ${addr(s)} track fanout_ws/node${i + 1}`,
    `    server node${i + 1}-live ${addr(s)} backup track fanout_live/node${i + 1}`,
  ]);
  const liveServers = servers.map((s, i) => `    server node${i + 1} ${addr(s)} ${check}`);
  const lines = [
    '# Generated by `fanout haproxy-config`. docs/operations.md explains each line.',
    'global',
    `    maxconn ${maxconn}`,
    '    hard-stop-after 30s',
    '',
    'defaults',
    '    mode http',
    '    option http-server-close',
    '    option logasap',
    '    option forwardfor',
    '    option http-no-delay',
    '    timeout connect 5s',
    '    timeout client 30s',
    '    timeout server 30s',
    '    timeout http-request 10s',
    `    timeout http-keep-alive ${HTTP_KEEP_ALIVE_SECONDS}s`,
    '    timeout client-fin 30s',
    '    timeout server-fin 30s',
    '    timeout tunnel 1h',
    '    default-server init-addr last,libc,none',
    ...(options.source === undefined ? [] : [`    source ${sourceAddress(options.source)}`]),
    '',
    'frontend fanout',
    ...frontendBinds(options, bindHost),
    `    maxconn ${maxconn}`,
    '    http-request deny deny_status 403 if { path /metrics }',
    // HAProxy drops the nodes' Keep-Alive header (hop by hop) and sends none of its own: announce
    // its idle timeout, so clients that read the hint (Node's agent, undici) close a second before.
    `    http-response set-header Keep-Alive timeout=${HTTP_KEEP_ALIVE_SECONDS} unless { status 101 }`,
    '    use_backend fanout_echo if { path /ws/echo }',
    '    use_backend fanout_sse if { path_beg /ws/v1/sse }',
    '    use_backend fanout_ws if { path_beg /ws }',
    // The Pusher Channels protocol (docs/pusher.md): WS /app/{key} is a long-lived tunnel too.
    '    use_backend fanout_ws if { path_beg /app/ }',
    '    default_backend fanout_http',
    '',
    'backend fanout_ws',
    `    balance ${balance}`,
    '    option httpchk GET /readyz',
    '    http-check expect status 200',
    '    option allbackups',
    '    retries 3',
    '    option redispatch 1',
    '    retry-on conn-failure empty-response 503',
    ...wsServers,
    '',
    'backend fanout_echo',
    `    balance ${balance}`,
    '    option allbackups',
    '    retries 3',
    '    option redispatch 1',
    '    retry-on conn-failure empty-response 503',
    ...trackingServers,
    '',
    // SSE (docs/protocol.md, "SSE transport"): a long response, streamed as written. POSTs of a
    // session may land on any node (no stickiness), so only connection failures are retried.
    'backend fanout_sse',
    `    balance ${balance}`,
    '    option allbackups',
    '    option http-no-delay',
    '    timeout server 1h',
    '    retries 3',
    '    option redispatch 1',
    '    retry-on conn-failure',
    ...trackingServers,
    '',
    'backend fanout_http',
    `    balance ${balance}`,
    '    option allbackups',
    ...trackingServers,
    '',
    'backend fanout_live',
    '    option httpchk GET /livez',
    '    http-check expect status 200',
    ...liveServers,
    '',
  ];
  if (options.statsPort !== undefined) {
    lines.push('listen stats', `    bind ${bindHost}:${options.statsPort}`, '    stats enable', '    stats uri /', '    stats refresh 5s', '');
  }
  return lines.join('\n');
}

/**
 * The frontend's binds. With TLS: `ssl crt` on the main port (HTTP/1.1 only, which WebSocket
 * upgrades need), an optional plain port redirecting to https, HSTS on TLS answers, and
 * X-Forwarded-Proto so the nodes know the client used https. The nodes stay on plain HTTP.
 */
function frontendBinds(options: HaproxyOptions, bindHost: string): string[] {
  if (options.tlsCert === undefined) return [`    bind ${bindHost}:${options.port}`];
  if (/\s/.test(options.tlsCert)) throw new Error(`the certificate path must not contain spaces: ${JSON.stringify(options.tlsCert)}`);
  const lines = [`    bind ${bindHost}:${options.port} ssl crt ${options.tlsCert} alpn http/1.1`];
  if (options.redirectPort !== undefined) {
    lines.push(`    bind ${bindHost}:${options.redirectPort}`);
    // Keep the host the client asked for, swap the port for the TLS one.
    const target = options.port === 443 ? 'https://%[req.hdr(host),field(1,:)]%[pathq]' : `https://%[req.hdr(host),field(1,:)]:${options.port}%[pathq]`;
    lines.push(`    http-request redirect location ${target} code 301 unless { ssl_fc }`);
  }
  lines.push('    http-request set-header X-Forwarded-Proto https if { ssl_fc }');
  const maxAge = options.hstsMaxAge ?? HAPROXY_DEFAULTS.hstsMaxAge;
  if (maxAge > 0) lines.push(`    http-response set-header Strict-Transport-Security "max-age=${maxAge}" if { ssl_fc }`);
  return lines;
}
