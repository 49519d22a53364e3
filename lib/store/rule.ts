/**
 * The primitives state changes are made of. A rule is a cgroup under the
 * instance cgroup, an entry in the rules map keyed by its cgroup id (its
 * limits and the slot of its bucket state), and a record in the state file
 * (its members, where they came from, their sockets). Each primitive
 * registers how to undo itself with the transaction.
 */
import { join } from 'node:path';
import type { Context } from '../context.js';
import { notFound, operationFailed } from '../errors.js';
import {
  DIRECTIONS,
  emptyStateBuffer,
  encodeCgroupId,
  encodeConfig,
  encodeCookie,
  encodeRule,
  encodeSlot,
  encodeSocket,
  MAX_RULES,
  NO_LIMIT,
  type DirectionName,
  type Limit,
  type RuleValue,
} from '../kernel/abi.js';
import { mapDelete, mapLookup, mapUpdate } from '../kernel/bpf.js';
import { cgroupId, cgroupOfPid, createCgroup, listPids, removeCgroup } from '../kernel/cgroup.js';
import { kernelRules, readRule, type MapFds } from '../kernel/maps.js';
import { readProcess } from '../kernel/proc.js';
import { attachTcx, detachTcx } from '../kernel/tcx.js';
import { log } from '../log.js';
import type { MemberRecord, RuleRecord, State } from './state.js';

/** Sockets map value for a socket released from its rule: no rule has cgroup id 0. */
export const RELEASED = 0;

export type Limits = Record<DirectionName, Limit | null>;

export interface Transaction {
  ctx: Context;
  maps: MapFds;
  state: State;
  undo: Array<() => void>;
  /** slots in use, read from the rules map once per transaction */
  slots?: Set<number>;
}

export const ruleDir = (ctx: Context, name: string) => join(ctx.instance.cgroupDir, name);

/** The rule whose cgroup holds pid, from /proc/<pid>/cgroup; null when it is in none. */
export function ruleOfPid(ctx: Context, pid: number): string | null {
  const path = cgroupOfPid(pid);
  if (path === null) throw notFound('no-such-pid', `no process with pid ${pid}`);
  const prefix = `/${ctx.instance.name}/`;
  if (!path.startsWith(prefix)) return null;
  return path.slice(prefix.length).split('/')[0] || null;
}

function allocateSlot(t: Transaction): number {
  const used = (t.slots ??= new Set([...kernelRules(t.maps).values()].map((r) => r.slot)));
  for (let slot = 0; slot < MAX_RULES; slot++) {
    if (used.has(slot)) continue;
    used.add(slot);
    t.undo.push(() => used.delete(slot));
    return slot;
  }
  throw operationFailed('too-many-rules', `at most ${MAX_RULES} rules can exist at once`);
}

export function createRule(t: Transaction, name: string, limits: Limits): RuleRecord {
  const { ctx, maps, state, undo } = t;
  const dir = ruleDir(ctx, name);
  if (createCgroup(dir)) undo.push(() => removeCgroup(dir));
  else if (listPids(dir).length > 0) {
    throw operationFailed('stray-cgroup', `cgroup ${dir} exists with processes in it but is not a known rule`, {
      hint: "'limiter purge' clears the instance",
    });
  }
  const record: RuleRecord = { cgroupId: cgroupId(dir), members: {}, released: [] };
  const value: RuleValue = {
    limits: { egress: limits.egress ?? NO_LIMIT, ingress: limits.ingress ?? NO_LIMIT },
    slot: allocateSlot(t),
  };
  mapUpdate(maps.state, encodeSlot(value.slot), emptyStateBuffer());
  const key = encodeCgroupId(record.cgroupId);
  mapUpdate(maps.rules, key, encodeRule(value));
  undo.push(() => mapDelete(maps.rules, key));
  state.rules[name] = record;
  undo.push(() => delete state.rules[name]);
  return record;
}

/** Changes the directions given; the others keep their limits. */
export function changeLimits({ maps, undo }: Transaction, record: RuleRecord, limits: Partial<Limits>): void {
  const key = encodeCgroupId(record.cgroupId);
  const before = readRule(maps, record.cgroupId);
  if (!before) throw operationFailed('no-limit', `cgroup ${record.cgroupId} has no limit in the kernel`);
  const value: RuleValue = { ...before.value, limits: { ...before.value.limits } };
  for (const dir of DIRECTIONS) if (limits[dir] !== undefined) value.limits[dir] = limits[dir] ?? NO_LIMIT;
  mapUpdate(maps.rules, key, encodeRule(value));
  undo.push(() => mapUpdate(maps.rules, key, encodeRule(before.value)));
}

/** Points sockets at a rule (or RELEASED), remembering their previous entries for undo. */
export function pointSockets({ maps, undo }: Transaction, cookies: string[], ruleCgroupId: number): void {
  for (const cookie of cookies) {
    const key = encodeCookie(cookie);
    const old = Buffer.alloc(8);
    const had = mapLookup(maps.sockets, key, old);
    mapUpdate(maps.sockets, key, encodeSocket(ruleCgroupId));
    undo.push(() => (had ? mapUpdate(maps.sockets, key, old) : mapDelete(maps.sockets, key)));
  }
}

export function forgetSockets({ maps }: Transaction, cookies: string[]): void {
  for (const cookie of cookies) mapDelete(maps.sockets, encodeCookie(cookie));
}

/** Every socket cookie a rule's record names: its members' and its released ones. */
export const cookiesOf = (record: RuleRecord) => [
  ...Object.values(record.members).flatMap((m) => m.sockets),
  ...record.released,
];

/** Removes a rule whose cgroup is empty: cgroup first (the kernel refuses while it is populated), then its map entries. */
export function removeRule(t: Transaction, name: string): void {
  removeCgroup(ruleDir(t.ctx, name));
  dropRecord(t, name);
}

/** Forgets a rule whose cgroup is gone: its map entries and its record. */
export function dropRecord(t: Transaction, name: string): void {
  const record = t.state.rules[name];
  if (record) {
    mapDelete(t.maps.rules, encodeCgroupId(record.cgroupId));
    t.slots = undefined; // its slot is free again
    forgetSockets(t, cookiesOf(record));
  }
  delete t.state.rules[name];
  if (t.state.lastRule === name) t.state.lastRule = null;
}

export function removeIfEmpty(t: Transaction, name: string): boolean {
  if (listPids(ruleDir(t.ctx, name)).length > 0) return false;
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

/**
 * Tells the programs how many sockets entries exist (0 spares them a lookup)
 * and keeps the tcx links attached exactly while some socket is adopted.
 */
export function syncSockets({ ctx, maps, state }: Transaction): void {
  const records = Object.values(state.rules);
  const adopters = records.flatMap((r) => Object.entries(r.members)).filter(([, m]) => m.sockets.length > 0);
  mapUpdate(maps.config, encodeSlot(0), encodeConfig(records.reduce((n, r) => n + cookiesOf(r).length, 0)));
  if (adopters.length === 0) {
    detachTcx(ctx.instance);
    return;
  }
  for (const [pid] of adopters) {
    try {
      attachTcx(ctx.instance, `/proc/${pid}/ns/net`);
    } catch (err) {
      log.warn(`connections pid ${pid} opened before it was limited stay unlimited: ${(err as Error).message}`);
    }
  }
}
