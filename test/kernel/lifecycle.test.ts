/**
 * Rules over their lifetime: set, change in place, share by name, unset back
 * to the origin, purge to nothing.
 */
import { closeSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fdById, type BpfObjectKind } from '../../lib/kernel/bpf.js';
import { cgroupOf, instanceFootprint, listJson, runCli } from '../harness/cli.js';
import { testScope } from '../harness/scope.js';
import { gated, type Gated } from '../harness/traffic.js';

const scope = testScope();
const newInstance = (tag: string) => scope.instance(tag);

function sleeper(): Gated {
  const process = gated('sleep', ['120']);
  scope.defer(() => process.kill());
  return process;
}

/** Whether the kernel object with this id is gone within 10 s. */
async function released(kind: BpfObjectKind, id: number): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    const fd = fdById(kind, id);
    if (fd === null) return true;
    closeSync(fd);
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const list = listJson;

describe('set', () => {
  it('creates a rule in its own cgroup with the normalised rate and bucket', () => {
    const { instance, env } = newInstance('set');
    const p = sleeper();
    const result = runCli(['set', '--pid', String(p.pid), '--rate', '10mbit', '--bucket', '64k'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('1250000 B/s');
    expect(result.stdout).toContain('65536 B');
    expect(cgroupOf(p.pid)).toBe(`/${instance}/pid-${p.pid}`);
    expect(list(env).rules).toMatchObject([
      { name: `pid-${p.pid}`, rateBytesPerSec: 1250000, bucketBytes: 65536, pids: [p.pid] },
    ]);
  });

  it('changes the rule of an already limited pid in place', () => {
    const { env } = newInstance('change');
    const p = sleeper();
    expect(runCli(['set', '--pid', String(p.pid), '--rate', '1m'], env).code).toBe(0);
    const before = list(env).rules[0];
    const result = runCli(['set', '--pid', String(p.pid), '--rate', '2m'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('changed');
    const after = list(env).rules;
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({ cgroupId: before.cgroupId, rateBytesPerSec: 2097152, bucketBytes: 2097152 });
  });

  it('puts processes set with the same --name into one rule', () => {
    const { env } = newInstance('name');
    const [a, b] = [sleeper(), sleeper()];
    for (const p of [a, b])
      expect(runCli(['set', '--pid', String(p.pid), '--rate', '1m', '--name', 'web'], env).code).toBe(0);
    expect(list(env).rules).toMatchObject([{ name: 'web', pids: [a.pid, b.pid].sort((x, y) => x - y) }]);
  });

  it('moving a pid to another rule by --name removes the rule it left empty', () => {
    const { env } = newInstance('rename');
    const p = sleeper();
    expect(runCli(['set', '--pid', String(p.pid), '--rate', '1m'], env).code).toBe(0);
    const result = runCli(['set', '--pid', String(p.pid), '--rate', '1m', '--name', 'other'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`left rule pid-${p.pid} (empty, removed)`);
    expect(list(env).rules.map((r) => r.name)).toEqual(['other']);
  });

  it('list --pid shows only the rule of that process', () => {
    const { env } = newInstance('listpid');
    const [a, b] = [sleeper(), sleeper()];
    for (const p of [a, b]) expect(runCli(['set', '--pid', String(p.pid), '--rate', '1m'], env).code).toBe(0);
    expect(list(env, '--pid', String(b.pid)).rules.map((r) => r.name)).toEqual([`pid-${b.pid}`]);
  });
});

describe('unset', () => {
  it('puts the process back where it was and removes the empty rule', () => {
    const { instance, env } = newInstance('unset');
    const p = sleeper();
    const origin = cgroupOf(p.pid);
    expect(runCli(['set', '--pid', String(p.pid), '--rate', '1m'], env).code).toBe(0);
    expect(cgroupOf(p.pid)).not.toBe(origin);

    const result = runCli(['unset', '--pid', String(p.pid)], env);
    expect(result.code).toBe(0);
    expect(cgroupOf(p.pid)).toBe(origin);
    expect(list(env).rules).toEqual([]);
    expect(instanceFootprint(instance).some((path) => path.endsWith(`pid-${p.pid}`))).toBe(false);
  });

  it('keeps a shared rule while it still has processes', () => {
    const { env } = newInstance('shared');
    const [a, b] = [sleeper(), sleeper()];
    for (const p of [a, b]) runCli(['set', '--pid', String(p.pid), '--rate', '1m', '--name', 'web'], env);
    expect(runCli(['unset', '--pid', String(a.pid)], env).code).toBe(0);
    expect(list(env).rules).toMatchObject([{ name: 'web', pids: [b.pid] }]);
  });
});

describe('purge', () => {
  it('leaves no cgroup, pin, attached program or state file, and puts processes back', async () => {
    const { instance, env } = newInstance('purge');
    const [a, b] = [sleeper(), sleeper()];
    const origins = [a, b].map((p) => cgroupOf(p.pid));
    runCli(['set', '--pid', String(a.pid), '--rate', '1m'], env);
    runCli(['set', '--pid', String(b.pid), '--rate', '2m', '--name', 'web'], env);
    const bpf = list(env, '--bpf').bpf!;
    // Per rule of uploads, egress and sock_ops on its cgroup: no program for a direction without limit.
    expect(bpf.links.map((l) => l.hook).sort()).toEqual(['egress', 'egress', 'sock_ops', 'sock_ops']);
    expect(bpf.programs).toHaveLength(5);

    const result = runCli(['purge'], env);
    expect(result.code).toBe(0);
    expect(instanceFootprint(instance)).toEqual([]);
    // The kernel frees programs and maps after an RCU grace period: wait for it, boundedly.
    for (const link of bpf.links) expect(await released('link', link.id)).toBe(true);
    for (const program of bpf.programs) expect(await released('prog', program.id)).toBe(true);
    for (const map of bpf.maps) expect(await released('map', map.id)).toBe(true);
    expect([a, b].map((p) => cgroupOf(p.pid))).toEqual(origins);

    expect(runCli(['purge'], env).code).toBe(0);
  });
});
