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

const web = {
  target: { kind: 'pid' as const },
  source: 'cli' as const,
  cgroupId: 1234,
  members: { '42': { origin: '/user.slice', startTime: 99, adopted: { sockets: 2, listeners: 1 } } },
  owned: true,
};
const ci = {
  target: { kind: 'unit' as const, unit: 'ci.service', path: '/system.slice/ci.service' },
  source: 'file' as const,
  cgroupId: 99,
  members: {},
  owned: false,
};
const sample: State = { version: 2, lastRule: 'web', rules: { web, ci } };
const withRule = (rule: unknown) => JSON.stringify({ ...sample, rules: { web: rule } });

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
    ['another version', JSON.stringify({ ...sample, version: 1 })],
    ['rule without cgroup id', withRule({ ...web, cgroupId: 'x' })],
    ['target of no known kind', withRule({ ...web, target: { kind: 'x' } })],
    ['unknown source', withRule({ ...web, source: 'x' })],
    ['unit target without a path', withRule({ ...ci, target: { kind: 'unit', unit: 'ci.service' } })],
    [
      'member without origin',
      withRule({ ...web, members: { 1: { startTime: 1, adopted: { sockets: 0, listeners: 0 } } } }),
    ],
    [
      'negative socket count',
      withRule({ ...web, members: { 1: { ...web.members['42'], adopted: { sockets: -1, listeners: 0 } } } }),
    ],
    ['array of rules', JSON.stringify({ ...sample, rules: [] })],
  ])('rejects a file with %s', (_why, text) => {
    expect(parseState(text)).toBeNull();
    const file = join(dir, 'state.json');
    writeFileSync(file, text);
    expect(() => loadState(file)).toThrow(/not valid/);
  });
});
