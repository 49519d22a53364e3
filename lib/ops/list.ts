/** `limiter list`: every rule as the kernel has it, with its processes and counters. */
import { existsSync } from 'node:fs';
import type { Context } from '../context.js';
import type { RuleValue, StateValue } from '../kernel/abi.js';
import { cgroupId, childCgroups, listPids } from '../kernel/cgroup.js';
import { openMaps, readRule, type MapFds } from '../kernel/maps.js';
import { requireUserProcess } from '../kernel/proc.js';
import { ruleDir, ruleOfPid } from '../store/rule.js';
import { loadState, type State } from '../store/state.js';

export interface RuleInfo {
  name: string;
  cgroupId: number;
  cgroupPath: string;
  /** null when the cgroup exists but the kernel has no limit for it */
  value: RuleValue | null;
  counters: StateValue | null;
  pids: number[];
  /** sockets created before their process joined, limited by cookie */
  adoptedSockets: number;
}

/** A rule as the kernel has it, with what the state file adds. */
export function describeRule(
  ctx: Context,
  maps: MapFds | null,
  name: string,
  id: number,
  state: State | null,
): RuleInfo {
  const dir = ruleDir(ctx, name);
  const kernel = maps ? readRule(maps, id) : null;
  const members = Object.values(state?.rules[name]?.members ?? {});
  return {
    name,
    cgroupId: id,
    cgroupPath: dir,
    value: kernel?.value ?? null,
    counters: kernel?.counters ?? null,
    pids: listPids(dir),
    adoptedSockets: members.reduce((n, m) => n + m.sockets.length, 0),
  };
}

export interface ListOptions {
  pid?: number;
}

/** Every rule as the kernel has it: the instance's child cgroups, their limits and counters. */
export function listRules(ctx: Context, options: ListOptions = {}): RuleInfo[] {
  let names = childCgroups(ctx.instance.cgroupDir);
  if (options.pid !== undefined) {
    requireUserProcess(options.pid);
    const rule = ruleOfPid(ctx, options.pid);
    names = rule === null ? [] : names.filter((n) => n === rule);
  }
  const state = existsSync(ctx.instance.stateFile) ? loadState(ctx.instance.stateFile) : null;
  const maps = ctx.bpffsMounted ? openMaps(ctx.instance) : null;
  try {
    return names.map((name) => describeRule(ctx, maps, name, cgroupId(ruleDir(ctx, name)), state));
  } finally {
    maps?.close();
  }
}
