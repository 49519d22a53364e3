/**
 * The rule store: each rule is a cgroup under the instance cgroup, an entry in
 * the rules map keyed by its cgroup id, a slot in the state map, and a record
 * in the runtime state (its members and where they came from).
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  decodeRule,
  decodeState,
  emptyRuleBuffer,
  emptyStateBuffer,
  encodeCgroupId,
  encodeRule,
  encodeSlot,
  MAX_RULES,
  NO_LIMIT,
  type Limit,
  type RuleValue,
  type StateValue,
} from './abi.js';
import {
  cgroupDirOf,
  cgroupId,
  cgroupOfPid,
  childCgroups,
  createCgroup,
  listPids,
  movePid,
  removeCgroup,
} from './cgroup.js';
import { notFound, operationFailed, usageError } from './errors.js';
import { NAME_FORMS, NAME_PATTERN } from './instance.js';
import { mapDelete, mapLookup, mapUpdate } from './libbpf.js';
import { acquireLock } from './lock.js';
import { log } from './log.js';
import type { Context } from './preflight.js';
import { ensureAttached, isAttached, openMaps, unpinAll, type MapFds } from './program.js';
import { readProcess, requireUserProcess } from './proc.js';
import { emptyState, loadState, saveState, type RuleRecord, type State } from './state.js';

const NSEC_PER_SEC = 1_000_000_000n;
/** burst_ns must stay far from u64 overflow in the program's time arithmetic. */
const MAX_BURST_NS = 1n << 62n;

export function validateRuleName(name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw usageError('bad-name', `invalid rule name '${name}': expected ${NAME_FORMS}`);
  }
  return name;
}

/** A direction's limit; the bucket defaults to one second of rate. */
export function makeLimit(rate: number, bucket: number = rate): Limit {
  const burstNs = (BigInt(bucket) * NSEC_PER_SEC) / BigInt(rate);
  if (burstNs > MAX_BURST_NS) {
    throw usageError('out-of-range', `a bucket of ${bucket} bytes lasts too long at ${rate} bytes/s`, {
      hint: 'use a smaller bucket or a higher rate',
    });
  }
  return { rate, bucket, burstNs: burstNs > 0n ? burstNs : 1n };
}

export interface RuleInfo {
  name: string;
  cgroupId: number;
  cgroupPath: string;
  /** null when the cgroup exists but the kernel has no limit for it */
  value: RuleValue | null;
  counters: StateValue | null;
  pids: number[];
}

export interface SetOptions {
  pid: number;
  limit: Limit;
  name?: string;
}

export interface SetResult {
  rule: RuleInfo;
  created: boolean;
  /** the rule the process left, if any */
  previousRule: string | null;
  /** that rule was removed because it became empty */
  removedRule: boolean;
}

export interface UnsetResult {
  rule: string;
  origin: string;
  removedRule: boolean;
}

const ruleDir = (ctx: Context, name: string) => join(ctx.instance.cgroupDir, name);

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
function withLockedState<T>(ctx: Context, work: (state: State) => T): T {
  const fresh = !existsSync(ctx.instance.runDir);
  const lock = acquireLock(ctx.instance.runDir, ctx.lockTimeoutMs);
  try {
    return work(loadState(ctx.instance.stateFile));
  } finally {
    if (fresh && !existsSync(ctx.instance.stateFile)) rmSync(ctx.instance.runDir, { recursive: true, force: true });
    lock.release();
  }
}

function requireMaps(ctx: Context): MapFds {
  const maps = openMaps(ctx.instance);
  if (!maps) {
    throw operationFailed('no-maps', `the maps of instance ${ctx.instance.name} are not pinned in ${ctx.instance.bpffsDir}`);
  }
  return maps;
}

/** Runs undo steps newest first, reporting (not throwing) their own failures. */
function rollBack(undo: Array<() => void>): void {
  for (const step of undo.reverse()) {
    try {
      step();
    } catch (err) {
      log.warn(`could not undo a step: ${(err as Error).message}`);
    }
  }
}

function allocateSlot(state: State): number {
  const used = new Set(Object.values(state.rules).map((r) => r.slot));
  for (let slot = 0; slot < MAX_RULES; slot++) if (!used.has(slot)) return slot;
  throw operationFailed('too-many-rules', `at most ${MAX_RULES} rules can exist at once`);
}

function createRule(ctx: Context, maps: MapFds, state: State, name: string, limit: Limit, undo: Array<() => void>) {
  const slot = allocateSlot(state);
  const dir = ruleDir(ctx, name);
  if (createCgroup(dir)) undo.push(() => removeCgroup(dir));
  else if (listPids(dir).length > 0) {
    throw operationFailed('stray-cgroup', `cgroup ${dir} exists with processes in it but is not a known rule`, {
      hint: "'limiter list' shows it; 'limiter purge' clears the instance",
    });
  }
  const record: RuleRecord = { cgroupId: cgroupId(dir), slot, members: {} };
  mapUpdate(maps.state, encodeSlot(record.slot), emptyStateBuffer());
  const key = encodeCgroupId(record.cgroupId);
  mapUpdate(maps.rules, key, encodeRule(ruleValue(limit, record.slot)));
  undo.push(() => mapDelete(maps.rules, key));
  state.rules[name] = record;
  undo.push(() => delete state.rules[name]);
  return record;
}

function ruleValue(egress: Limit, slot: number): RuleValue {
  return { limits: { egress, ingress: NO_LIMIT }, slot };
}

/** Removes an empty rule: cgroup first (the kernel refuses if it is populated), then its limit. */
function removeRule(ctx: Context, maps: MapFds | null, state: State, name: string): void {
  removeCgroup(ruleDir(ctx, name));
  const record = state.rules[name];
  if (record && maps) mapDelete(maps.rules, encodeCgroupId(record.cgroupId));
  delete state.rules[name];
  if (state.lastRule === name) state.lastRule = null;
}

function removeIfEmpty(ctx: Context, maps: MapFds, state: State, name: string): boolean {
  if (listPids(ruleDir(ctx, name)).length > 0) return false;
  try {
    removeRule(ctx, maps, state, name);
    return true;
  } catch (err) {
    log.warn(`rule ${name} is empty but could not be removed: ${(err as Error).message}`);
    return false;
  }
}

/** Where a member of a rule goes back to: its recorded origin, if the record is for this very process. */
function originOf(state: State, rule: string | null, pid: number): string | null {
  const member = rule === null ? undefined : state.rules[rule]?.members[String(pid)];
  if (!member) return null;
  const process = readProcess(pid);
  return process && process.startTime === member.startTime ? member.origin : null;
}

/**
 * Limits a process: creates its rule (or changes the rule it is already in)
 * and moves it there. All or nothing: a failure undoes every step.
 */
export function setRule(ctx: Context, options: SetOptions): SetResult {
  const process = requireUserProcess(options.pid);
  if (options.name !== undefined) validateRuleName(options.name);
  return withLockedState(ctx, (state) => {
    const undo: Array<() => void> = [];
    try {
      if (!isAttached(ctx.instance)) {
        ensureAttached(ctx.instance, ctx.cgroupMount, ctx.objectPath);
        undo.push(() => removeInstance(ctx));
      }
      const maps = requireMaps(ctx);
      undo.push(() => maps.close());
      const result = applySet(ctx, maps, state, options, process.startTime, undo);
      maps.close();
      return result;
    } catch (err) {
      rollBack(undo);
      throw err;
    }
  });
}

function applySet(
  ctx: Context,
  maps: MapFds,
  state: State,
  options: SetOptions,
  startTime: number,
  undo: Array<() => void>,
): SetResult {
  const pid = options.pid;
  const current = ruleOfPid(ctx, pid);
  const name = options.name ?? current ?? `pid-${pid}`;
  let record = state.rules[name];
  const created = !record;
  if (!record) {
    record = createRule(ctx, maps, state, name, options.limit, undo);
  } else {
    const key = encodeCgroupId(record.cgroupId);
    const old = emptyRuleBuffer();
    const hadValue = mapLookup(maps.rules, key, old);
    mapUpdate(maps.rules, key, encodeRule(ruleValue(options.limit, record.slot)));
    undo.push(() => (hadValue ? mapUpdate(maps.rules, key, old) : mapDelete(maps.rules, key)));
  }
  let removedRule = false;
  if (current !== name) {
    const origin = originOf(state, current, pid) ?? (current === null ? cgroupOfPid(pid)! : '/');
    movePid(pid, ruleDir(ctx, name));
    undo.push(() => movePid(pid, current === null ? cgroupDirOf(ctx.cgroupMount, origin) : ruleDir(ctx, current)));
    record.members[String(pid)] = { origin, startTime };
    if (current !== null && state.rules[current]) {
      delete state.rules[current].members[String(pid)];
      removedRule = removeIfEmpty(ctx, maps, state, current);
    }
  }
  state.lastRule = name;
  saveState(ctx.instance.stateFile, state);
  return {
    rule: describeRule(ctx, maps, name, record.cgroupId),
    created,
    previousRule: current === name ? null : current,
    removedRule,
  };
}

/** Puts a process back where it came from; removes its rule if that leaves it empty. */
export function unsetPid(ctx: Context, pid: number): UnsetResult {
  requireUserProcess(pid);
  const notLimited = () => notFound('not-limited', `pid ${pid} is not limited by instance ${ctx.instance.name}`);
  if (ruleOfPid(ctx, pid) === null) throw notLimited();
  return withLockedState(ctx, (state) => {
    const rule = ruleOfPid(ctx, pid);
    if (rule === null) throw notLimited();
    const origin = returnToOrigin(ctx, state, rule, pid);
    const record = state.rules[rule];
    if (record) delete record.members[String(pid)];
    const maps = openMaps(ctx.instance);
    try {
      const removedRule = maps ? removeIfEmpty(ctx, maps, state, rule) : false;
      saveState(ctx.instance.stateFile, state);
      return { rule, origin, removedRule };
    } finally {
      maps?.close();
    }
  });
}

/**
 * Moves pid to its recorded origin, or to the nearest existing ancestor of it,
 * or to the root when nothing is recorded. Returns where it went.
 */
function returnToOrigin(ctx: Context, state: State, rule: string, pid: number): string {
  let origin = originOf(state, rule, pid);
  if (origin === null) {
    log.warn(`no record of where pid ${pid} came from; moving it to the root cgroup`);
    origin = '/';
  }
  let target = origin;
  while (target !== '/' && !existsSync(cgroupDirOf(ctx.cgroupMount, target))) {
    target = target.slice(0, target.lastIndexOf('/')) || '/';
  }
  if (target !== origin) log.warn(`cgroup ${origin} of pid ${pid} no longer exists; moving it to ${target}`);
  movePid(pid, cgroupDirOf(ctx.cgroupMount, target));
  return target;
}

function describeRule(ctx: Context, maps: MapFds | null, name: string, id: number): RuleInfo {
  const dir = ruleDir(ctx, name);
  let value: RuleValue | null = null;
  let counters: StateValue | null = null;
  if (maps) {
    const buf = emptyRuleBuffer();
    if (mapLookup(maps.rules, encodeCgroupId(id), buf)) {
      value = decodeRule(buf);
      const stateBuf = emptyStateBuffer();
      if (mapLookup(maps.state, encodeSlot(value.slot), stateBuf)) counters = decodeState(stateBuf);
    }
  }
  return { name, cgroupId: id, cgroupPath: dir, value, counters, pids: listPids(dir) };
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
  const maps = ctx.bpffsMounted ? openMaps(ctx.instance) : null;
  try {
    return names.map((name) => describeRule(ctx, maps, name, cgroupId(ruleDir(ctx, name))));
  } finally {
    maps?.close();
  }
}

/** The instance's own kernel objects, cgroup and runtime directory; its rules must be gone. */
function removeInstance(ctx: Context): void {
  unpinAll(ctx.instance);
  removeCgroup(ctx.instance.cgroupDir);
  rmSync(ctx.instance.runDir, { recursive: true, force: true });
}

export interface PurgeResult {
  rules: string[];
  /** processes moved back out of rules */
  pids: number[];
}

/**
 * Removes everything the instance owns: processes go back where they came
 * from, then rule cgroups, the link (detaching the program), the maps, the
 * instance cgroup and the runtime directory. Idempotent; carries on past a
 * failed step and reports the failures at the end.
 */
export function purge(ctx: Context): PurgeResult {
  const lock = acquireLock(ctx.instance.runDir, ctx.lockTimeoutMs);
  try {
    let state: State;
    try {
      state = loadState(ctx.instance.stateFile);
    } catch (err) {
      log.warn(`ignoring the state file: ${(err as Error).message}`);
      state = emptyState();
    }
    const failures: string[] = [];
    const attempt = (step: () => void) => {
      try {
        step();
      } catch (err) {
        failures.push((err as Error).message);
      }
    };
    const result: PurgeResult = { rules: [], pids: [] };
    for (const name of childCgroups(ctx.instance.cgroupDir)) {
      for (const pid of listPids(ruleDir(ctx, name))) {
        attempt(() => {
          returnToOrigin(ctx, state, name, pid);
          result.pids.push(pid);
        });
      }
      attempt(() => {
        removeCgroup(ruleDir(ctx, name));
        result.rules.push(name);
      });
    }
    attempt(() => removeInstance(ctx));
    if (failures.length > 0) {
      throw operationFailed('purge-incomplete', `purge could not remove everything: ${failures.join('; ')}`, {
        hint: "run 'limiter purge' again; 'limiter list --bpf' shows what is left",
      });
    }
    return result;
  } finally {
    lock.release();
  }
}
