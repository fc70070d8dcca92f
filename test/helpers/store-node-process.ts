/**
 * A store node (helpers/store-nodes.ts) in a process of its own, for tests that SIGKILL one: it
 * opens the stores of the {@link StoreSpec} given as JSON in argv[3] as node argv[2], says
 * `{ ready: true }` over IPC, then does what it is told: `{ join: { channel, client, user } }` →
 * `{ joined: client }`, `{ occupancy: change }` → `{ crossed: events }`, or `{ failed: message }`.
 */
import type { OccupancyChange, PresenceEntry } from '../../src/stores/store.js';
import { errorMessage } from '../../src/errors.js';
import { StoreNode, type StoreSpec } from './store-nodes.js';

/** What a test sends to the process. */
export type StoreNodeCommand = { readonly join: PresenceEntry & { readonly channel: string } } | { readonly occupancy: OccupancyChange };

const node = await StoreNode.open(process.argv[2]!, JSON.parse(process.argv[3]!) as StoreSpec);
process.send!({ ready: true });

process.on('message', (command: StoreNodeCommand) => {
  const work =
    'join' in command
      ? node.stores.presence.join(command.join.channel, { client: command.join.client, user: command.join.user }).then(() => ({ joined: command.join.client }))
      : node.stores.occupancy!.update(command.occupancy).then((events) => ({ crossed: events }));
  work.then(
    (reply) => process.send!(reply),
    (err: unknown) => process.send!({ failed: errorMessage(err) }),
  );
});
