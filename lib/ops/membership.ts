/**
 * A process joining and leaving a rule: moved with every thread, its origin
 * recorded, and the sockets it already has limited (or released) by cookie.
 */
import { existsSync } from 'node:fs';
import type { Context } from '../context.js';
import { cgroupDirOf, cgroupOfPid, movePid } from '../kernel/cgroup.js';
import { descendants, readProcess } from '../kernel/proc.js';
import { inetSocketCookies } from '../kernel/sockets.js';
import { log } from '../log.js';
import {
  forgetSockets,
  memberOf,
  pointSockets,
  RELEASED,
  removeIfEmpty,
  ruleDir,
  ruleOfPid,
  type Transaction,
} from '../store/rule.js';
import { saveState, type MemberRecord } from '../store/state.js';

export interface JoinResult {
  pid: number;
  /** the rule it left, if any */
  left: string | null;
  /** that rule was removed because it became empty */
  removedRule: boolean;
  /** sockets it already had, now limited by the rule */
  adoptedSockets: number;
}

/** A process about to join a rule: recorded as a member, not moved yet. */
export interface Joining {
  pid: number;
  rule: string;
  /** the rule it is in now */
  current: string | null;
  sockets: string[];
}

/**
 * Records a process as a member of a rule, with where it came from and the
 * sockets it already has. Recorded before the move: a crash in between
 * leaves a record the next command drops (the process is not in the rule),
 * never a process with no record.
 */
export function recordJoin(t: Transaction, pid: number, rule: string, tree = false): Joining[] {
  const joining: Joining[] = [];
  for (const p of tree ? descendants(pid) : [pid]) {
    const process = readProcess(p);
    if (!process || process.isKernelThread) continue;
    const current = ruleOfPid(t.ctx, p);
    if (current === rule) continue;
    const previous = memberOf(t.state, current, p);
    const origin = previous?.origin ?? (current === null ? cgroupOfPid(p)! : '/');
    const sockets = inetSocketCookies(p);
    const members = t.state.rules[rule].members;
    members[String(p)] = { origin, startTime: process.startTime, sockets };
    t.undo.push(() => delete members[String(p)]);
    joining.push({ pid: p, rule, current, sockets });
  }
  return joining;
}

/**
 * Moves recorded processes into their rules and points the sockets they
 * already have at the rule, so that their existing connections are limited
 * too. Saves the records first.
 */
export function completeJoins(t: Transaction, joining: Joining[]): JoinResult[] {
  const { ctx, state, undo } = t;
  if (joining.length > 0) saveState(ctx.instance.stateFile, state);
  return joining.map(({ pid, rule, current, sockets }) => {
    const record = state.rules[rule];
    const origin = record.members[String(pid)].origin;
    movePid(pid, ruleDir(ctx, rule));
    undo.push(() => movePid(pid, current === null ? cgroupDirOf(ctx.cgroupMount, origin) : ruleDir(ctx, current)));
    pointSockets(t, sockets, record.cgroupId);
    record.released = record.released.filter((c) => !sockets.includes(c));
    let removedRule = false;
    if (current !== null && state.rules[current]) {
      delete state.rules[current].members[String(pid)];
      removedRule = removeIfEmpty(t, current);
    }
    return { pid, left: current, removedRule, adoptedSockets: sockets.length };
  });
}

/** pid (and, with tree, its descendants) into a rule. */
export function joinAll(t: Transaction, pid: number, rule: string, tree = false): JoinResult[] {
  return completeJoins(t, recordJoin(t, pid, rule, tree));
}

export interface LeaveResult {
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
export function leaveRule(t: Transaction, pid: number): LeaveResult | null {
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
export function returnToOrigin(ctx: Context, member: MemberRecord | null, pid: number): string {
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
