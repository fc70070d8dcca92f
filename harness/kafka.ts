/**
 * A Kafka broker of our own (scripts/kafka-dev.sh with a private folder and free ports), for tests
 * that kill and restart the broker without touching the shared one on 9092. The first start
 * formats a fresh data folder; later starts keep it (topics, records and offsets survive a
 * restart, as on a real broker). With `proxied`, a second listener advertises a proxy's port, so
 * the link of the clients that bootstrap there can be cut while the others keep theirs.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const run = promisify(execFile);
/** The dev script, from dist/harness/ back to the repository's scripts/. */
const KAFKA_DEV = fileURLToPath(new URL('../../scripts/kafka-dev.sh', import.meta.url));

export class KafkaProcess {
  private started = false;

  private constructor(
    /** The broker's main listener. */
    readonly port: number,
    private readonly controllerPort: number,
    private readonly dir: string,
    /** The second listener's port, and the proxy port it advertises. */
    readonly proxied: { readonly port: number; readonly advertised: number } | undefined,
  ) {}

  /**
   * Starts a broker on free ports. With `proxied`, its second listener is on `proxied.port` and
   * advertises `proxied.advertised`, where a proxy forwarding to `proxied.port` listens.
   */
  static async start(options: { proxied?: { port: number; advertised: number } } = {}): Promise<KafkaProcess> {
    for (let attempt = 1; ; attempt++) {
      const proc = new KafkaProcess(await freePort(), await freePort(), mkdtempSync(join(tmpdir(), 'fanout-kafka-')), options.proxied);
      try {
        await proc.start();
        return proc;
      } catch (err) {
        await proc.destroy();
        // A port taken between freePort and the JVM's bind (seconds later): once more on others.
        // The proxied listener's port is the caller's, so that failure is theirs.
        if (attempt >= 3 || !/Address already in use/.test(String((err as { stderr?: unknown }).stderr ?? err))) throw err;
      }
    }
  }

  /** `kafka://127.0.0.1:PORT/topic`, the main listener. */
  url(topic = 'fanout'): string {
    return `kafka://127.0.0.1:${this.port}/${topic}`;
  }

  /** The same through the proxy (with `proxied` only). */
  proxiedUrl(topic = 'fanout'): string {
    return `kafka://127.0.0.1:${this.proxied!.advertised}/${topic}`;
  }

  /** Starts the broker (again, on the data it had) and waits until it answers. */
  async start(): Promise<void> {
    await this.script('start', { FANOUT_KAFKA_KEEP_DATA: this.started ? '1' : '0' });
    this.started = true;
  }

  /** The broker's process id while it runs (the script's pid file), e.g. to count its CPU. */
  get pid(): number | undefined {
    try {
      const pid = Number(readFileSync(join(this.dir, 'broker.pid'), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** SIGKILL: a crash. The data stays for {@link start}. */
  kill(): Promise<void> {
    return this.script('kill');
  }

  /** A controlled shutdown. */
  stop(): Promise<void> {
    return this.script('stop');
  }

  /** Kills the broker and removes its folder. */
  async destroy(): Promise<void> {
    await this.kill().catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async script(command: string, env: Record<string, string> = {}): Promise<void> {
    await run('bash', [KAFKA_DEV, command], {
      env: {
        ...process.env,
        FANOUT_KAFKA_DIR: this.dir,
        FANOUT_KAFKA_PORT: String(this.port),
        FANOUT_KAFKA_CONTROLLER_PORT: String(this.controllerPort),
        ...(this.proxied ? { FANOUT_KAFKA_PROXIED: `${this.proxied.port}:${this.proxied.advertised}` } : {}),
        ...env,
      },
      timeout: 180_000,
    });
  }
}
