/**
 * A Kafka broker of our own (scripts/kafka-dev.sh with a private folder and free ports), for tests
 * that kill and restart the broker without touching the shared one on 9092. The first start
 * formats a fresh data folder; later starts keep it (topics, records and offsets survive a
 * restart, as on a real broker).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
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
    /** The broker's own listener. */
    readonly port: number,
    /** The port it advertises to clients: its own, or a proxy's in front of it. */
    readonly advertisedPort: number,
    private readonly controllerPort: number,
    private readonly dir: string,
  ) {}

  /** Starts a broker on free ports; `advertisedPort` puts a proxy listening there between clients and broker. */
  static async start(options: { advertisedPort?: number } = {}): Promise<KafkaProcess> {
    const port = await freePort();
    const proc = new KafkaProcess(port, options.advertisedPort ?? port, await freePort(), mkdtempSync(join(tmpdir(), 'fanout-kafka-')));
    await proc.start();
    return proc;
  }

  /** `kafka://127.0.0.1:ADVERTISED/topic`. */
  url(topic = 'fanout'): string {
    return `kafka://127.0.0.1:${this.advertisedPort}/${topic}`;
  }

  /** Starts the broker (again, on the data it had) and waits until it answers. */
  async start(): Promise<void> {
    await this.script('start', { FANOUT_KAFKA_KEEP_DATA: this.started ? '1' : '0' });
    this.started = true;
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
        FANOUT_KAFKA_ADVERTISED_PORT: String(this.advertisedPort),
        ...env,
      },
      timeout: 180_000,
    });
  }
}
