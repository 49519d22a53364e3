/**
 * The primitives state changes are made of. A rule is a slot of the rules
 * array (its limits, and the cgroup it limits), the rule programs attached to
 * that cgroup through pinned links (their storage names the slot), and a
 * record in the state file. A pid rule's cgroup is its own, under the
 * instance cgroup; any other rule limits a cgroup in place. Each primitive
 * registers how to undo itself with the transaction.
 */
import { join } from 'node:path';
import type { Context } from '../context.js';
import { notFound, operationFailed, unsupported } from '../errors.js';
import {
  emptyRuleBuffer,
  encodeAttach,
  encodeConfig,
  encodeRule,
  MAX_RULES,
  u32Key,
  u64Key,
  type Limits,
  type RuleValue,
} from '../kernel/abi.js';
import { mapUpdate, SystemCallError } from '../kernel/bpf.js';
import { cgroupDirOf, cgroupId, cgroupOfPid, createCgroup, listPids, removeCgroup } from '../kernel/cgroup.js';
import { attachRule, detachRule } from '../kernel/links.js';
import { kernelRules, resetSlot, type KernelRule, type MapFds } from '../kernel/maps.js';
import { hooksFor } from '../kernel/pins.js';
import { readProcess } from '../kernel/proc.js';
import { attachTcx, detachTcx } from '../kernel/tcx.js';
import { log } from '../log.js';
import type { MemberRecord, RuleRecord, RuleSource, RuleTarget, State } from './state.js';

export interface Transaction {
  ctx: Context;
  maps: MapFds;
  state: State;
  undo: Array<() => void>;
  /** the kernel's rules by cgroup id, read once per transaction and kept up to date */
  kernel?: Map<number, KernelRule>;
}

export const ruleDir = (ctx: Context, name: string) => join(ctx.instance.cgroupDir, name);

/** The cgroup directory a rule limits. */
export function targetDir(ctx: Context, name: string, target: RuleTarget): string {
  return target.kind === 'pid' ? ruleDir(ctx, name) : cgroupDirOf(ctx.cgroupMount, target.path);
}

/** The pid rule whose cgroup holds pid, from /proc/<pid>/cgroup; null when it is in none. */
export function ruleOfPid(ctx: Context, pid: number): string | null {
  const path = cgroupOfPid(pid);
  if (path === null) throw notFound('no-such-pid', `no process with pid ${pid}`);
  const prefix = `/${ctx.instance.name}/`;
  if (!path.startsWith(prefix)) return null;
  return path.slice(prefix.length).split('/')[0] || null;
}

export function kernelOf(t: Transaction): Map<number, KernelRule> {
  return (t.kernel ??= kernelRules(t.maps));
}

/** The kernel's rule for a record, or a typed error when the kernel has none. */
export function kernelRuleOf(t: Transaction, name: string): KernelRule {
  const rule = kernelOf(t).get(t.state.rules[name].cgroupId);
  if (!rule) throw operationFailed('no-limit', `rule ${name} has no limit in the kernel`);
  return rule;
}

function writeSlot(t: Transaction, slot: number, value: RuleValue | null): void {
  mapUpdate(t.maps.rules, u32Key(slot), value ? encodeRule(value) : emptyRuleBuffer());
  const kernel = kernelOf(t);
  for (const [id, rule] of kernel) if (rule.slot === slot) kernel.delete(id);
  if (value) kernel.set(value.cgroupId, { slot, value });
}

function freeSlot(t: Transaction): number {
  const used = new Set([...kernelOf(t).values()].map((r) => r.slot));
  for (let slot = 0; slot < MAX_RULES; slot++) if (!used.has(slot)) return slot;
  throw operationFailed('too-many-rules', `at most ${MAX_RULES} rules can exist at once`);
}

/**
 * Makes a rule: for a pid rule its cgroup, then a slot with its limits, the
 * rule programs on the target cgroup, and the record.
 */
export function createRule(
  t: Transaction,
  name: string,
  target: RuleTarget,
  limits: Limits,
  source: RuleSource = 'cli',
): RuleRecord {
  const { ctx, maps, state, undo } = t;
  const dir = targetDir(ctx, name, target);
  if (target.kind === 'pid') {
    if (createCgroup(dir)) undo.push(() => removeCgroup(dir));
    else if (listPids(dir).length > 0) {
      throw operationFailed('stray-cgroup', `cgroup ${dir} exists with processes in it but is not a known rule`, {
        hint: "'limiter purge' clears the instance",
      });
    }
  }
  const record: RuleRecord = { target, source, cgroupId: cgroupId(dir), members: {}, owned: false };
  const slot = freeSlot(t);
  resetSlot(maps, slot);
  writeSlot(t, slot, { limits, cgroupId: record.cgroupId });
  undo.push(() => writeSlot(t, slot, null));
  attachPrograms(t, dir, record.cgroupId, slot, limits);
  state.rules[name] = record;
  undo.push(() => delete state.rules[name]);
  return record;
}

/**
 * Attaches the rule programs to the cgroup at dir where they are missing, and
 * tells their storage the slot (it exists once a program is attached there,
 * and goes when the last one is detached).
 */
export function attachPrograms(t: Transaction, dir: string, id: number, slot: number, limits: Limits): void {
  attachRule(t.ctx.instance, dir, id, hooksFor(limits));
  t.undo.push(() => detachRule(t.ctx.instance, id));
  mapUpdate(t.maps.attach, u64Key(id), encodeAttach(slot));
}

/** Changes the directions given; the others keep their limits. */
export function changeLimits(t: Transaction, name: string, limits: Partial<Limits>): void {
  const { slot, value } = kernelRuleOf(t, name);
  const changed: RuleValue = { ...value, limits: { ...value.limits, ...limits } };
  writeSlot(t, slot, changed);
  t.undo.push(() => writeSlot(t, slot, value));
  const { ctx, state } = t;
  const dir = targetDir(ctx, name, state.rules[name].target);
  attachRule(ctx.instance, dir, value.cgroupId, hooksFor(changed.limits));
  t.undo.push(() => attachRule(ctx.instance, dir, value.cgroupId, hooksFor(value.limits)));
}

/** Removes a rule: detached, its slot freed; a pid rule's cgroup, which must be empty, first. */
export function removeRule(t: Transaction, name: string): void {
  const record = t.state.rules[name];
  if (!record || record.target.kind === 'pid') removeCgroup(ruleDir(t.ctx, name));
  dropRecord(t, name);
}

/** Forgets a rule without touching its cgroup: detaches its programs, frees its slot, drops its record. */
export function dropRecord(t: Transaction, name: string): void {
  const record = t.state.rules[name];
  if (record) {
    detachRule(t.ctx.instance, record.cgroupId);
    const kernel = kernelOf(t).get(record.cgroupId);
    if (kernel) writeSlot(t, kernel.slot, null);
  }
  delete t.state.rules[name];
  if (t.state.lastRule === name) t.state.lastRule = null;
}

/** Removes a pid rule whose processes have all gone. */
export function removeIfEmpty(t: Transaction, name: string): boolean {
  if (t.state.rules[name]?.target.kind !== 'pid' || listPids(ruleDir(t.ctx, name)).length > 0) return false;
  try {
    removeRule(t, name);
    return true;
  } catch (err) {
    log.warn(`rule ${name} is empty but could not be removed: ${(err as Error).message}`);
    return false;
  }
}

/** The member record of pid in rule, if it is about this very process (not a reused pid). */
export function memberOf(state: State, rule: string | null, pid: number): MemberRecord | null {
  const member = rule === null ? undefined : state.rules[rule]?.members[String(pid)];
  if (!member) return null;
  const process = readProcess(pid);
  return process && process.startTime === member.startTime ? member : null;
}

const adopts = (m: MemberRecord) => m.adopted.sockets + m.adopted.listeners > 0;

/**
 * Tells the rule programs whether any socket is owned (a rule without them
 * spares the look), and keeps the tcx links attached exactly while a member
 * has sockets owned outside its rule's cgroup.
 */
export function syncOwnership({ ctx, maps, state }: Transaction): void {
  const records = Object.values(state.rules);
  mapUpdate(maps.config, u32Key(0), encodeConfig(records.some((r) => r.owned)));
  const adopters = records.flatMap((r) => Object.entries(r.members)).filter(([, m]) => adopts(m));
  if (adopters.length === 0) {
    detachTcx(ctx.instance);
    return;
  }
  for (const [pid, member] of adopters) {
    try {
      attachTcx(ctx.instance, `/proc/${pid}/ns/net`);
    } catch (err) {
      if (!(err instanceof SystemCallError) || !['EINVAL', 'EOPNOTSUPP'].includes(err.errno)) throw err;
      const count = member.adopted.sockets + member.adopted.listeners;
      throw unsupported('no-tcx', `the ${count} socket(s) pid ${pid} already has cannot be limited: ${err.message}`, {
        hint: "tcx needs kernel 6.6 or later; start the program with 'limiter run', or limit its cgroup with --cgroup",
      });
    }
  }
}
