/**
 * Accuracy: the same iperf3 traffic under limiter and under tc tbf, on a veth
 * pair between two namespaces of the bench's own.
 */
import { runCli } from '../test/harness/cli.js';
import { enter, standInCgroup } from '../test/harness/http.js';
import { gated, inNetns, iperfClientArgs, iperfServer, type IperfInterval } from '../test/harness/traffic.js';
import { clearQdisc, setTbf, type Topology } from '../test/harness/topology.js';

export type Traffic = 'cubic' | 'bbr' | 'udp';
export type Limiter = 'limiter' | 'tbf';

export interface AccuracyCase {
  limiter: Limiter;
  traffic: Traffic;
  flows: number;
  /** bits per second */
  rateBits: number;
  /** bucket as seconds of rate */
  bucketSeconds: number;
  /** limit the receiving side (ingress) instead of the sending side */
  direction?: 'egress' | 'ingress';
  /**
   * what is limited, and when: the sending process before it connects (the
   * default); a server already listening, whose accepted connection sends
   * (iperf3 -R); or a cgroup limited in place, the sender inside it
   */
  target?: 'process' | 'listening server' | 'cgroup in place';
}

export interface AccuracyResult extends AccuracyCase {
  /** steady-state receiver goodput ÷ configured rate */
  steady: number;
  /** the largest 1 s receiver window ÷ (bucket + rate·1 s) */
  peakWindow: number;
  retransmits: number | null;
  errors: number;
}

/**
 * Run length and where steady state starts: after the first second, and for
 * buckets of a second after the third, so that the full bucket a flow starts
 * with (which UDP spends at whatever rate iperf3 manages to offer) is not
 * counted as steady.
 */
export const SECONDS = 2;
export const steadyFrom = (c: AccuracyCase) => (c.bucketSeconds >= 1 ? 3 : 1);
const runSeconds = (c: AccuracyCase) => SECONDS + steadyFrom(c) - 1;
/** UDP offers this multiple of the rate. */
const UDP_OFFER = 3;

export function bucketBytes(c: AccuracyCase): number {
  return Math.max(1, Math.round((c.rateBits / 8) * c.bucketSeconds));
}

interface ClientJson {
  error?: string;
  end?: { sum_sent?: { retransmits?: number } };
}

/** One run: server in the receiver namespace, client in the sender namespace. */
export async function runAccuracy(
  topology: Topology,
  env: NodeJS.ProcessEnv,
  c: AccuracyCase,
): Promise<AccuracyResult> {
  const rateBytes = c.rateBits / 8;
  const bucket = bucketBytes(c);
  const ingress = c.direction === 'ingress';
  // The client receives (-R) when the limited side is the downloader or the server.
  const reverse = ingress || c.target === 'listening server';
  const server = await iperfServer('ipv4', { netns: topology.receiver, address: topology.receiverAddress });
  const clientArgs = iperfClientArgs(server.port, {
    family: 'ipv4',
    address: topology.receiverAddress,
    seconds: runSeconds(c),
    udp: c.traffic === 'udp',
    udpBitrate: String(Math.ceil((UDP_OFFER * c.rateBits) / c.flows)),
    congestion: c.traffic === 'udp' ? undefined : c.traffic,
    parallel: c.flows > 1 ? c.flows : undefined,
  });
  if (reverse) clientArgs.push('-R');
  const [command, ...args] = inNetns(topology.sender, ['iperf3', ...clientArgs]);
  const client = gated(command, args);
  const standIn = c.target === 'cgroup in place' ? standInCgroup('bench') : null;
  try {
    if (c.limiter === 'tbf') {
      setTbf(topology, rateBytes, bucket, reverse ? 'server' : 'client');
    } else {
      const limit = ingress
        ? ['--ingress-rate', String(rateBytes), '--ingress-bucket', String(bucket)]
        : ['--rate', String(rateBytes), '--bucket', String(bucket)];
      if (standIn) enter(standIn.dir, client.pid);
      const target =
        c.target === 'listening server'
          ? ['--pid', String(server.pid)]
          : standIn
            ? ['--cgroup', standIn.dir]
            : ['--pid', String(client.pid)];
      const set = runCli(['set', ...target, ...limit], env);
      if (set.code !== 0) throw new Error(`limiter set failed: ${set.stderr}`);
    }
    client.go();
    const exited = await client.done;
    let json: ClientJson = {};
    try {
      json = JSON.parse(exited.stdout) as ClientJson;
    } catch {
      json = { error: exited.stderr || 'no JSON from iperf3' };
    }
    const intervals = reverse
      ? receiverIntervalsOf(exited.stdout)
      : await server.result.catch(() => [] as IperfInterval[]);
    const steadyIntervals = intervals.filter((i) => i.start >= steadyFrom(c) - 1e-3);
    const steadyBytes = steadyIntervals.reduce((n, i) => n + i.bytes, 0);
    const steadySeconds = steadyIntervals.reduce((n, i) => n + (i.end - i.start), 0);
    const peak = Math.max(0, ...intervals.map((i) => i.bytes / (bucket + rateBytes * (i.end - i.start))));
    return {
      ...c,
      steady: steadySeconds > 0 ? steadyBytes / steadySeconds / rateBytes : 0,
      peakWindow: peak,
      retransmits: c.traffic === 'udp' ? null : (json.end?.sum_sent?.retransmits ?? null),
      errors: (exited.code === 0 ? 0 : 1) + (json.error ? 1 : 0),
    };
  } finally {
    client.kill();
    server.kill();
    if (c.limiter === 'tbf') clearQdisc(topology);
    else runCli(['purge'], env);
    await client.done.catch(() => {});
    standIn?.remove();
  }
}

/** With -R the client is the receiver: its own intervals count received bytes. */
function receiverIntervalsOf(stdout: string): IperfInterval[] {
  try {
    const json = JSON.parse(stdout) as { intervals?: Array<{ sum: { start: number; end: number; bytes: number } }> };
    return (json.intervals ?? []).map((i) => ({ start: i.sum.start, end: i.sum.end, bytes: i.sum.bytes }));
  } catch {
    return [];
  }
}
