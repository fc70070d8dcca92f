'use strict';
// The bare `ws` broadcaster: what one writes by hand with `ws` and Redis pub/sub, the baseline
// of the connection-scale run. Every text message on /ws/echo is published on Redis; every node
// sends "Received: " + msg to each of its clients (one ws.send per client, as ws's README shows).
// Heartbeats as ws's README shows them too: every HEARTBEAT_S seconds each client is pinged, and
// one that did not answer the previous ping is terminated.
const { createServer } = require('node:http');
const { WebSocketServer, WebSocket } = require('ws');
const Redis = require('ioredis');

const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const topic = `${process.env.PREFIX || 'ws-bare'}:echo`;
const heartbeatMs = Number(process.env.HEARTBEAT_S || 25) * 1000;
const pub = new Redis(url);
const sub = new Redis(url);

// Ready (HAProxy's /readyz check) once subscribed: before that a broadcast would be missed.
let subscribed = false;
const http = createServer((req, res) => {
  res.statusCode = req.url === '/healthz' ? 200 : req.url === '/readyz' ? (subscribed ? 200 : 503) : 404;
  res.end();
});
const wss = new WebSocketServer({ noServer: true });
http.on('upgrade', (req, socket, head) => {
  if (req.url !== '/ws/echo') return socket.destroy();
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});
wss.on('connection', (ws) => {
  ws.isAlive = true;
  ws.on('pong', () => (ws.isAlive = true));
  ws.on('error', () => undefined);
  ws.on('message', (data, isBinary) => {
    if (!isBinary) pub.publish(topic, data).catch(() => undefined); // Redis down: the message is lost, the node stays up
  });
});
sub.subscribe(topic).then(() => (subscribed = true));
sub.on('messageBuffer', (_channel, message) => {
  const text = 'Received: ' + message.toString();
  for (const client of wss.clients) if (client.readyState === WebSocket.OPEN) client.send(text);
});
if (heartbeatMs > 0) {
  setInterval(() => {
    for (const ws of wss.clients) {
      if (!ws.isAlive) {
        ws.terminate();
        continue;
      }
      ws.isAlive = false;
      ws.ping();
    }
  }, heartbeatMs);
}
http.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  if (process.send) process.send({ type: 'listening', port: http.address().port });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0)); // a clean exit, so --cpu-prof can write its profile
