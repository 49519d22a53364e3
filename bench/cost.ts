/**
 * Per-skb cost of limiter_egress, as a ratio to a trivial `return 1` program
 * that runs on the very same skbs (attached to the same cgroup), with BPF run
 * time statistics on. And loopback throughput of unlimited traffic with and
 * without the programs in its path.
 */
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { PROG_EGRESS } from '../lib/kernel/abi.js';
import { movePid } from '../lib/kernel/cgroup.js';
import { packageRoot } from '../lib/instance.js';
import { AttachType, BpfObject, enableRunTimeStats, linkCreate } from '../lib/kernel/bpf.js';
import type { Context } from '../lib/context.js';
import { programInfo } from '../lib/kernel/info.js';
import { inspectKernel, programView } from '../lib/kernel/inspect.js';
import { gated, inNetns, iperfClientArgs, iperfServer, steadyRate } from '../test/harness/traffic.js';
import type { Topology } from '../test/harness/topology.js';

export interface CostResult {
  case: 'rule without this direction' | 'limited cgroup, over its rate' | 'limited cgroup, under its rate';
  rules: number;
  nsPerSkb: number;
  trivialNsPerSkb: number;
  ratio: number;
}

function runStats(id: number): { ns: number; runs: number } {
  const view = programView(id);
  return { ns: view?.runTimeNs ?? 0, runs: view?.runCount ?? 0 };
}

/** The id of the instance's egress program (the same program runs on every rule's cgroup). */
function egressProgramId(ctx: Context): number {
  const program = inspectKernel(ctx.instance).programs.find((p) => p.name === PROG_EGRESS);
  if (!program) throw new Error(`${PROG_EGRESS} is not loaded`);
  return program.id;
}

/**
 * Sends UDP for a few seconds from a process in cgroupDir, with the trivial
 * program attached there too, and compares the run time per skb.
 */
export async function measureCost(
  topology: Topology,
  ctx: Context,
  cgroupDir: string,
  label: CostResult['case'],
  rules: number,
  udpBitrate = '200M',
): Promise<CostResult> {
  const stats = enableRunTimeStats();
  const trivial = BpfObject.open(join(packageRoot(), 'bench', 'trivial.bpf.o'));
  try {
    trivial.load();
    const trivialFd = trivial.programFd(trivial.findProgram('trivial_egress')!);
    const cgroupFd = openSync(cgroupDir, 'r');
    const link = linkCreate(trivialFd, cgroupFd, AttachType.cgroupInetEgress);
    closeSync(cgroupFd);
    try {
      const oursId = egressProgramId(ctx);
      const trivialId = programInfo(trivialFd).id;
      const server = await iperfServer('ipv4', { netns: topology.receiver, address: topology.receiverAddress });
      const [command, ...args] = inNetns(topology.sender, [
        'iperf3',
        ...iperfClientArgs(server.port, {
          family: 'ipv4',
          address: topology.receiverAddress,
          seconds: 3,
          udp: true,
          udpBitrate,
        }),
      ]);
      const client = gated(command, args);
      try {
        movePid(client.pid, cgroupDir);
        const [ours0, trivial0] = [runStats(oursId), runStats(trivialId)];
        client.go();
        await client.done;
        const [ours1, trivial1] = [runStats(oursId), runStats(trivialId)];
        const nsPerSkb = (ours1.ns - ours0.ns) / Math.max(1, ours1.runs - ours0.runs);
        const trivialNsPerSkb = (trivial1.ns - trivial0.ns) / Math.max(1, trivial1.runs - trivial0.runs);
        return { case: label, rules, nsPerSkb, trivialNsPerSkb, ratio: nsPerSkb / trivialNsPerSkb };
      } finally {
        client.kill();
        server.kill();
      }
    } finally {
      closeSync(link);
    }
  } finally {
    trivial.close();
    closeSync(stats);
  }
}

export interface ThroughputResult {
  case: string;
  gbitPerSec: number;
}

/** Unlimited loopback TCP throughput in the sender namespace, for a process in cgroupDir (or left where it is). */
export async function loopbackThroughput(
  topology: Topology,
  label: string,
  cgroupDir?: string,
): Promise<ThroughputResult> {
  const server = await iperfServer('ipv4', { netns: topology.sender });
  const [command, ...args] = inNetns(topology.sender, [
    'iperf3',
    ...iperfClientArgs(server.port, { family: 'ipv4', seconds: 3 }),
  ]);
  const client = gated(command, args);
  try {
    if (cgroupDir) movePid(client.pid, cgroupDir);
    client.go();
    await client.done;
    return { case: label, gbitPerSec: (steadyRate(await server.result, 1) * 8) / 1e9 };
  } finally {
    client.kill();
    server.kill();
  }
}
