/** How rules, limits and what a command did read on stdout and in JSON. */
import type { Limit } from '../lib/kernel/abi.js';
import type { RuleInfo } from '../lib/ops/list.js';
import type { JoinResult } from '../lib/ops/membership.js';
import type { RuleTarget } from '../lib/store/state.js';
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

/** The directions a rule limits, in words: what its sockets are held to. */
export function limitedDirections(rule: RuleInfo): string {
  const limits = rule.value?.limits;
  const words = [limits?.egress.rate ? 'upload' : null, limits?.ingress.rate ? 'download' : null].filter(Boolean);
  return words.length > 0 ? words.join(' and ') : 'nothing';
}

/** What a rule limits: "pid", "cgroup /ci.slice", "unit web.service (/system.slice/web.service)". */
export function describeTarget(target: RuleTarget): string {
  switch (target.kind) {
    case 'pid':
      return 'pid';
    case 'cgroup':
      return `cgroup ${target.path}`;
    case 'unit':
      return `unit ${target.unit} (${target.path})`;
    case 'container':
      return `container ${target.container} (${target.path})`;
  }
}

/** One line per process that joined a rule: moved, and which of its sockets are now the rule's. */
export function describeJoins(joined: JoinResult[], rule: RuleInfo): string {
  const directions = limitedDirections(rule);
  return joined
    .map((j) => {
      const parts = [`pid ${j.pid} moved in`];
      const open = j.adopted.sockets + j.adopted.other;
      if (open > 0) parts.push(`its ${open} open socket(s) limited too (${directions})`);
      if (j.adopted.listeners > 0) {
        parts.push(
          `its ${j.adopted.listeners} listening socket(s): connections they accept are limited (${directions})`,
        );
      }
      if (j.left) parts.push(`left rule ${j.left}${j.removedRule ? ' (empty, removed)' : ''}`);
      return parts.join('; ') + '\n';
    })
    .join('');
}

/** The line for a rule that limits a cgroup in place. */
export function describeInPlace(rule: RuleInfo): string {
  return (
    `${describeTarget(rule.target)} limited in place (${limitedDirections(rule)}): ` +
    `${rule.pids.length} process(es) in its tree and all their sockets, old and new; nothing moved\n`
  );
}

/** The JSON shape of a rule (doc/design.md, "JSON"); names and meanings are stable. */
export function ruleToJson(rule: RuleInfo) {
  const egress = rule.value?.limits.egress;
  const ingress = rule.value?.limits.ingress;
  const counters = rule.counters?.egress;
  const ingressCounters = rule.counters?.ingress;
  const rateOf = (limit: Limit | undefined) => (limit && limit.rate ? limit.rate : null);
  const adopted = rule.adopted.sockets + rule.adopted.listeners;
  return {
    name: rule.name,
    target: rule.target.kind,
    source: rule.source,
    targetPath: rule.target.kind === 'pid' ? null : rule.target.path,
    unit: rule.target.kind === 'unit' ? rule.target.unit : null,
    container: rule.target.kind === 'container' ? rule.target.container : null,
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
    /** sockets the rule's processes had when they joined (listeners included), now the rule's */
    adoptedSockets: adopted,
    adopted: {
      egress: rateOf(egress) === null ? 0 : adopted,
      ingress: rateOf(ingress) === null ? 0 : adopted,
      listeners: rule.adopted.listeners,
    },
    slot: rule.slot,
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
