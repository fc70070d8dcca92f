/**
 * A KafkaPresenceStore in a process of its own, for tests that SIGKILL a node: it starts the store
 * with the options given as JSON in argv[2] and, over IPC, joins what it is told to
 * (`{ join: { channel, client, user } }` → `{ joined: client }` or `{ failed: message }`).
 */
import { KafkaPresenceStore, type KafkaPresenceOptions } from '../../src/brokers/kafka/presence.js';

const options = JSON.parse(process.argv[2]!) as Omit<KafkaPresenceOptions, 'logError' | 'warn' | 'rejoin'>;
const store = new KafkaPresenceStore({ ...options, logError: () => {}, warn: () => {}, rejoin: () => {} });
store.start(() => {});

process.on('message', (message: { join?: { channel: string; client: string; user: string | null } }) => {
  const join = message.join;
  if (!join) return;
  store.join(join.channel, { client: join.client, user: join.user }).then(
    () => process.send!({ joined: join.client }),
    (err: unknown) => process.send!({ failed: err instanceof Error ? err.message : String(err) }),
  );
});
