// Type fixture that must NOT compile (test/unit/sdk-types.test.ts checks that tsc reports an error
// on every line marked `// refused`, and nowhere else): proof that the type test can fail, and
// that the SDK's types refuse what JSON cannot carry.
import { FanoutClient } from 'fanout/client';

interface ChatMessage {
  name: string;
  text: string;
}

const client = new FanoutClient({ url: 'ws://localhost:3000/ws/v1' });
const room = client.subscribe<ChatMessage>('chat:lobby');
void client.publish('chat:lobby', { at: new Map<string, number>() }); // refused
void client.publish('chat:lobby', Symbol('x')); // refused
void room.publish({ name: 'ann', text: 1 }); // refused
void client.publish('orders:1', 1, { idempotencyKey: 42 }); // refused
room.onMessage((data) => data.text.toFixed()); // refused
const text: number | undefined = room.latest?.data.text; // refused
