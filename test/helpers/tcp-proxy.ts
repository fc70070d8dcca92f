/**
 * A TCP proxy for fault tests (net-based): sits between a node and its broker, and can add
 * latency to every chunk in both directions, limit each direction's bandwidth, or cut the link (existing connections closed, new
 * ones dropped at once) until restored.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private delayMs = 0;
  private bytesPerSecond = 0;
  private cutOff = false;

  private constructor(
    private readonly server: Server,
    /** The port the proxy listens on (127.0.0.1). */
    readonly port: number,
  ) {}

  /** Starts a proxy on a free port of 127.0.0.1 forwarding to `targetHost:targetPort`. */
  static start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    return new Promise((resolve, reject) => {
      let proxy: TcpProxy;
      const server = createServer((client) => proxy.accept(client, targetHost, targetPort));
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        proxy = new TcpProxy(server, (server.address() as { port: number }).port);
        resolve(proxy);
      });
    });
  }

  /** Open client-side connections. */
  get connections(): number {
    return [...this.sockets].filter((s) => s.remotePort !== undefined && s.localPort === this.port).length;
  }

  /** Delays every chunk, both ways, by `ms` (order kept). 0 removes the delay. */
  latency(ms: number): void {
    this.delayMs = ms;
  }

  /** Limits each direction of every connection to `bytesPerSecond` (order kept). 0 removes the limit. */
  throttle(bytesPerSecond: number): void {
    this.bytesPerSecond = bytesPerSecond;
  }

  /** Cuts the link: every open connection is closed and new ones are dropped until {@link restore}. */
  cut(): void {
    this.cutOff = true;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  /** Lets connections through again after {@link cut}. */
  restore(): void {
    this.cutOff = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, host: string, port: number): void {
    client.on('error', () => {});
    if (this.cutOff) {
      client.destroy();
      return;
    }
    const upstream = netConnect(port, host);
    upstream.on('error', () => {});
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.once('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    this.pipe(client, upstream);
    this.pipe(upstream, client);
  }

  /** Forwards `from` → `to`, each chunk after the current delay; a later chunk never overtakes an earlier one. */
  private pipe(from: Socket, to: Socket): void {
    let lastDue = 0;
    from.on('data', (chunk: Buffer) => {
      if (this.delayMs === 0 && this.bytesPerSecond === 0 && lastDue <= Date.now()) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      // Throttled: the chunk leaves once the link had time to carry it after the ones before.
      const transfer = this.bytesPerSecond > 0 ? (chunk.length * 1000) / this.bytesPerSecond : 0;
      const due = Math.max(Date.now() + this.delayMs, lastDue) + transfer;
      lastDue = due;
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, due - Date.now());
    });
  }
}
