// The demo chat: the client SDK (/ws/client/index.js, built by `npm ci`) on the channel protocol.
// One channel `chat:<room>` per room; messages are {name, text, client, at}; a {event:"hello"}
// message announces a name: shown as "joined" once per name and room (remembered in this
// browser), sent quietly after a reload or reconnect so presence can still put a name on the new
// connection. The log is keyed by offset, so a message shows once, in order, whatever the
// reconnects; presence lists who is subscribed on every node. Offsets stay internal.
//
// Three status lines, each with its own concern, so that one never hides another: #notice the
// connection (and why the node refused it: the SDK asks the node's upgrade check and gives the
// answer as `refusal`), #roomStatus the room's subscription (a refusal stays until the room
// changes or the subscription succeeds), #sendStatus the last message sent.
import { FanoutClient } from '/ws/client/index.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const store = {
  get: (key) => { try { return localStorage.getItem(key); } catch { return null; } },
  set: (key, value) => { try { localStorage.setItem(key, value); } catch { /* private mode */ } },
};

const nameInput = $('name');
const channelInput = $('channel');
const log = $('chat');
const messageInput = $('chatMessage');
const presenceList = $('presence');
nameInput.value = params.get('name') ?? store.get('fanout.name') ?? `guest-${Math.random().toString(36).slice(2, 6)}`;
store.set('fanout.name', nameInput.value);
channelInput.value = params.get('channel') ?? store.get('fanout.channel') ?? 'lobby';

const token = params.get('token');
const client = new FanoutClient({ url: '/ws/v1', ...(token ? { token } : {}) });
window.fanoutClient = client; // for the console (and the end-to-end tests)

/** True once this browser showed `name` joining `channelName`: later hellos there are quiet. */
const joinedKey = (channelName) => `fanout.joined:${channelName}`;
const alreadyJoined = (channelName, name) => store.get(joinedKey(channelName)) === name;

/** The room on screen: its subscription, the offsets shown, the names learnt, who is present. */
let room;

function say(id, text, isError) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle('error', isError);
}
/** The connection's line. */
const notice = (text, isError = false) => say('notice', text, isError);
/** The room's line: why its subscription is refused or waiting. */
const roomStatus = (text, isError = false) => say('roomStatus', text, isError);
/** The last send's line. */
const sendStatus = (text, isError = false) => say('sendStatus', text, isError);

/** The hint for a try-out token that can use every room (the channels claim covers publishing too). */
const TOKEN_HINT = "npx fanout token --secret YOUR_SECRET --sub yourname --channels 'chat:*'";

/** What to tell a person about a refused connection (`refusal` from the SDK: status, code, message, by). */
function refusalText(refusal) {
  const said = refusal.message.charAt(0).toUpperCase() + refusal.message.slice(1);
  const final = refusal.status === 401 || refusal.status === 403;
  switch (refusal.by) {
    case 'connect_hook':
      return final
        ? `${said}. You need to log in there (on the application's site that sent you here), then reload this page.`
        : `${said}; retrying…`;
    case 'token':
      return final
        ? token
          ? `The server refused the token (${refusal.message}): expired or not signed with its key. Get a new token (${TOKEN_HINT}) and reload the page with ?token=…`
          : `This server requires a token: open this page as /ws?token=YOUR_JWT (for a try-out: ${TOKEN_HINT}).`
        : `${said}; retrying…`;
    case 'origin':
      return `This server does not accept pages from ${location.origin} (its --allowed-origins).`;
    default:
      return final ? `The server refused the connection (${refusal.status}): ${refusal.message}.` : `${said}; retrying…`;
  }
}

// ------------------------------------------------------------------ connection facts

let everConnected = false;
let failedAttempts = 0;
let tokenRefused = false;
/** The node's answer to the last refused attempt, shown until the page connects. */
let refused;

client.on('state', (state) => {
  const pill = $('state');
  pill.dataset.state = state;
  pill.textContent = state === 'closed' && refused ? 'refused' : state;
  $('chatSend').disabled = state === 'closed';
  if (state !== 'connected') $('node').textContent = $('transport').textContent = '–';
});
client.on('connected', ({ node }) => {
  everConnected = true;
  failedAttempts = 0;
  refused = undefined;
  $('node').textContent = node;
  $('transport').textContent = client.transport;
  $('you').textContent = nameInput.value;
  document.body.dataset.node = node;
  notice('');
});
client.on('disconnected', ({ reconnect, refusal }) => {
  if (refusal) {
    refused = refusal;
    notice(refusalText(refusal), true);
    return;
  }
  // No answer from the node's upgrade check (a proxy without it?): a refused upgrade looks like a
  // plain drop. After a few failures with a token and never getting in, say what is probably
  // wrong and stop trying.
  if (!everConnected && token && ++failedAttempts >= 3) {
    tokenRefused = true;
    client.close();
    notice('The server refused the token (expired or not signed with its key). Get a new token and reload the page with ?token=…', true);
    return;
  }
  notice(reconnect ? 'Connection lost; reconnecting…' : 'Disconnected.', !reconnect);
});
client.on('closed', ({ code, refusal }) => {
  if (tokenRefused) return;
  if (refusal) return notice(refusalText(refusal), true);
  if (code === 4001) return notice('Your token expired. Get a new one and reload the page with ?token=…', true);
  notice('Disconnected for good; reload the page to try again.', true);
});
client.on('error', (err) => notice(`${err.code}: ${err.message}`, true));

// ------------------------------------------------------------------ the log

/**
 * The name to show for a client: its connection's display name when the back end's connect hook
 * gave one (`meta.name`, which presence carries), else its user, else the name its messages gave.
 */
function nameOf(clientId, user, meta) {
  const given = meta && typeof meta.name === 'string' && meta.name !== '' ? meta.name : undefined;
  return given ?? user ?? room?.names.get(clientId) ?? `guest ${String(clientId).slice(0, 6)}`;
}

function clock(at) {
  const date = typeof at === 'number' ? new Date(at) : null;
  return date && !Number.isNaN(date.getTime()) ? date.toTimeString().slice(0, 5) : '';
}

/** Shows one message at its place by offset; an offset already shown is skipped. */
function show(data, offset) {
  if (!room || room.shown.has(offset)) return;
  const line = document.createElement('div');
  line.className = 'msg';
  line.dataset.offset = String(offset);
  const who = document.createElement('span');
  who.className = 'who';
  const text = document.createElement('span');
  text.className = 'text';
  const meta = document.createElement('span');
  meta.className = 'meta';
  if (data && typeof data === 'object' && !Array.isArray(data)) {
    const name = typeof data.name === 'string' ? data.name : '?';
    if (typeof data.client === 'string') room.names.set(data.client, name);
    if (typeof data.previous === 'string') room.gone.add(data.previous);
    if (data.event === 'hello' && data.quiet) {
      // A page that reconnected under a new client id: learn the name, show no line.
      room.shown.set(offset, null);
      renderPresence();
      return;
    }
    who.textContent = name;
    if (data.event === 'hello') {
      line.classList.add('event');
      text.textContent = 'joined';
    } else {
      text.textContent = typeof data.text === 'string' ? data.text : JSON.stringify(data);
    }
    if (data.client && data.client === client.clientId) line.classList.add('mine');
    meta.textContent = clock(data.at);
  } else {
    who.textContent = '·';
    text.textContent = typeof data === 'string' ? data : JSON.stringify(data);
  }
  line.append(who, text, meta);
  room.shown.set(offset, line);

  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  let before = null;
  for (let el = log.lastElementChild; el; el = el.previousElementSibling) {
    if (el.dataset.offset !== undefined && Number(el.dataset.offset) < offset) break;
    if (el.dataset.offset !== undefined) before = el;
  }
  log.insertBefore(line, before);
  if (atBottom || before === null) log.scrollTop = log.scrollHeight;
  renderPresence();
}

function divider(text) {
  const el = document.createElement('div');
  el.className = 'divider';
  el.textContent = text;
  log.append(el);
  log.scrollTop = log.scrollHeight;
}

async function loadHistory() {
  const current = room;
  try {
    const { messages } = await current.sub.history(50);
    if (room === current) for (const m of messages) show(m.data, m.offset);
  } catch (err) {
    roomStatus(`history unavailable: ${err.message}`, true);
  }
}

// ------------------------------------------------------------------ presence

function renderPresence() {
  if (!room) return;
  const items = [...room.present.entries()].filter(([id]) => !room.gone.has(id)).map(([id, { user, meta }]) => {
    const li = document.createElement('li');
    li.dataset.client = id;
    const name = document.createElement('span');
    name.textContent = nameOf(id, user, meta) + (id === client.clientId ? ' (you)' : '');
    li.append(name);
    return li;
  });
  presenceList.replaceChildren(...items);
  $('presenceCount').textContent = room.presenceOn ? String(items.length) : '';
}

/**
 * Lists who is present: the node's answer, then every join and leave that arrived while it was
 * on its way, in order. The answer may have been read before a join that already reached the page
 * (another node's subscriber), so taking it alone would drop that member until its next hello.
 */
async function loadPresence() {
  const current = room;
  const meanwhile = [];
  current.meanwhile.add(meanwhile);
  try {
    const clients = await current.sub.presence();
    if (room !== current) return;
    current.presenceOn = true;
    current.present = new Map(clients.map((c) => [c.client, { user: c.user, meta: c.meta }]));
    for (const [id, entry] of meanwhile) {
      if (entry) current.present.set(id, entry);
      else current.present.delete(id);
    }
    $('presenceNote').textContent = '';
    renderPresence();
  } catch (err) {
    if (room !== current) return;
    $('presenceNote').textContent = err.code === 'not_found' ? "presence is off here (start the nodes with --presence 'chat:*')" : `presence unavailable: ${err.message}`;
  } finally {
    current.meanwhile.delete(meanwhile);
  }
}

// ------------------------------------------------------------------ rooms

function join(channelName) {
  if (room) void room.sub.unsubscribe().catch(() => {});
  log.replaceChildren();
  presenceList.replaceChildren();
  $('presenceNote').textContent = '';
  roomStatus('');
  // shown: offset → line; names: client id → name; present: client id → {user, meta}; gone: ids of
  // connections their page replaced after a reconnect (until the server's presence sweep drops them).
  // meanwhile: the logs of joins and leaves kept while a presence answer is on its way.
  const current = { channel: channelName, shown: new Map(), names: new Map(), present: new Map(), gone: new Set(), presenceOn: false, sub: null, me: null, meanwhile: new Set() };
  room = current;
  current.sub = client.subscribe(`chat:${channelName}`, {
    onMessage: (data, { offset }) => show(data, offset),
    onSubscribed: (info) => {
      if (room !== current) return;
      roomStatus('');
      const previous = current.me;
      current.me = client.clientId ?? null;
      if (info.outcome === 'fresh') {
        void loadHistory();
        const name = nameInput.value;
        const quiet = alreadyJoined(channelName, name);
        void current.sub
          .publish({ event: 'hello', ...(quiet ? { quiet: true } : {}), name, client: current.me, at: Date.now() })
          .then(() => store.set(joinedKey(channelName), name))
          .catch(() => {});
      } else {
        // Same person, new connection id: tell the others quietly, so presence shows the name.
        void current.sub.publish({ event: 'hello', quiet: true, name: nameInput.value, client: current.me, previous, at: Date.now() }).catch(() => {});
        if (info.outcome === 'recovered') notice(`Reconnected (now served by ${client.nodeId}); you missed nothing.`);
      }
      void loadPresence();
    },
    onUnrecovered: () => {
      if (room !== current) return;
      divider('You were away too long to catch up on everything; here are the latest messages.');
      current.shown.clear();
      for (const el of [...log.querySelectorAll('.msg')]) el.remove();
      void loadHistory();
    },
    onJoin: ({ client: id, user, meta }) => {
      current.present.set(id, { user, meta });
      for (const log of current.meanwhile) log.push([id, { user, meta }]);
      renderPresence();
    },
    onLeave: ({ client: id }) => {
      current.present.delete(id);
      for (const log of current.meanwhile) log.push([id, null]);
      renderPresence();
    },
    onError: (err) => {
      if (room !== current) return;
      if (current.sub.state !== 'failed') return roomStatus(`${current.channel}: ${err.message} (retrying)`, true);
      // Final: it stays on screen until another room is joined.
      const hint = err.code === 'forbidden' && token ? ` Your token does not allow this room; get one that does: ${TOKEN_HINT}` : '';
      roomStatus(`You may not join ${current.channel}: ${err.message}.${hint}`, true);
    },
  });
  document.title = `#${channelName} — Fanout`;
}

$('joinForm').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = nameInput.value.trim();
  const channelName = channelInput.value.trim();
  if (!name || !channelName) return;
  store.set('fanout.name', name);
  store.set('fanout.channel', channelName);
  $('you').textContent = name;
  if (room?.channel !== channelName) join(channelName);
  else if (!alreadyJoined(channelName, name)) {
    // A new name in the same room: announce it once.
    void room.sub
      .publish({ event: 'hello', name, client: client.clientId ?? null, at: Date.now() })
      .then(() => store.set(joinedKey(channelName), name))
      .catch(() => {});
  }
  messageInput.focus();
});

$('chatForm').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = messageInput.value.trim();
  if (!text || !room) return;
  messageInput.value = '';
  room.sub
    .publish({ name: nameInput.value.trim() || '?', text, client: client.clientId ?? null, at: Date.now() })
    .then(() => sendStatus(''))
    .catch((err) => {
      sendStatus(`Not sent (${err.code}): ${err.message}`, true);
      if (!messageInput.value) messageInput.value = text;
    });
  messageInput.focus();
});

/**
 * Asks the node whether it requires a token before connecting: a browser cannot see why an
 * upgrade was refused, so without this a page with no token would retry forever in silence.
 */
async function start() {
  let needsToken = false;
  try {
    needsToken = Boolean((await (await fetch('/ws/config', { cache: 'no-store' })).json()).tokenRequired) && !token;
  } catch {
    // An older node or a proxy without the route: try to connect anyway.
  }
  window.fanoutPage = { token, needsToken };
  window.dispatchEvent(new Event('fanout-page'));
  if (needsToken) {
    notice(`This server requires a token: open this page as /ws?token=YOUR_JWT (for a try-out: ${TOKEN_HINT}).`, true);
    $('chatSend').disabled = true;
    $('join').disabled = true;
    return;
  }
  join(channelInput.value.trim() || 'lobby');
  void client.connect();
}

void start();
