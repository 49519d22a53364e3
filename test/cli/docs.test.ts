/**
 * The man page and the bash completion are generated from cli/options.ts at
 * build time; this checks the result against what --help really offers, so
 * that neither can miss a command or an option.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../lib/instance.js';
import { runCli } from '../harness/cli.js';

const root = packageRoot();
const man = readFileSync(join(root, 'build/doc/limiter.8'), 'utf8');
const completion = readFileSync(join(root, 'build/completions/limiter'), 'utf8');

/** The commands and their long options, as --help lists them. */
function helpOptions(args: string[]): string[] {
  const text = runCli([...args, '--help']).stdout;
  return [...text.matchAll(/^ {2}(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]).filter((o) => o !== '--help');
}
const commands = [...runCli(['--help']).stdout.matchAll(/^ {2}([a-z]+) /gm)]
  .map((m) => m[1])
  .filter((c) => c !== 'help');

describe('generated docs', () => {
  it('--help lists the commands', () => expect(commands).toEqual(expect.arrayContaining(['set', 'list', 'purge'])));

  it.each(commands)('%s and every option of its --help are in the man page and the completion', (command) => {
    expect(man).toMatch(new RegExp(`^\\.SS ${command}$`, 'm'));
    expect(man).toContain(`\\fBlimiter ${command}\\fR`);
    expect(completion).toMatch(new RegExp(`^ {4}${command}\\) options="`, 'm'));
    const line = new RegExp(`^ {4}${command}\\) options="([^"]*)"`, 'm').exec(completion)![1].split(' ');
    for (const option of helpOptions([command])) {
      expect(man, `${command} ${option}`).toContain(`\\fB${option.replace(/-/g, '\\-')}\\fR`);
      expect(line, `${command} ${option}`).toContain(option);
    }
  });

  it('the global options too', () => {
    for (const option of helpOptions([])) expect(completion).toContain(option);
  });

  it('the completion is valid bash, and the man page valid roff', () => {
    expect(spawnSync('bash', ['-n', join(root, 'build/completions/limiter')]).status).toBe(0);
    const roff = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', join(root, 'build/doc/limiter.8')], {
      encoding: 'utf8',
    });
    expect(roff.stderr).toBe('');
  });
});
