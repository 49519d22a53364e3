/**
 * A real path between two network namespaces of the caller's own: TUN
 * devices joined by build/delayline, which holds every packet for half the
 * round-trip time; MTU 1500 and no segmentation offloads, so packets are the
 * size they would be on a network (doc/design.md K16, K17). Also the classic
 * peers to compare with: tbf on the client's egress (uploads), and ifb + tbf
 * on its ingress (downloads).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../lib/instance.js';
import { sh, tbfQdisc } from './topology.js';

export interface DelayLine {
  client: string;
  server: string;
  clientDev: string;
  serverDev: string;
  clientAddress: string;
  serverAddress: string;
  rttMs: number;
  destroy(): void;
}

const offloadsOff = (ns: string, dev: string) =>
  sh('ip', ['netns', 'exec', ns, 'ethtool', '-K', dev, 'gso', 'off', 'tso', 'off', 'gro', 'off'], true);

/** Two namespaces joined by a delay line of rttMs round trip; destroy() removes everything. */
export async function createDelayLine(tag: string, rttMs: number): Promise<DelayLine> {
  const client = `ld_${tag}_c`;
  const server = `ld_${tag}_s`;
  const [clientDev, serverDev] = [`ldc${tag}`.slice(0, 15), `lds${tag}`.slice(0, 15)];
  let relay: ReturnType<typeof spawn> | null = null;
  const destroy = () => {
    relay?.kill('SIGKILL');
    sh('ip', ['netns', 'del', client], true);
    sh('ip', ['netns', 'del', server], true);
  };
  destroy();
  try {
    for (const ns of [client, server]) {
      sh('ip', ['netns', 'add', ns]);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    const oneWayUs = String(Math.round((rttMs * 1000) / 2));
    relay = spawn(join(packageRoot(), 'build', 'delayline'), [client, clientDev, server, serverDev, oneWayUs], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    await new Promise<void>((resolve, reject) => {
      relay!.once('exit', (code) => reject(new Error(`delayline exited (${code})`)));
      relay!.stdout!.once('data', () => resolve());
    });
    for (const [ns, dev, address] of [
      [client, clientDev, '10.233.0.1'],
      [server, serverDev, '10.233.0.2'],
    ] as const) {
      sh('ip', ['-n', ns, 'addr', 'add', `${address}/30`, 'dev', dev]);
      sh('ip', ['-n', ns, 'link', 'set', dev, 'mtu', '1500', 'up']);
      offloadsOff(ns, dev);
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    client,
    server,
    clientDev,
    serverDev,
    clientAddress: '10.233.0.1',
    serverAddress: '10.233.0.2',
    rttMs,
    destroy,
  };
}

/** tbf on the client's egress: the classic peer for uploads. */
export function tbfUpload(line: DelayLine, rateBytes: number, burstBytes: number): void {
  tbf(line.client, line.clientDev, rateBytes, burstBytes);
}

/** ifb + tbf on the client's ingress (match-all u32 filter, mirred to ifb): the classic peer for downloads. */
export function ifbDownload(line: DelayLine, rateBytes: number, burstBytes: number): void {
  const ifb = 'ifb0';
  const inNs = (...args: string[]) => sh('ip', ['netns', 'exec', line.client, ...args]);
  inNs('ip', 'link', 'add', ifb, 'type', 'ifb');
  inNs('ip', 'link', 'set', ifb, 'up');
  inNs('tc', 'qdisc', 'add', 'dev', line.clientDev, 'handle', 'ffff:', 'ingress');
  inNs(
    'tc',
    'filter',
    'add',
    'dev',
    line.clientDev,
    'parent',
    'ffff:',
    'protocol',
    'all',
    'u32',
    'match',
    'u32',
    '0',
    '0',
    'action',
    'mirred',
    'egress',
    'redirect',
    'dev',
    ifb,
  );
  tbf(line.client, ifb, rateBytes, burstBytes);
}

/** tbf needs a burst of at least one MTU-sized packet. */
function tbf(ns: string, dev: string, rateBytes: number, burstBytes: number): void {
  tbfQdisc(ns, dev, rateBytes, Math.max(burstBytes, 1600));
}

/** Removes tbf, ifb and the ingress qdisc the peers added. */
export function clearPeers(line: DelayLine): void {
  const inNs = (...args: string[]) => sh('ip', ['netns', 'exec', line.client, ...args], true);
  inNs('tc', 'qdisc', 'del', 'dev', line.clientDev, 'root');
  inNs('tc', 'qdisc', 'del', 'dev', line.clientDev, 'ingress');
  inNs('ip', 'link', 'del', 'ifb0');
}

/** A protocol's counters in a namespace so far (/proc/net/snmp and /proc/net/netstat are per namespace). */
function counters(ns: string, file: 'snmp' | 'netstat', protocol: string): (name: string) => number {
  const lines = sh('ip', ['netns', 'exec', ns, 'cat', `/proc/net/${file}`])
    .split('\n')
    .filter((l) => l.startsWith(`${protocol}:`));
  const [names, values] = lines.map((l) => l.trim().split(/\s+/)) as [string[], string[]];
  return (name) => Number(values[names.indexOf(name)]);
}

/**
 * TCP segments sent and retransmitted in a namespace so far, retransmissions
 * found lost again (each one costs its flow a retransmission timeout), and
 * segments received that had arrived before (each answered with a D-SACK).
 */
export function tcpSegments(ns: string): { out: number; retransmitted: number; lostAgain: number; duplicates: number } {
  const tcp = counters(ns, 'snmp', 'Tcp');
  const tcpExt = counters(ns, 'netstat', 'TcpExt');
  return {
    out: tcp('OutSegs'),
    retransmitted: tcp('RetransSegs'),
    lostAgain: tcpExt('TCPLostRetransmit'),
    duplicates: tcpExt('TCPDSACKOldSent') + tcpExt('TCPDSACKOfoSent'),
  };
}

/**
 * The TCP socket in a namespace that has sent the most: the window last
 * offered to it (ss's snd_wnd) and its segment size (mss), in bytes; zeros
 * when there is none.
 */
export function busiestSender(ns: string): { window: number; mss: number } {
  const sockets = sh('ip', ['netns', 'exec', ns, 'ss', '-tinH', 'state', 'established'])
    .split(/\n(?=\S)/)
    .map((entry) => ({
      acked: Number(/\bbytes_acked:(\d+)/.exec(entry)?.[1] ?? 0),
      window: Number(/\bsnd_wnd:(\d+)/.exec(entry)?.[1] ?? 0),
      mss: Number(/\bmss:(\d+)/.exec(entry)?.[1] ?? 0),
    }));
  const { window, mss } = sockets.reduce((busiest, socket) => (socket.acked > busiest.acked ? socket : busiest), {
    acked: 0,
    window: 0,
    mss: 0,
  });
  return { window, mss };
}
