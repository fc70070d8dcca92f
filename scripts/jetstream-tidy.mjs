#!/usr/bin/env node
// Deletes the JetStream streams that earlier test runs left on the machine's NATS server (.ci/run
// calls it before npm test). CI runs on a machine whose services keep their state between runs,
// and each test stream reserves its max_bytes (--history-max-bytes, 256 MiB by default) against
// the server's storage: after a few hundred left over (runs killed midway, helpers' runs), the
// server refuses new streams and every JetStream test fails to start its nodes. Only streams whose
// name ends in a test prefix's random part (`-` and 8 hex digits, test/helpers/nodes.ts
// uniquePrefix) and that are older than 15 minutes are deleted; anything else is left alone.
import { connect } from 'nats';

const url = process.env.FANOUT_TEST_NATS ?? 'nats://127.0.0.1:4222';
const OLDER_THAN_MS = 15 * 60_000;
const TEST_NAME = /-[0-9a-f]{8}$/;

const nc = await connect({ servers: url, timeout: 5000 }).catch((err) => {
  console.log(`jetstream-tidy: ${url} not reachable (${err.message}); nothing tidied`);
  process.exit(0);
});
try {
  const jsm = await nc.jetstreamManager();
  const old = [];
  for await (const s of jsm.streams.list()) {
    if (TEST_NAME.test(s.config.name) && Date.now() - Date.parse(s.created) > OLDER_THAN_MS) old.push(s.config.name);
  }
  for (const name of old) await jsm.streams.delete(name).catch(() => {});
  console.log(`jetstream-tidy: deleted ${old.length} test streams left by earlier runs`);
} catch (err) {
  console.log(`jetstream-tidy: ${err.message}; nothing tidied`);
} finally {
  await nc.close();
}
