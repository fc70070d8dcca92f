import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MemoryBus } from '../../src/brokers/memory/bus.js';
import { HistoryMetrics } from '../../src/channels/metrics.js';
import { MetricsRegistry } from '../../src/metrics.js';
import { SocketMetrics } from '../../src/node/socket-metrics.js';
import { UpgradeMetrics } from '../../src/transport/metrics.js';
import { sleep } from '../../harness/wait.js';
import { connectChannels, publish, subscribe, waitMessages } from '../helpers/channels.js';
import { scrape, scrapeUntil } from '../helpers/metrics.js';
import { closeNodes, httpUrl, startNode, startNodes, wsUrl } from '../helpers/nodes.js';
import { closeAll, connect, refusedStatus } from '../helpers/ws-client.js';

const base = (url: string) => url.replace(/\/$/, '');

test('GET /metrics reports connections, messages, deliveries and bus traffic per node, each node its own registry', async () => {
  const nodes = await startNodes(2);
  const [a, b] = [await connect(wsUrl(nodes[0]!)), await connect(wsUrl(nodes[1]!))];
  try {
    a.send('hello');
    await b.until((m) => m.includes('Received: hello'));
    await a.until((m) => m.includes('Received: hello'));
    const echo = { endpoint: '/ws/echo' };
    const m1 = await scrapeUntil(base(httpUrl(nodes[0]!)), (s) => s.value('fanout_deliveries_total') >= 1);
    const m2 = await scrapeUntil(base(httpUrl(nodes[1]!)), (s) => s.value('fanout_deliveries_total') >= 1);
    assert.equal(m1.value('fanout_node_info', { node: 'n1' }), 1);
    assert.equal(m2.value('fanout_node_info', { node: 'n2' }), 1);
    for (const m of [m1, m2]) {
      assert.equal(m.value('fanout_connections', echo), 1);
      assert.equal(m.value('fanout_connections_opened_total', echo), 1);
      assert.equal(m.value('fanout_bus_connected'), 1);
      assert.equal(m.value('fanout_ready'), 1);
    }
    // Node 1 took the message from its client and published it; node 2 got it over the bus.
    assert.equal(m1.value('fanout_messages_in_total', echo), 1);
    assert.equal(m1.value('fanout_bytes_in_total', echo), 5);
    assert.equal(m1.value('fanout_messages_out_total', { kind: 'echo' }), 1);
    assert.equal(m2.value('fanout_messages_in_total', echo), 0);
    assert.equal(m2.value('fanout_bus_messages_in_total', { kind: 'echo' }), 1);
    assert.equal(m1.value('fanout_bus_messages_in_total', { kind: 'echo' }), 0, 'a node does not count its own messages coming back');
    // One frame to one socket on each node: "Received: hello" framed is 2 + 15 bytes.
    for (const m of [m1, m2]) {
      assert.equal(m.value('fanout_deliveries_total'), 1);
      assert.equal(m.value('fanout_socket_writes_total'), 1);
      assert.equal(m.value('fanout_bytes_out_total'), 17);
    }
    // Latency is measured where a message arrives over the bus.
    assert.equal(m2.value('fanout_publish_latency_seconds_count'), 1);
    assert.equal(m1.value('fanout_publish_latency_seconds_count'), 0);
    assert.ok(m2.value('fanout_publish_latency_seconds_sum') >= 0);

    b.ws.close(1000);
    const after = await scrapeUntil(base(httpUrl(nodes[1]!)), (s) => s.value('fanout_connections', echo) === 0);
    assert.equal(after.value('fanout_connections_closed_total', { endpoint: '/ws/echo', reason: 'normal' }), 1);
  } finally {
    closeAll([a, b]);
    await closeNodes(nodes);
  }
});

test('channel, presence and control traffic is counted where echo is: out by kind on the node that published, in only from other nodes, timed where it reached sockets', async () => {
  const nodes = await startNodes(2, { presence: 'room:*' });
  const [pub, subA, subB] = [await connectChannels(nodes[0]!), await connectChannels(nodes[0]!), await connectChannels(nodes[1]!)];
  try {
    await subscribe(subA, 'room:1');
    await subscribe(subB, 'room:1');
    await publish(pub, 'room:1', 'hi');
    await waitMessages(subB, 'room:1', 1);
    await waitMessages(subA, 'room:1', 1);
    const [a, b] = [base(httpUrl(nodes[0]!)), base(httpUrl(nodes[1]!))];
    const m1 = await scrapeUntil(a, (s) => s.value('fanout_messages_out_total', { kind: 'presence' }) === 1);
    const m2 = await scrapeUntil(b, (s) => s.value('fanout_messages_out_total', { kind: 'presence' }) === 1);
    assert.equal(m1.value('fanout_messages_out_total', { kind: 'channel' }), 1);
    assert.equal(m2.value('fanout_messages_out_total', { kind: 'channel' }), 0);
    for (const m of [m1, m2]) assert.equal(m.value('fanout_messages_out_total', { kind: 'control' }), 1, "each node's subscription put one fence on the topic");
    assert.equal(m2.value('fanout_bus_messages_in_total', { kind: 'channel' }), 1);
    assert.equal(m1.value('fanout_bus_messages_in_total', { kind: 'channel' }), 0, "a node's own channel message is delivered from the bus but not counted as input");
    assert.equal(m1.value('fanout_bus_messages_in_total', { kind: 'presence' }), 1, "the other node's join");
    for (const m of [m1, m2]) assert.ok(m.value('fanout_publish_latency_seconds_count') >= 1, 'channel messages that reached sockets are timed');
  } finally {
    closeAll([pub, subA, subB]);
    await closeNodes(nodes);
  }
});

test('a bus outage shows on /metrics: bus_connected 0, ready 0, and every refused publish counted', async () => {
  const nodes = await startNodes(2);
  const client = await connect(wsUrl(nodes[0]!));
  try {
    (nodes[0]!.bus as MemoryBus).disconnect();
    client.send('one');
    client.send('two');
    // Local delivery goes on while the bus is away.
    await client.until((m) => m.length === 2);
    const m = await scrapeUntil(base(httpUrl(nodes[0]!)), (s) => s.value('fanout_bus_errors_total', { operation: 'publish' }) === 2);
    assert.equal(m.value('fanout_bus_connected'), 0);
    assert.equal(m.value('fanout_ready'), 0);
    assert.equal(m.value('fanout_messages_out_total', { kind: 'echo' }), 0);
    (nodes[0]!.bus as MemoryBus).reconnect();
    const back = await scrape(base(httpUrl(nodes[0]!)));
    assert.equal(back.value('fanout_bus_connected'), 1);
  } finally {
    client.close();
    await closeNodes(nodes);
  }
});

test('refused upgrades are counted by reason and status', async () => {
  const node = await startNode({ maxConnections: 1 });
  const first = await connect(wsUrl(node));
  try {
    assert.equal(await refusedStatus(wsUrl(node)), 503);
    assert.equal(await refusedStatus(wsUrl(node)), 503);
    const m = await scrape(base(httpUrl(node)));
    assert.equal(m.value('fanout_handshake_rejections_total', { reason: 'too_many_connections_on_this_node', status: '503' }), 2);
  } finally {
    first.close();
    await node.close();
  }
});

test('--metrics-token: /metrics answers 401 without the token and 200 with it', async () => {
  const node = await startNode({ metricsToken: 's3cret' });
  try {
    for (const headers of [{}, { authorization: 'Bearer wrong!' }, { authorization: 's3cret' }] as Array<Record<string, string>>) {
      const res = await fetch(httpUrl(node, '/metrics'), { headers });
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
      await res.arrayBuffer();
    }
    const m = await scrape(base(httpUrl(node)), 's3cret');
    assert.equal(m.value('fanout_ready'), 1);
    assert.match(m.text, /# TYPE fanout_publish_latency_seconds histogram/);
  } finally {
    await node.close();
  }
});

test('the metrics modules on one registry: history totals follow each channel\'s size; rejection reasons are sanitised and capped', async () => {
  const metrics = new MetricsRegistry({ node: 'x' });
  const history = new HistoryMetrics(metrics.registry);
  const upgrades = new UpgradeMetrics(metrics.registry);
  const sockets = new SocketMetrics(metrics.registry);
  history.channelSize('a', 3);
  history.channelSize('b', 2);
  history.channelSize('a', 5);
  history.channelSize('b', 0);
  let m = await metrics.render();
  assert.match(m.body, /^fanout_history_channels 1$/m);
  assert.match(m.body, /^fanout_history_messages 5$/m);

  upgrades.rejected('Origin "https://evil.example" not allowed', 403);
  for (let i = 0; i < 40; i++) upgrades.rejected(`reason ${i}`, 401);
  m = await metrics.render();
  assert.match(m.body, /fanout_handshake_rejections_total\{reason="origin_https_evil_example_not_allowed",status="403"\} 1/);
  const reasons = new Set([...m.body.matchAll(/fanout_handshake_rejections_total\{reason="([^"]+)"/g)].map((x) => x[1]));
  assert.equal(reasons.size, 33, 'at most 32 reasons plus "other"');
  assert.ok(reasons.has('other'));

  sockets.rateLimited('/ws/v1');
  sockets.rateLimited('/ws/echo', true);
  sockets.slowConsumer('/ws/v1');
  m = await metrics.render();
  assert.match(m.body, /fanout_rate_limited_total\{endpoint="\/ws\/v1",action="refused"\} 1/);
  assert.match(m.body, /fanout_rate_limited_total\{endpoint="\/ws\/echo",action="closed"\} 1/);
  assert.match(m.body, /fanout_slow_consumer_closes_total\{endpoint="\/ws\/v1"\} 1/);
});

test('channel publishes show in the history totals; channels whose history expired leave them', async () => {
  const node = await startNode({ historySize: 3 });
  const client = await connectChannels(node);
  try {
    for (let i = 0; i < 5; i++) await publish(client, 'news', i);
    await publish(client, 'sport', 'x');
    const m = await scrape(base(httpUrl(node)));
    assert.equal(m.value('fanout_history_channels'), 2);
    assert.equal(m.value('fanout_history_messages'), 3 + 1, 'capped at --history-size');
  } finally {
    client.close();
    await node.close();
  }
  const metrics = new MetricsRegistry({ node: 'x' });
  const history = new HistoryMetrics(metrics.registry, { historyTtlMs: 50 });
  history.channelSize('a', 3);
  await sleep(80); // on purpose: past historyTtlMs, so channel a's gauge expires
  history.channelSize('b', 1);
  const body = (await metrics.render()).body;
  assert.match(body, /^fanout_history_channels 1$/m);
  assert.match(body, /^fanout_history_messages 1$/m);
});
