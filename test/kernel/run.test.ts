/** `run` starts a command inside a fresh rule and removes the rule when the command ends. */
import { describe, expect, it } from 'vitest';
import { instanceFootprint, listJson, runCli } from '../harness/cli.js';
import { testScope } from '../harness/scope.js';
import { iperfClientArgs, iperfServer, steadyRate } from '../harness/traffic.js';

const scope = testScope();

describe('run', () => {
  it('runs the command in its rule from the first instruction and passes its exit status', () => {
    const { env, instance } = scope.instance('run');
    const result = runCli(['run', '--rate', '1m', '--', 'sh', '-c', 'cat /proc/self/cgroup; exit 7'], env);
    expect(result.code).toBe(7);
    expect(result.stderr, 'the rule of run ending is no finding').toBe('');
    expect(result.stdout).toMatch(new RegExp(`^0::/${instance}/run-\\d+$`, 'm'));
    expect(instanceFootprint(instance).filter((p) => p.includes('/run-'))).toEqual([]);
    expect(listJson(env).rules).toEqual([]);
  });

  it('exits with 128 + the signal that killed the command', () => {
    const { env } = scope.instance('runsig');
    expect(runCli(['run', '--rate', '1m', '--', 'sh', '-c', 'kill -KILL $$'], env).code).toBe(137);
  });

  it('passes stdin through', () => {
    const { env } = scope.instance('runin');
    const result = runCli(['run', '--rate', '1m', '--', 'cat'], env, { input: 'through the limit\n' });
    expect(result).toMatchObject({ code: 0, stdout: 'through the limit\n' });
  });

  it('limits the traffic of the command', async () => {
    const { env } = scope.instance('runflow');
    const server = await iperfServer('ipv4');
    scope.defer(() => server.kill());
    const result = runCli(
      ['run', '--rate', '1m', '--', 'iperf3', ...iperfClientArgs(server.port, { family: 'ipv4', seconds: 5 })],
      env,
    );
    expect(result.code, result.stderr).toBe(0);
    const rate = steadyRate(await server.result, 2);
    expect(rate).toBeGreaterThanOrEqual(0.9 * 1048576);
    expect(rate).toBeLessThanOrEqual(1.1 * 1048576);
  });

  it('refuses a missing command and bad rates without leaving anything', () => {
    const { env, instance } = scope.instance('runbad');
    for (const args of [
      ['run', '--rate', '1m'],
      ['run', '--rate', 'x', '--', 'true'],
    ]) {
      const result = runCli(args, env);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
    }
    expect(instanceFootprint(instance)).toEqual([]);
  });
});
