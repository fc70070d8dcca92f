/** Reads a node's /metrics in tests: fetches the Prometheus text and looks up samples. */
import { until } from '../../harness/wait.js';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the Prometheus text exposition format (the subset prom-client writes). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) throw new Error(`unparseable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** A scrape: `value(name, labels)` sums the samples of `name` whose labels include `labels` (0 when none). */
export interface Scrape {
  readonly text: string;
  readonly samples: readonly Sample[];
  value(name: string, labels?: Readonly<Record<string, string>>): number;
  has(name: string): boolean;
}

export async function scrape(baseUrl: string, token?: string): Promise<Scrape> {
  const res = await fetch(`${baseUrl}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${text}`);
  const samples = parseMetrics(text);
  return {
    text,
    samples,
    value: (name, labels = {}) =>
      samples
        .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        .reduce((sum, s) => sum + s.value, 0),
    has: (name) => samples.some((s) => s.name === name),
  };
}

/** Scrapes until `predicate` holds (metrics follow events by a turn or two), or throws with the last scrape. */
export async function scrapeUntil(baseUrl: string, predicate: (s: Scrape) => boolean, timeoutMs = 5000, token?: string): Promise<Scrape> {
  let last: Scrape | undefined;
  await until(
    async () => {
      last = await scrape(baseUrl, token);
      return predicate(last);
    },
    {
      timeoutMs,
      intervalMs: 50,
      what: 'the metrics condition',
      detail: () => `\n${(last?.text ?? '').split('\n').filter((l) => l.startsWith('fanout_') && !l.includes('process') && !l.includes('nodejs')).join('\n')}`,
    },
  );
  return last!;
}
