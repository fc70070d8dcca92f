/**
 * A TCP proxy for fault tests and the benchmark's fault mode (net-based): sits between a node and
 * its broker, or between clients and HAProxy, and can add latency (with jitter) to every chunk in
 * both directions, limit each direction's bandwidth, cut the link (existing connections closed,
 * new ones dropped at once) until restored, or stall it: a silent black hole, where nothing is
 * forwarded and no FIN or RST reaches either end (a link that loses every packet).
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private delayMs = 0;
  private jitterMs = 0;
  private bytesPerSecond = 0;
  private cutOff = false;
  private stalled = false;
  /** Connections a stall broke (data was lost, or one end went away unseen): they end at {@link restore}. */
  private readonly broken = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    /** The port the proxy listens on (127.0.0.1). */
    readonly port: number,
  ) {}

  /** Starts a proxy on a free port of `listenHost` (127.0.0.1) forwarding to `targetHost:targetPort`. */
  static start(targetPort: number, targetHost = '127.0.0.1', listenHost = '127.0.0.1'): Promise<TcpProxy> {
    return new Promise((resolve, reject) => {
      let proxy: TcpProxy;
      const server = createServer((client) => proxy.accept(client, targetHost, targetPort));
      server.once('error', reject);
      server.listen(0, listenHost, () => {
        proxy = new TcpProxy(server, (server.address() as { port: number }).port);
        resolve(proxy);
      });
    });
  }

  /** Open client-side connections. */
  get connections(): number {
    return [...this.sockets].filter((s) => s.remotePort !== undefined && s.localPort === this.port).length;
  }

  /**
   * Delays every chunk, both ways, by `ms`, or by `ms ± jitterMs` drawn evenly for each chunk;
   * order is kept (a chunk never leaves before the one ahead of it). 0 removes the delay.
   */
  latency(ms: number, jitterMs = 0): void {
    this.delayMs = ms;
    this.jitterMs = Math.min(jitterMs, ms);
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
    for (const socket of this.broken) socket.destroy();
    this.broken.clear();
  }

  /**
   * Stalls the link without closing anything: every chunk either way is dropped, a connection one
   * end closes stays open at the other, and new connections are accepted but get nothing (as
   * when every packet is lost: no FIN, no RST, no data). Until {@link restore}.
   */
  stall(): void {
    this.stalled = true;
    for (const socket of this.sockets) this.broken.add(socket);
  }

  /**
   * Lets connections through again after {@link cut} or {@link stall}. The connections a stall
   * broke are cut now (their byte streams lost data, so they cannot go on), as a peer's RST would.
   */
  restore(): void {
    this.cutOff = false;
    this.stalled = false;
    for (const socket of this.broken) socket.destroy();
    this.broken.clear();
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
    if (this.stalled) {
      // Held open, unanswered, until the link is restored.
      this.sockets.add(client);
      this.broken.add(client);
      client.once('close', () => this.sockets.delete(client));
      return;
    }
    const upstream = netConnect(port, host);
    upstream.on('error', () => {});
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.once('close', () => {
        this.sockets.delete(s);
        // Stalled: the other end must not learn of it (it is cut at restore).
        if (this.stalled) return;
        client.destroy();
        upstream.destroy();
      });
    }
    this.pipe(client, upstream);
    this.pipe(upstream, client);
  }

  /** Forwards `from` → `to`, each chunk after the current delay; a later chunk never overtakes an earlier one. */
  private pipe(from: Socket, to: Socket): void {
    // One FIFO per direction, drained by one timer: a timer fires on the event loop's cached clock,
    // so one timer per chunk could let a later chunk (due at nearly the same time) leave first and
    // break the TCP stream it carries.
    const queue: { chunk: Buffer; due: number }[] = [];
    let lastDue = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drain = (): void => {
      timer = undefined;
      while (queue.length > 0 && queue[0]!.due <= Date.now()) {
        const { chunk } = queue.shift()!;
        if (!to.destroyed && !this.stalled) to.write(chunk);
      }
      if (queue.length > 0) timer = setTimeout(drain, Math.max(1, queue[0]!.due - Date.now()));
    };
    from.on('data', (chunk: Buffer) => {
      if (this.stalled) return; // lost
      if (this.delayMs === 0 && this.bytesPerSecond === 0 && queue.length === 0) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      // Throttled: the chunk leaves once the link had time to carry it after the ones before.
      const transfer = this.bytesPerSecond > 0 ? (chunk.length * 1000) / this.bytesPerSecond : 0;
      const delay = this.jitterMs > 0 ? this.delayMs + (Math.random() * 2 - 1) * this.jitterMs : this.delayMs;
      const due = Math.max(Date.now() + delay, lastDue) + transfer;
      lastDue = due;
      queue.push({ chunk, due });
      timer ??= setTimeout(drain, Math.max(1, due - Date.now()));
    });
    from.once('close', () => clearTimeout(timer));
  }
}
