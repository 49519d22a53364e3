import { describe, expect, it } from 'vitest';
import { LimiterError } from '../../lib/errors.js';
import { formatBits, formatBytes, formatRate, MAX_BYTES, parseRate, parseSize } from '../../lib/units.js';

describe('parseRate', () => {
  it.each([
    ['1', 1],
    ['1048576', 1048576],
    ['1k', 1024],
    ['1K', 1024],
    ['1m', 1048576],
    ['1M', 1048576],
    ['2g', 2 * 1024 ** 3],
    ['1.5m', 1572864],
    ['0.5k', 512],
    ['8bit', 1],
    ['100kbit', 12500],
    ['10mbit', 1250000],
    ['10Mbit', 1250000],
    ['1gbit', 125000000],
    ['1024g', MAX_BYTES],
  ])('%s → %d B/s', (text, bytes) => {
    expect(parseRate(text)).toBe(bytes);
  });

  it.each([
    ['', 'bad-unit'],
    ['abc', 'bad-unit'],
    ['-1', 'bad-unit'],
    ['+5', 'bad-unit'],
    ['1x', 'bad-unit'],
    ['1mb', 'bad-unit'],
    ['1 m', 'bad-unit'],
    ['1e6', 'bad-unit'],
    ['0x10', 'bad-unit'],
    ['1.', 'bad-unit'],
    ['.5m', 'bad-unit'],
    ['1m5', 'bad-unit'],
    ['0', 'out-of-range'],
    ['0m', 'out-of-range'],
    ['1bit', 'out-of-range'],
    ['1025g', 'out-of-range'],
    ['99999999999999999999999999999999', 'out-of-range'],
  ])('rejects %j (%s) with a usage error that lists the forms', (text, code) => {
    try {
      parseRate(text);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(LimiterError);
      expect((err as LimiterError).exitCode).toBe(2);
      expect((err as LimiterError).code).toBe(code);
      if (code === 'bad-unit') expect((err as LimiterError).message).toMatch(/kbit/);
    }
  });
});

describe('parseSize', () => {
  it('takes byte suffixes only', () => {
    expect(parseSize('64k')).toBe(65536);
    expect(parseSize('1500')).toBe(1500);
    expect(() => parseSize('10mbit')).toThrow(/expected bytes/);
    expect(() => parseSize('0')).toThrow(/less than 1 byte/);
  });
});

describe('formatting', () => {
  it.each([
    [0, '0 B'],
    [1000, '1000 B'],
    [1024, '1 KiB'],
    [1536, '1.5 KiB'],
    [1048576, '1 MiB'],
    [1234567890, '1.15 GiB'],
  ])('formatBytes(%d) = %s', (n, text) => expect(formatBytes(n)).toBe(text));

  it('formats rates in bytes and bits', () => {
    expect(formatRate(1048576)).toBe('1 MiB/s (8.39 Mbit/s)');
    expect(formatRate(125000000)).toBe('119 MiB/s (1 Gbit/s)');
    expect(formatBits(999)).toBe('999 bit/s');
  });
});
