import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { emptyState, loadState, parseState, saveState, type State } from '../../lib/state.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'limiter-state-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const sample: State = {
  version: 1,
  lastRule: 'web',
  rules: {
    web: {
      cgroupId: 1234,
      slot: 0,
      egress: { rate: 1048576, bucket: 1048576 },
      ingress: null,
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

  it.each([
    ['not JSON', '{'],
    ['wrong version', JSON.stringify({ ...sample, version: 2 })],
    ['rule without cgroup id', JSON.stringify({ ...sample, rules: { web: { slot: 0, egress: null, ingress: null, members: {}, released: [] } } })],
    ['limit without bucket', JSON.stringify({ ...sample, rules: { web: { cgroupId: 1, slot: 0, egress: { rate: 1 }, ingress: null, members: {}, released: [] } } })],
    ['cookie that is not a number', JSON.stringify({ ...sample, rules: { web: { cgroupId: 1, slot: 0, egress: null, ingress: null, members: {}, released: ['x'] } } })],
    ['member without origin', JSON.stringify({ ...sample, rules: { web: { cgroupId: 1, slot: 0, egress: null, ingress: null, members: { 1: {} }, released: [] } } })],
    ['array of rules', JSON.stringify({ ...sample, rules: [] })],
  ])('rejects a file with %s', (_why, text) => {
    expect(parseState(text)).toBeNull();
    const file = join(dir, 'state.json');
    writeFileSync(file, text);
    expect(() => loadState(file)).toThrow(/not valid/);
  });
});
