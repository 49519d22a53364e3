/**
 * Bad invocations of every command: each exits with the code of doc/design.md
 * section 2, says one thing on stderr (plus an optional hint line), prints
 * nothing on stdout, and changes nothing: cgroups, pins, maps and state are
 * compared before and after, on an instance that has a rule.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findCgroup2Mount } from '../../lib/kernel/cgroup.js';
import { packageRoot } from '../../lib/instance.js';
import { destroyInstance, instanceFootprint, listJson, runCli, uniqueInstance } from '../harness/cli.js';
import { snapshot } from '../harness/snapshot.js';

const instance = uniqueInstance('cli');
const empty = uniqueInstance('empty');
let limited: ChildProcess;
let free: ChildProcess;
let rulePath = '';
let junk = '';

/**
 * A pid that no process has now, and the last the kernel will hand out: new
 * pids count up from the last one given, so a free pid just below it stays
 * free until they wrap around (pid_max may be only 32768).
 */
function unusedPid(): number {
  const used = new Set(
    readdirSync('/proc')
      .filter((n) => /^\d+$/.test(n))
      .map(Number),
  );
  let pid = Number(readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8')) - 1;
  while (pid > 1 && used.has(pid)) pid -= 1;
  return pid > 1 ? pid : Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) - 1;
}

beforeAll(() => {
  limited = spawn('sleep', ['300'], { stdio: 'ignore' });
  free = spawn('sleep', ['300'], { stdio: 'ignore' });
  const set = runCli(['set', '--pid', String(limited.pid), '--rate', '1m', '--name', 'web'], {
    LIMITER_INSTANCE: instance,
  });
  expect(set.code, set.stderr).toBe(0);
  rulePath = listJson({ LIMITER_INSTANCE: instance }).rules[0].cgroupPath;
  const dir = mkdtempSync(join(tmpdir(), 'limiter-junk-'));
  junk = join(dir, 'junk.o');
  writeFileSync(junk, 'not an ELF object\n');
});
afterAll(() => {
  limited.kill('SIGKILL');
  free.kill('SIGKILL');
  destroyInstance(instance);
  destroyInstance(empty);
  rmSync(join(junk, '..'), { recursive: true, force: true });
});

interface Case {
  args: () => string[];
  code: number;
  stderr: RegExp;
  env?: NodeJS.ProcessEnv;
  uid?: number;
}

const pid = () => String(free.pid);
const long = 'x'.repeat(10_000);

const cases: Record<string, Case> = {
  // the program and its options
  'no command': { args: () => [], code: 2, stderr: /Usage: limiter/ },
  'unknown command': { args: () => ['frob'], code: 2, stderr: /^limiter: unknown command 'frob'/ },
  'unknown global option': { args: () => ['--frob', 'list'], code: 2, stderr: /^limiter: unknown option '--frob'/ },
  'unknown option': { args: () => ['list', '--frob'], code: 2, stderr: /^limiter: unknown option '--frob'/ },
  'bad instance name': {
    args: () => ['list'],
    env: { LIMITER_INSTANCE: '../etc' },
    code: 2,
    stderr: /invalid LIMITER_INSTANCE '..\/etc'/,
  },
  'empty instance name': {
    args: () => ['list'],
    env: { LIMITER_INSTANCE: '' },
    code: 2,
    stderr: /invalid LIMITER_INSTANCE ''/,
  },
  'very long instance name': {
    args: () => ['list'],
    env: { LIMITER_INSTANCE: long },
    code: 2,
    stderr: /invalid LIMITER_INSTANCE/,
  },
  // set
  'set without a target': {
    args: () => ['set', '--rate', '1m'],
    code: 2,
    stderr: /set needs exactly one of --pid, --cgroup, --unit and --container/,
  },
  'set without a rate': {
    args: () => ['set', '--pid', pid()],
    code: 2,
    stderr: /give --rate \(upload\), --ingress-rate \(download\) or both/,
  },
  'ingress bucket without ingress rate': {
    args: () => ['set', '--pid', pid(), '--rate', '1m', '--ingress-bucket', '1m'],
    code: 2,
    stderr: /--ingress-bucket needs --ingress-rate/,
  },
  'zero ingress rate': {
    args: () => ['set', '--pid', pid(), '--ingress-rate', '0'],
    code: 2,
    stderr: /ingress-rate '0' is less than 1 byte/,
  },
  'bad ingress bucket': {
    args: () => ['set', '--pid', pid(), '--ingress-rate', '1m', '--ingress-bucket', 'big'],
    code: 2,
    stderr: /invalid ingress-bucket 'big'/,
  },
  'set --pid without value': { args: () => ['set', '--rate', '1m', '--pid'], code: 2, stderr: /argument missing/ },
  'non-numeric pid': {
    args: () => ['set', '--pid', 'abc', '--rate', '1m'],
    code: 2,
    stderr: /^limiter: invalid pid 'abc'/,
  },
  'negative pid': { args: () => ['set', '--pid=-5', '--rate', '1m'], code: 2, stderr: /^limiter: invalid pid '-5'/ },
  'zero pid': {
    args: () => ['set', '--pid', '0', '--rate', '1m'],
    code: 2,
    stderr: /^limiter: invalid pid '0': out of range/,
  },
  'overflowing pid': {
    args: () => ['set', '--pid', '99999999999999999999', '--rate', '1m'],
    code: 2,
    stderr: /out of range/,
  },
  'very long pid': {
    args: () => ['set', '--pid', '9'.repeat(10_000), '--rate', '1m'],
    code: 2,
    stderr: /out of range/,
  },
  'fractional pid': { args: () => ['set', '--pid', '1.5', '--rate', '1m'], code: 2, stderr: /invalid pid '1.5'/ },
  'hexadecimal pid': { args: () => ['set', '--pid', '0x10', '--rate', '1m'], code: 2, stderr: /invalid pid '0x10'/ },
  'empty pid': { args: () => ['set', '--pid', '', '--rate', '1m'], code: 2, stderr: /invalid pid ''/ },
  'non-numeric rate': {
    args: () => ['set', '--pid', pid(), '--rate', 'fast'],
    code: 2,
    stderr: /^limiter: invalid rate 'fast': expected .*kbit/,
  },
  'negative rate': { args: () => ['set', '--pid', pid(), '--rate=-1m'], code: 2, stderr: /invalid rate '-1m'/ },
  'zero rate': { args: () => ['set', '--pid', pid(), '--rate', '0'], code: 2, stderr: /rate '0' is less than 1 byte/ },
  'empty rate': { args: () => ['set', '--pid', pid(), '--rate', ''], code: 2, stderr: /invalid rate ''/ },
  'unknown rate unit': { args: () => ['set', '--pid', pid(), '--rate', '1mb'], code: 2, stderr: /invalid rate '1mb'/ },
  'overflowing rate': { args: () => ['set', '--pid', pid(), '--rate', '5000g'], code: 2, stderr: /too large/ },
  'very long rate': { args: () => ['set', '--pid', pid(), '--rate', '1'.repeat(10_000)], code: 2, stderr: /too large/ },
  'zero bucket': {
    args: () => ['set', '--pid', pid(), '--rate', '1m', '--bucket', '0'],
    code: 2,
    stderr: /bucket '0' is less than 1 byte/,
  },
  'bit-rate bucket': {
    args: () => ['set', '--pid', pid(), '--rate', '1m', '--bucket', '1mbit'],
    code: 2,
    stderr: /invalid bucket '1mbit'/,
  },
  'bucket too long for the rate': {
    args: () => ['set', '--pid', pid(), '--rate', '1', '--bucket', '1024g'],
    code: 2,
    stderr: /lasts too long/,
  },
  'bad rule name': {
    args: () => ['set', '--pid', pid(), '--rate', '1m', '--name', 'a/b'],
    code: 2,
    stderr: /invalid rule name 'a\/b'/,
  },
  'empty rule name': {
    args: () => ['set', '--pid', pid(), '--rate', '1m', '--name', ''],
    code: 2,
    stderr: /invalid rule name ''/,
  },
  'very long rule name': {
    args: () => ['set', '--pid', pid(), '--rate', '1m', '--name', long],
    code: 2,
    stderr: /invalid rule name/,
  },
  'no such pid': {
    args: () => ['set', '--pid', `${unusedPid()}`, '--rate', '1m'],
    code: 4,
    stderr: /^limiter: no process with pid \d+$/m,
  },
  'kernel thread': {
    args: () => ['set', '--pid', '2', '--rate', '1m'],
    code: 2,
    stderr: /pid 2 \(kthreadd\) is a kernel thread/,
  },
  'BPF object missing': {
    args: () => ['set', '--pid', pid(), '--rate', '1m'],
    env: { LIMITER_BPF_OBJECT: '/nonexistent/limiter.bpf.o' },
    code: 5,
    stderr: /^limiter: BPF object \/nonexistent\/limiter.bpf.o not found\nhint: /,
  },
  'not root': {
    args: () => ['set', '--pid', pid(), '--rate', '1m'],
    uid: 65534,
    code: 3,
    stderr: /^limiter: limiter needs root.*\nhint: run it with sudo/,
  },
  // unset
  'unset without a target': { args: () => ['unset'], code: 2, stderr: /unset needs exactly one of --pid/ },
  'unset a pid that is not limited': {
    args: () => ['unset', '--pid', pid()],
    code: 4,
    stderr: /^limiter: pid \d+ is not limited/,
  },
  'unset a pid that does not exist': {
    args: () => ['unset', '--pid', `${unusedPid()}`],
    code: 4,
    stderr: /no process with pid/,
  },
  'unset as a user': { args: () => ['unset', '--pid', String(limited.pid)], uid: 65534, code: 3, stderr: /needs root/ },
  // move
  'move without a target': {
    args: () => ['move', '--pid', pid()],
    code: 2,
    stderr: /exactly one of --cgroup-path, --cgid and --last/,
  },
  'move with two targets': {
    args: () => ['move', '--pid', pid(), '--last', '--cgid', '5'],
    code: 2,
    stderr: /exactly one of/,
  },
  'move to a path outside the instance': {
    args: () => ['move', '--pid', pid(), '--cgroup-path', findCgroup2Mount()],
    code: 2,
    stderr: /is not a rule of instance/,
  },
  'move to a path through ..': {
    args: () => ['move', '--pid', pid(), '--cgroup-path', `${rulePath}/..`],
    code: 2,
    stderr: /is not a rule of instance/,
  },
  'move to a path that does not exist': {
    args: () => ['move', '--pid', pid(), '--cgroup-path', `${rulePath}-nope`],
    code: 4,
    stderr: /no cgroup at/,
  },
  'move to an empty path': {
    args: () => ['move', '--pid', pid(), '--cgroup-path', ''],
    code: 2,
    stderr: /empty --cgroup-path/,
  },
  'move to an unknown cgroup id': {
    args: () => ['move', '--pid', pid(), '--cgid', '999999999'],
    code: 4,
    stderr: /has cgroup id 999999999/,
  },
  'move to a bad cgroup id': {
    args: () => ['move', '--pid', pid(), '--cgid', '-1'],
    code: 2,
    stderr: /invalid cgroup id '-1'/,
  },
  'move --last in an instance with no rules': {
    args: () => ['move', '--pid', pid(), '--last'],
    env: { LIMITER_INSTANCE: empty },
    code: 4,
    stderr: /has no rules/,
  },
  // reload
  'reload a missing object': {
    args: () => ['reload', '-o', '/nonexistent.o'],
    code: 5,
    stderr: /BPF object \/nonexistent.o not found/,
  },
  'reload a file that is not ELF': {
    args: () => ['reload', '-o', junk],
    code: 1,
    stderr: /cannot be used: not a BPF object/,
  },
  'reload a foreign object': {
    args: () => ['reload', '-o', join(packageRoot(), 'test/fixtures/foreign.bpf.o')],
    code: 1,
    stderr: /cannot be used: it lacks limiter_egress/,
  },
  'reload at another cgroup': {
    args: () => ['reload', '--cgroup-path', findCgroup2Mount()],
    code: 2,
    stderr: /is attached at/,
  },
  'reload -o without value': { args: () => ['reload', '-o'], code: 2, stderr: /argument missing/ },
  'reload an instance with nothing attached': {
    args: () => ['reload'],
    env: { LIMITER_INSTANCE: empty },
    code: 1,
    stderr: /has no program attached/,
  },
  // run
  'run without a command': {
    args: () => ['run', '--rate', '1m'],
    code: 2,
    stderr: /missing required argument 'command'/,
  },
  'run without a rate': { args: () => ['run', '--', 'true'], code: 2, stderr: /give --rate/ },
  'run with a bad rate': { args: () => ['run', '--rate', 'x', '--', 'true'], code: 2, stderr: /invalid rate 'x'/ },
  'run with a bad name': {
    args: () => ['run', '--rate', '1m', '--name', '.', '--', 'true'],
    code: 2,
    stderr: /invalid rule name '.'/,
  },
  // list, doctor, purge
  'list --pid non-numeric': { args: () => ['list', '--pid', 'x'], code: 2, stderr: /invalid pid 'x'/ },
  'list --pid of no process': {
    args: () => ['list', '--pid', `${unusedPid()}`],
    code: 4,
    stderr: /no process with pid/,
  },
  'list as a user': { args: () => ['list'], uid: 65534, code: 3, stderr: /needs root/ },
  'doctor with an unknown option': { args: () => ['doctor', '--fix'], code: 2, stderr: /unknown option '--fix'/ },
  'purge with an argument': { args: () => ['purge', 'everything'], code: 2, stderr: /too many arguments/ },
  'purge as a user': { args: () => ['purge'], uid: 65534, code: 3, stderr: /needs root/ },
};

describe('bad invocations', () => {
  it('are at least 40', () => expect(Object.keys(cases).length).toBeGreaterThanOrEqual(40));

  it.each(Object.entries(cases))('%s', (_name, c) => {
    const env = { LIMITER_INSTANCE: instance, ...c.env };
    const before = [snapshot(instance), snapshot(empty)];
    const result = runCli(c.args(), env, c.uid === undefined ? {} : { uid: c.uid, gid: c.uid });
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(c.stderr);
    if (!/Usage/.test(result.stderr)) expect(result.stderr.trimEnd().split('\n').length).toBeLessThanOrEqual(2);
    expect(result.code).toBe(c.code);
    expect([snapshot(instance), snapshot(empty)]).toEqual(before);
    expect(instanceFootprint(empty)).toEqual([]);
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
    for (const command of ['set', 'unset', 'list', 'purge', 'move', 'reload', 'run', 'doctor']) {
      expect(result.stdout).toContain(`  ${command} `);
    }
  });

  it('list of an instance that has nothing prints no data and changes nothing', () => {
    const result = runCli(['list', '--json'], { LIMITER_INSTANCE: empty });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ rules: [] });
    expect(instanceFootprint(empty)).toEqual([]);
  });

  it('purge of an instance that has nothing succeeds and leaves nothing', () => {
    const result = runCli(['purge'], { LIMITER_INSTANCE: empty });
    expect(result.code).toBe(0);
    expect(instanceFootprint(empty)).toEqual([]);
  });
});
