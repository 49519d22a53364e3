/**
 * Real round-trip times: iperf3 through a delay line (two TUN devices in two
 * namespaces, MTU 1500, no offloads), uploads and downloads, under limiter
 * and under the classic peer with the same rate and burst: tbf on the
 * client's egress for uploads, ifb + tbf on its ingress for downloads.
 */
import { spawn } from 'node:child_process';
import { runCli, sleep } from '../test/harness/cli.js';
import { clearPeers, ifbDownload, tbfUpload, tcpSegments, type DelayLine } from '../test/harness/delayline.js';
import {
  clientIntervals,
  collect,
  gated,
  inNetns,
  iperfClientArgs,
  iperfServer,
  steadyRate,
} from '../test/harness/traffic.js';
import { median } from './cli.js';

export interface RttCase {
  limiter: 'limiter' | 'peer';
  direction: 'upload' | 'download';
  traffic: 'cubic' | 'bbr';
  flows: number;
  /** bits per second */
  rateBits: number;
  /** bucket as seconds of rate */
  bucketSeconds: number;
  rttMs: number;
  /** limited RUNNING_MS after it started, its sockets adopted (the peer set up then) */
  running?: boolean;
}

export interface RttResult extends RttCase {
  /** steady-state goodput ÷ rate */
  steady: number;
  /** segments the sender sent again ÷ segments it sent, in percent */
  retransmitPercent: number;
  /** median ping RTT during the transfer */
  loadedRttMs: number;
  errors: number;
}

const RUNNING_MS = 2000;
/** measured from a second after the limit, when a transfer was running before it */
const steadyFrom = (c: RttCase) => (c.running ? RUNNING_MS / 1000 + 1 : c.bucketSeconds >= 1 ? 3 : 2);
const MEASURED_SECONDS = 3;

export async function runRtt(line: DelayLine, env: NodeJS.ProcessEnv, c: RttCase): Promise<RttResult> {
  const rateBytes = c.rateBits / 8;
  const bucket = Math.max(1, Math.round(rateBytes * c.bucketSeconds));
  const download = c.direction === 'download';
  const server = await iperfServer('ipv4', { netns: line.server, address: line.serverAddress });
  const seconds = steadyFrom(c) + MEASURED_SECONDS;
  const [command, ...args] = inNetns(line.client, [
    'iperf3',
    ...iperfClientArgs(server.port, {
      family: 'ipv4',
      address: line.serverAddress,
      seconds,
      congestion: c.traffic,
      parallel: c.flows > 1 ? c.flows : undefined,
      download,
    }),
  ]);
  const client = gated(command, args);
  const pinger = spawn(
    'ip',
    ['netns', 'exec', line.client, 'ping', '-n', '-i', '0.2', '-w', String(seconds), line.serverAddress],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  const pings = collect(pinger, (seconds + 10) * 1000);
  const limit = () => {
    if (c.limiter === 'peer') {
      if (download) ifbDownload(line, rateBytes, bucket);
      else tbfUpload(line, rateBytes, bucket);
    } else {
      const limits = download
        ? ['--ingress-rate', String(rateBytes), '--ingress-bucket', String(bucket)]
        : ['--rate', String(rateBytes), '--bucket', String(bucket)];
      const set = runCli(['set', '--pid', String(client.pid), ...limits], env);
      if (set.code !== 0) throw new Error(`limiter set failed: ${set.stderr}`);
    }
  };
  try {
    if (!c.running) limit();
    client.go();
    if (c.running) {
      await sleep(RUNNING_MS);
      limit();
    }
    const sender = download ? line.server : line.client;
    const before = tcpSegments(sender);
    const exited = await client.done;
    const after = tcpSegments(sender);
    const intervals = download ? clientIntervals(exited.stdout) : await server.result.catch(() => []);
    const rtts = [...(await pings).stdout.matchAll(/time=([\d.]+)/g)].map((m) => Number(m[1]));
    return {
      ...c,
      steady: steadyRate(intervals, steadyFrom(c)) / rateBytes,
      retransmitPercent: (100 * (after.retransmitted - before.retransmitted)) / Math.max(1, after.out - before.out),
      loadedRttMs: median(rtts),
      errors: exited.code === 0 ? 0 : 1,
    };
  } finally {
    client.kill();
    server.kill();
    pinger.kill();
    if (c.limiter === 'peer') clearPeers(line);
    else runCli(['purge'], env);
    await sleep(200);
  }
}
