'use strict';
// The classic seed server: express + express-ws, one /ws/echo that sends "Received: " + msg to
// every client of this process. It has no cross-node fan-out: with two of these behind a load
// balancer, a client only hears the messages sent on its own node.
const express = require('express');
const expressWs = require('express-ws');

const app = express();
const { getWss } = expressWs(app);
app.get(['/healthz', '/readyz'], (_req, res) => res.send('ok'));
app.ws('/ws/echo', (ws) => {
  ws.on('message', (msg) => {
    for (const client of getWss().clients) if (client.readyState === 1) client.send('Received: ' + msg);
  });
});
const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  if (process.send) process.send({ type: 'listening', port: server.address().port });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0)); // a clean exit, so --cpu-prof can write its profile
