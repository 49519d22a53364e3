/**
 * State changes under the instance lock, all or nothing, and the primitives
 * they are made of. A rule is a cgroup under the instance cgroup, an entry in
 * the rules map keyed by its cgroup id, a slot in the state map, and a record
 * in the runtime state (limits, members, where they came from, their sockets).
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
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
} from './abi.js';
import { cgroupId, cgroupOfPid, createCgroup, listPids, removeCgroup } from './cgroup.js';
import { notFound, operationFailed, usageError } from './errors.js';
import { mapDelete, mapLookup, mapUpdate } from './libbpf.js';
import { acquireLock } from './lock.js';
import { log } from './log.js';
import type { Context } from './preflight.js';
import { attachTcx, detachTcx, ensureAttached, isAttached, openMaps, rollBack, unpinAll, type MapFds } from './program.js';
import { readProcess } from './proc.js';
import { reconcile } from './reconcile.js';
import { loadState, saveState, type LimitRecord, type MemberRecord, type RuleRecord, type State } from './state.js';

const NSEC_PER_SEC = 1_000_000_000n;
/** Sockets map value for a socket released from its rule: no rule has cgroup id 0. */
export const RELEASED = 0;

export type Limits = Record<DirectionName, Limit | null>;

export interface Transaction {
  ctx: Context;
  maps: MapFds;
  state: State;
  undo: Array<() => void>;
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

/**
 * Runs work under the instance lock with the current state. A runtime
 * directory that only the lock created is removed again when no state came of it.
 */
export async function withLockedState<T>(ctx: Context, work: (state: State) => T): Promise<T> {
  const fresh = !existsSync(ctx.instance.runDir);
  const lock = await acquireLock(ctx.instance.runDir, ctx.lockTimeoutMs);
  try {
    return work(loadState(ctx.instance.stateFile));
  } finally {
    if (fresh && !existsSync(ctx.instance.stateFile)) rmSync(ctx.instance.runDir, { recursive: true, force: true });
    lock.release();
  }
}

/**
 * A state change under the lock with the maps open: all or nothing. It first
 * brings the state in line with the kernel (after a crash, a reboot, or
 * things removed by hand); then steps register their undo, and a failure
 * runs them newest first.
 */
export interface TransactionOptions {
  /** attach the program when the instance has none yet */
  attach: boolean;
  /** a rule the work is about to end: that its processes have exited is expected, not a finding */
  ending?: string;
}

export function transaction<T>(ctx: Context, options: TransactionOptions, work: (t: Transaction) => T): Promise<T> {
  return withLockedState(ctx, (state) => {
    const undo: Array<() => void> = [];
    let maps: MapFds | null = null;
    try {
      const known = Object.keys(state.rules).length > 0 || isAttached(ctx.instance);
      if (options.attach || known) repair(ctx, known, undo);
      maps = openMaps(ctx.instance);
      if (!maps) {
        throw notFound('no-rules', `instance ${ctx.instance.name} has no rules`, {
          hint: "'limiter set' creates the first one",
        });
      }
      const t: Transaction = { ctx, maps, state, undo };
      reconcile(t, options.ending);
      const result = work(t);
      syncSockets(t);
      saveState(ctx.instance.stateFile, state);
      return result;
    } catch (err) {
      rollBack(undo);
      throw err;
    } finally {
      maps?.close();
    }
  });
}

/**
 * Attaches a new instance, or repairs one that has lost a pin (a pinned map,
 * program or link removed by hand, a crash in the middle of a reload).
 */
function repair(ctx: Context, known: boolean, undo: Array<() => void>): void {
  const mapsLost = isAttached(ctx.instance) && openMaps(ctx.instance) === null;
  try {
    if (!ensureAttached(ctx.instance, ctx.cgroupMount, ctx.objectPath)) return;
  } catch (err) {
    if (!known) throw err;
    log.warn(`instance ${ctx.instance.name} is missing pins and cannot be repaired: ${(err as Error).message}`);
    return;
  }
  if (!known) undo.push(() => removeInstance(ctx));
  else if (mapsLost) log.warn(`the maps of instance ${ctx.instance.name} had been removed; made new ones (counters start again)`);
  else log.warn(`instance ${ctx.instance.name} had lost a pinned program or link; attached it again`);
}

/** The instance's own kernel objects, cgroup and runtime directory; its rules must be gone. */
export function removeInstance(ctx: Context): void {
  unpinAll(ctx.instance);
  removeCgroup(ctx.instance.cgroupDir);
  rmSync(ctx.instance.runDir, { recursive: true, force: true });
}

/** A direction's limit; the bucket defaults to one second of rate. */
export function makeLimit(rate: number, bucket: number = rate): Limit {
  const burstNs = (BigInt(bucket) * NSEC_PER_SEC) / BigInt(rate);
  // burst_ns must stay far from u64 overflow in the program's time arithmetic.
  if (burstNs > 1n << 62n) {
    throw usageError('out-of-range', `a bucket of ${bucket} bytes lasts too long at ${rate} bytes/s`, {
      hint: 'use a smaller bucket or a higher rate',
    });
  }
  return { rate, bucket, burstNs: burstNs > 0n ? burstNs : 1n };
}

/** A direction's limit as the state records it; NO_LIMIT (rate 0) is none. */
export const toRecord = (limit: Limit | null): LimitRecord | null => (limit?.rate ? { rate: limit.rate, bucket: limit.bucket } : null);
const fromRecord = (limit: LimitRecord | null): Limit => (limit ? makeLimit(limit.rate, limit.bucket) : NO_LIMIT);

export function ruleValueOf(record: RuleRecord): RuleValue {
  return { limits: { egress: fromRecord(record.egress), ingress: fromRecord(record.ingress) }, slot: record.slot };
}

function allocateSlot(state: State): number {
  const used = new Set(Object.values(state.rules).map((r) => r.slot));
  for (let slot = 0; slot < MAX_RULES; slot++) if (!used.has(slot)) return slot;
  throw operationFailed('too-many-rules', `at most ${MAX_RULES} rules can exist at once`);
}

export function createRule({ ctx, maps, state, undo }: Transaction, name: string, limits: Limits): RuleRecord {
  const slot = allocateSlot(state);
  const dir = ruleDir(ctx, name);
  if (createCgroup(dir)) undo.push(() => removeCgroup(dir));
  else if (listPids(dir).length > 0) {
    throw operationFailed('stray-cgroup', `cgroup ${dir} exists with processes in it but is not a known rule`, {
      hint: "'limiter purge' clears the instance",
    });
  }
  const record: RuleRecord = {
    cgroupId: cgroupId(dir),
    slot,
    egress: toRecord(limits.egress),
    ingress: toRecord(limits.ingress),
    members: {},
    released: [],
  };
  mapUpdate(maps.state, encodeSlot(slot), emptyStateBuffer());
  const key = encodeCgroupId(record.cgroupId);
  mapUpdate(maps.rules, key, encodeRule(ruleValueOf(record)));
  undo.push(() => mapDelete(maps.rules, key));
  state.rules[name] = record;
  undo.push(() => delete state.rules[name]);
  return record;
}

/** Changes the directions given; the others keep their limits. */
export function changeLimits({ maps, undo }: Transaction, record: RuleRecord, limits: Partial<Limits>): void {
  const before = { egress: record.egress, ingress: record.ingress };
  for (const dir of DIRECTIONS) if (limits[dir] !== undefined) record[dir] = toRecord(limits[dir]);
  mapUpdate(maps.rules, encodeCgroupId(record.cgroupId), encodeRule(ruleValueOf(record)));
  undo.push(() => {
    Object.assign(record, before);
    mapUpdate(maps.rules, encodeCgroupId(record.cgroupId), encodeRule(ruleValueOf(record)));
  });
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
    forgetSockets(t, [...Object.values(record.members).flatMap((m) => m.sockets), ...record.released]);
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
  const entries =
    records.reduce((n, r) => n + r.released.length, 0) + adopters.reduce((n, [, m]) => n + m.sockets.length, 0);
  mapUpdate(maps.config, encodeSlot(0), encodeConfig(entries));
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
