/**
 * A limited flow keeps within bucket + rate·T and reaches its rate; an
 * unlimited flow is not slowed; UDP senders never see an error; two rules
 * of the same rate have a bucket each.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { testScope } from '../harness/scope.js';
import {
  gated,
  iperfClientArgs,
  iperfServer,
  sampleCounters,
  steadyRate,
  worstExcess,
  DEBT_BYTES,
  type Family,
  type FlowOptions,
} from '../harness/traffic.js';

const RATE = 1048576; // 1m
const SECONDS = 6;

const scope = testScope();
const newInstance = (tag: string) => scope.instance(tag).env;

/** Starts a server and a gated client, limits the client with `set`, runs it, returns the measurements. */
async function limitedFlow(env: NodeJS.ProcessEnv, flow: FlowOptions, setArgs: string[] = ['--rate', '1m']) {
  const server = await iperfServer(flow.family);
  const client = gated('iperf3', iperfClientArgs(server.port, flow));
  scope.defer(() => (client.kill(), server.kill()));
  const set = runCli(['set', '--pid', String(client.pid), ...setArgs], env);
  expect(set.stderr).toBe('');
  expect(set.code).toBe(0);
  const sampler = sampleCounters(env.LIMITER_INSTANCE!, `pid-${client.pid}`);
  client.go();
  const exited = await client.done;
  const samples = sampler.stop();
  return { exited, samples, intervals: await server.result };
}

const flows: Array<{ name: string; flow: FlowOptions }> = [];
for (const family of ['ipv4', 'ipv6'] as Family[]) {
  flows.push({ name: `TCP cubic ${family}`, flow: { family, congestion: 'cubic', seconds: SECONDS } });
  flows.push({ name: `TCP bbr ${family}`, flow: { family, congestion: 'bbr', seconds: SECONDS } });
  flows.push({ name: `UDP ${family}`, flow: { family, udp: true, udpBitrate: '32M', seconds: SECONDS } });
}

describe('a process limited to 1 MiB/s before it connects', () => {
  for (const { name, flow } of flows)
    it(`${name}: within bucket + rate·T, at least 90 % of the rate, no error`, async () => {
      const env = newInstance('flow');
      const { exited, samples, intervals } = await limitedFlow(env, flow);

      expect(exited.stderr).toBe('');
      expect(exited.code, exited.stdout).toBe(0);
      expect((JSON.parse(exited.stdout) as { error?: string }).error).toBeUndefined();
      expect(worstExcess(samples, RATE, RATE, DEBT_BYTES)).toBeLessThanOrEqual(0);
      const steady = steadyRate(intervals, 2);
      expect(steady).toBeGreaterThanOrEqual(0.9 * RATE);
      expect(steady).toBeLessThanOrEqual(1.1 * RATE);
      // UDP is not paced: the limit drops, and the sender never sees it.
      if (flow.udp) expect(samples.at(-1)!.droppedPackets).toBeGreaterThan(0);
    });
});

describe('isolation', () => {
  it('does not slow a process that has no rule', async () => {
    const env = newInstance('free');
    const sleeper = gated('sleep', ['60']);
    scope.defer(() => sleeper.kill());
    expect(runCli(['set', '--pid', String(sleeper.pid), '--rate', '1m'], env).code).toBe(0);

    const server = await iperfServer('ipv4');
    const client = gated('iperf3', iperfClientArgs(server.port, { family: 'ipv4', seconds: 3 }));
    scope.defer(() => (client.kill(), server.kill()));
    client.go();
    expect((await client.done).code).toBe(0);
    expect(steadyRate(await server.result, 1)).toBeGreaterThan(20 * RATE);
  });

  it('gives two rules of the same rate a bucket each', async () => {
    const env = newInstance('pair');
    const flow: FlowOptions = { family: 'ipv4', congestion: 'cubic', seconds: SECONDS };
    const servers = await Promise.all([iperfServer('ipv4'), iperfServer('ipv4')]);
    const clients = servers.map((s) => gated('iperf3', iperfClientArgs(s.port, flow)));
    scope.defer(() => [...clients, ...servers].forEach((p) => p.kill()));
    for (const client of clients) {
      expect(runCli(['set', '--pid', String(client.pid), '--rate', '1m'], env).code).toBe(0);
    }
    const list = JSON.parse(runCli(['list', '--json'], env).stdout) as { rules: Array<{ cgroupId: number }> };
    expect(new Set(list.rules.map((r) => r.cgroupId)).size).toBe(2);

    clients.forEach((c) => c.go());
    const exits = await Promise.all(clients.map((c) => c.done));
    exits.forEach((e) => expect(e.code).toBe(0));
    for (const server of servers) {
      expect(steadyRate(await server.result, 2)).toBeGreaterThanOrEqual(0.9 * RATE);
    }
  });
});
