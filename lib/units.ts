import { usageError } from './errors.js';

/** Largest rate (bytes/s) and bucket (bytes) accepted: 1 TiB. */
export const MAX_BYTES = 2 ** 40;

const BYTE_SUFFIXES: Record<string, bigint> = {
  '': 1n,
  k: 1024n,
  K: 1024n,
  m: 1024n ** 2n,
  M: 1024n ** 2n,
  g: 1024n ** 3n,
  G: 1024n ** 3n,
};
/** tc-style bit rates: SI multiples of bits per second. */
const BIT_SUFFIXES: Record<string, bigint> = {
  bit: 1n,
  kbit: 1000n,
  mbit: 1000n ** 2n,
  gbit: 1000n ** 3n,
};

export const RATE_FORMS =
  'bytes per second as a number (1048576), with k/m/g (×1024: 512k, 1m, 2g), or tc bit rates (100kbit, 10mbit, 1gbit)';
export const SIZE_FORMS = 'bytes as a number (65536), or with k/m/g (×1024: 64k, 1m, 2g)';

const NUMBER = /^(\d+)(?:\.(\d+))?([A-Za-z]*)$/;

function parseQuantity(what: string, text: string, allowBits: boolean): number {
  const forms = allowBits ? RATE_FORMS : SIZE_FORMS;
  const match = NUMBER.exec(text);
  const suffix = match?.[3] ?? '';
  const bitMultiplier = allowBits ? BIT_SUFFIXES[suffix.toLowerCase()] : undefined;
  const byteMultiplier = BYTE_SUFFIXES[suffix];
  if (!match || (bitMultiplier === undefined && byteMultiplier === undefined)) {
    throw usageError('bad-unit', `invalid ${what} '${text}': expected ${forms}`);
  }
  const [, whole = '', fraction = ''] = match;
  if (whole.length + fraction.length > 30) {
    throw usageError('out-of-range', `${what} '${text}' is too large (at most ${formatBytes(MAX_BYTES)})`);
  }
  // Exact rational arithmetic: value = digits / 10^fraction.length × multiplier (÷ 8 for bits).
  const digits = BigInt(whole + fraction);
  const numerator = digits * (bitMultiplier ?? byteMultiplier);
  let denominator = 10n ** BigInt(fraction.length);
  if (bitMultiplier !== undefined) denominator *= 8n;
  const rounded = (numerator * 2n + denominator) / (denominator * 2n);
  if (rounded < 1n) {
    throw usageError('out-of-range', `${what} '${text}' is less than 1 byte${allowBits ? ' per second' : ''}`);
  }
  if (rounded > BigInt(MAX_BYTES)) {
    throw usageError(
      'out-of-range',
      `${what} '${text}' is too large (at most ${formatBytes(MAX_BYTES)}${allowBits ? '/s' : ''})`,
    );
  }
  return Number(rounded);
}

/** A rate in bytes per second. */
export function parseRate(text: string, what = 'rate'): number {
  return parseQuantity(what, text, true);
}

/** A size in bytes. */
export function parseSize(text: string, what = 'bucket'): number {
  return parseQuantity(what, text, false);
}

const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1048576 → "1 MiB"; 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = unit === 0 ? String(value) : trimNumber(value);
  return `${text} ${BINARY_UNITS[unit]}`;
}

/** 1048576 → "1 MiB/s (8.39 Mbit/s)". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s (${formatBits(bytesPerSecond * 8)})`;
}

export function formatBits(bitsPerSecond: number): string {
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
  let value = bitsPerSecond;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${trimNumber(value)} ${units[unit]}`;
}

function trimNumber(value: number): string {
  return value >= 100 ? value.toFixed(0) : String(Number(value.toPrecision(3)));
}
