#!/usr/bin/env node
// An example back end for Fanout's hooks (docs/hooks.md), in plain node:http with no framework:
//
//   GET  /            a login form (pick a name)
//   POST /login       starts a session: sets the `app_session` cookie, sends you to the demo chat
//   POST /logout      ends it
//   POST /hooks/connect    session cookie → the user (401 without one)
//   POST /hooks/subscribe  `private:<user>` only for that user (403 for anyone else)
//   POST /hooks/publish    trims the text, refuses empty messages (403), signs them with the
//                          session's name so nobody can post as someone else
//   POST /hooks/webhook    --webhook: verifies the signature, drops repeats by id, logs the
//                          events (channel_occupied/vacated, member_added/removed)
//
// Run it beside a node (README, "Example: a back end with hooks"):
//   FANOUT_HOOK_SECRET=dev-secret node examples/hooks-backend/server.mjs
//   npx fanout serve --presence 'chat:*' --hook-secret dev-secret \
//     --connect-hook http://127.0.0.1:4000/hooks/connect \
//     --subscribe-hook http://127.0.0.1:4000/hooks/subscribe \
//     --publish-hook http://127.0.0.1:4000/hooks/publish \
//     --webhook http://127.0.0.1:4000/hooks/webhook --webhook-secret dev-secret
//
// Environment: PORT (4000), HOST (127.0.0.1), FANOUT_URL (http://127.0.0.1:3000, where /login
// sends the browser; keep the same host name as this back end's, so the cookie reaches both), FANOUT_HOOK_SECRET (the node's --hook-secret; without it signatures are
// not checked, for a first try only), FANOUT_WEBHOOK_SECRET (the node's --webhook-secret; default
// FANOUT_HOOK_SECRET). Sessions live in memory: a restart logs everyone out.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

const PORT = Number(process.env.PORT ?? 4000);
const HOST = process.env.HOST ?? '127.0.0.1';
// The same host name as this back end: the browser sends the session cookie to both.
const FANOUT_URL = process.env.FANOUT_URL ?? 'http://127.0.0.1:3000';
const SECRET = process.env.FANOUT_HOOK_SECRET;
const WEBHOOK_SECRET = process.env.FANOUT_WEBHOOK_SECRET ?? SECRET;
const COOKIE = 'app_session';
/** Longest body this back end reads: hook calls carry one message, a login one name. */
const MAX_BODY = 256 * 1024;

/** session id → { user, name } */
const sessions = new Map();

// ------------------------------------------------------------------ hooks

/** The node signs every call with --hook-secret (webhooks with --webhook-secret): HMAC-SHA256 of the raw body (docs/hooks.md). */
function signedByFanout(raw, header, secret = SECRET) {
  if (secret === undefined) return true;
  const expected = Buffer.from('sha256=' + createHmac('sha256', secret).update(raw).digest('hex'));
  const given = Buffer.from(header ?? '');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** --connect-hook: who is this? The browser's cookie came along with the WebSocket upgrade. */
function connectHook(call) {
  const session = sessions.get(cookieValue(call.headers?.cookie, COOKIE));
  // The reason reaches the page (docs/hooks.md): say where to log in.
  if (!session) return [401, { reason: `log in first at ${ownUrl}/` }];
  return [
    200,
    {
      user: session.user,
      // Rooms for everyone; private:* is decided per channel by the subscribe hook below.
      channels: ['chat:*'],
      publish: ['chat:*', `private:${session.user}`],
      // The display name: presence lists show it beside each client, and every hook call brings it.
      meta: { name: session.name },
    },
  ];
}

/** --subscribe-hook: asked for channels the connect answer's patterns leave out (private:*). */
function subscribeHook(call) {
  if (call.user && call.channel === `private:${call.user}`) return [200, { data: { owner: call.user, name: call.meta?.name ?? null } }];
  return [403, { reason: `${call.channel} is not your channel` }];
}

/**
 * --publish-hook: every socket publish. Trim, refuse empty, and put the session's name on it: the
 * `meta` the connect hook gave the connection comes with every call, and presence shows it too,
 * so the names in the messages and in the list of who is present are the same.
 */
function publishHook(call) {
  const name = call.meta?.name ?? call.user ?? '?';
  const data = call.data;
  if (typeof data === 'string') {
    const text = data.trim();
    return text === '' ? [403, { reason: 'empty message' }] : [200, { data: text }];
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return [403, { reason: 'send text or {"text":…}' }];
  if ('text' in data) {
    const text = typeof data.text === 'string' ? data.text.trim() : '';
    if (text === '') return [403, { reason: 'empty message' }];
    return [200, { data: { ...data, text, name } }];
  }
  // The demo chat's {"event":"hello"} announcements carry no text: only the name is set.
  return [200, { data: { ...data, name } }];
}

/** Ids of the events already handled: a retried request brings the same ids again. Bounded: the oldest are forgotten. */
const seenEvents = new Set();
const MAX_SEEN = 10_000;

/** --webhook: what happened in the cluster, once per cluster, at least once. Answer fast; work after. */
function webhook(call) {
  for (const event of call.events ?? []) {
    if (seenEvents.has(event.id)) continue;
    seenEvents.add(event.id);
    if (seenEvents.size > MAX_SEEN) seenEvents.delete(seenEvents.values().next().value);
    console.log(JSON.stringify({ webhook: event.name, channel: event.channel, user: event.user, id: event.id }));
  }
}

const HOOKS = { '/hooks/connect': connectHook, '/hooks/subscribe': subscribeHook, '/hooks/publish': publishHook };

// ------------------------------------------------------------------ login

function loginPage() {
  return `<!doctype html><meta charset="utf-8"><title>Log in to the chat</title>
<body style="font-family:sans-serif;max-width:30em;margin:3em auto">
<h1>Log in</h1>
<form method="post" action="/login">
  <label>Your name <input name="name" required maxlength="40" autofocus></label>
  <button>Enter the chat</button>
</form>
<p>Your session cookie admits you to Fanout at <a href="${escapeHtml(FANOUT_URL)}/ws">${escapeHtml(FANOUT_URL)}/ws</a>;
only you may subscribe to <code>private:&lt;your id&gt;</code>.</p>
<form method="post" action="/logout"><button>Log out</button></form>`;
}

function login(form, res) {
  const name = (new URLSearchParams(form).get('name') ?? '').trim().slice(0, 40);
  if (name === '') return send(res, 400, 'text/plain', 'a name, please\n');
  const id = randomBytes(18).toString('base64url');
  const user = `${name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'user'}-${id.slice(0, 4)}`;
  sessions.set(id, { user, name });
  // Cookies are per host, not per port: the browser sends this one to the Fanout node on the same
  // host name too, with the WebSocket upgrade. HttpOnly: page scripts never see it.
  res.setHeader('set-cookie', `${COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax`);
  res.writeHead(303, { location: `${FANOUT_URL}/ws?channel=lobby&name=${encodeURIComponent(name)}` }).end();
}

function logout(req, res) {
  sessions.delete(cookieValue(req.headers.cookie, COOKIE));
  res.setHeader('set-cookie', `${COOKIE}=; Path=/; Max-Age=0`);
  res.writeHead(303, { location: '/' }).end();
}

// ------------------------------------------------------------------ plumbing

function cookieValue(header, name) {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) return reject(new Error('body too large'));
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const server = createServer(async (req, res) => {
  try {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/') return send(res, 200, 'text/html; charset=utf-8', loginPage());
    if (req.method !== 'POST') return send(res, 404, 'text/plain', 'not found\n');
    const raw = await readBody(req);
    if (path === '/login') return login(raw.toString('utf8'), res);
    if (path === '/logout') return logout(req, res);
    if (path === '/hooks/webhook') {
      if (!signedByFanout(raw, req.headers['x-fanout-signature'], WEBHOOK_SECRET)) return send(res, 403, 'application/json', '{"error":"bad signature"}');
      webhook(JSON.parse(raw.toString('utf8')));
      return res.writeHead(204).end();
    }
    const hook = HOOKS[path];
    if (!hook) return send(res, 404, 'text/plain', 'not found\n');
    if (!signedByFanout(raw, req.headers['x-fanout-signature'])) return send(res, 403, 'application/json', '{"error":"bad signature"}');
    const [status, answer] = hook(JSON.parse(raw.toString('utf8')));
    console.log(JSON.stringify({ hook: path.slice(7), node: req.headers['x-fanout-node'], status }));
    return send(res, status, 'application/json', JSON.stringify(answer));
  } catch (err) {
    // A 500 tells the node "could not decide": it refuses (503 / unavailable), never admits.
    console.error(err);
    if (!res.headersSent) send(res, 500, 'application/json', '{"error":"internal"}');
  }
});

/** This back end's own address (for the connect hook's reason), known once it listens. */
let ownUrl = `http://${HOST}:${PORT}`;

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  ownUrl = `http://${HOST}:${port}`;
  console.log(`hooks back end on http://${HOST}:${port}/ (log in there; Fanout at ${FANOUT_URL})`);
  process.send?.({ type: 'listening', port });
});

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
