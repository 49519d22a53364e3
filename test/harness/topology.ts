/**
 * Two network namespaces of the bench's own joined by a veth pair: the
 * sender in one, the receiver in the other. Limiter and tc tbf are measured
 * on the same path. Everything is removed by destroy(), also after a failure.
 */
import { spawnSync } from 'node:child_process';

export interface Topology {
  sender: string;
  receiver: string;
  senderDev: string;
  receiverDev: string;
  receiverAddress: string;
  destroy(): void;
}

export function sh(command: string, args: string[], allowFailure = false): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0 && !allowFailure) {
    throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr.trim()}`);
  }
  return result.stdout;
}

export function createTopology(tag: string): Topology {
  const sender = `lb_${tag}_s`;
  const receiver = `lb_${tag}_r`;
  const senderDev = `lbs${tag}`.slice(0, 15);
  const receiverDev = `lbr${tag}`.slice(0, 15);
  const destroy = () => {
    sh('ip', ['netns', 'del', sender], true);
    sh('ip', ['netns', 'del', receiver], true);
  };
  destroy();
  try {
    sh('ip', ['netns', 'add', sender]);
    sh('ip', ['netns', 'add', receiver]);
    sh('ip', [
      'link',
      'add',
      senderDev,
      'netns',
      sender,
      'type',
      'veth',
      'peer',
      'name',
      receiverDev,
      'netns',
      receiver,
    ]);
    sh('ip', ['-n', sender, 'addr', 'add', '10.231.0.1/24', 'dev', senderDev]);
    sh('ip', ['-n', receiver, 'addr', 'add', '10.231.0.2/24', 'dev', receiverDev]);
    for (const [ns, dev] of [
      [sender, senderDev],
      [receiver, receiverDev],
    ] as const) {
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return { sender, receiver, senderDev, receiverDev, receiverAddress: '10.231.0.2', destroy };
}

/** tc tbf as the root qdisc of dev in ns: the classic per-interface limiter the bench compares with. */
export function tbfQdisc(ns: string, dev: string, rateBytes: number, burstBytes: number): void {
  const tc = ['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${rateBytes * 8}bit`];
  sh('ip', ['netns', 'exec', ns, 'tc', ...tc, 'burst', String(burstBytes), 'latency', '50ms']);
}

/**
 * tc tbf on one end of the veth, the per-interface peer limiter: on the
 * client's side for uploads, on the server's side for downloads (where
 * traffic towards the client leaves).
 */
export function setTbf(
  topology: Topology,
  rateBytes: number,
  burstBytes: number,
  side: 'client' | 'server' = 'client',
): void {
  const [ns, dev] =
    side === 'client' ? [topology.sender, topology.senderDev] : [topology.receiver, topology.receiverDev];
  tbfQdisc(ns, dev, rateBytes, burstBytes);
}

export function clearQdisc(topology: Topology): void {
  for (const [ns, dev] of [
    [topology.sender, topology.senderDev],
    [topology.receiver, topology.receiverDev],
  ] as const) {
    sh('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', dev, 'root'], true);
  }
}
