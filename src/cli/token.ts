/**
 * `fanout token`: prints a signed HS256 JWT for development and tests. The token is the last
 * line of the output, so scripts can take it with `tail -1`.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { z } from 'zod';
import { parseCommand } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { CHANNEL_NAME } from '../protocol/decode.js';

export const tokenSchema = z.object({
  secret: z.string({ error: 'is required: the --jwt-secret the nodes use' }).min(1, { error: 'must not be empty' }),
  sub: z.string({ error: 'is required: the user id' }).min(1, { error: 'must not be empty' }),
  channels: z.string().optional(),
  channel: z.string().regex(CHANNEL_NAME, { error: 'expected a channel name (letters, digits and _ - . : @ / = +; no patterns)' }).optional(),
  ttl: z.coerce
    .number({ error: 'expected a number of seconds' })
    .int({ error: 'expected a whole number of seconds' })
    .min(1, { error: 'expected at least 1 second' })
    .default(3600),
  issuer: z.string().min(1).optional(),
  audience: z.string().min(1).optional(),
});

export const TOKEN_HELP = `Usage: fanout token --secret S --sub ID [--channels "a,b:*"] [--channel C] [--ttl 3600]

Prints an HS256 JWT for a node started with --jwt-secret S (for development and tests), with
a random jti (what POST /api/tokens/revoke names) and iat.
The token is the last line of the output.

  --secret S        the HS256 secret (the node's --jwt-secret)
  --sub ID          the user id (sub claim)
  --channels LIST   channel patterns the user may subscribe and publish to, comma-separated
                    (channels claim); without it the token connects but may use no channel
                    beyond --anonymous-*: for the demo page's rooms, --channels 'chat:*'
  --channel C       a subscription token for channel C (channel claim): the connection of user
                    --sub may subscribe to C with it, until it expires, even where its own
                    patterns do not allow C; see docs/auth.md
  --ttl SECONDS     lifetime (default 3600)
  --issuer ISS      iss claim (for a node with --jwt-issuer)
  --audience AUD    aud claim (for a node with --jwt-audience)`;

/** Signs a development token. */
export async function signToken(options: z.output<typeof tokenSchema>): Promise<string> {
  const claims: Record<string, unknown> = {};
  if (options.channels !== undefined) {
    claims['channels'] = options.channels
      .split(',')
      .map((c) => c.trim())
      .filter(Boolean);
  }
  if (options.channel !== undefined) claims['channel'] = options.channel;
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(options.sub).setJti(randomUUID()).setIssuedAt().setExpirationTime(`${options.ttl}s`);
  if (options.issuer !== undefined) jwt = jwt.setIssuer(options.issuer);
  if (options.audience !== undefined) jwt = jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(options.secret));
}

export async function tokenCommand(argv: readonly string[]): Promise<void> {
  if (argv.includes('--help')) {
    process.stdout.write(TOKEN_HELP + '\n');
    return;
  }
  const { options, positionals } = parseCommand(tokenSchema, argv);
  if (positionals.length > 0) throw new ConfigError(positionals[0]!, 'unexpected argument');
  process.stdout.write((await signToken(options)) + '\n');
}
