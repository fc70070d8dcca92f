/**
 * The synchronous back-end hooks (docs/hooks.md): --connect-hook, --subscribe-hook and
 * --publish-hook. Each call's body is written here and each answer is read here, into a verdict
 * the caller acts on; the transport and the channel endpoint never see HTTP.
 *
 * Contract: a verdict is never "allow" unless the back end answered 200 with a valid body. A
 * timeout, a network error, a 5xx, any other status, an answer that is not what the hook expects,
 * or a call refused by --hook-concurrency is `unavailable` (503 before the upgrade, the
 * `unavailable` error frame after it): the back end could not decide, so nothing is admitted.
 *
 * Fair shares (src/hooks/shares.ts): each call names the client address it is for; the connect
 * hook draws on its own share of --hook-concurrency and a per-address cap, subscribe and publish
 * calls on the rest and their own per-address cap. A subscribe or publish call past its
 * address's cap is `limited` (`rate_limited`); past the node's share it is `unavailable`. A
 * call whose signal aborts (the client went away) is abandoned and its slot freed at once.
 */
import { TIMINGS, type Config } from '../config/schema.js';
import type { Logger } from '../logger.js';
import { MAX_DATA_DEPTH, nestsDeeperThan } from '../protocol/decode.js';
import type { Json } from '../protocol/frames.js';
import { patternsProblem } from '../protocol/patterns.js';
import { HttpCaller, type CallResult } from '../outbound/http-caller.js';
import { refusalReason } from './reason.js';
import { HookShares, type ShareKind } from './shares.js';

export type HookName = 'connect' | 'subscribe' | 'publish' | 'refresh';

/**
 * The `result` label of `fanout_hook_requests_total`: `allowed` (200), `refused` (401/403),
 * `error` (another status, or an answer the hook cannot use), `timeout`, `network_error`,
 * `overloaded` (not sent: the node's or the client address's share of --hook-concurrency was in
 * flight), or `abandoned` (its client went away before the answer; the request was aborted).
 */
export type HookResult = 'allowed' | 'refused' | 'error' | 'timeout' | 'network_error' | 'overloaded' | 'abandoned';

/** What every call is asked on behalf of: the client's address (its fair share), and a signal that aborts when the client goes away. */
export interface HookCall {
  readonly address: string;
  readonly signal?: AbortSignal | undefined;
}

/** Where each call is counted: the result, and the duration of calls that were sent. */
export type HookObserver = (hook: HookName, result: HookResult, seconds: number | undefined) => void;

/** The body of a connect-hook call (only these headers, each left out when the request has none). */
export interface ConnectRequest {
  readonly client: string;
  readonly ip: string;
  readonly origin: string | null;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly headers: { readonly cookie?: string; readonly authorization?: string; readonly 'user-agent'?: string };
  /** True when the call is for the upgrade check (`POST /ws/v1/check`): nothing connects, whatever the answer. */
  readonly check?: true;
}

/** What the connect hook decided. `publish` undefined: the `channels` patterns cover publishing too, as a JWT's claim does. */
export type ConnectVerdict =
  | {
      readonly kind: 'admit';
      readonly user: string | undefined;
      readonly channels: readonly string[] | undefined;
      readonly publish: readonly string[] | undefined;
      readonly meta: Json | undefined;
      /** The answer's `expires_at` (unix seconds) in ms: the session ends then, unless --refresh-hook extends it. */
      readonly expiresAt: number | undefined;
    }
  | { readonly kind: 'refuse'; readonly status: 401 | 403; readonly reason: string | undefined }
  | { readonly kind: 'unavailable'; readonly reason: string };

/**
 * What --refresh-hook decided about a session nearing its `expires_at`: `extend` to `expiresAt`
 * (ms), with new patterns or meta where the answer gives them (undefined: unchanged); `refuse`
 * (403: end it now); `unavailable` (no usable answer: ask again, until the session expires).
 */
export type RefreshVerdict =
  | {
      readonly kind: 'extend';
      readonly expiresAt: number;
      readonly channels: readonly string[] | undefined;
      readonly publish: readonly string[] | undefined;
      readonly meta: Json | undefined;
    }
  | { readonly kind: 'refuse'; readonly reason: string | undefined }
  | { readonly kind: 'unavailable'; readonly reason: string };

/** Who asks, in subscribe, publish and refresh calls. */
export interface HookCaller {
  readonly client: string;
  readonly user: string | undefined;
  readonly meta: Json | undefined;
}

/**
 * Subscribe and publish verdicts; `data` is the answer's `data` when it had one; `reason` the
 * cleaned `reason` of a 403's body (src/hooks/reason.ts), for the client's `forbidden` message.
 * `limited`: the client's address has its share of calls in flight (not sent). `too_large`: the
 * publish hook answered with a `data` over --max-payload (nothing may be published).
 * `unavailable`'s reason is safe to show a client: it never carries the back end's address or
 * error text (the log has them).
 */
export type ChannelVerdict =
  | { readonly kind: 'allow'; readonly data: { readonly value: Json } | undefined }
  | { readonly kind: 'forbid'; readonly reason: string | undefined }
  | { readonly kind: 'unavailable'; readonly reason: string }
  | { readonly kind: 'limited'; readonly reason: string }
  | { readonly kind: 'too_large'; readonly reason: string };

/** The flags the hooks read. */
export type HooksConfig = Pick<Config, 'nodeId' | 'connectHook' | 'subscribeHook' | 'publishHook' | 'refreshHook' | 'hookTimeout' | 'hookSecret' | 'hookConcurrency' | 'maxPayload'>;

/** Room for an answer's JSON around a `data` of up to --max-payload bytes. */
const ANSWER_OVERHEAD_BYTES = 16 * 1024;

/** The node's hooks: one HTTP caller (one keep-alive pool, one concurrency cap) for all four. */
export class Hooks {
  private readonly caller: HttpCaller;
  private readonly shares: HookShares;
  private readonly maxPayload: number;
  private readonly urls: Readonly<Record<HookName, URL | undefined>>;
  private readonly namespaceUrls = new Map<string, URL>();
  private readonly lastLogged = new Map<HookName, { at: number; suppressed: number }>();

  constructor(
    config: HooksConfig,
    private readonly logger: Logger,
    private readonly observe: HookObserver,
  ) {
    const url = (value: string | undefined): URL | undefined => (value === undefined ? undefined : new URL(value));
    this.urls = Object.freeze({ connect: url(config.connectHook), subscribe: url(config.subscribeHook), publish: url(config.publishHook), refresh: url(config.refreshHook) });
    this.caller = new HttpCaller({
      nodeId: config.nodeId,
      timeoutMs: config.hookTimeout * 1000,
      concurrency: config.hookConcurrency,
      secret: config.hookSecret,
      maxAnswerBytes: config.maxPayload + ANSWER_OVERHEAD_BYTES,
    });
    this.shares = new HookShares(config.hookConcurrency);
    this.maxPayload = config.maxPayload;
  }

  /** A namespace's hook URL, parsed once (the namespaces are few and fixed at start). */
  private urlOf(value: string): URL {
    let url = this.namespaceUrls.get(value);
    if (!url) this.namespaceUrls.set(value, (url = new URL(value)));
    return url;
  }

  /** True when `hook` is configured. */
  has(hook: HookName): boolean {
    return this.urls[hook] !== undefined;
  }

  /** Hook calls in flight now. */
  get pending(): number {
    return this.shares.pending;
  }

  /** Addresses with a call in flight (nothing is kept for an address once its calls end). */
  get addresses(): number {
    return this.shares.addresses;
  }

  /** --connect-hook: who this upgrade request is, or why it is refused. */
  async connect(request: ConnectRequest, on: HookCall): Promise<ConnectVerdict> {
    const call = await this.call('connect', JSON.stringify(request), on);
    if (!call.ok) return { kind: 'unavailable', reason: call.verdict.reason };
    const { status, body } = call.answer;
    if (status === 401 || status === 403) {
      this.observe('connect', 'refused', call.answer.seconds);
      return { kind: 'refuse', status, reason: refusalReason(body) };
    }
    if (status !== 200) return this.failed('connect', 'error', call.answer.seconds, `answered ${status}`);
    const verdict = connectAnswer(body);
    if (typeof verdict === 'string') return this.failed('connect', 'error', call.answer.seconds, `answered 200 with ${verdict}`);
    this.observe('connect', 'allowed', call.answer.seconds);
    return verdict;
  }

  /**
   * --subscribe-hook: may `caller` subscribe to `channel`; `data` goes into its `subscribed` frame.
   * `url`: the channel's namespace's own hook instead of --subscribe-hook.
   */
  subscribe(caller: HookCaller, channel: string, on: HookCall, url?: string): Promise<ChannelVerdict> {
    return this.channelCall('subscribe', JSON.stringify({ client: caller.client, user: caller.user ?? null, channel, meta: caller.meta ?? null }), on, url);
  }

  /**
   * --publish-hook: may `caller` publish `data` (its JSON text) to `channel`; `data` in the
   * answer replaces it, and obeys --max-payload as the client's own data does (`too_large`).
   * `url`: the channel's namespace's own hook instead of --publish-hook.
   */
  publish(caller: HookCaller, channel: string, data: string, on: HookCall, url?: string): Promise<ChannelVerdict> {
    // `data` is spliced in as the client sent it (valid JSON: decode() parsed it).
    const body = `${JSON.stringify({ client: caller.client, user: caller.user ?? null, channel, meta: caller.meta ?? null }).slice(0, -1)},"data":${data}}`;
    return this.channelCall('publish', body, on, url);
  }

  /**
   * --refresh-hook: may `caller`'s session (admitted by the connect hook with `expires_at`) go on?
   * Drawn on established clients' share, as subscribe and publish calls are; a call past its
   * address's share is `unavailable` (the session asks again later).
   */
  async refresh(caller: HookCaller, on: HookCall): Promise<RefreshVerdict> {
    const call = await this.call('refresh', JSON.stringify({ client: caller.client, user: caller.user ?? null, meta: caller.meta ?? null }), on);
    if (!call.ok) return { kind: 'unavailable', reason: call.verdict.reason };
    const { status, body, seconds } = call.answer;
    if (status === 403) {
      this.observe('refresh', 'refused', seconds);
      return { kind: 'refuse', reason: refusalReason(body) };
    }
    if (status !== 200) return this.failed('refresh', 'error', seconds, `answered ${status}`);
    const verdict = refreshAnswer(body);
    if (typeof verdict === 'string') return this.failed('refresh', 'error', seconds, `answered 200 with ${verdict}`);
    this.observe('refresh', 'allowed', seconds);
    return verdict;
  }

  /** Drops the keep-alive connections; calls in flight fail (unavailable). */
  close(): void {
    this.caller.close();
  }

  private async channelCall(hook: 'subscribe' | 'publish', body: string, on: HookCall, url?: string): Promise<ChannelVerdict> {
    const call = await this.call(hook, body, on, url);
    if (!call.ok) return call.verdict;
    const { status, seconds } = call.answer;
    if (status === 403) {
      this.observe(hook, 'refused', seconds);
      return { kind: 'forbid', reason: refusalReason(call.answer.body) };
    }
    if (status !== 200) return this.failed(hook, 'error', seconds, `answered ${status}`);
    const data = dataAnswer(call.answer.body);
    if (typeof data === 'string') return this.failed(hook, 'error', seconds, `answered 200 with ${data}`);
    if (hook === 'publish' && data) {
      // What the back end substitutes is published as the client's data would be: within --max-payload.
      const size = Buffer.byteLength(JSON.stringify(data.value));
      if (size > this.maxPayload) {
        this.failed(hook, 'error', seconds, `answered 200 with a \`data\` of ${size} bytes, over --max-payload`);
        return { kind: 'too_large', reason: `the publish hook's data is ${size} bytes, over --max-payload (${this.maxPayload} bytes)` };
      }
    }
    this.observe(hook, 'allowed', seconds);
    return { kind: 'allow', data: data ?? undefined };
  }

  /**
   * Takes a slot of the call's share (synchronously, in the turn the call is made), sends it and
   * gives the slot back; a failure to get an answer is already counted, logged and turned into a
   * verdict. Past an address's share a subscribe or publish call is `limited`; past the node's, or
   * past an address's connect share, `unavailable`.
   */
  private async call(hook: HookName, body: string, on: HookCall, override?: string): Promise<{ ok: true; answer: Extract<CallResult, { ok: true }> } | { ok: false; verdict: Extract<ChannelVerdict, { kind: 'unavailable' | 'limited' }> }> {
    const url = override === undefined ? this.urls[hook] : this.urlOf(override);
    if (!url) return { ok: false, verdict: { kind: 'unavailable', reason: `no --${hook}-hook` } };
    const share: ShareKind = hook === 'connect' ? 'connect' : 'channel';
    const refused = this.shares.take(share, on.address);
    if (refused) {
      this.observe(hook, 'overloaded', undefined);
      if (refused.limit === 'address' && share === 'channel') return { ok: false, verdict: { kind: 'limited', reason: refused.message } };
      this.logFailure(hook, 'overloaded', refused.message);
      return { ok: false, verdict: { kind: 'unavailable', reason: `the ${hook} hook failed (${refused.message})` } };
    }
    let result: CallResult;
    try {
      result = await this.caller.post(url, body, on.signal);
    } finally {
      this.shares.release(share, on.address);
    }
    if (result.ok) return { ok: true, answer: result };
    if (result.failure === 'aborted') {
      // Nobody is left to tell: counted, not logged (a client hanging up is not the back end failing).
      this.observe(hook, 'abandoned', result.seconds);
      return { ok: false, verdict: { kind: 'unavailable', reason: result.message } };
    }
    const label: HookResult = result.failure === 'timeout' ? 'timeout' : result.failure === 'overloaded' ? 'overloaded' : result.failure === 'network' ? 'network_error' : 'error';
    return { ok: false, verdict: this.failed(hook, label, result.seconds, result.message) };
  }

  /**
   * A call the back end did not answer usably: counted, logged with its detail (which may name the
   * back end's address or quote its answer), and told to the client as "the X hook failed" only.
   * Calls the node itself refused (`overloaded`: --hook-concurrency in flight) say so, naming the flag.
   */
  private failed(hook: HookName, result: HookResult, seconds: number | undefined, message: string): { kind: 'unavailable'; reason: string } {
    this.observe(hook, result, seconds);
    this.logFailure(hook, result, message);
    return { kind: 'unavailable', reason: result === 'overloaded' ? `the ${hook} hook failed (${message})` : `the ${hook} hook failed` };
  }

  /** Logged at most once per hook every TIMINGS.hookErrorLogMs: while a back end is down every call fails. */
  private logFailure(hook: HookName, result: HookResult, message: string): void {
    const now = Date.now();
    const last = this.lastLogged.get(hook);
    if (last && now - last.at < TIMINGS.hookErrorLogMs) {
      last.suppressed++;
      return;
    }
    this.logger.warn({ hook, result, err: message, suppressed: last?.suppressed ?? 0, url: withoutSecrets(this.urls[hook]!) }, 'hook call failed');
    this.lastLogged.set(hook, { at: now, suppressed: 0 });
  }
}

/** A hook URL for logs: no credentials, no query. */
function withoutSecrets(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** A connect hook's 200 body → the admit verdict, or what is wrong with it. */
export function connectAnswer(body: string): Extract<ConnectVerdict, { kind: 'admit' }> | string {
  const value = parseObject(body);
  if (typeof value === 'string') return value;
  const user = value['user'];
  if (user !== undefined && user !== null && (typeof user !== 'string' || user.length === 0 || user.length > 200)) {
    return 'a `user` that is neither null nor a string of 1–200 characters';
  }
  const grants = grantFields(value);
  if (typeof grants === 'string') return grants;
  const expiresAt = expiresAtField(value['expires_at']);
  if (typeof expiresAt === 'string') return expiresAt;
  return Object.freeze({ kind: 'admit', user: typeof user === 'string' ? user : undefined, ...grants, expiresAt });
}

/** A refresh hook's 200 body: `expires_at` (required), and `channels`, `publish`, `meta` as the connect hook's. */
export function refreshAnswer(body: string): Extract<RefreshVerdict, { kind: 'extend' }> | string {
  const value = parseObject(body);
  if (typeof value === 'string') return value;
  const expiresAt = expiresAtField(value['expires_at']);
  if (typeof expiresAt === 'string') return expiresAt;
  if (expiresAt === undefined) return 'no `expires_at`';
  const grants = grantFields(value);
  if (typeof grants === 'string') return grants;
  return Object.freeze({ kind: 'extend', expiresAt, ...grants });
}

/** `channels`, `publish` and `meta` of a connect or refresh hook's answer; a string says what is wrong. */
function grantFields(value: Record<string, unknown>): { channels: readonly string[] | undefined; publish: readonly string[] | undefined; meta: Json | undefined } | string {
  const channels = patternList(value['channels'], 'channels');
  if (typeof channels === 'string') return channels;
  const publish = patternList(value['publish'], 'publish');
  if (typeof publish === 'string') return publish;
  const meta = metaField(value['meta']);
  if (typeof meta === 'string') return meta;
  return { channels, publish, meta: meta?.value };
}

/** `meta`: an object (boxed), or undefined when absent or null; a string says what is wrong. */
function metaField(meta: unknown): { value: Json } | undefined | string {
  if (meta === undefined || meta === null) return undefined;
  if (typeof meta !== 'object' || Array.isArray(meta)) return 'a `meta` that is not an object';
  if (nestsDeeperThan(meta, MAX_DATA_DEPTH)) return `a \`meta\` nested deeper than ${MAX_DATA_DEPTH} levels`;
  return { value: meta as Json };
}

/** `expires_at`: unix seconds (a positive number), in ms; undefined when absent or null; a string says what is wrong. */
function expiresAtField(value: unknown): number | undefined | string {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) return 'an `expires_at` that is not unix seconds (a positive number)';
  return Math.round(value * 1000);
}

function patternList(value: unknown, key: string): readonly string[] | undefined | string {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((p): p is string => typeof p === 'string')) return `a \`${key}\` that is not a list of strings`;
  const problem = patternsProblem(value);
  if (problem) return `\`${key}\`: ${problem}`;
  return Object.freeze([...value]);
}

/** A subscribe or publish hook's 200 body: empty, or an object with an optional `data`. */
export function dataAnswer(body: string): { value: Json } | null | string {
  if (body.trim() === '') return null;
  const value = parseObject(body);
  if (typeof value === 'string') return value;
  if (!('data' in value)) return null;
  if (nestsDeeperThan(value['data'], MAX_DATA_DEPTH)) return `a \`data\` nested deeper than ${MAX_DATA_DEPTH} levels`;
  return { value: value['data'] as Json };
}

function parseObject(body: string): Record<string, unknown> | string {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return 'a body that is not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'a body that is not a JSON object';
  return value as Record<string, unknown>;
}
