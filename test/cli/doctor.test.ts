import { describe, expect, it } from 'vitest';
import { runCli, uniqueInstance } from '../harness/cli.js';

describe('doctor', () => {
  const env = { LIMITER_INSTANCE: uniqueInstance('doctor') };

  it('finds this machine usable and says so in JSON', () => {
    const result = runCli(['doctor', '--json'], env);
    expect(result.code, result.stdout).toBe(0);
    const report = JSON.parse(result.stdout) as { usable: boolean; checks: Array<{ name: string; severity: string }> };
    expect(report.usable).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        'kernel',
        'privileges',
        'libbpf',
        'cgroup_skb programs',
        'cgroup v2',
        'bpffs',
        'BTF',
        'BPF object',
      ]),
    );
  });

  it('prints one line per check', () => {
    const result = runCli(['doctor'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ok +kernel: /m);
  });

  it('exits 5 when the BPF object is missing', () => {
    const result = runCli(['doctor'], { ...env, LIMITER_BPF_OBJECT: '/nonexistent.o' });
    expect(result.code).toBe(5);
    expect(result.stdout).toMatch(/FATAL +BPF object: \/nonexistent.o not found/);
  });

  it('exits 3 for a user who is not root', () => {
    const result = runCli(['doctor'], env, { uid: 65534, gid: 65534 });
    expect(result.code).toBe(3);
    expect(result.stdout).toMatch(/FATAL +privileges/);
  });
});
