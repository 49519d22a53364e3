/**
 * The rule store's operations: set, move, unset, list, purge, reload, and the
 * end of a `run`. Each state change is one transaction (lib/transaction.ts).
 */
import { existsSync, realpathSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { RuleValue, StateValue } from './abi.js';
import { cgroupDirOf, cgroupId, cgroupOfPid, childCgroups, listPids, movePid, removeCgroup } from './cgroup.js';
import { errnoCode, notFound, operationFailed, usageError } from './errors.js';
import { NAME_FORMS, NAME_PATTERN } from './instance.js';
import { acquireLock } from './lock.js';
import { log } from './log.js';
import type { Context } from './preflight.js';
import { openMaps, readRule, reloadPrograms, requireAttached, type MapFds } from './program.js';
import { descendants, readProcess, requireUserProcess } from './proc.js';
import { inetSocketCookies } from './sockets.js';
import { emptyState, loadState, saveState, type MemberRecord, type State } from './state.js';
import {
  changeLimits,
  createRule,
  forgetSockets,
  memberOf,
  pointSockets,
  RELEASED,
  removeIfEmpty,
  removeInstance,
  ruleDir,
  ruleOfPid,
  transaction,
  withLockedState,
  type Limits,
  type Transaction,
} from './transaction.js';

export { makeLimit, ruleOfPid, type Limits } from './transaction.js';

export function validateRuleName(name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw usageError('bad-name', `invalid rule name '${name}': expected ${NAME_FORMS}`);
  }
  return name;
}

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

export interface JoinResult {
  pid: number;
  /** the rule it left, if any */
  left: string | null;
  /** that rule was removed because it became empty */
  removedRule: boolean;
  /** sockets it already had, now limited by the rule */
  adoptedSockets: number;
}

/**
 * Moves one process into a rule: records where it came from, and points the
 * sockets it already has at the rule, so that its existing connections are
 * limited too.
 */
function joinRule(t: Transaction, pid: number, name: string): JoinResult | null {
  const { ctx, state, undo } = t;
  const process = readProcess(pid);
  if (!process || process.isKernelThread) return null;
  const current = ruleOfPid(ctx, pid);
  if (current === name) return null;
  const record = state.rules[name]!;
  const previous = memberOf(state, current, pid);
  const origin = previous?.origin ?? (current === null ? cgroupOfPid(pid)! : '/');
  const sockets = inetSocketCookies(pid);
  // Recorded before the move: a crash in between leaves a record the next
  // command drops (the process is not in the rule), never a process with no record.
  record.members[String(pid)] = { origin, startTime: process.startTime, sockets };
  undo.push(() => delete record.members[String(pid)]);
  saveState(ctx.instance.stateFile, state);
  movePid(pid, ruleDir(ctx, name));
  undo.push(() => movePid(pid, current === null ? cgroupDirOf(ctx.cgroupMount, origin) : ruleDir(ctx, current)));
  pointSockets(t, sockets, record.cgroupId);
  record.released = record.released.filter((c) => !sockets.includes(c));
  let removedRule = false;
  if (current !== null && state.rules[current]) {
    delete state.rules[current].members[String(pid)];
    removedRule = removeIfEmpty(t, current);
  }
  return { pid, left: current, removedRule, adoptedSockets: sockets.length };
}

export interface SetOptions {
  pid: number;
  /** the directions to set; a rule that exists keeps the limits of the others */
  limits: Partial<Limits>;
  name?: string;
  /** also every descendant of pid */
  tree?: boolean;
}

export interface SetResult {
  rule: RuleInfo;
  created: boolean;
  joined: JoinResult[];
}

/**
 * Limits a process: creates its rule (or changes the rule it is already in)
 * and moves it there, with its threads and, with tree, its descendants.
 */
export function setRule(ctx: Context, options: SetOptions): Promise<SetResult> {
  requireUserProcess(options.pid);
  if (options.name !== undefined) validateRuleName(options.name);
  return transaction(ctx, { attach: true }, (t) => {
    const current = ruleOfPid(ctx, options.pid);
    const name = options.name ?? current ?? `pid-${options.pid}`;
    let record = t.state.rules[name];
    const created = !record;
    if (record) changeLimits(t, record, options.limits);
    else record = createRule(t, name, { egress: options.limits.egress ?? null, ingress: options.limits.ingress ?? null });
    const joined = joinAll(t, options.pid, name, options.tree);
    t.state.lastRule = name;
    return { rule: describeRule(ctx, t.maps, name, record.cgroupId, t.state), created, joined };
  });
}

function joinAll(t: Transaction, pid: number, name: string, tree = false): JoinResult[] {
  const pids = tree ? descendants(pid) : [pid];
  return pids.map((p) => joinRule(t, p, name)).filter((j): j is JoinResult => j !== null);
}

export type MoveTarget = { cgroupPath: string } | { cgroupId: number } | { last: true };

/** The rule a move target names; refuses paths outside the instance's rules. */
export function resolveTarget(ctx: Context, state: State, target: MoveTarget): string {
  if ('last' in target) {
    if (state.lastRule === null || !state.rules[state.lastRule]) {
      throw notFound('no-last-rule', `instance ${ctx.instance.name} has no rule set last`);
    }
    return state.lastRule;
  }
  if ('cgroupId' in target) {
    const name = Object.keys(state.rules).find((n) => state.rules[n]!.cgroupId === target.cgroupId);
    if (!name) throw notFound('no-such-rule', `no rule of instance ${ctx.instance.name} has cgroup id ${target.cgroupId}`);
    return name;
  }
  let real: string;
  try {
    real = realpathSync(target.cgroupPath);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw notFound('no-such-cgroup', `no cgroup at ${target.cgroupPath}`);
    throw err;
  }
  const name = basename(real);
  if (dirname(real) !== realpathSync(ctx.instance.cgroupDir) || !state.rules[name]) {
    throw usageError('outside-instance', `${target.cgroupPath} is not a rule of instance ${ctx.instance.name}`, {
      hint: `rules are the directories ${ctx.instance.cgroupDir}/<rule> that 'limiter list' shows`,
    });
  }
  return name;
}

/** Moves a process (and, with tree, its descendants) into an existing rule. */
export function moveToRule(
  ctx: Context,
  pid: number,
  target: MoveTarget,
  tree = false,
): Promise<{ rule: string; joined: JoinResult[] }> {
  requireUserProcess(pid);
  return transaction(ctx, { attach: false }, (t) => {
    const rule = resolveTarget(ctx, t.state, target);
    return { rule, joined: joinAll(t, pid, rule, tree) };
  });
}

export interface UnsetResult {
  pid: number;
  rule: string;
  origin: string;
  removedRule: boolean;
}

/**
 * Takes a process out of its rule: moves it back where it came from and
 * releases its sockets, including those it opened while limited. Removes
 * the rule if that leaves it empty.
 */
export function unsetPid(ctx: Context, pid: number, tree = false): Promise<UnsetResult[]> {
  requireUserProcess(pid);
  const notLimited = () => notFound('not-limited', `pid ${pid} is not limited by instance ${ctx.instance.name}`);
  if (ruleOfPid(ctx, pid) === null) throw notLimited();
  return transaction(ctx, { attach: false }, (t) => {
    if (ruleOfPid(ctx, pid) === null) throw notLimited();
    const pids = tree ? descendants(pid) : [pid];
    return pids.map((p) => leaveRule(t, p)).filter((r): r is UnsetResult => r !== null);
  });
}

function leaveRule(t: Transaction, pid: number): UnsetResult | null {
  const { ctx, state } = t;
  const rule = readProcess(pid) ? ruleOfPid(ctx, pid) : null;
  if (rule === null) return null;
  const member = memberOf(state, rule, pid);
  const origin = returnToOrigin(ctx, member, pid);
  const record = state.rules[rule];
  const sockets = [...new Set([...(member?.sockets ?? []), ...inetSocketCookies(pid)])];
  if (record) delete record.members[String(pid)];
  const removedRule = removeIfEmpty(t, rule);
  if (!removedRule && record) {
    pointSockets(t, sockets, RELEASED);
    record.released = [...new Set([...record.released, ...sockets])];
  } else {
    forgetSockets(t, sockets);
  }
  return { pid, rule, origin, removedRule };
}

/**
 * Moves pid to its recorded origin, or to the nearest existing ancestor of it,
 * or to the root when nothing is recorded. Returns where it went.
 */
function returnToOrigin(ctx: Context, member: MemberRecord | null, pid: number): string {
  let origin = member?.origin ?? null;
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

function describeRule(ctx: Context, maps: MapFds | null, name: string, id: number, state: State | null): RuleInfo {
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

export interface PurgeResult {
  rules: string[];
  /** processes moved back out of rules */
  pids: number[];
}

/**
 * Removes everything the instance owns: processes go back where they came
 * from, then rule cgroups, the links (detaching the programs), the maps, the
 * instance cgroup and the runtime directory. Idempotent; carries on past a
 * failed step and reports the failures at the end.
 */
export async function purge(ctx: Context): Promise<PurgeResult> {
  const lock = await acquireLock(ctx.instance.runDir, ctx.lockTimeoutMs);
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
          returnToOrigin(ctx, memberOf(state, name, pid), pid);
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

/**
 * Replaces the programs of the instance with those of objectPath, keeping the
 * maps. The object is checked and loaded before any link changes.
 */
export async function reload(ctx: Context, objectPath: string): Promise<{ links: number }> {
  // Checked before the lock too, so that refusing leaves not even a runtime directory.
  requireAttached(ctx.instance);
  return withLockedState(ctx, () => reloadPrograms(ctx.instance, ctx.cgroupMount, objectPath));
}

/**
 * Ends a rule that `run` created: processes its command left behind go back
 * to the command's origin, and the rule is removed unless someone else has
 * joined it since. A rule the command only joined (by --name) is left alone.
 */
export async function endRun(ctx: Context, name: string, createdByRun: boolean, origin: string): Promise<void> {
  if (!createdByRun) return;
  await transaction(ctx, { attach: false, ending: name }, (t) => {
    const record = t.state.rules[name];
    if (!record) return;
    for (const pid of listPids(ruleDir(ctx, name))) {
      if (!record.members[String(pid)]) movePid(pid, cgroupDirOf(ctx.cgroupMount, origin));
    }
    removeIfEmpty(t, name);
  });
}
