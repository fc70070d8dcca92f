/**
 * Applying a fossil delta (https://fossil-scm.org/home/doc/tip/www/delta_format.wiki), the
 * format of the server's delta `message` frames (docs/protocol.md). Written here from the format's
 * description rather than taken from npm: the SDK runs in browsers as plain ES modules, with no
 * bundler to resolve a package, and the server encodes with `fossil-delta`, so this is also the
 * second, independent implementation a unit test checks that encoder against.
 *
 * A delta is: the target's size as a base-64 integer and a newline, then commands, each an
 * integer and a letter: `N@O,` copies N bytes of the source from offset O, `N:` inserts the N
 * bytes that follow, `N;` ends the delta, N being the target's checksum.
 */

/** The digits of fossil's base-64 integers, in value order. */
const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~';
const DIGIT_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < DIGITS.length; i++) DIGIT_VALUE[DIGITS.charCodeAt(i)] = i;

const NEWLINE = 0x0a;
const COPY = 0x40; // '@'
const COMMA = 0x2c;
const INSERT = 0x3a; // ':'
const END = 0x3b; // ';'

/** The delta is malformed, or does not belong to this source (the checksum differs). */
export class DeltaError extends Error {
  override readonly name = 'DeltaError';
}

/**
 * Fossil's checksum: the 32-bit sum of the target read as big-endian 32-bit words, a last partial
 * word padded with zeros.
 */
export function fossilChecksum(bytes: Uint8Array): number {
  let sum0 = 0;
  let sum1 = 0;
  let sum2 = 0;
  let sum3 = 0;
  const whole = bytes.length - (bytes.length % 4);
  for (let i = 0; i < whole; i += 4) {
    sum0 = (sum0 + bytes[i]!) | 0;
    sum1 = (sum1 + bytes[i + 1]!) | 0;
    sum2 = (sum2 + bytes[i + 2]!) | 0;
    sum3 = (sum3 + bytes[i + 3]!) | 0;
  }
  let sum = (sum3 + (sum2 << 8) + (sum1 << 16) + (sum0 << 24)) | 0;
  const rest = bytes.length - whole;
  if (rest >= 3) sum = (sum + (bytes[whole + 2]! << 8)) | 0;
  if (rest >= 2) sum = (sum + (bytes[whole + 1]! << 16)) | 0;
  if (rest >= 1) sum = (sum + (bytes[whole]! << 24)) | 0;
  return sum >>> 0;
}

/** Applies `delta` to `source`; throws {@link DeltaError} when it is malformed or meant for another source. */
export function applyFossilDelta(source: Uint8Array, delta: Uint8Array): Uint8Array {
  let at = 0;
  const readInt = (): number => {
    const start = at;
    let value = 0;
    for (let c = delta[at]; c !== undefined && c < 128 && DIGIT_VALUE[c]! >= 0; c = delta[++at]) value = value * 64 + DIGIT_VALUE[c]!;
    if (at === start) throw new DeltaError(`delta: expected a number at byte ${start}`);
    return value;
  };
  const size = readInt();
  if (delta[at++] !== NEWLINE) throw new DeltaError('delta: the size is not followed by a newline');
  const out = new Uint8Array(size);
  let written = 0;
  while (at < delta.length) {
    const count = readInt();
    const op = delta[at++];
    if (op === COPY) {
      const from = readInt();
      if (delta[at++] !== COMMA) throw new DeltaError('delta: a copy is not followed by a comma');
      if (written + count > size || from + count > source.length) throw new DeltaError('delta: a copy reaches past the source or the target');
      out.set(source.subarray(from, from + count), written);
      written += count;
    } else if (op === INSERT) {
      if (written + count > size || at + count > delta.length) throw new DeltaError('delta: an insert reaches past the delta or the target');
      out.set(delta.subarray(at, at + count), written);
      written += count;
      at += count;
    } else if (op === END) {
      if (written !== size) throw new DeltaError(`delta: the target has ${written} bytes, not the ${size} announced`);
      if (count !== fossilChecksum(out)) throw new DeltaError('delta: checksum mismatch (applied to another source than it was made from)');
      return out;
    } else {
      throw new DeltaError(`delta: unknown command at byte ${at - 1}`);
    }
  }
  throw new DeltaError('delta: it ends without a checksum');
}
