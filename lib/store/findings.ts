/**
 * The one comparison of the state file with the kernel: the instance's pins,
 * the rules' cgroups, their links, and the rules array. `doctor` reports the
 * findings; reconcile.ts repairs them before every change.
 */
import { existsSync } from 'node:fs';
import type { Context } from '../context.js';
import { missingPins } from '../kernel/attach.js';
import { cgroupId, childCgroups, listPids } from '../kernel/cgroup.js';
import { missingRuleLinks } from '../kernel/links.js';
import { kernelRules, type MapFds } from '../kernel/maps.js';
import { hooksFor, linkPins } from '../kernel/pins.js';
import { memberOf, ruleDir, targetDir } from './rule.js';
import type { State } from './state.js';

export type Finding =
  /** pinned maps or programs of the instance are gone */
  | { kind: 'pins-missing'; pins: string[] }
  /** a rule's cgroup is gone: removed by hand or by its manager, or by a reboot that left the state file */
  | { kind: 'cgroup-gone'; rule: string; inPlace: boolean; fromFile: boolean }
  /** a member exited, or something else moved it out of its rule */
  | { kind: 'member-gone'; rule: string; pid: number; exited: boolean }
  /** every process of a pid rule has exited: normal life, the next change removes it */
  | { kind: 'rule-ended'; rule: string }
  /** a rule cgroup with a limit in the kernel but no record (a crash, a lost state file) */
  | { kind: 'unrecorded-rule'; rule: string; cgroupId: number }
  /** a cgroup under the instance with neither record nor limit */
  | { kind: 'unlimited-cgroup'; rule: string }
  /** a limit or links in the kernel for a cgroup that is no rule */
  | { kind: 'orphan-limit'; cgroupId: number }
  /** a recorded rule the kernel does not limit (its maps were lost) */
  | { kind: 'limit-missing'; rule: string }
  /** a rule's programs are not all attached (a link pin removed by hand) */
  | { kind: 'links-missing'; rule: string; hooks: string[] };

export type FindingSeverity = 'info' | 'problem';

/** What a finding means for the user: whether anything is wrong, and in words. */
export function describeFinding(f: Finding, instance: string): { severity: FindingSeverity; text: string } {
  switch (f.kind) {
    case 'pins-missing':
      return { severity: 'problem', text: `missing in /sys/fs/bpf/${instance}: ${f.pins.join(', ')}` };
    case 'cgroup-gone':
      // A rule from the file comes back with its unit (drop-in); one set by hand is lost.
      return f.fromFile
        ? {
            severity: 'info',
            text: `the cgroup of rule ${f.rule} is gone; it waits in the rules file until the cgroup is back (a unit's drop-in applies it when the unit starts)`,
          }
        : { severity: 'problem', text: `the cgroup of rule ${f.rule} is gone` };
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
    case 'links-missing':
      return { severity: 'problem', text: `rule ${f.rule} lacks its ${f.hooks.join(', ')} program` };
  }
}

/** Findings about the instance's kernel objects: what is pinned. */
export function instanceFindings(ctx: Context): Finding[] {
  if (!existsSync(ctx.instance.bpffsDir) && !existsSync(ctx.instance.cgroupDir)) return [];
  const pins = missingPins(ctx.instance);
  return pins.length > 0 ? [{ kind: 'pins-missing', pins }] : [];
}

/** The id of the cgroup at dir, or null when there is none. */
function idOf(dir: string): number | null {
  try {
    return cgroupId(dir);
  } catch {
    return null;
  }
}

/**
 * Findings about the rules: the state file against the cgroups, the links
 * and the rules array. In the order reconcile repairs them.
 */
export function ruleFindings(ctx: Context, state: State, maps: MapFds): Finding[] {
  const found: Finding[] = [];
  const children = new Map(childCgroups(ctx.instance.cgroupDir).map((name) => [name, idOf(ruleDir(ctx, name))]));
  const kernel = kernelRules(maps);
  const pidsOf = (name: string) => listPids(ruleDir(ctx, name));

  const live = Object.entries(state.rules).filter(([name, record]) => {
    if (idOf(targetDir(ctx, name, record.target)) === record.cgroupId) return true;
    found.push({
      kind: 'cgroup-gone',
      rule: name,
      inPlace: record.target.kind !== 'pid',
      fromFile: record.source === 'file',
    });
    return false;
  });
  for (const [name, record] of live) {
    if (record.target.kind !== 'pid') continue;
    const inCgroup = new Set(pidsOf(name));
    for (const pid of Object.keys(record.members).map(Number)) {
      const exited = memberOf(state, name, pid) === null;
      if (exited || !inCgroup.has(pid)) found.push({ kind: 'member-gone', rule: name, pid, exited });
    }
  }
  for (const [name, id] of children) {
    const record = state.rules[name];
    if (id === null || record?.target.kind === 'pid') continue;
    const recoverable = !record && kernel.has(id);
    found.push(
      recoverable ? { kind: 'unrecorded-rule', rule: name, cgroupId: id } : { kind: 'unlimited-cgroup', rule: name },
    );
  }
  const known = new Set([...Object.values(state.rules).map((r) => r.cgroupId), ...children.values()]);
  const linked = linkPins(ctx.instance).flatMap((l) => (l.kind === 'rule' ? [l.target] : []));
  for (const id of new Set([...kernel.keys(), ...linked]))
    if (!known.has(id)) found.push({ kind: 'orphan-limit', cgroupId: id });
  for (const [name, record] of live) {
    if (!kernel.has(record.cgroupId)) {
      found.push({ kind: 'limit-missing', rule: name });
      continue;
    }
    const hooks = missingRuleLinks(
      ctx.instance,
      record.cgroupId,
      hooksFor(kernel.get(record.cgroupId)!.value.limits),
    ).map((h) => h.hook);
    if (hooks.length > 0) found.push({ kind: 'links-missing', rule: name, hooks });
  }
  for (const [name, id] of children) {
    const recorded =
      (state.rules[name]?.target.kind === 'pid' && state.rules[name]?.cgroupId === id) || kernel.has(id!);
    if (recorded && pidsOf(name).length === 0) found.push({ kind: 'rule-ended', rule: name });
  }
  return found;
}
