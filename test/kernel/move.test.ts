/** move into existing rules by path, id and --last; threads and --tree. */
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findCgroup2Mount } from '../../lib/kernel/cgroup.js';
import { descendants } from '../../lib/kernel/proc.js';
import { cgroupOf, listJson, runCli } from '../harness/cli.js';
import { testScope } from '../harness/scope.js';
import { gated, type Gated } from '../harness/traffic.js';

const scope = testScope();

function started(command = 'sleep', args = ['120']): Gated {
  const process = gated(command, args);
  scope.defer(() => process.kill());
  return process;
}

describe('move', () => {
  it('moves a process into a rule named by path, by cgroup id, or as the last one set', () => {
    const { env, instance } = scope.instance('move');
    const [a, b, c, d] = [started(), started(), started(), started()];
    expect(runCli(['set', '--pid', String(a.pid), '--rate', '1m', '--name', 'web'], env).code).toBe(0);
    const web = listJson(env).rules[0];

    expect(runCli(['move', '--pid', String(b.pid), '--cgroup-path', web.cgroupPath], env).code).toBe(0);
    expect(runCli(['move', '--pid', String(c.pid), '--cgid', String(web.cgroupId)], env).code).toBe(0);
    expect(runCli(['move', '--pid', String(d.pid), '--last'], env).code).toBe(0);
    for (const p of [b, c, d]) expect(cgroupOf(p.pid)).toBe(`/${instance}/web`);
    expect(listJson(env).rules[0].pids).toHaveLength(4);
  });

  it('refuses targets outside the instance and unknown ones, and changes nothing', () => {
    const { env, instance } = scope.instance('refuse');
    const [a, b] = [started(), started()];
    expect(runCli(['set', '--pid', String(a.pid), '--rate', '1m', '--name', 'web'], env).code).toBe(0);
    const web = listJson(env).rules[0];
    const origin = cgroupOf(b.pid);
    const dir = mkdtempSync(join(tmpdir(), 'limiter-link-'));
    scope.defer(() => rmSync(dir, { recursive: true }));
    symlinkSync(findCgroup2Mount(), join(dir, 'root'));
    symlinkSync(web.cgroupPath, join(dir, 'web'));

    const cases: Array<[string[], number, RegExp]> = [
      [['--cgroup-path', `${web.cgroupPath}/..`], 2, /is not a rule of instance/],
      [['--cgroup-path', join(dir, 'root')], 2, /is not a rule of instance/],
      [['--cgroup-path', findCgroup2Mount()], 2, /is not a rule of instance/],
      [['--cgroup-path', join(findCgroup2Mount(), instance, 'nope')], 4, /no cgroup at/],
      [['--cgid', '999999999'], 4, /no rule of instance .* has cgroup id 999999999/],
      [['--cgid', 'abc'], 2, /invalid cgroup id 'abc'/],
      [['--last', '--cgid', '1'], 2, /exactly one of/],
      [[], 2, /exactly one of/],
    ];
    for (const [args, code, message] of cases) {
      const result = runCli(['move', '--pid', String(b.pid), ...args], env);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(message);
      expect(result.code).toBe(code);
      expect(cgroupOf(b.pid)).toBe(origin);
    }
    // A symlink to the rule itself resolves to the rule: allowed.
    expect(runCli(['move', '--pid', String(b.pid), '--cgroup-path', join(dir, 'web')], env).code).toBe(0);
  });

  it('--last with no rule set exits 4', () => {
    const { env } = scope.instance('nolast');
    const p = started();
    const result = runCli(['move', '--pid', String(p.pid), '--last'], env);
    expect(result.code).toBe(4);
    expect(result.stdout).toBe('');
  });
});

describe('threads and descendants', () => {
  it('set moves every thread of the process', () => {
    const { env, instance } = scope.instance('threads');
    const node = started(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    node.go();
    // Node starts its worker threads before it runs the script.
    let tasks: string[] = [];
    for (let i = 0; i < 100 && tasks.length < 4; i++) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      tasks = readdirSync(`/proc/${node.pid}/task`);
    }
    expect(tasks.length).toBeGreaterThan(1);
    expect(runCli(['set', '--pid', String(node.pid), '--rate', '1m'], env).code).toBe(0);
    for (const tid of readdirSync(`/proc/${node.pid}/task`)) {
      expect(cgroupOf(Number(tid))).toBe(`/${instance}/pid-${node.pid}`);
    }
  });

  it('--tree also moves the descendants, and unset --tree moves them back', () => {
    const { env, instance } = scope.instance('tree');
    const parent = started('sh', ['-c', 'sleep 120 & sleep 120 & wait']);
    const origin = cgroupOf(parent.pid);
    parent.go();
    let children: number[] = [];
    for (let i = 0; i < 100 && children.length < 2; i++) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      children = descendants(parent.pid).slice(1);
    }
    expect(children).toHaveLength(2);
    scope.defer(() => children.forEach((c) => process.kill(c, 'SIGKILL')));
    expect(runCli(['set', '--pid', String(parent.pid), '--rate', '1m', '--tree'], env).code).toBe(0);
    for (const pid of [parent.pid, ...children]) expect(cgroupOf(pid)).toBe(`/${instance}/pid-${parent.pid}`);
    expect(runCli(['unset', '--pid', String(parent.pid), '--tree'], env).code).toBe(0);
    for (const pid of [parent.pid, ...children]) expect(cgroupOf(pid)).toBe(origin);
    expect(listJson(env).rules).toEqual([]);
  });
});
