/**
 * design.md K5: a socket keeps the cgroup it was created in. `set` must still
 * limit the connections a process already has, and `unset` release them.
 * Traffic runs in a network namespace of the test's own, so that the tcx
 * programs this attaches see only the test's loopback.
 */
import { describe, expect, it } from 'vitest';
import { runCli, sleep } from '../harness/cli.js';
import { testScope } from '../harness/scope.js';
import {
  gated,
  inNetns,
  iperfClientArgs,
  iperfServer,
  netns,
  sampleCounters,
  worstExcess,
  DEBT_BYTES,
  type IperfInterval,
} from '../harness/traffic.js';

const RATE = 1048576;
const scope = testScope();

const meanRate = (intervals: IperfInterval[]) =>
  intervals.reduce((n, i) => n + i.bytes, 0) / intervals.reduce((n, i) => n + (i.end - i.start), 0);

describe('a transfer that is already running', () => {
  for (const congestion of ['cubic', 'bbr'] as const) {
    it(`TCP ${congestion}: falls to the limit within 2 s of set, and recovers after unset`, async () => {
      const { env, instance } = scope.instance('running');
      const ns = netns('running');
      scope.defer(() => ns.remove());
      const server = await iperfServer('ipv4', { netns: ns.name, interval: 0.5 });
      const [command, ...args] = inNetns(ns.name, [
        'iperf3',
        ...iperfClientArgs(server.port, { family: 'ipv4', congestion, seconds: 11, interval: 0.5 }),
      ]);
      const client = gated(command, args);
      scope.defer(() => (client.kill(), server.kill()));

      client.go();
      const start = Date.now();
      await sleep(3000);
      const set = runCli(['set', '--pid', String(client.pid), '--rate', '1m'], env);
      expect(set.code, set.stderr).toBe(0);
      expect(set.stdout).toMatch(/open socket\(s\) limited too/);
      const setAt = (Date.now() - start) / 1000;
      const sampler = sampleCounters(instance, `pid-${client.pid}`);
      await sleep(5000);
      const samples = sampler.stop();
      const unset = runCli(['unset', '--pid', String(client.pid)], env);
      expect(unset.code, unset.stderr).toBe(0);
      const unsetAt = (Date.now() - start) / 1000;
      expect((await client.done).code).toBe(0);
      const intervals = await server.result;

      const before = intervals.filter((i) => i.end <= setAt - 0.5);
      const limited = intervals.filter((i) => i.start >= setAt + 2 && i.end <= unsetAt - 0.3);
      const after = intervals.filter((i) => i.start >= unsetAt + 1);
      expect(meanRate(before)).toBeGreaterThan(10 * RATE);
      expect(limited.length).toBeGreaterThanOrEqual(4);
      expect(meanRate(limited)).toBeGreaterThanOrEqual(0.8 * RATE);
      expect(meanRate(limited)).toBeLessThanOrEqual(1.2 * RATE);
      expect(worstExcess(samples, RATE, RATE, DEBT_BYTES)).toBeLessThanOrEqual(0);
      expect(meanRate(after)).toBeGreaterThan(10 * RATE);
    });
  }
});
