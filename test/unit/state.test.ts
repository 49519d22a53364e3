import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { emptyState, loadState, parseState, saveState, type State } from '../../lib/store/state.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'limiter-state-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const sample: State = {
  version: 2,
  lastRule: 'web',
  rules: {
    web: {
      cgroupId: 1234,
      members: { '42': { origin: '/user.slice', startTime: 99, sockets: ['7'] } },
      released: [],
    },
  },
};

describe('state store', () => {
  it('is empty when there is no file', () => {
    expect(loadState(join(dir, 'state.json'))).toEqual(emptyState());
  });

  it('saves atomically and loads back what it saved', () => {
    const file = join(dir, 'state.json');
    saveState(file, sample);
    expect(loadState(file)).toEqual(sample);
    expect(readdirSync(dir)).toEqual(['state.json']);
    expect(readFileSync(file, 'utf8').endsWith('\n')).toBe(true);
  });

  it('reads a version 1 file, whose limits and slots the maps hold, as version 2', () => {
    const web = { ...sample.rules.web, slot: 3, egress: { rate: 1048576, bucket: 1048576 }, ingress: null };
    expect(parseState(JSON.stringify({ ...sample, version: 1, rules: { web } }))).toEqual(sample);
  });

  it.each([
    ['not JSON', '{'],
    ['unknown version', JSON.stringify({ ...sample, version: 3 })],
    ['rule without cgroup id', JSON.stringify({ ...sample, rules: { web: { members: {}, released: [] } } })],
    [
      'cookie that is not a number',
      JSON.stringify({ ...sample, rules: { web: { cgroupId: 1, members: {}, released: ['x'] } } }),
    ],
    [
      'member without origin',
      JSON.stringify({ ...sample, rules: { web: { cgroupId: 1, members: { 1: {} }, released: [] } } }),
    ],
    ['array of rules', JSON.stringify({ ...sample, rules: [] })],
  ])('rejects a file with %s', (_why, text) => {
    expect(parseState(text)).toBeNull();
    const file = join(dir, 'state.json');
    writeFileSync(file, text);
    expect(() => loadState(file)).toThrow(/not valid/);
  });
});
