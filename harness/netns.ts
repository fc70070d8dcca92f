/**
 * Client network namespaces for fault runs (Linux, root): each namespace reaches this machine's
 * servers through one veth pair, and the faults are made there with the kernel's own tools, since
 * this kernel has no netem:
 * - packet loss: an nftables table inside the namespace drops `numgen random mod 100 < N` of the
 *   packets on its veth, both ways;
 * - a link cut: `ip link set <host end> down`, then `up`.
 * Names are unique per process (`fo<pid36><n>`), addresses are 10.213.N.0/30 with N unused on
 * this machine; {@link ClientNetwork.remove} undoes everything, and {@link removeAllOnExit} makes
 * sure it happens on exit.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';

/** The tools a namespace needs, checked before anything is made. */
const TOOLS = [
  { bin: 'ip', pkg: 'iproute2', probe: ['-V'] },
  { bin: 'nft', pkg: 'nftables', probe: ['--version'] },
] as const;

/**
 * Why client namespaces cannot be made here, in one line, or undefined when they can: needs root
 * (CAP_NET_ADMIN), `ip` (iproute2) and `nft` (nftables).
 */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root (run as root, or with CAP_NET_ADMIN)';
  for (const tool of TOOLS) {
    const r = spawnSync(tool.bin, tool.probe, { encoding: 'utf8' });
    if (r.error) return `\`${tool.bin}\` is missing: install ${tool.pkg} (apt-get install ${tool.pkg})`;
  }
  return undefined;
}

function run(args: readonly string[], what: string): void {
  const [bin, ...rest] = args;
  const r = spawnSync(bin!, rest, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${what}: \`${args.join(' ')}\` failed: ${(r.stderr || r.error?.message || '').trim()}`);
}

/** Third octets of 10.213.X.0/30 networks already on this machine's interfaces. */
function usedSubnets(): Set<number> {
  const r = spawnSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
  return new Set([...(r.stdout ?? '').matchAll(/inet 10\.213\.(\d+)\./g)].map((m) => Number(m[1])));
}

const live = new Set<ClientNetwork>();
let made = 0;
let hooked = false;

/**
 * Removes every namespace this process made when it exits, however it exits (process.exit
 * included). A signal ends a Node process without an exit event: whoever handles SIGINT/SIGTERM
 * stops its own processes and calls process.exit, which lands here.
 */
export function removeAllOnExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const n of live) n.remove();
  });
}

/** One client namespace and its veth pair; the servers stay in this (the root) namespace. */
export class ClientNetwork {
  /** The namespace's name (`ip netns exec <name> …`). */
  readonly name: string;
  /** This machine's end of the link: servers the clients reach listen on this address. */
  readonly hostAddress: string;
  /** The namespace's address. */
  readonly clientAddress: string;
  private readonly hostLink: string;
  private readonly clientLink: string;
  private removed = false;

  private constructor(name: string, octet: number) {
    this.name = name;
    this.hostLink = `${name}h`;
    this.clientLink = `${name}c`;
    this.hostAddress = `10.213.${octet}.1`;
    this.clientAddress = `10.213.${octet}.2`;
  }

  /** Makes a namespace with a veth pair to this one, up and addressed. Throws with the failing command. */
  static create(): ClientNetwork {
    const used = usedSubnets();
    let octet = 1;
    while (used.has(octet)) octet++;
    if (octet > 254) throw new Error('no free 10.213.X.0/30 network for a client namespace');
    const net = new ClientNetwork(`fo${process.pid.toString(36)}${(made++).toString(36)}`, octet);
    live.add(net);
    try {
      run(['ip', 'netns', 'add', net.name], 'client namespace');
      run(['ip', 'link', 'add', net.hostLink, 'type', 'veth', 'peer', 'name', net.clientLink, 'netns', net.name], 'veth pair');
      run(['ip', 'addr', 'add', `${net.hostAddress}/30`, 'dev', net.hostLink], 'host address');
      run(['ip', 'link', 'set', net.hostLink, 'up'], 'host link');
      net.inside(['ip', 'addr', 'add', `${net.clientAddress}/30`, 'dev', net.clientLink]);
      net.inside(['ip', 'link', 'set', net.clientLink, 'up']);
      net.inside(['ip', 'link', 'set', 'lo', 'up']);
      net.inside(['ip', 'route', 'add', 'default', 'via', net.hostAddress]);
    } catch (err) {
      net.remove();
      throw err;
    }
    return net;
  }

  private inside(args: readonly string[]): void {
    run(['ip', 'netns', 'exec', this.name, ...args], `in namespace ${this.name}`);
  }

  /**
   * Drops `percent` % of the packets on the namespace's link, each way (nftables `numgen random`);
   * 0 removes the rule.
   */
  loss(percent: number): void {
    spawnSync('ip', ['netns', 'exec', this.name, 'nft', 'delete', 'table', 'inet', 'fanout_faults']);
    if (percent <= 0) return;
    const n = Math.round(percent);
    // numgen's values are 0-99: `< 100` does not parse, so all of it is a plain drop.
    const drop = n >= 100 ? 'drop' : `numgen random mod 100 < ${n} drop`;
    const ruleset = [
      'table inet fanout_faults {',
      `  chain in { type filter hook input priority 0; iifname "${this.clientLink}" ${drop}; }`,
      `  chain out { type filter hook output priority 0; oifname "${this.clientLink}" ${drop}; }`,
      '}',
    ].join('\n');
    const r = spawnSync('ip', ['netns', 'exec', this.name, 'nft', '-f', '-'], { input: ruleset, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`nftables loss rule in ${this.name} failed: ${(r.stderr || r.error?.message || '').trim()}`);
  }

  /** Cuts the link (`ip link set … down`): packets go nowhere until {@link restore}. */
  cut(): void {
    run(['ip', 'link', 'set', this.hostLink, 'down'], 'link cut');
  }

  /** Brings the link back up after {@link cut}. */
  restore(): void {
    run(['ip', 'link', 'set', this.hostLink, 'up'], 'link restore');
  }

  /** Spawns `command` inside the namespace (`ip netns exec`); the options are spawn's (IPC included). */
  spawn(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, command, ...args], options);
  }

  /** Deletes the namespace (its end of the veth goes with it, and so does ours). Safe twice. */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    live.delete(this);
    spawnSync('ip', ['link', 'del', this.hostLink]);
    spawnSync('ip', ['netns', 'del', this.name]);
  }
}
