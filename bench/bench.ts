/**
 * `make bench` (QUICK=1 for a short run): accuracy against tc tbf, latency
 * under load, per-skb cost, CLI latency and scale. Prints the tables and
 * writes bench/results.md and bench/results.json. Everything runs in network
 * namespaces and an instance of the bench's own, removed at the end.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../lib/instance.js';
import { preflight, type Context } from '../lib/context.js';
import { sampleRules } from '../lib/ops/top.js';
import { runCli, uniqueInstance } from '../test/harness/cli.js';
import { gated, inNetns } from '../test/harness/traffic.js';
import { runAccuracy, SECONDS, type AccuracyCase, type AccuracyResult, type Traffic } from './accuracy.js';
import { limiterArgv, median, nodeBaseline, timeCommand, type CliTiming } from './cli.js';
import { loopbackThroughput, measureCost, type CostResult, type ThroughputResult } from './cost.js';
import { runLatency, type LatencyResult } from './latency.js';
import { markdownReport } from './report.js';
import { runRtt, type RttCase, type RttResult } from './rtt.js';
import { createDelayLine, type DelayLine } from '../test/harness/delayline.js';
import { limitedLoopbackDownload } from '../test/harness/http.js';
import { addRules, startSleepers } from './scale.js';
import { createTopology } from '../test/harness/topology.js';

const QUICK = process.env.QUICK === '1';
const MBIT = 1_000_000;

export interface ScaleResult {
  rules: number;
  listMs: number;
  setMs: number;
  /** one refresh of limiter top: a sample of every rule's counters */
  topRefreshMs: number;
  cost: CostResult;
}

/** curl from python's http.server on loopback, with a download limit. */
export interface LoopbackResult {
  rateBits: number;
  bucketSeconds: number;
  /** goodput ÷ rate after the first 2 s */
  steady: number;
}

export interface Results {
  date: string;
  kernel: string;
  mode: 'quick' | 'full';
  accuracy: AccuracyResult[];
  rtt: RttResult[];
  loopback: LoopbackResult[];
  latency: LatencyResult[];
  cost: CostResult[];
  throughput: ThroughputResult[];
  cli: CliTiming[];
  scale: ScaleResult[];
  seconds: number;
}

function accuracyCases(): AccuracyCase[] {
  const traffics: Traffic[] = ['cubic', 'bbr', 'udp'];
  const rates = QUICK ? [10 * MBIT, 100 * MBIT] : [1 * MBIT, 10 * MBIT, 100 * MBIT, 1000 * MBIT];
  const buckets = QUICK ? [1, 0.01] : [1, 0.1, 0.01];
  const flows = QUICK ? [1] : [1, 8];
  const cases: AccuracyCase[] = [];
  for (const traffic of traffics)
    for (const f of flows)
      for (const rateBits of rates)
        for (const bucketSeconds of buckets)
          for (const limiter of ['limiter', 'tbf'] as const)
            cases.push({ limiter, traffic, flows: f, rateBits, bucketSeconds });
  // Downloads: the rule's ingress bucket; the remote sender retransmits what it drops.
  for (const traffic of ['cubic', 'bbr'] as const)
    for (const rateBits of QUICK ? [100 * MBIT] : [10 * MBIT, 100 * MBIT, 1000 * MBIT])
      for (const bucketSeconds of QUICK ? [0.1, 0.01] : [1, 0.1, 0.01])
        for (const limiter of ['limiter', 'tbf'] as const)
          cases.push({ limiter, traffic, flows: 1, rateBits, bucketSeconds, direction: 'ingress' });
  // What was running before it was limited: a server already listening, and a cgroup limited in place.
  for (const target of ['listening server', 'cgroup in place'] as const)
    for (const traffic of QUICK ? (['cubic'] as const) : (['cubic', 'bbr'] as const))
      for (const rateBits of [10 * MBIT, 100 * MBIT])
        for (const bucketSeconds of QUICK ? [1] : [1, 0.1])
          for (const limiter of ['limiter', 'tbf'] as const)
            cases.push({ limiter, traffic, flows: 1, rateBits, bucketSeconds, target });
  return cases;
}

/** Uploads and downloads at a real round-trip time, each under limiter and under its classic peer. */
function rttCases(rttMs: number): RttCase[] {
  const cases: RttCase[] = [];
  for (const direction of QUICK ? (['download'] as const) : (['upload', 'download'] as const))
    for (const traffic of QUICK ? (['cubic'] as const) : (['cubic', 'bbr'] as const))
      for (const flows of QUICK ? [1] : [1, 8])
        for (const rateBits of [10 * MBIT, 100 * MBIT])
          for (const bucketSeconds of QUICK ? [0.1, 0.01] : [1, 0.1, 0.01])
            for (const limiter of ['limiter', 'peer'] as const)
              cases.push({ limiter, direction, traffic, flows, rateBits, bucketSeconds, rttMs });
  // Downloads running before they were limited: what their senders had in flight then has crossed the link.
  for (const traffic of QUICK ? (['cubic'] as const) : (['cubic', 'bbr'] as const))
    for (const rateBits of QUICK ? [10 * MBIT] : [10 * MBIT, 100 * MBIT])
      for (const bucketSeconds of QUICK ? [0.1] : [0.1, 0.01])
        for (const limiter of ['limiter', 'peer'] as const)
          cases.push({
            limiter,
            direction: 'download',
            running: true,
            traffic,
            flows: 1,
            rateBits,
            bucketSeconds,
            rttMs,
          });
  return cases;
}

const log = (line: string) => process.stderr.write(line + '\n');

/** Median time of one `limiter top` refresh: a sample of every rule's counters. */
function topRefresh(ctx: Context): number {
  sampleRules(ctx);
  return median(
    Array.from({ length: 9 }, () => {
      const start = process.hrtime.bigint();
      sampleRules(ctx);
      return Number(process.hrtime.bigint() - start) / 1e6;
    }),
  );
}

async function main(): Promise<void> {
  const started = Date.now();
  const instance = uniqueInstance('bench');
  const env = { LIMITER_INSTANCE: instance };
  const topology = createTopology(String(process.pid % 10000));
  const ctx = preflight({ mountBpffs: true }, { ...process.env, ...env });
  const sleepers: Array<{ kill(): void }> = [];
  let line: DelayLine | undefined;
  const cleanup = () => {
    sleepers.forEach((s) => s.kill());
    line?.destroy();
    runCli(['purge'], env);
    topology.destroy();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      cleanup();
      process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    });
  }
  const results: Results = {
    date: new Date().toISOString(),
    kernel: release(),
    mode: QUICK ? 'quick' : 'full',
    accuracy: [],
    rtt: [],
    loopback: [],
    latency: [],
    cost: [],
    throughput: [],
    cli: [],
    scale: [],
    seconds: 0,
  };
  try {
    const cases = accuracyCases();
    for (const [i, c] of cases.entries()) {
      log(
        `accuracy ${i + 1}/${cases.length}: ${c.limiter} ${c.direction ?? 'egress'} ${c.traffic} ×${c.flows} ${c.rateBits / MBIT} Mbit/s bucket ${c.bucketSeconds * 1000} ms`,
      );
      results.accuracy.push(await runAccuracy(topology, env, c));
    }

    for (const rttMs of QUICK ? [20] : [2, 20, 80]) {
      line = await createDelayLine(String(process.pid % 10000), rttMs);
      const cases = rttCases(rttMs);
      for (const [i, c] of cases.entries()) {
        log(
          `rtt ${rttMs} ms ${i + 1}/${cases.length}: ${c.limiter} ${c.direction}${c.running ? ' running' : ''} ${c.traffic} ×${c.flows} ${c.rateBits / MBIT} Mbit/s bucket ${c.bucketSeconds * 1000} ms`,
        );
        results.rtt.push(await runRtt(line, env, c));
      }
      line.destroy();
      line = undefined;
    }

    for (const rateBits of [10 * MBIT, 100 * MBIT])
      for (const bucketSeconds of QUICK ? [0.01] : [0.1, 0.01]) {
        log(`loopback download: ${rateBits / MBIT} Mbit/s bucket ${bucketSeconds * 1000} ms`);
        const rateBytes = rateBits / 8;
        const setArgs = ['--ingress-rate', String(rateBytes), '--ingress-bucket', String(rateBytes * bucketSeconds)];
        const got = await limitedLoopbackDownload(env, 'bench', setArgs);
        results.loopback.push({ rateBits, bucketSeconds, steady: got.bytesPerSec / rateBytes });
      }

    for (const limiter of ['none', 'limiter', 'tbf'] as const) {
      for (const rateBits of QUICK ? [10 * MBIT] : [10 * MBIT, 100 * MBIT]) {
        log(`latency under load: ${limiter} ${rateBits / MBIT} Mbit/s`);
        results.latency.push(await runLatency(topology, env, limiter, rateBits));
      }
    }

    log('throughput and cost');
    results.throughput.push(await loopbackThroughput(topology, 'no program attached'));
    const sleeper = gated('sleep', ['600']);
    sleepers.push(sleeper);
    if (
      runCli(['set', '--pid', String(sleeper.pid), '--rate', String((100 * MBIT) / 8), '--name', 'bench-limited'], env)
        .code !== 0
    ) {
      throw new Error('limiter set failed');
    }
    results.throughput.push(await loopbackThroughput(topology, 'a rule exists, process outside the rules'));
    // A rule that limits only downloads: its egress program runs on every packet sent and finds nothing to do.
    const downloads = gated('sleep', ['600']);
    sleepers.push(downloads);
    const setDownloads = ['set', '--pid', String(downloads.pid), '--ingress-rate', '1m', '--name', 'bench-down'];
    if (runCli(setDownloads, env).code !== 0) throw new Error('limiter set failed');
    const downloadsDir = join(ctx.instance.cgroupDir, 'bench-down');
    results.throughput.push(
      await loopbackThroughput(topology, 'process in a rule that limits the other direction', downloadsDir),
    );
    results.cost.push(await measureCost(topology, ctx, downloadsDir, 'rule without this direction', 1));
    const limitedDir = join(ctx.instance.cgroupDir, 'bench-limited');
    // The rule allows 100 Mbit/s: 200 offered makes it drop half, 50 passes all.
    results.cost.push(await measureCost(topology, ctx, limitedDir, 'limited cgroup, over its rate', 1));
    results.cost.push(await measureCost(topology, ctx, limitedDir, 'limited cgroup, under its rate', 1, '50M'));
    // A process in the sender namespace with an open socket, adopted by a rule: tcx now runs on its interfaces.
    const [holdCommand, ...holdArgs] = inNetns(topology.sender, [
      'python3',
      '-c',
      'import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); time.sleep(600)',
    ]);
    const holder = spawn(holdCommand, holdArgs, { stdio: 'ignore' });
    sleepers.push({ kill: () => holder.kill('SIGKILL') });
    await new Promise((r) => setTimeout(r, 500));
    runCli(['set', '--pid', String(holder.pid), '--rate', '1m', '--name', 'bench-adopted'], env);
    results.throughput.push(
      await loopbackThroughput(topology, 'tcx attached (adopted sockets), process outside the rules'),
    );

    log('CLI latency');
    const node = nodeBaseline();
    results.cli.push({ command: "node -e ''", medianMs: node, ratioToNode: 1 });
    const list = timeCommand([...limiterArgv(), 'list'], env);
    results.cli.push({ command: 'limiter list', medianMs: list, ratioToNode: list / node });
    const setTime = timeCommand([...limiterArgv(), 'set', '--rate', '1m', '--pid'], env, () => {
      const p = gated('sleep', ['600']);
      sleepers.push(p);
      return [String(p.pid)];
    });
    results.cli.push({ command: 'limiter set', medianMs: setTime, ratioToNode: setTime / node });

    for (const total of QUICK ? [1000] : [1000, 10000]) {
      log(`scale: ${total} rules`);
      const existing = (JSON.parse(runCli(['list', '--json'], env).stdout) as { rules: unknown[] }).rules.length;
      const crowd = await startSleepers(total - existing - 1);
      sleepers.push(crowd);
      await addRules(ctx, crowd.pids, (100 * MBIT) / 8);
      const listMs = timeCommand([...limiterArgv(), 'list'], env);
      const setMs = timeCommand([...limiterArgv(), 'set', '--rate', '1m', '--pid'], env, () => {
        const p = gated('sleep', ['600']);
        sleepers.push(p);
        return [String(p.pid)];
      });
      const cost = await measureCost(topology, ctx, limitedDir, 'limited cgroup, over its rate', total);
      results.scale.push({ rules: total, listMs, setMs, topRefreshMs: topRefresh(ctx), cost });
    }
  } finally {
    cleanup();
  }
  results.seconds = Math.round((Date.now() - started) / 1000);
  const report = markdownReport(results, SECONDS);
  process.stdout.write(report);
  writeFileSync(join(packageRoot(), 'bench', 'results.md'), report);
  writeFileSync(join(packageRoot(), 'bench', 'results.json'), JSON.stringify(results, null, 2) + '\n');
  log(`bench done in ${results.seconds} s: bench/results.md, bench/results.json`);
}

await main();
