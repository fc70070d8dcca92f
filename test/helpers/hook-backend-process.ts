/**
 * A scripted back end for the hook tests, run as its own process (plain node:http): it answers
 * --connect-hook, --subscribe-hook and --publish-hook calls by fixed rules, checks each call's
 * signature the way docs/hooks.md tells a back end to, and keeps a log the tests read at
 * `GET /calls`. Forked by test/helpers/hook-backend.ts; it says `{ type: 'listening', port }` over
 * IPC once it listens (harness/fanout-process.ts forkListening).
 *
 * Rules, by the `session` cookie (connect) or the channel (subscribe, publish):
 * - connect: `session=<name>` of a known user → 200 with that identity; `banned` → 403
 *   `{"reason":"you are banned"}`; `crash` → 500; `hang` → no answer ever (the node must give up);
 *   `sleep` → 200 (user `sleeper`) after SLEEP_MS (default 2000) or at `POST /wake`, whichever
 *   comes first; none → 401 `{"reason":"log in first"}`.
 * - subscribe: `private:<user>` → 200 `{"data":{"welcome":user}}`, another `private:*` → 403 with a
 *   `reason` that holds a newline, a bidi override and 300 more characters (to be cleaned), `slow:*`
 *   → no answer, `open:*` → 200 with an empty body; else 403 without a reason.
 * - publish: `data.grow: N` → 200 `{"data":"xxx…"}` (N characters); else `data.text` trimmed;
 *   empty → 403 `{"reason":"say something"}`; else 200 `{"data":{"text":…,"by":user}}`.
 *
 * A call whose request goes away before it is answered (the node aborted it) is logged in
 * `aborted`; `heldIps` lists the `ip` of every connect call held open.
 *
 * - webhook (`POST /webhook`): every request is logged with its raw body and signature check;
 *   it answers 500 to the first `WEBHOOK_FAILURES` requests (default 0), then 200.
 *
 * The secret comes from HOOK_SECRET.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

const SECRET = process.env.HOOK_SECRET ?? '';

interface Call {
  readonly hook: string;
  /** X-Fanout-Call-Id */
  readonly callId: string | undefined;
  /** When the back end got it (ms). */
  readonly at: number;
  readonly body: unknown;
  readonly node: string | undefined;
  readonly signature: string | undefined;
  readonly signatureValid: boolean;
  readonly contentType: string | undefined;
}

const calls: Call[] = [];
let webhookFailures = Number(process.env.WEBHOOK_FAILURES ?? 0);
/** Answers held open on purpose ("hang", "sleep", "slow:*"), so the tests can count them and stop cleanly; with the connect call's `ip`. */
const held = new Map<ServerResponse, string | undefined>();
/** Calls whose request went away unanswered. */
const aborted: Array<{ hook: string; body: unknown }> = [];
/** Sleeping connect calls, each answered when it wakes. */
const sleepers = new Set<() => void>();
const SLEEP_MS = Number(process.env.SLEEP_MS ?? 2000);

/** The check docs/hooks.md shows: HMAC-SHA256 of the raw body, compared in constant time. */
function signatureValid(raw: Buffer, header: string | undefined): boolean {
  const expected = Buffer.from('sha256=' + createHmac('sha256', SECRET).update(raw).digest('hex'));
  const given = Buffer.from(header ?? '');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function json(res: ServerResponse, status: number, value?: unknown): void {
  const body = value === undefined ? '' : JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function hold(res: ServerResponse, ip?: string): void {
  held.set(res, ip);
  res.on('close', () => held.delete(res));
}

function sleep(res: ServerResponse, ip: string | undefined): void {
  hold(res, ip);
  const wake = (): void => {
    clearTimeout(timer);
    sleepers.delete(wake);
    if (!res.destroyed) json(res, 200, { user: 'sleeper', channels: ['room:*'] });
  };
  const timer = setTimeout(wake, SLEEP_MS);
  sleepers.add(wake);
  res.on('close', () => {
    clearTimeout(timer);
    sleepers.delete(wake);
  });
}

function cookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

const USERS: Record<string, { channels: string[]; publish?: string[]; meta: Record<string, unknown> }> = {
  alice: { channels: ['room:*'], publish: ['room:*'], meta: { name: 'Alice' } },
  bob: { channels: ['room:*'], meta: { name: 'Bob' } },
};

function connect(body: { ip?: string; headers?: { cookie?: string } }, res: ServerResponse): void {
  const session = cookie(body.headers?.cookie, 'session');
  if (session === 'hang') return hold(res, body.ip);
  if (session === 'sleep') return sleep(res, body.ip);
  if (session === 'banned') return json(res, 403, { reason: 'you are banned' });
  if (session === 'crash') return json(res, 500, { error: 'crash' });
  const user = session === undefined ? undefined : USERS[session];
  if (!user || session === undefined) return json(res, 401, { reason: 'log in first' });
  json(res, 200, { user: session, ...user });
}

function subscribe(body: { user?: string | null; channel?: string }, res: ServerResponse): void {
  const channel = body.channel ?? '';
  if (channel.startsWith('slow:')) return hold(res);
  if (channel.startsWith('open:')) return json(res, 200);
  if (channel.startsWith('private:') && body.user && channel === `private:${body.user}`) return json(res, 200, { data: { welcome: body.user } });
  if (channel.startsWith('private:')) return json(res, 403, { reason: `${channel} is\nnot \u202eyours ${'x'.repeat(300)}` });
  json(res, 403, { error: 'not yours' });
}

function publish(body: { user?: string | null; data?: { text?: unknown; grow?: unknown } }, res: ServerResponse): void {
  if (typeof body.data?.grow === 'number') return json(res, 200, { data: 'x'.repeat(body.data.grow) });
  const text = typeof body.data?.text === 'string' ? body.data.text.trim() : '';
  if (text === '') return json(res, 403, { reason: 'say something' });
  json(res, 200, { data: { text, by: body.user ?? null } });
}

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  if (req.method === 'GET' && req.url === '/calls') return json(res, 200, { calls, held: held.size, heldIps: [...held.values()].filter((ip) => ip !== undefined), aborted });
  if (req.method === 'POST' && req.url === '/wake') {
    for (const wake of [...sleepers]) wake();
    return json(res, 200, {});
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    } catch {
      return json(res, 400, { error: 'not JSON' });
    }
    const hook = (req.url ?? '').replace(/^\//, '');
    const signature = req.headers['x-fanout-signature'] as string | undefined;
    // Gone before it was answered: the node abandoned the call.
    res.on('close', () => {
      if (!res.writableFinished) aborted.push({ hook, body });
    });
    calls.push({
      hook,
      callId: req.headers['x-fanout-call-id'] as string | undefined,
      at: Date.now(),
      body,
      node: req.headers['x-fanout-node'] as string | undefined,
      signature,
      signatureValid: signatureValid(raw, signature),
      contentType: req.headers['content-type'],
    });
    if (hook === 'connect') return connect(body, res);
    if (hook === 'subscribe') return subscribe(body, res);
    if (hook === 'publish') return publish(body, res);
    if (hook === 'webhook') {
      if (webhookFailures > 0) {
        webhookFailures--;
        return json(res, 500, { error: 'failing on purpose' });
      }
      return json(res, 200, { ok: true });
    }
    json(res, 404, { error: 'no such hook' });
  });
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.send?.({ type: 'listening', port });
});

process.on('SIGTERM', () => {
  for (const res of held.keys()) res.destroy();
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
