// Type fixture (not compiled by the build, see tsconfig.json's "exclude"): ordinary TypeScript
// against the published SDK types (`fanout/client`, the package's own exports), checked with
// `tsc --strict --noEmit` by test/unit/sdk-types.test.ts. It must compile with no error; each
// `@ts-expect-error` line must be an error (tsc reports an unused one), so the types can get
// neither stricter nor looser than this file says without the test failing.
import { FanoutClient, type Json, type PresenceClient, type Subscription } from 'fanout/client';

interface ChatMessage {
  name: string;
  text: string;
  at?: number;
  tags: string[];
  reply?: { to: number; quote: string | null };
}

interface Hello {
  readonly event: 'hello';
  readonly name: string;
}

const client = new FanoutClient({ url: 'ws://localhost:3000/ws/v1' });
const message: ChatMessage = { name: 'ann', text: 'hi', tags: [] };

// publish<T>() takes values typed with an interface, as a literal or through a variable.
void client.publish('chat:lobby', message);
void client.publish<ChatMessage>('chat:lobby', { name: 'ann', text: 'hi', tags: ['x'], reply: { to: 1, quote: null } });
void client.publish('chat:lobby', 'plain text');
void client.publish('chat:lobby', [1, 2, 3]);
void client.publish('chat:lobby', null);
const hello: Hello = { event: 'hello', name: 'ann' };
void client.publish('chat:lobby', hello);
// An idempotency key makes a publish safe to retry; the answer may say it was a duplicate.
void client.publish('orders:1', message, { idempotencyKey: 'order-1' }).then((ack) => {
  const offset: number = ack.offset;
  const duplicate: true | undefined = ack.duplicate;
  console.log(offset, duplicate);
});

// subscribe<T>(): onMessage gets T, and the subscription publishes T.
const room: Subscription<ChatMessage> = client.subscribe<ChatMessage>('chat:lobby', {
  onMessage: (data, { offset }) => {
    const text: string = data.text;
    const tags: string[] = data.tags;
    console.log(offset, text.toUpperCase(), tags.length, data.reply?.quote);
  },
});
void room.publish(message);
void room.publish({ name: 'ben', text: 'yo', tags: [] });
room.on('message', (data) => console.log(data.name));
client.subscription<ChatMessage>('chat:lobby')?.onMessage((data) => console.log(data.text));

// history() of a typed subscription is typed too.
void room.history(10).then(({ messages }) => messages.map((m) => m.data.text));

// presence() is a plain array: the app may sort it in place.
void room.presence().then((clients: PresenceClient[]) => clients.sort((a, b) => a.client.localeCompare(b.client)));
void client.presence('chat:lobby').then((clients) => clients.push({ client: 'x', user: null }));

// An untyped subscription gets Json and publishes any JSON-compatible value, interfaces included.
const raw = client.subscribe('raw', { onMessage: (data: Json) => console.log(data) });
void raw.publish(message);
void raw.publish(42);

// What JSON cannot carry is refused.
// @ts-expect-error a function is not JSON
void client.publish('chat:lobby', () => 1);
// @ts-expect-error a bigint is not JSON
void client.publish('chat:lobby', 10n);
// @ts-expect-error undefined is not JSON
void client.publish('chat:lobby', undefined);
// @ts-expect-error an object with a method (Date) is not plain JSON
void client.publish('chat:lobby', new Date());
// @ts-expect-error a property holding a function
void client.publish('chat:lobby', { text: 'hi', render: () => 'x' });
// @ts-expect-error a typed subscription publishes its own type only
void room.publish({ text: 'no name' });
// @ts-expect-error onMessage's data is the subscription's T
client.subscribe<ChatMessage>('chat:other', { onMessage: (data) => console.log(data.missing) });
// A last-value channel's latest message is typed as the subscription's T.
interface Price {
  bid: number;
}
const ticker = client.subscribe<Price>('ticker:EURUSD');
const bid: number | undefined = ticker.latest?.data.bid;
const latestOffset: number | undefined = ticker.latest?.offset;
void ticker.ready.then((info) => console.log(bid, latestOffset, info.latest?.offset));
