/**
 * A process joining and leaving a pid rule: moved with every thread, its
 * origin recorded, and the sockets it already has (listeners included) given
 * to the rule, or released from it.
 */
import { existsSync } from 'node:fs';
import type { Context } from '../context.js';
import { NO_SLOT } from '../kernel/abi.js';
import { cgroupDirOf, cgroupOfPid, movePid } from '../kernel/cgroup.js';
import { descendants, readProcess } from '../kernel/proc.js';
import { NO_PACING } from '../kernel/libc.js';
import { ownSockets, type OwnedCount } from '../kernel/sockets.js';
import { log } from '../log.js';
import { kernelRuleOf, memberOf, removeIfEmpty, ruleDir, ruleOfPid, type Transaction } from '../store/rule.js';
import { saveState, type MemberRecord } from '../store/state.js';

export interface JoinResult {
  pid: number;
  /** the rule it left, if any */
  left: string | null;
  /** that rule was removed because it became empty */
  removedRule: boolean;
  /** the sockets it already had, now the rule's */
  adopted: OwnedCount;
}

/** A process about to join a rule: recorded as a member, not moved yet. */
export interface Joining {
  pid: number;
  rule: string;
  /** the rule it is in now */
  current: string | null;
}

/**
 * Records processes as members of a rule, with where they came from.
 * Recorded before the move: a crash in between leaves a record the next
 * command drops (the process is not in the rule), never a process with no
 * record.
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
    const members = t.state.rules[rule].members;
    members[String(p)] = { origin, startTime: process.startTime, adopted: { sockets: 0, listeners: 0 } };
    t.undo.push(() => delete members[String(p)]);
    joining.push({ pid: p, rule, current });
  }
  return joining;
}

/** Gives pid's sockets to the rule at slot (or releases them, NO_SLOT), undoably. */
function own(t: Transaction, pid: number, owner: number, slot: number, pacing: bigint | null): OwnedCount {
  const { count, undo } = ownSockets(t.maps.sockets, pid, owner, slot, pacing);
  t.undo.push(undo);
  return count;
}

/** Marks a rule's programs as having to look at socket ownership. */
function markOwned(t: Transaction, rule: string): void {
  const record = t.state.rules[rule];
  if (!record || record.owned) return;
  record.owned = true;
  t.undo.push(() => (record.owned = false));
}

/**
 * Moves recorded processes into their rules and gives the sockets they
 * already have to the rule, so that their existing connections and what
 * their listeners accept from now on are limited too. Saves the records first.
 */
export function completeJoins(t: Transaction, joining: Joining[]): JoinResult[] {
  const { ctx, state, undo } = t;
  if (joining.length > 0) saveState(ctx.instance.stateFile, state);
  return joining.map(({ pid, rule, current }) => {
    const record = state.rules[rule];
    const member = record.members[String(pid)];
    movePid(pid, ruleDir(ctx, rule));
    undo.push(() =>
      movePid(pid, current === null ? cgroupDirOf(ctx.cgroupMount, member.origin) : ruleDir(ctx, current)),
    );
    const { slot, value } = kernelRuleOf(t, rule);
    const upload = value.limits.egress.rate;
    const count = own(t, pid, record.cgroupId, slot, upload ? BigInt(upload) : null);
    member.adopted = { sockets: count.sockets + count.other, listeners: count.listeners };
    if (count.other > 0) {
      log.warn(`pid ${pid} has ${count.other} internet socket(s) neither TCP nor UDP: their downloads are not limited`);
    }
    if (count.sockets + count.listeners + count.other > 0) {
      markOwned(t, rule);
      if (current !== null) markOwned(t, current);
    }
    let removedRule = false;
    if (current !== null && state.rules[current]) {
      delete state.rules[current].members[String(pid)];
      removedRule = removeIfEmpty(t, current);
    }
    return { pid, left: current, removedRule, adopted: count };
  });
}

/** After a rule's upload limit changed: the sockets its members brought along are paced at the new one. */
export function repace(t: Transaction, rule: string): void {
  const record = t.state.rules[rule];
  const { slot, value } = kernelRuleOf(t, rule);
  const upload = value.limits.egress.rate;
  for (const [pid, member] of Object.entries(record.members)) {
    if (member.adopted.sockets + member.adopted.listeners > 0) {
      own(t, Number(pid), record.cgroupId, slot, upload ? BigInt(upload) : NO_PACING);
    }
  }
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
 * releases its sockets, including those it opened while limited (they stay
 * in the rule's cgroup) and what its listeners accept from now on. Removes
 * the rule if that leaves it empty.
 */
export function leaveRule(t: Transaction, pid: number): LeaveResult | null {
  const { ctx, state } = t;
  const rule = readProcess(pid) ? ruleOfPid(ctx, pid) : null;
  if (rule === null) return null;
  const member = memberOf(state, rule, pid);
  const origin = returnToOrigin(ctx, member, pid);
  const released = own(t, pid, 0, NO_SLOT, NO_PACING);
  if (released.sockets + released.listeners + released.other > 0) markOwned(t, rule);
  delete state.rules[rule]?.members[String(pid)];
  return { pid, rule, origin, removedRule: removeIfEmpty(t, rule) };
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
