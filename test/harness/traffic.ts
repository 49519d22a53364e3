/** Real loopback traffic for the kernel tier: iperf3 servers and clients the test starts itself. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { instancePaths } from '../../lib/instance.js';
import { findCgroup2Mount } from '../../lib/kernel/cgroup.js';
import { openMaps, readCounters } from '../../lib/kernel/maps.js';
import { listJson } from './cli.js';

export type Family = 'ipv4' | 'ipv6';
export const LOOPBACK: Record<Family, string> = { ipv4: '127.0.0.1', ipv6: '::1' };

export interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Resolves when the child exits; kills it (and fails) after timeoutMs. */
export function collect(child: ChildProcess, timeoutMs: number): Promise<Exited> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${child.spawnfile} ran longer than ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Whether a TCP socket listens on port in the network namespace of pid. */
function isListening(port: number, pid: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`].some((file) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .some((line) => {
        const fields = line.trim().split(/\s+/);
        return fields[1]?.endsWith(`:${hex}`) && fields[3] === '0A';
      }),
  );
}

export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface IperfInterval {
  start: number;
  end: number;
  bytes: number;
}

export interface IperfServer {
  port: number;
  pid: number;
  /** the receiver's intervals, once the one test it serves has ended */
  result: Promise<IperfInterval[]>;
  kill(): void;
}

/** The command line that runs argv inside a network namespace (or as it is, without one). */
export const inNetns = (netns: string | undefined, argv: string[]) =>
  netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;

const SERVER_IDLE_SECONDS = 120;

/** A one-off iperf3 server; resolves once it listens. */
export async function iperfServer(
  family: Family,
  options: { netns?: string; interval?: number; address?: string } = {},
): Promise<IperfServer> {
  const port = await freePort();
  const address = options.address ?? LOOPBACK[family];
  const argv = ['iperf3', '-s', '-1', '-J', '-p', String(port), '-B', address, '-i', String(options.interval ?? 1)];
  // A server no client reached ends by itself, even when the test runner was killed.
  argv.push('--idle-timeout', String(SERVER_IDLE_SECONDS));
  const [command, ...args] = inNetns(options.netns, argv);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = collect(child, 120_000);
  await waitUntil(() => child.exitCode !== null || isListening(port, child.pid!), `iperf3 server on port ${port}`);
  const result = exited.then((e) => {
    const json = JSON.parse(e.stdout) as {
      intervals?: Array<{ sum: { start: number; end: number; bytes: number } }>;
      error?: string;
    };
    if (json.error) throw new Error(`iperf3 server: ${json.error}`);
    return (json.intervals ?? []).map((i) => ({ start: i.sum.start, end: i.sum.end, bytes: i.sum.bytes }));
  });
  result.catch(() => {});
  return { port, pid: child.pid!, result, kill: () => child.kill('SIGKILL') };
}

/** A command that waits for go() before it execs, so that it can be limited before it opens a socket. */
export interface Gated {
  pid: number;
  go(): void;
  done: Promise<Exited>;
  kill(): void;
}

export function gated(command: string, args: string[], timeoutMs = 120_000): Gated {
  // ip netns exec, like sh, execs: the pid the test limits is the pid that runs the command.
  const child = spawn('sh', ['-c', 'read _ && exec "$@"', 'sh', command, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return {
    pid: child.pid!,
    go: () => child.stdin.end('go\n'),
    done: collect(child, timeoutMs),
    kill: () => child.kill('SIGKILL'),
  };
}

export interface FlowOptions {
  family: Family;
  udp?: boolean;
  congestion?: 'cubic' | 'bbr';
  seconds: number;
  /** UDP offered load, bits per second */
  udpBitrate?: string;
  parallel?: number;
  /** seconds between iperf3's reports */
  interval?: number;
  /** the server's address, when not loopback */
  address?: string;
  /** the server sends and the client receives (iperf3 -R): a download */
  download?: boolean;
}

export function iperfClientArgs(port: number, o: FlowOptions): string[] {
  const args = [
    '-c',
    o.address ?? LOOPBACK[o.family],
    '-p',
    String(port),
    '-t',
    String(o.seconds),
    '-J',
    '-i',
    String(o.interval ?? 1),
  ];
  if (o.udp) args.push('-u', '-b', o.udpBitrate ?? '100M');
  if (o.congestion) args.push('-C', o.congestion);
  if (o.parallel) args.push('-P', String(o.parallel));
  if (o.download) args.push('-R');
  return args;
}

/** The intervals of an iperf3 client's JSON: what it received, in a download. */
export function clientIntervals(stdout: string): IperfInterval[] {
  const json = JSON.parse(stdout) as { intervals?: Array<{ sum: { start: number; end: number; bytes: number } }> };
  return (json.intervals ?? []).map((i) => ({ start: i.sum.start, end: i.sum.end, bytes: i.sum.bytes }));
}

/** Receiver's bytes per second over the intervals that start at or after fromSecond. */
export function steadyRate(intervals: IperfInterval[], fromSecond: number): number {
  const steady = intervals.filter((i) => i.start >= fromSecond - 1e-3);
  const bytes = steady.reduce((sum, i) => sum + i.bytes, 0);
  const seconds = steady.reduce((sum, i) => sum + (i.end - i.start), 0);
  return seconds > 0 ? bytes / seconds : 0;
}

/** A network namespace of the test's own, with loopback up; remove() deletes it. */
export function netns(tag: string): { name: string; remove(): void } {
  const name = `lt_${tag}_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
  runOrThrow('ip', ['netns', 'add', name]);
  runOrThrow('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return { name, remove: () => void spawnSync('ip', ['netns', 'del', name]) };
}

function runOrThrow(command: string, args: string[]): void {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr}`);
}

export interface Sample {
  /** hrtime (ns) before and after the read: the counter's moment lies between */
  before: bigint;
  after: bigint;
  passedBytes: number;
  droppedPackets: number;
}

/**
 * Samples a rule's counters straight from the pinned maps until stopped.
 * Each sample brackets its read with two clock readings, so that any window
 * computed from two samples contains the time the bytes took to pass.
 */
export function sampleCounters(
  instance: string,
  rule: string,
  everyMs = 100,
  direction: 'egress' | 'ingress' = 'egress',
) {
  const maps = openMaps(instancePaths(instance, findCgroup2Mount()));
  if (maps === null) throw new Error(`instance ${instance} has no pinned maps`);
  const slot = listJson({ LIMITER_INSTANCE: instance }).rules.find((r) => r.name === rule)?.slot;
  if (slot === undefined || slot === null) throw new Error(`rule ${rule} has no slot in the kernel`);
  const samples: Sample[] = [];
  const read = () => {
    // The tally is per CPU: the window's clock readings bracket the read of every CPU's counters.
    const before = process.hrtime.bigint();
    const counters = readCounters(maps, slot)![direction];
    const after = process.hrtime.bigint();
    samples.push({
      before,
      after,
      passedBytes: Number(counters.passedBytes),
      droppedPackets: Number(counters.droppedPackets),
    });
  };
  read();
  const timer = setInterval(read, everyMs);
  return {
    stop(): Sample[] {
      clearInterval(timer);
      read();
      maps.close();
      return samples;
    },
  };
}

/**
 * Bytes that may pass beyond bucket + rate·T: the 64 KiB a TCP skb with
 * nothing in flight may borrow rather than stall, and one skb per CPU (an skb
 * passes whenever the bucket is not empty).
 */
export const DEBT_BYTES = 64 * 1024 + 2 * 66 * 1024;
/** Received, a retransmission may borrow four times as much (up to 256 KiB, design.md K24). */
export const INGRESS_DEBT_BYTES = 4 * 64 * 1024 + 2 * 66 * 1024;

/**
 * The largest excess over the token-bucket bound bucket + rate·T + debt,
 * across every pair of samples (≤ 0 means conforming).
 */
export function worstExcess(samples: Sample[], rate: number, bucket: number, debt: number): number {
  let worst = -Infinity;
  for (let i = 0; i < samples.length; i++) {
    for (let j = i + 1; j < samples.length; j++) {
      const seconds = Number(samples[j].after - samples[i].before) / 1e9;
      const bytes = samples[j].passedBytes - samples[i].passedBytes;
      worst = Math.max(worst, bytes - (bucket + rate * seconds + debt));
    }
  }
  return worst;
}
