/** `limiter list`: every rule as the kernel has it, with what it limits, its processes and counters. */
import { existsSync } from 'node:fs';
import type { Context } from '../context.js';
import type { RuleValue, StateValue } from '../kernel/abi.js';
import { cgroupId, childCgroups, listPids, subtreePids } from '../kernel/cgroup.js';
import { kernelRules, openMaps, readCounters, type KernelRule, type MapFds } from '../kernel/maps.js';
import { requireUserProcess } from '../kernel/proc.js';
import { kernelOf, ruleOfPid, targetDir, type Transaction } from '../store/rule.js';
import { loadState, type RuleRecord, type RuleSource, type RuleTarget, type State } from '../store/state.js';
import { resolveInPlace, type InPlaceSpec } from './target.js';

export interface RuleInfo {
  name: string;
  target: RuleTarget;
  source: RuleSource;
  cgroupId: number;
  cgroupPath: string;
  /** null when the kernel has no limit for it */
  value: RuleValue | null;
  slot: number | null;
  counters: StateValue | null;
  /** the processes it limits: a pid rule's members, or every process in an in-place rule's cgroup tree */
  pids: number[];
  /** sockets its processes had when they joined, now the rule's: connections, and listeners */
  adopted: { sockets: number; listeners: number };
}

/** A rule as the kernel has it, with what the state file adds. */
export function describeRule(
  ctx: Context,
  name: string,
  record: Pick<RuleRecord, 'target' | 'source' | 'cgroupId' | 'members'>,
  kernel: KernelRule | null,
  maps: MapFds | null,
): RuleInfo {
  const dir = targetDir(ctx, name, record.target);
  const members = Object.values(record.members);
  return {
    name,
    target: record.target,
    source: record.source,
    cgroupId: record.cgroupId,
    cgroupPath: dir,
    value: kernel?.value ?? null,
    slot: kernel?.slot ?? null,
    counters: kernel && maps ? readCounters(maps, kernel.slot) : null,
    pids: record.target.kind === 'pid' ? listPids(dir) : subtreePids(dir),
    adopted: {
      sockets: members.reduce((n, m) => n + m.adopted.sockets, 0),
      listeners: members.reduce((n, m) => n + m.adopted.listeners, 0),
    },
  };
}

/** describeRule inside a transaction, after its changes. */
export const describeInTransaction = (t: Transaction, name: string) => {
  const record = t.state.rules[name];
  return describeRule(t.ctx, name, record, kernelOf(t).get(record.cgroupId) ?? null, t.maps);
};

export type ListFilter = { pid: number } | InPlaceSpec;

/**
 * Every rule: the records of the state file and the instance's rule cgroups
 * (one the state file lost is still listed), with the kernel's limits and
 * counters.
 */
export function listRules(ctx: Context, filter?: ListFilter): RuleInfo[] {
  const state: State | null = existsSync(ctx.instance.stateFile) ? loadState(ctx.instance.stateFile) : null;
  const records = new Map<string, Pick<RuleRecord, 'target' | 'source' | 'cgroupId' | 'members'>>(
    Object.entries(state?.rules ?? {}),
  );
  for (const name of childCgroups(ctx.instance.cgroupDir)) {
    if (!records.has(name))
      records.set(name, {
        target: { kind: 'pid' },
        source: 'cli',
        cgroupId: cgroupId(targetDir(ctx, name, { kind: 'pid' })),
        members: {},
      });
  }
  let names = [...records.keys()].sort();
  if (filter && 'pid' in filter) {
    requireUserProcess(filter.pid);
    const rule = ruleOfPid(ctx, filter.pid);
    names = names.filter((n) => n === rule);
  } else if (filter) {
    const { cgroupId: id } = resolveInPlace(ctx, filter);
    names = names.filter((n) => records.get(n)!.cgroupId === id && records.get(n)!.target.kind !== 'pid');
  }
  const maps = ctx.bpffsMounted ? openMaps(ctx.instance) : null;
  try {
    const kernel = maps ? kernelRules(maps) : new Map<number, KernelRule>();
    return names.map((name) => {
      const record = records.get(name)!;
      return describeRule(ctx, name, record, kernel.get(record.cgroupId) ?? null, maps);
    });
  } finally {
    maps?.close();
  }
}
