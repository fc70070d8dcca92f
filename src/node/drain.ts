/** Closing many clients without a reconnect storm: in even slices over a period. */
import { TIMINGS } from '../config/defaults.js';
import type { Client } from '../transport/client.js';

/**
 * Closes `clients` with `code` in even slices over `seconds`, whatever their number: one slice
 * every `interval` ms (at least TIMINGS.drainTickMs apart), so their reconnects arrive spread out
 * instead of all at once. Clients already closed are skipped.
 */
export async function closeSpread(clients: readonly Client[], code: number, reason: string, seconds: number): Promise<void> {
  const total = seconds * 1000;
  const interval = clients.length === 0 ? 0 : Math.max(TIMINGS.drainTickMs, total / clients.length);
  const perSlice = total === 0 ? clients.length : Math.ceil((clients.length * interval) / total);
  for (let i = 0; i < clients.length; i += perSlice) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, interval));
    for (const client of clients.slice(i, i + perSlice)) if (client.open) client.ws.close(code, reason);
  }
}
