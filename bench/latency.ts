/** RTT of a small request/response flow beside a bulk flow, under limiter and under tbf. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../lib/instance.js';
import { runCli } from '../test/harness/cli.js';
import { collect, freePort, gated, inNetns, iperfClientArgs, iperfServer } from '../test/harness/traffic.js';
import { clearQdisc, setTbf, type Topology } from '../test/harness/topology.js';

export interface LatencyResult {
  limiter: 'limiter' | 'tbf' | 'none';
  rateBits: number;
  medianMs: number;
  p99Ms: number;
  samples: number;
}

const SECONDS = 5;
/** rr.ts in this very process (tsx as a loader, not a launcher that forks a child). */
const rr = (...args: string[]) => [process.execPath, '--import', 'tsx', join(packageRoot(), 'bench', 'rr.ts'), ...args];

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function runLatency(
  topology: Topology,
  env: NodeJS.ProcessEnv,
  limiter: LatencyResult['limiter'],
  rateBits: number,
): Promise<LatencyResult> {
  const rateBytes = rateBits / 8;
  const bucket = Math.round(rateBytes * 0.1);
  const port = await freePort();
  const [echoCommand, ...echoArgs] = inNetns(topology.receiver, rr('server', String(port)));
  const echo = spawn(echoCommand, echoArgs, { stdio: ['ignore', 'pipe', 'inherit'], cwd: packageRoot() });
  await new Promise<void>((resolve) => echo.stdout.once('data', () => resolve()));
  const bulkServer = await iperfServer('ipv4', { netns: topology.receiver, address: topology.receiverAddress });
  const [bulkCommand, ...bulkArgs] = inNetns(topology.sender, [
    'iperf3',
    ...iperfClientArgs(bulkServer.port, {
      family: 'ipv4',
      address: topology.receiverAddress,
      seconds: SECONDS + 2,
      congestion: 'cubic',
    }),
  ]);
  const bulk = gated(bulkCommand, bulkArgs);
  const [probeCommand, ...probeArgs] = inNetns(
    topology.sender,
    rr('client', topology.receiverAddress, String(port), String(SECONDS)),
  );
  const probe = gated(probeCommand, probeArgs);
  try {
    if (limiter === 'tbf') setTbf(topology, rateBytes, bucket);
    if (limiter === 'limiter') {
      for (const p of [bulk, probe]) {
        const set = runCli(
          ['set', '--pid', String(p.pid), '--rate', String(rateBytes), '--bucket', String(bucket), '--name', 'latency'],
          env,
        );
        if (set.code !== 0) throw new Error(`limiter set failed: ${set.stderr}`);
      }
    }
    bulk.go();
    await new Promise((r) => setTimeout(r, 1500));
    probe.go();
    const out = await probe.done;
    const rtts = (JSON.parse(out.stdout.trim() || '[]') as number[]).sort((a, b) => a - b);
    return { limiter, rateBits, medianMs: percentile(rtts, 50), p99Ms: percentile(rtts, 99), samples: rtts.length };
  } finally {
    for (const p of [bulk, probe]) p.kill();
    bulkServer.kill();
    echo.kill('SIGKILL');
    await collect(echo, 5000).catch(() => {});
    if (limiter === 'tbf') clearQdisc(topology);
    if (limiter === 'limiter') runCli(['purge'], env);
  }
}
