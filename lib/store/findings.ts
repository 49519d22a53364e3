/**
 * The one comparison of the state file with the kernel: the instance's pins,
 * its rule cgroups and the maps. `doctor` reports the findings;
 * reconcile.ts repairs them before every change.
 */
import { existsSync } from 'node:fs';
import type { Context } from '../context.js';
import { encodeCookie } from '../kernel/abi.js';
import { missingPins } from '../kernel/attach.js';
import { mapLookup } from '../kernel/bpf.js';
import { cgroupId, childCgroups, listPids } from '../kernel/cgroup.js';
import { kernelRules, type MapFds } from '../kernel/maps.js';
import { memberOf, RELEASED, ruleDir } from './rule.js';
import type { State } from './state.js';

export type Finding =
  /** pinned maps, programs or links of the instance are gone */
  | { kind: 'pins-missing'; pins: string[] }
  /** a recorded rule's cgroup is gone: removed by hand, or by a reboot that left the state file */
  | { kind: 'cgroup-gone'; rule: string }
  /** a member exited, or something else moved it out of its rule */
  | { kind: 'member-gone'; rule: string; pid: number; exited: boolean }
  /** every process of the rule has exited: normal life, the next change removes it */
  | { kind: 'rule-ended'; rule: string }
  /** a rule cgroup with a limit in the kernel but no record (a crash, a lost state file) */
  | { kind: 'unrecorded-rule'; rule: string; cgroupId: number }
  /** a cgroup under the instance with neither record nor limit */
  | { kind: 'unlimited-cgroup'; rule: string }
  /** a limit in the kernel for a cgroup that is no rule */
  | { kind: 'orphan-limit'; cgroupId: number }
  /** a recorded rule the kernel does not limit (its maps were lost) */
  | { kind: 'limit-missing'; rule: string }
  /** socket entries the sockets map lost */
  | { kind: 'socket-entries-missing'; rule: string; entries: Array<{ cookie: string; target: number }> };

export type FindingSeverity = 'info' | 'problem';

/** What a finding means for the user: whether anything is wrong, and in words. */
export function describeFinding(f: Finding, instance: string): { severity: FindingSeverity; text: string } {
  switch (f.kind) {
    case 'pins-missing':
      return { severity: 'problem', text: `missing in /sys/fs/bpf/${instance}: ${f.pins.join(', ')}` };
    case 'cgroup-gone':
      return { severity: 'problem', text: `rule ${f.rule} has lost its cgroup` };
    case 'member-gone':
      return {
        severity: 'info',
        text: `pid ${f.pid} of rule ${f.rule} ${f.exited ? 'has exited' : 'was moved out of it'}`,
      };
    case 'rule-ended':
      return {
        severity: 'info',
        text: `rule ${f.rule}: its processes have all exited (ended; removed by the next change)`,
      };
    case 'unrecorded-rule':
      return { severity: 'problem', text: `rule ${f.rule} is missing from the state file` };
    case 'unlimited-cgroup':
      return { severity: 'problem', text: `cgroup ${f.rule} is not a recorded rule and has no limit` };
    case 'orphan-limit':
      return { severity: 'problem', text: `a limit for cgroup ${f.cgroupId} belongs to no rule` };
    case 'limit-missing':
      return { severity: 'problem', text: `rule ${f.rule} has no limit in the kernel` };
    case 'socket-entries-missing':
      return { severity: 'problem', text: `rule ${f.rule} lost ${f.entries.length} adopted socket entries` };
  }
}

/** Findings about the instance's kernel objects: what is pinned. */
export function instanceFindings(ctx: Context): Finding[] {
  if (!existsSync(ctx.instance.bpffsDir) && !existsSync(ctx.instance.cgroupDir)) return [];
  const pins = missingPins(ctx.instance);
  return pins.length > 0 ? [{ kind: 'pins-missing', pins }] : [];
}

/**
 * Findings about the rules: the state file against the instance's cgroups
 * and the rules and sockets maps. In the order reconcile repairs them.
 */
export function ruleFindings(ctx: Context, state: State, maps: MapFds): Finding[] {
  const found: Finding[] = [];
  const ids = new Map(childCgroups(ctx.instance.cgroupDir).map((name) => [name, cgroupId(ruleDir(ctx, name))]));
  const limited = kernelRules(maps);
  const pidsOf = new Map([...ids.keys()].map((name) => [name, listPids(ruleDir(ctx, name))]));

  const live = Object.entries(state.rules).filter(([name, record]) => {
    if (ids.get(name) === record.cgroupId) return true;
    found.push({ kind: 'cgroup-gone', rule: name });
    return false;
  });
  for (const [name, record] of live) {
    const inCgroup = new Set(pidsOf.get(name));
    for (const pid of Object.keys(record.members).map(Number)) {
      const exited = memberOf(state, name, pid) === null;
      if (exited || !inCgroup.has(pid)) found.push({ kind: 'member-gone', rule: name, pid, exited });
    }
  }
  for (const [name, id] of ids) {
    if (state.rules[name]) continue;
    found.push(
      limited.has(id)
        ? { kind: 'unrecorded-rule', rule: name, cgroupId: id }
        : { kind: 'unlimited-cgroup', rule: name },
    );
  }
  const ruleIds = new Set(ids.values());
  for (const id of limited.keys()) if (!ruleIds.has(id)) found.push({ kind: 'orphan-limit', cgroupId: id });
  for (const [name, record] of live) {
    if (!limited.has(record.cgroupId)) {
      found.push({ kind: 'limit-missing', rule: name });
      continue;
    }
    const expected = [
      ...Object.values(record.members).flatMap((m) => m.sockets.map((cookie) => ({ cookie, target: record.cgroupId }))),
      ...record.released.map((cookie) => ({ cookie, target: RELEASED })),
    ];
    const entries = expected.filter(({ cookie }) => !mapLookup(maps.sockets, encodeCookie(cookie), Buffer.alloc(8)));
    if (entries.length > 0) found.push({ kind: 'socket-entries-missing', rule: name, entries });
  }
  for (const [name, id] of ids) {
    const recorded = state.rules[name]?.cgroupId === id || limited.has(id);
    if (recorded && pidsOf.get(name)!.length === 0) found.push({ kind: 'rule-ended', rule: name });
  }
  return found;
}
