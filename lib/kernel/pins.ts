/**
 * Where an instance pins its kernel objects in bpffs: every map and program
 * under its own name, up to three links per rule (rule_<cgroup id>_<hook>), and two
 * tcx links per interface that owned sockets use (tcx_<netns>_<ifindex>_<hook>).
 */
import { readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Instance } from '../instance.js';
import { errnoCode } from '../errors.js';
import {
  PROG_EGRESS,
  PROG_INGRESS,
  PROG_SOCKOPS,
  PROG_TC_EGRESS,
  PROG_TC_INGRESS,
  type DirectionName,
  type Limits,
  type ProgramName,
} from './abi.js';
import { AttachType } from './bpf.js';

export const pinPath = (instance: Instance, pin: string) => join(instance.bpffsDir, pin);

export interface Hook {
  hook: string;
  program: ProgramName;
  attachType: number;
}

/** The links a rule's cgroup may have: policing each way, and TCP pacing and windows. */
export const RULE_HOOKS: readonly Hook[] = [
  { hook: 'egress', program: PROG_EGRESS, attachType: AttachType.cgroupInetEgress },
  { hook: 'ingress', program: PROG_INGRESS, attachType: AttachType.cgroupInetIngress },
  { hook: 'sock_ops', program: PROG_SOCKOPS, attachType: AttachType.cgroupSockOps },
];

/** The links on an interface, for sockets owned by a rule outside its cgroup. */
export const TCX_HOOKS: readonly Hook[] = [
  { hook: 'egress', program: PROG_TC_EGRESS, attachType: AttachType.tcxEgress },
  { hook: 'ingress', program: PROG_TC_INGRESS, attachType: AttachType.tcxIngress },
];

export const rulePin = (cgroupId: number, hook: Hook) => `rule_${cgroupId}_${hook.hook}`;

/**
 * The links a rule needs: a direction without a limit has no program, so
 * that its traffic costs nothing (design.md K25); sock_ops always, which
 * keeps the cgroup's storage.
 */
export function hooksFor(limits: Limits): Hook[] {
  return RULE_HOOKS.filter((h) => h.hook === 'sock_ops' || limits[h.hook as DirectionName].rate > 0);
}
export const tcxPin = (netns: number, ifindex: number, hook: Hook) => `tcx_${netns}_${ifindex}_${hook.hook}`;

export interface LinkPin extends Hook {
  pin: string;
  kind: 'rule' | 'tcx';
  /** the cgroup id of a rule link, the ifindex of a tcx link */
  target: number;
}

/** Every link the instance has pinned. */
export function linkPins(instance: Instance): LinkPin[] {
  let names: string[];
  try {
    names = readdirSync(instance.bpffsDir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  return names.flatMap((pin): LinkPin[] => {
    const rule = /^rule_(\d+)_(\w+)$/.exec(pin);
    const tcx = /^tcx_\d+_(\d+)_(\w+)$/.exec(pin);
    const [kind, hooks, match] = rule ? (['rule', RULE_HOOKS, rule] as const) : (['tcx', TCX_HOOKS, tcx] as const);
    const hook = match && hooks.find((h) => h.hook === match[2]);
    return hook ? [{ ...hook, pin, kind, target: Number(match[1]) }] : [];
  });
}

export function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}
