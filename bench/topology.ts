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
    sh('ip', ['link', 'add', senderDev, 'netns', sender, 'type', 'veth', 'peer', 'name', receiverDev, 'netns', receiver]);
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
  return { sender, receiver, senderDev, receiverAddress: '10.231.0.2', destroy };
}

/** tc tbf on the sender's side of the veth: the per-interface peer limiter. */
export function setTbf(topology: Topology, rateBytes: number, burstBytes: number): void {
  sh('ip', [
    'netns', 'exec', topology.sender, 'tc', 'qdisc', 'replace', 'dev', topology.senderDev, 'root', 'tbf',
    'rate', `${rateBytes * 8}bit`, 'burst', String(burstBytes), 'latency', '50ms',
  ]);
}

export function clearQdisc(topology: Topology): void {
  sh('ip', ['netns', 'exec', topology.sender, 'tc', 'qdisc', 'del', 'dev', topology.senderDev, 'root'], true);
}
