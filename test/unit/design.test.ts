/** Every fact the code cites as `design.md Kn` is in doc/design.md, and nothing cites a file outside the repository. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { packageRoot } from '../../lib/instance.js';

const root = packageRoot();
const sources = spawnSync(
  'git',
  [
    'ls-files',
    '--cached',
    '--others',
    '--exclude-standard',
    'bpf',
    'lib',
    'cli',
    'test',
    'bench',
    'scripts',
    'Makefile',
  ],
  {
    cwd: root,
    encoding: 'utf8',
  },
)
  .stdout.split('\n')
  .filter(Boolean);
const facts = new Set(
  [...readFileSync(join(root, 'doc/design.md'), 'utf8').matchAll(/^\| (K\d+) \|/gm)].map((m) => m[1]),
);

it('doc/design.md numbers its kernel facts', () => expect(facts.size).toBeGreaterThanOrEqual(19));

it('every design.md Kn cited in the code is a fact there', () => {
  const cited = sources.flatMap((file) =>
    [...readFileSync(join(root, file), 'utf8').matchAll(/design\.md,? (K\d+)/g)].map((m) => `${file}: ${m[1]}`),
  );
  expect(cited.length).toBeGreaterThan(0);
  expect(cited.filter((c) => !facts.has(c.split(': ')[1]))).toEqual([]);
});

it('no code cites a design document outside the repository', () => {
  const outside = sources
    .filter((file) => file !== 'test/unit/design.test.ts')
    .filter((file) => /DESIGN\.md|\.\.\/shared/.test(readFileSync(join(root, file), 'utf8')));
  expect(outside).toEqual([]);
});
