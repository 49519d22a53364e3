/**
 * Bad invocations: each exits with the code of DESIGN.md section 2, says one
 * thing on stderr (plus an optional hint line), prints nothing on stdout, and
 * leaves no trace of the instance.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { destroyInstance, instanceFootprint, runCli, uniqueInstance } from '../helpers.js';

const instance = uniqueInstance('cli');
let sleeper: ChildProcess;

/** A pid that no process has now. */
function unusedPid(): number {
  const used = new Set(readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number));
  let pid = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) - 1;
  while (used.has(pid)) pid -= 1;
  return pid;
}

beforeAll(() => {
  sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
});
afterAll(() => {
  sleeper.kill('SIGKILL');
  destroyInstance(instance);
});

interface Case {
  args: (pid: number) => string[];
  code: number;
  stderr: RegExp;
  env?: NodeJS.ProcessEnv;
  uid?: number;
}

const cases: Record<string, Case> = {
  'no command': { args: () => [], code: 2, stderr: /Usage: limiter/ },
  'unknown command': { args: () => ['frob'], code: 2, stderr: /^limiter: unknown command 'frob'/ },
  'unknown option': { args: () => ['list', '--frob'], code: 2, stderr: /^limiter: unknown option '--frob'/ },
  'set without --pid': { args: () => ['set', '--rate', '1m'], code: 2, stderr: /required option '--pid/ },
  'set without --rate': { args: (p) => ['set', '--pid', `${p}`], code: 2, stderr: /required option '--rate/ },
  'set --pid without value': { args: () => ['set', '--rate', '1m', '--pid'], code: 2, stderr: /argument missing/ },
  'non-numeric pid': { args: () => ['set', '--pid', 'abc', '--rate', '1m'], code: 2, stderr: /^limiter: invalid pid 'abc'/ },
  'negative pid': { args: () => ['set', '--pid=-5', '--rate', '1m'], code: 2, stderr: /^limiter: invalid pid '-5'/ },
  'zero pid': { args: () => ['set', '--pid', '0', '--rate', '1m'], code: 2, stderr: /^limiter: invalid pid '0': out of range/ },
  'overflowing pid': { args: () => ['set', '--pid', '99999999999999999999', '--rate', '1m'], code: 2, stderr: /out of range/ },
  'fractional pid': { args: () => ['set', '--pid', '1.5', '--rate', '1m'], code: 2, stderr: /invalid pid '1.5'/ },
  'empty pid': { args: () => ['set', '--pid', '', '--rate', '1m'], code: 2, stderr: /invalid pid ''/ },
  'non-numeric rate': { args: (p) => ['set', '--pid', `${p}`, '--rate', 'fast'], code: 2, stderr: /^limiter: invalid rate 'fast': expected .*kbit/ },
  'negative rate': { args: (p) => ['set', '--pid', `${p}`, '--rate=-1m'], code: 2, stderr: /invalid rate '-1m'/ },
  'zero rate': { args: (p) => ['set', '--pid', `${p}`, '--rate', '0'], code: 2, stderr: /rate '0' is less than 1 byte/ },
  'unknown rate unit': { args: (p) => ['set', '--pid', `${p}`, '--rate', '1mb'], code: 2, stderr: /invalid rate '1mb'/ },
  'overflowing rate': { args: (p) => ['set', '--pid', `${p}`, '--rate', '5000g'], code: 2, stderr: /too large/ },
  'zero bucket': { args: (p) => ['set', '--pid', `${p}`, '--rate', '1m', '--bucket', '0'], code: 2, stderr: /bucket '0' is less than 1 byte/ },
  'bit-rate bucket': { args: (p) => ['set', '--pid', `${p}`, '--rate', '1m', '--bucket', '1mbit'], code: 2, stderr: /invalid bucket '1mbit'/ },
  'overflowing bucket': { args: (p) => ['set', '--pid', `${p}`, '--rate', '1', '--bucket', '1024g'], code: 2, stderr: /lasts too long/ },
  'bad rule name': { args: (p) => ['set', '--pid', `${p}`, '--rate', '1m', '--name', 'a/b'], code: 2, stderr: /invalid rule name 'a\/b'/ },
  'no such pid': { args: () => ['set', '--pid', `${unusedPid()}`, '--rate', '1m'], code: 4, stderr: /^limiter: no process with pid \d+$/m },
  'kernel thread': { args: () => ['set', '--pid', '2', '--rate', '1m'], code: 2, stderr: /pid 2 \(kthreadd\) is a kernel thread/ },
  'BPF object missing': {
    args: (p) => ['set', '--pid', `${p}`, '--rate', '1m'],
    env: { LIMITER_BPF_OBJECT: '/nonexistent/limiter.bpf.o' },
    code: 5,
    stderr: /^limiter: BPF object \/nonexistent\/limiter.bpf.o not found\nhint: /,
  },
  'not root': { args: (p) => ['set', '--pid', `${p}`, '--rate', '1m'], uid: 65534, code: 3, stderr: /^limiter: limiter needs root.*\nhint: run it with sudo/ },
  'not root, list': { args: () => ['list'], uid: 65534, code: 3, stderr: /needs root/ },
  'bad instance name': { args: () => ['list'], env: { LIMITER_INSTANCE: '../etc' }, code: 2, stderr: /invalid LIMITER_INSTANCE '..\/etc'/ },
  'unset a pid that is not limited': { args: (p) => ['unset', '--pid', `${p}`], code: 4, stderr: /^limiter: pid \d+ is not limited/ },
  'unset without --pid': { args: () => ['unset'], code: 2, stderr: /required option '--pid/ },
  'list --pid of no process': { args: () => ['list', '--pid', `${unusedPid()}`], code: 4, stderr: /no process with pid/ },
  'list --pid non-numeric': { args: () => ['list', '--pid', 'x'], code: 2, stderr: /invalid pid 'x'/ },
};

describe('bad invocations', () => {
  it.each(Object.entries(cases))('%s', (_name, c) => {
    const result = runCli(c.args(sleeper.pid!), { LIMITER_INSTANCE: instance, ...c.env }, c.uid === undefined ? {} : { uid: c.uid, gid: c.uid });
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(c.stderr);
    if (!/Usage/.test(result.stderr)) expect(result.stderr.trimEnd().split('\n').length).toBeLessThanOrEqual(2);
    expect(result.code).toBe(c.code);
    expect(instanceFootprint(instance)).toEqual([]);
  });
});

describe('good invocations', () => {
  it('--version prints the version', () => {
    const result = runCli(['--version']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('--help lists every command', () => {
    const result = runCli(['--help']);
    expect(result.code).toBe(0);
    for (const command of ['set', 'unset', 'list', 'purge']) expect(result.stdout).toContain(`  ${command} `);
  });

  it('list of an instance that has nothing prints no data and changes nothing', () => {
    const result = runCli(['list', '--json'], { LIMITER_INSTANCE: instance });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ rules: [] });
    expect(instanceFootprint(instance)).toEqual([]);
  });

  it('purge of an instance that has nothing succeeds and leaves nothing', () => {
    const result = runCli(['purge'], { LIMITER_INSTANCE: instance });
    expect(result.code).toBe(0);
    expect(instanceFootprint(instance)).toEqual([]);
  });
});
