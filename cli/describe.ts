import type { Limit } from '../lib/kernel/abi.js';
import type { RuleInfo } from '../lib/ops/list.js';
import type { JoinResult } from '../lib/ops/membership.js';
import { formatBytes, formatRate } from '../lib/units.js';

/** "1 MiB/s (8.39 Mbit/s) = 1048576 B/s, bucket 1 MiB = 1048576 B": always with the exact numbers. */
export function describeLimit(limit: Limit): string {
  return `${formatRate(limit.rate)} = ${limit.rate} B/s, bucket ${formatBytes(limit.bucket)} = ${limit.bucket} B`;
}

/** Both directions of a rule as the kernel has them. */
export function describeLimits(rule: RuleInfo): string {
  const limits = rule.value?.limits;
  if (!limits) return 'no limit in the kernel';
  const parts = [];
  if (limits.egress.rate) parts.push(`upload ${describeLimit(limits.egress)}`);
  if (limits.ingress.rate) parts.push(`download ${describeLimit(limits.ingress)}`);
  return parts.join('; ');
}

/** One line per process that joined a rule. */
export function describeJoins(joined: JoinResult[]): string {
  return joined
    .map((j) => {
      const parts = [`pid ${j.pid} moved in`];
      if (j.adoptedSockets > 0) parts.push(`its ${j.adoptedSockets} open socket(s) limited too`);
      if (j.left) parts.push(`left rule ${j.left}${j.removedRule ? ' (empty, removed)' : ''}`);
      return parts.join('; ') + '\n';
    })
    .join('');
}

/** The JSON shape of a rule (doc/design.md, "JSON"); names and meanings are stable. */
export function ruleToJson(rule: RuleInfo) {
  const egress = rule.value?.limits.egress;
  const ingress = rule.value?.limits.ingress;
  const counters = rule.counters?.egress;
  const ingressCounters = rule.counters?.ingress;
  const rateOf = (limit: Limit | undefined) => (limit && limit.rate ? limit.rate : null);
  return {
    name: rule.name,
    cgroupId: rule.cgroupId,
    cgroupPath: rule.cgroupPath,
    rateBytesPerSec: rateOf(egress),
    bucketBytes: rateOf(egress) === null ? null : egress!.bucket,
    pids: rule.pids,
    passedBytes: Number(counters?.passedBytes ?? 0n),
    passedPackets: Number(counters?.passedPackets ?? 0n),
    droppedBytes: Number(counters?.droppedBytes ?? 0n),
    droppedPackets: Number(counters?.droppedPackets ?? 0n),
    ingressRateBytesPerSec: rateOf(ingress),
    ingressBucketBytes: rateOf(ingress) === null ? null : ingress!.bucket,
    ingressPassedBytes: Number(ingressCounters?.passedBytes ?? 0n),
    ingressPassedPackets: Number(ingressCounters?.passedPackets ?? 0n),
    ingressDroppedBytes: Number(ingressCounters?.droppedBytes ?? 0n),
    ingressDroppedPackets: Number(ingressCounters?.droppedPackets ?? 0n),
    adoptedSockets: rule.adoptedSockets,
    slot: rule.value?.slot ?? null,
    tokensBytes: egress && rule.counters ? tokens(egress, rule.counters.egress.emptyAtNs) : null,
    ingressTokensBytes: ingress && rule.counters ? tokens(ingress, rule.counters.ingress.emptyAtNs) : null,
  };
}

/** Bytes in the bucket now (negative: the debt of the last large skb). */
export function tokens(limit: Limit, emptyAtNs: bigint, nowNs: bigint = process.hrtime.bigint()): number {
  if (limit.rate === 0) return 0;
  const available = ((nowNs - emptyAtNs) * BigInt(limit.rate)) / 1_000_000_000n;
  return Number(available > BigInt(limit.bucket) ? BigInt(limit.bucket) : available);
}
