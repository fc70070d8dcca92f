'use strict';
// Socket.IO with the Redis adapter, WebSocket transport only: every "message" event is sent to
// every client on every node as "Received: " + msg.
const { createServer } = require('node:http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const Redis = require('ioredis');

const pub = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
const sub = pub.duplicate();
const http = createServer((req, res) => {
  res.statusCode = req.url === '/healthz' || req.url === '/readyz' ? 200 : 404;
  res.end();
});
const io = new Server(http, {
  transports: ['websocket'],
  serveClient: false,
  adapter: createAdapter(pub, sub, { key: process.env.PREFIX || 'socket.io' }),
});
io.on('connection', (socket) => {
  socket.on('message', (msg) => io.emit('message', 'Received: ' + msg));
});
http.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  if (process.send) process.send({ type: 'listening', port: http.address().port });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0)); // a clean exit, so --cpu-prof can write its profile
