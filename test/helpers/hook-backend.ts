/** The scripted hook back end (hook-backend-process.ts) as a real process, and what the tests read from it. */
import { fileURLToPath } from 'node:url';
import { forkListening, type ServerProcess } from '../../harness/fanout-process.js';
import { until } from '../../harness/wait.js';

const PROGRAM = fileURLToPath(new URL('./hook-backend-process.js', import.meta.url));

export interface HookCall {
  readonly hook: 'connect' | 'subscribe' | 'publish' | 'webhook';
  /** X-Fanout-Call-Id */
  readonly callId: string | undefined;
  /** When the back end got it (ms since the epoch). */
  readonly at: number;
  readonly body: Record<string, unknown>;
  /** X-Fanout-Node */
  readonly node: string | undefined;
  /** X-Fanout-Signature */
  readonly signature: string | undefined;
  /** The back end's own check of the signature (docs/hooks.md's recipe). */
  readonly signatureValid: boolean;
  readonly contentType: string | undefined;
}

export interface HookBackend {
  readonly process: ServerProcess;
  /** `http://127.0.0.1:PORT/<hook>`, for --connect-hook etc. */
  url(hook: 'connect' | 'subscribe' | 'publish' | 'webhook'): string;
  /** Every call so far, how many answers it holds open (and the `ip` of each connect call it holds), and the calls that went away unanswered. */
  calls(): Promise<HookCalls>;
  /** Answers every sleeping connect call (`session=sleep`) now. */
  wake(): Promise<void>;
  /** Resolves once it holds `count` answers open (calls it will never answer). */
  untilHeld(count: number): Promise<void>;
  stop(): Promise<void>;
}

export interface HookCalls {
  readonly calls: HookCall[];
  readonly held: number;
  readonly heldIps: string[];
  readonly aborted: Array<{ hook: HookCall['hook']; body: Record<string, unknown> }>;
}

/**
 * `webhookFailures`: how many webhook requests it answers 500 before it answers 200;
 * `sleepMs`: how long a `session=sleep` connect call sleeps (default 2000).
 */
export async function startHookBackend(secret: string, options: { webhookFailures?: number; sleepMs?: number } = {}): Promise<HookBackend> {
  const env = { HOOK_SECRET: secret, WEBHOOK_FAILURES: String(options.webhookFailures ?? 0), SLEEP_MS: String(options.sleepMs ?? 2000) };
  const process = await forkListening(PROGRAM, [], { env });
  const base = `http://127.0.0.1:${process.port}`;
  const calls = async (): Promise<HookCalls> => {
    const res = await fetch(`${base}/calls`);
    return (await res.json()) as HookCalls;
  };
  return {
    process,
    url: (hook) => `${base}/${hook}`,
    calls,
    wake: async () => void (await (await fetch(`${base}/wake`, { method: 'POST' })).text()),
    untilHeld: (count) => until(async () => (await calls()).held >= count, { timeoutMs: 10_000, intervalMs: 20, what: `the back end to hold ${count} calls` }),
    stop: async () => void (await process.stop()),
  };
}
