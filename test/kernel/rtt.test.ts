/**
 * Downloads at a real round-trip time (design.md K16, K23): through a delay
 * line of two TUN devices with MTU-sized packets, a limited download holds
 * its rate while its sender is slowed by the receive window, so that almost
 * nothing is sent only to be dropped, also when several flows start at once
 * (K26). And on loopback, where no window can limit, a small bucket still
 * lets a download through (K24).
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { createDelayLine, tcpSegments } from '../harness/delayline.js';
import { limitedLoopbackDownload } from '../harness/http.js';
import { testScope } from '../harness/scope.js';
import { clientIntervals, gated, inNetns, iperfClientArgs, iperfServer, steadyRate } from '../harness/traffic.js';

const scope = testScope();

describe('a download over a 40 ms round trip', () => {
  // 8 flows starting together: each must offer a window of its share from its first segment (K26)
  const cases = [
    ['cubic', 1],
    ['bbr', 1],
    ['cubic', 8],
  ] as const;
  for (const [congestion, flows] of cases) {
    it(`${congestion}, ${flows} flow(s): within 10 % of the rate, under 1 % of the segments sent again`, async () => {
      const { env } = scope.instance(`rtt${congestion}${flows}`);
      const line = await createDelayLine(String(process.pid % 10000), 40);
      scope.defer(() => line.destroy());
      const rate = 1_250_000; // 10 Mbit/s
      const server = await iperfServer('ipv4', { netns: line.server, address: line.serverAddress });
      const [command, ...args] = inNetns(line.client, [
        'iperf3',
        ...iperfClientArgs(server.port, {
          family: 'ipv4',
          address: line.serverAddress,
          seconds: 8,
          congestion,
          parallel: flows > 1 ? flows : undefined,
          download: true,
        }),
      ]);
      const client = gated(command, args);
      scope.defer(() => (client.kill(), server.kill()));
      const set = runCli(
        ['set', '--pid', String(client.pid), '--ingress-rate', '10mbit', '--ingress-bucket', '125000'],
        env,
      );
      expect(set.code, set.stderr).toBe(0);
      const before = tcpSegments(line.server);
      client.go();
      const exited = await client.done;
      expect(exited.code, exited.stderr).toBe(0);
      const after = tcpSegments(line.server);
      const steady = steadyRate(clientIntervals(exited.stdout), 2);
      expect(steady).toBeGreaterThanOrEqual(0.9 * rate);
      expect(steady).toBeLessThanOrEqual(1.1 * rate);
      const resent = (after.retransmitted - before.retransmitted) / (after.out - before.out);
      expect(resent).toBeLessThan(0.01);
    });
  }
});

describe('a download on loopback with a 10 ms bucket', () => {
  it('gets at least half the rate', async () => {
    const { env } = scope.instance('lo10');
    const rate = 1048576;
    const got = await limitedLoopbackDownload(env, 'lo10', ['--ingress-rate', '1m', '--ingress-bucket', '10k']);
    expect(got).toBeGreaterThanOrEqual(0.5 * rate);
    expect(got).toBeLessThanOrEqual(1.2 * rate);
  });
});
