/**
 * Download limits: a rule's second bucket, for what its sockets receive.
 * The server is outside the rule, the client (which downloads, iperf3 -R)
 * inside it.
 */
import { describe, expect, it } from 'vitest';
import { listJson, runCli } from '../harness/cli.js';
import { testScope } from '../harness/scope.js';
import {
  clientIntervals,
  INGRESS_DEBT_BYTES,
  gated,
  iperfClientArgs,
  iperfServer,
  sampleCounters,
  steadyRate,
  worstExcess,
  type Family,
  type FlowOptions,
} from '../harness/traffic.js';

const RATE = 1048576;
const SECONDS = 6;
const scope = testScope();

async function flow(env: NodeJS.ProcessEnv, options: FlowOptions, setArgs: string[], sample?: 'egress' | 'ingress') {
  const server = await iperfServer(options.family);
  const client = gated('iperf3', iperfClientArgs(server.port, options));
  scope.defer(() => (client.kill(), server.kill()));
  const set = runCli(['set', '--pid', String(client.pid), ...setArgs], env);
  expect(set.code, set.stderr).toBe(0);
  const sampler = sample ? sampleCounters(env.LIMITER_INSTANCE!, `pid-${client.pid}`, 100, sample) : null;
  client.go();
  const exited = await client.done;
  const samples = sampler?.stop() ?? [];
  const serverIntervals = await server.result;
  return { exited, samples, serverIntervals, pid: client.pid };
}

const downloads: Array<{ name: string; options: FlowOptions }> = [];
for (const family of ['ipv4', 'ipv6'] as Family[]) {
  downloads.push({ name: `TCP ${family}`, options: { family, download: true, congestion: 'cubic', seconds: SECONDS } });
  downloads.push({
    name: `UDP ${family}`,
    options: { family, download: true, udp: true, udpBitrate: '32M', seconds: SECONDS },
  });
}

describe('a process limited to 1 MiB/s of download', () => {
  for (const { name, options } of downloads) {
    it(`${name}: within bucket + rate·T, at least 90 % of the rate`, async () => {
      const { env } = scope.instance('down');
      const { exited, samples } = await flow(env, options, ['--ingress-rate', '1m'], 'ingress');
      expect(exited.code, exited.stderr).toBe(0);
      expect(worstExcess(samples, RATE, RATE, INGRESS_DEBT_BYTES)).toBeLessThanOrEqual(0);
      const steady = steadyRate(clientIntervals(exited.stdout), 2);
      expect(steady).toBeGreaterThanOrEqual(0.9 * RATE);
      expect(steady).toBeLessThanOrEqual(1.1 * RATE);
    });
  }
});

describe('directions are independent', () => {
  it('an upload-only rule does not limit downloads, and its upload counters stay still', async () => {
    const { env } = scope.instance('uponly');
    const { exited } = await flow(env, { family: 'ipv4', download: true, seconds: 3 }, ['--rate', '1m']);
    expect(steadyRate(clientIntervals(exited.stdout), 1)).toBeGreaterThan(20 * RATE);
  });

  it('a download-only rule does not limit uploads', async () => {
    const { env } = scope.instance('downonly');
    const { serverIntervals } = await flow(env, { family: 'ipv4', seconds: 3 }, ['--ingress-rate', '1m']);
    expect(steadyRate(serverIntervals, 1)).toBeGreaterThan(20 * RATE);
  });

  it("each direction's counters move only with its traffic", async () => {
    const { env } = scope.instance('counters');
    const both = ['--rate', '1m', '--ingress-rate', '1m'];
    const rule = (name: string) => listJson(env).rules.find((r) => r.name === name);
    // Read before the next set: a rule whose processes have exited goes at the next change.
    const upload = await flow(env, { family: 'ipv4', udp: true, udpBitrate: '16M', seconds: 2 }, [
      ...both,
      '--name',
      'up',
    ]);
    const up = rule('up');
    const download = await flow(env, { family: 'ipv4', udp: true, download: true, udpBitrate: '16M', seconds: 2 }, [
      ...both,
      '--name',
      'down',
    ]);
    const down = rule('down');
    expect([upload.exited.code, download.exited.code]).toEqual([0, 0]);
    const rules = { up, down };
    // Only iperf3's control connection goes the other way: a few kilobytes.
    expect(rules.up!.passedBytes).toBeGreaterThan(RATE);
    expect(rules.up!.ingressPassedBytes).toBeLessThan(64 * 1024);
    expect(rules.down!.ingressPassedBytes).toBeGreaterThan(RATE);
    expect(rules.down!.passedBytes).toBeLessThan(64 * 1024);
  });

  it('list shows both directions, and set changes one without touching the other', () => {
    const { env } = scope.instance('both');
    const sleeper = gated('sleep', ['60']);
    scope.defer(() => sleeper.kill());
    expect(
      runCli(
        ['set', '--pid', String(sleeper.pid), '--rate', '1m', '--ingress-rate', '2m', '--ingress-bucket', '64k'],
        env,
      ).code,
    ).toBe(0);
    expect(runCli(['set', '--pid', String(sleeper.pid), '--rate', '3m'], env).code).toBe(0);
    expect(listJson(env).rules[0]).toMatchObject({
      rateBytesPerSec: 3 * RATE,
      bucketBytes: 3 * RATE,
      ingressRateBytesPerSec: 2 * RATE,
      ingressBucketBytes: 65536,
    });
    const text = runCli(['list'], env).stdout;
    expect(text).toMatch(/up +3 MiB\/s/);
    expect(text).toMatch(/down +2 MiB\/s/);
  });
});
