/**
 * Calls that act on every node of the cluster (the server API on users, docs/auth.md): a request
 * goes out on the cluster's control topic, every node (the caller's included: the topic delivers
 * its own messages) runs the call's handler on its own sockets and answers on the caller's reply
 * topic, and the caller resolves once every node it knows has answered, or at the deadline
 * ({@link CALL_DEADLINE_MS}), with what came.
 *
 * Which nodes the caller waits for: its own registry of the cluster, kept over the same topic,
 * so it works on every bus (no store needed). Each node says `hello` when its bus connects and
 * every {@link HELLO_MS}, answers a newcomer's `hello` with its own at once, and says `bye` when it
 * stops; a node not heard from for {@link NODE_SILENT_MS} is forgotten. A node that died without a
 * `bye` is waited for until the deadline (then the answer has fewer nodes than expected) for at most
 * that long. Answers from a node not yet known count as well.
 *
 * Bounds: at most {@link MAX_CALLS_IN_FLIGHT} calls of this node wait at once (more are refused
 * with BusUnavailableError, answered 503), each call's handler work is the handler's to bound, and
 * every wait ends at the deadline.
 *
 * Topics: `<prefix>:control` (requests and the registry, every node) and `<prefix>:reply:<node>`
 * (each node's answers). Bodies are JSON in a CLUSTER envelope; a malformed one is dropped.
 */
import { randomBytes } from 'node:crypto';
import { BusUnavailableError } from '../errors.js';
import type { Logger } from '../logger.js';
import { EnvelopeKind } from '../protocol/envelope.js';
import type { Json } from '../protocol/frames.js';
import type { Topics } from './topics.js';

/** How long a call waits for the nodes' answers at most. */
export const CALL_DEADLINE_MS = 2000;
/** How often a node says it is there. */
export const HELLO_MS = 5000;
/** A node not heard from for this long is no longer waited for. */
export const NODE_SILENT_MS = 3 * HELLO_MS;
/** Calls one node may have waiting at once. */
export const MAX_CALLS_IN_FLIGHT = 256;

/** What a node's handler gives back; `null` when it had nothing to say. */
export type CallHandler = (args: Json) => Json | Promise<Json>;

/** The answers of one call. */
export interface CallResult {
  /** Each answering node's result, by node id. */
  readonly results: ReadonlyMap<string, Json>;
  /** How many nodes were expected (known when the call went out, this one included). */
  readonly expected: number;
  /** True when the deadline passed before every expected node answered. */
  readonly timedOut: boolean;
}

interface Waiting {
  readonly expected: Set<string>;
  readonly results: Map<string, Json>;
  readonly done: (timedOut: boolean) => void;
}

export interface ClusterCallsOptions {
  readonly nodeId: string;
  /** --bus-prefix. */
  readonly prefix: string;
  readonly topics: Topics;
  readonly logger: Logger;
}

export class ClusterCalls {
  private readonly handlers = new Map<string, CallHandler>();
  /** Other nodes by id → when last heard (ms, this node's clock). */
  private readonly nodes = new Map<string, number>();
  private readonly waiting = new Map<string, Waiting>();
  private readonly controlTopic: string;
  private readonly replyTopic: string;
  private readonly idPrefix = randomBytes(4).toString('hex');
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: ClusterCallsOptions) {
    this.controlTopic = `${options.prefix}:control`;
    this.replyTopic = `${options.prefix}:reply:${options.nodeId}`;
  }

  /** Subscribes the topics and starts saying hello (once the bus is connected, and after every reconnect). */
  start(): void {
    const { topics } = this.options;
    topics.subscribeTopic(this.controlTopic, (kind, body, origin) => this.fromControl(kind, body, origin), 'deliver');
    topics.subscribeTopic(this.replyTopic, (kind, body, origin) => this.fromReply(kind, body, origin), 'deliver');
    // Hello once the control topic is live at the broker, so the others' answers are not missed.
    const greet = (): void => {
      topics.subscribe(this.controlTopic).then(
        () => this.hello(false),
        () => {
          // Not live yet: the router retries it, and the periodic hello says it later.
        },
      );
    };
    topics.onStatus((status) => {
      if (status === 'connected') greet();
    });
    if (topics.connected) greet();
    this.timer = setInterval(() => this.hello(false), HELLO_MS);
    this.timer.unref();
  }

  /** Says bye (best effort) and stops answering; waiting calls end now with what they have. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    for (const waiting of [...this.waiting.values()]) waiting.done(true);
    await this.send(this.controlTopic, { t: 'bye' }).catch(() => {});
  }

  /** Registers the handler of an operation (one per name). */
  handle(op: string, handler: CallHandler): void {
    this.handlers.set(op, handler);
  }

  /** Nodes this one knows of, itself included. */
  knownNodes(now = Date.now()): string[] {
    this.forgetSilent(now);
    return [this.options.nodeId, ...this.nodes.keys()];
  }

  /**
   * Runs `op` with `args` on every node; resolves with the answers once every known node answered
   * or at the deadline. Rejects with BusUnavailableError when the request cannot be published or
   * too many calls are waiting.
   */
  async call(op: string, args: Json, deadlineMs = CALL_DEADLINE_MS): Promise<CallResult> {
    if (this.stopped) throw new BusUnavailableError('the node is stopping');
    if (this.waiting.size >= MAX_CALLS_IN_FLIGHT) throw new BusUnavailableError(`too many cluster calls in flight on this node (${MAX_CALLS_IN_FLIGHT}); retry`);
    const id = `${this.idPrefix}.${++this.seq}`;
    const expected = new Set(this.knownNodes());
    const expectedCount = expected.size;
    const results = new Map<string, Json>();
    const finished = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => waiting.done(true), deadlineMs);
      const waiting: Waiting = {
        expected,
        results,
        done: (timedOut) => {
          clearTimeout(timer);
          this.waiting.delete(id);
          resolve(timedOut);
        },
      };
      this.waiting.set(id, waiting);
    });
    try {
      await this.send(this.controlTopic, { t: 'call', id, op, args });
    } catch (err) {
      this.waiting.get(id)?.done(true);
      throw err;
    }
    const timedOut = await finished;
    return { results, expected: expectedCount, timedOut };
  }

  private send(topic: string, body: Json): Promise<void> {
    return this.options.topics.publish(topic, EnvelopeKind.CLUSTER, Buffer.from(JSON.stringify(body)));
  }

  private hello(answer: boolean): void {
    if (this.stopped || !this.options.topics.connected) return;
    this.send(this.controlTopic, { t: 'hello', answer }).catch(() => {
      // The next hello, or the reconnect's, says it again.
    });
  }

  private fromControl(kind: number, body: Buffer, origin: string): void {
    if (kind !== EnvelopeKind.CLUSTER || this.stopped) return;
    const message = parse(body);
    if (!message) return;
    const own = origin === this.options.nodeId;
    if (message.t === 'hello') {
      if (own) return;
      const isNew = !this.nodes.has(origin);
      this.nodes.set(origin, Date.now());
      // A newcomer learns of this node at once rather than at the next round of hellos.
      if (isNew && message.answer !== true) this.hello(true);
    } else if (message.t === 'bye') {
      if (own) return;
      this.nodes.delete(origin);
      // Calls waiting on it stop waiting.
      for (const waiting of [...this.waiting.values()]) if (waiting.expected.delete(origin) && waiting.expected.size === 0) waiting.done(false);
    } else if (message.t === 'call' && typeof message.id === 'string' && typeof message.op === 'string') {
      if (!own) this.nodes.set(origin, Date.now());
      void this.run(origin, message.id, message.op, (message.args ?? null) as Json);
    }
  }

  /** Runs a call's handler here and answers the caller; a failing handler answers `{"error"}`. */
  private async run(caller: string, id: string, op: string, args: Json): Promise<void> {
    const handler = this.handlers.get(op);
    let result: Json;
    try {
      result = handler ? await handler(args) : { error: `unknown operation ${op}` };
    } catch (err) {
      this.options.logger.error({ err, op }, 'cluster call handler failed');
      result = { error: 'the node failed to act' };
    }
    await this.send(`${this.options.prefix}:reply:${caller}`, { t: 'reply', id, result }).catch((err: unknown) => {
      this.options.logger.debug({ err, op }, 'cluster call answer not sent');
    });
  }

  private fromReply(kind: number, body: Buffer, origin: string): void {
    if (kind !== EnvelopeKind.CLUSTER) return;
    const message = parse(body);
    if (!message || message.t !== 'reply' || typeof message.id !== 'string') return;
    const waiting = this.waiting.get(message.id);
    if (!waiting || waiting.results.has(origin)) return;
    if (origin !== this.options.nodeId) this.nodes.set(origin, Date.now());
    waiting.results.set(origin, (message.result ?? null) as Json);
    waiting.expected.delete(origin);
    if (waiting.expected.size === 0) waiting.done(false);
  }

  private forgetSilent(now: number): void {
    for (const [node, heard] of this.nodes) if (now - heard > NODE_SILENT_MS) this.nodes.delete(node);
  }
}

function parse(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
