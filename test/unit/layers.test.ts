/**
 * The layers of lib/ as the README describes them, checked on the import
 * graph (madge): no cycles; kernel/ imports nothing above it, store/ no use
 * case, lib/ no CLI; and every source file small enough to read at once.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../lib/instance.js';

const root = packageRoot();
const madge = (...args: string[]) => {
  const result = spawnSync(
    join(root, 'node_modules/.bin/madge'),
    ['--json', '--extensions', 'ts', '--ts-config', 'tsconfig.json', ...args, 'lib', 'cli'],
    { cwd: root, encoding: 'utf8' },
  );
  return JSON.parse(result.stdout) as unknown;
};
const graph = madge() as Record<string, string[]>;

/** The layer of a file: what it may import from. */
function layer(file: string): 'kernel' | 'store' | 'ops' | 'leaf' | 'cli' {
  if (file.startsWith('cli/')) return 'cli';
  const folder = /^lib\/(kernel|store|ops)\//.exec(file)?.[1];
  return (folder as 'kernel' | 'store' | 'ops' | undefined) ?? 'leaf';
}
const allowed: Record<ReturnType<typeof layer>, Array<ReturnType<typeof layer>>> = {
  // The leaves are the few shared modules (errors, log, units, instance, context, signals, undo); context finds the mounts.
  leaf: ['leaf', 'kernel'],
  kernel: ['kernel', 'leaf'],
  store: ['store', 'kernel', 'leaf'],
  ops: ['ops', 'store', 'kernel', 'leaf'],
  cli: ['cli', 'ops', 'store', 'kernel', 'leaf'],
};

describe('layers', () => {
  it('has found the sources', () => expect(Object.keys(graph).length).toBeGreaterThan(30));

  it('has no import cycles', () => expect(madge('--circular')).toEqual([]));

  it('imports go from each layer only to its own and the ones below', () => {
    const wrong = Object.entries(graph).flatMap(([file, imports]) => {
      const leaf = layer(file) === 'leaf' && file !== 'lib/context.ts';
      return imports
        .filter((i) => !allowed[layer(file)].includes(layer(i)) || (leaf && layer(i) === 'kernel'))
        .map((i) => `${file} -> ${i}`);
    });
    expect(wrong).toEqual([]);
  });

  it('no source file is over 350 lines', () => {
    const long = Object.keys(graph).filter((file) => readFileSync(join(root, file), 'utf8').split('\n').length > 350);
    expect(long).toEqual([]);
  });
});
