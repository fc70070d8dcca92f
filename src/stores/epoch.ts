/** A channel's epoch: a random id that names one continuous life of its history (src/stores/store.ts). */
import { randomBytes } from 'node:crypto';

/** A fresh epoch id (16 hex digits). */
export function newEpoch(): string {
  return randomBytes(8).toString('hex');
}
