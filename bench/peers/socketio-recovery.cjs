'use strict';
// Socket.IO 4 at its most reliable, for the fault run: connection state recovery on, with the
// adapter that supports it across nodes (@socket.io/redis-streams-adapter: every broadcast goes
// through one Redis stream, and a session is stored in Redis when its connection drops). WebSocket
// transport only; every "message" event is sent to every client on every node as it came.
const { createServer } = require('node:http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-streams-adapter');
const Redis = require('ioredis');

const redis = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
const http = createServer((req, res) => {
  res.statusCode = req.url === '/healthz' || req.url === '/readyz' ? 200 : 404;
  res.end();
});
const io = new Server(http, {
  transports: ['websocket'],
  serveClient: false,
  // Two minutes: longer than any outage of the fault profiles.
  connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true },
  adapter: createAdapter(redis, { streamName: `${process.env.PREFIX || 'socket.io'}-stream`, sessionKeyPrefix: `${process.env.PREFIX || 'socket.io'}-session:` }),
});
io.on('connection', (socket) => {
  socket.on('message', (msg) => io.emit('message', msg));
});
http.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  if (process.send) process.send({ type: 'listening', port: http.address().port });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
