/**
 * Pusher apps (issue 30, docs/pusher.md#several-apps): `pusher-apps:` in a config file (or
 * `createConfig({ pusherApps: […] })`) lists apps, each with its `id`, `key` and `secret` and,
 * optionally, its own `webhook`, `max-event-bytes` and `client-event-rate` (the `--pusher-*`
 * flags' names without `pusher-`). The app of --pusher-app-id/--pusher-key/--pusher-secret, when
 * given, is one more app, served beside the list's: ids and keys are unique over all of them.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { hookUrl, int } from './values.js';

/** Most apps in one configuration: each is an endpoint, a set of routes and (with a webhook) a sender. */
export const MAX_PUSHER_APPS = 100;

export const pusherAppId = () => z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'expected 1–64 letters, digits, . _ or -' });
export const pusherAppKey = () => z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, { error: 'expected 1–128 letters, digits, . _ or -' });
export const pusherMaxEventBytes = () => int(1, 1024 * 1024);
export const pusherClientEventRate = () => int(1, 10_000);

const required = (what: string) => (issue: { input?: unknown }) => (issue.input === undefined ? `required: the app's ${what}` : undefined);

/** One app as a file (`max-event-bytes`) or `createConfig` (`maxEventBytes`) gives it. */
export const pusherAppSchema = z.strictObject({
  id: z.string({ error: required('id') }).pipe(pusherAppId()),
  key: z.string({ error: required('key') }).pipe(pusherAppKey()),
  secret: z.string({ error: required('secret') }).min(1, { error: 'expected a non-empty secret' }),
  webhook: hookUrl().optional(),
  maxEventBytes: pusherMaxEventBytes().optional(),
  clientEventRate: pusherClientEventRate().optional(),
});

/** `pusher-apps:`: at most {@link MAX_PUSHER_APPS}, each id and each key once. */
export const pusherAppsSchema = z
  .array(pusherAppSchema, { error: 'expected a list of apps (- id: app-1, key: …, secret: …)' })
  .max(MAX_PUSHER_APPS, { error: `expected at most ${MAX_PUSHER_APPS} apps` })
  .superRefine((list, ctx) => {
    for (const field of ['id', 'key'] as const) {
      const seen = new Map<string, number>();
      for (const [i, app] of list.entries()) {
        const first = seen.get(app[field]);
        if (first !== undefined) ctx.addIssue({ code: 'custom', path: [i, field], message: `pusher-apps[${first}] has the same ${field}` });
        else seen.set(app[field], i);
      }
    }
  });

/** One app as given, validated. */
export type PusherAppOptions = Readonly<z.output<typeof pusherAppSchema>>;

/** One app the node serves, its limits resolved (its own, else the --pusher-* flags'). */
export interface PusherAppConfig {
  readonly id: string;
  readonly key: string;
  readonly secret: string;
  /** Where its Pusher-format webhooks go, signed with its secret; undefined: none. */
  readonly webhook: string | undefined;
  readonly maxEventBytes: number;
  readonly clientEventRate: number;
}

/** The options the flags' app comes from. */
export interface PusherFlags {
  readonly pusherAppId?: string | undefined;
  readonly pusherKey?: string | undefined;
  readonly pusherSecret?: string | undefined;
  readonly pusherWebhook?: string | undefined;
  readonly pusherMaxEventBytes: number;
  readonly pusherClientEventRate: number;
  readonly pusherApps: readonly PusherAppOptions[];
}

/**
 * Every app the node serves: the flags' app first (when its three flags are given), then the
 * list's. Throws a ConfigError naming the flag (or `pusher-apps[i].…`) that breaks a rule.
 */
export function resolvePusherApps(options: PusherFlags): PusherAppConfig[] {
  const flags = [options.pusherAppId, options.pusherKey, options.pusherSecret];
  if (flags.some((v) => v !== undefined) && flags.some((v) => v === undefined)) {
    const missing = ['--pusher-app-id', '--pusher-key', '--pusher-secret'][flags.findIndex((v) => v === undefined)]!;
    throw new ConfigError(missing, '--pusher-app-id, --pusher-key and --pusher-secret go together (one Pusher app)');
  }
  if (options.pusherWebhook !== undefined && options.pusherAppId === undefined) {
    throw new ConfigError('--pusher-webhook', 'needs --pusher-app-id, --pusher-key and --pusher-secret (its requests are signed with the app secret; apps of pusher-apps: have their own webhook)');
  }
  const limits = { maxEventBytes: options.pusherMaxEventBytes, clientEventRate: options.pusherClientEventRate };
  const apps: PusherAppConfig[] = options.pusherApps.map((app) => ({
    id: app.id,
    key: app.key,
    secret: app.secret,
    webhook: app.webhook,
    maxEventBytes: app.maxEventBytes ?? limits.maxEventBytes,
    clientEventRate: app.clientEventRate ?? limits.clientEventRate,
  }));
  if (options.pusherAppId === undefined || options.pusherKey === undefined || options.pusherSecret === undefined) return apps;
  const sameId = apps.findIndex((app) => app.id === options.pusherAppId);
  if (sameId >= 0) throw new ConfigError('--pusher-app-id', `pusher-apps[${sameId}] has the same id; the flags' app is one more app, beside the list's`);
  const sameKey = apps.findIndex((app) => app.key === options.pusherKey);
  if (sameKey >= 0) throw new ConfigError('--pusher-key', `pusher-apps[${sameKey}] has the same key; the flags' app is one more app, beside the list's`);
  return [{ id: options.pusherAppId, key: options.pusherKey, secret: options.pusherSecret, webhook: options.pusherWebhook, ...limits }, ...apps];
}

