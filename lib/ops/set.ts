/** `limiter set`: limit a process (moved into a rule) or a cgroup where it is (--cgroup, --unit, --container). */
import type { Context } from '../context.js';
import { usageError } from '../errors.js';
import { validateRuleName } from '../instance.js';
import { NO_LIMITS, type Limits } from '../kernel/abi.js';
import { requireUserProcess } from '../kernel/proc.js';
import { changeLimits, createRule, ruleOfPid, type Transaction } from '../store/rule.js';
import type { RuleTarget } from '../store/state.js';
import { transaction } from '../store/transaction.js';
import { describeInTransaction, type RuleInfo } from './list.js';
import { completeJoins, recordJoin, repace, type JoinResult, type Joining } from './membership.js';
import { resolveInPlace, type InPlaceSpec } from './target.js';

export type SetTarget = { pid: number; tree?: boolean } | InPlaceSpec;

export interface SetOptions {
  target: SetTarget;
  /** the directions to set; a rule that exists keeps the limits of the others */
  limits: Partial<Limits>;
  name?: string;
}

export interface SetResult {
  rule: RuleInfo;
  created: boolean;
  /** processes moved into a pid rule */
  joined: JoinResult[];
}

/** A rule name that is taken by a rule of another target. */
function refuseOther(name: string, target: RuleTarget, existing: RuleTarget): never {
  const what =
    existing.kind === 'pid' ? 'processes moved into it' : `cgroup ${'path' in existing ? existing.path : ''} in place`;
  throw usageError(
    'name-taken',
    `rule ${name} limits ${what}, not ${target.kind === 'pid' ? 'a process' : target.kind}`,
    {
      hint: 'give the new rule another --name',
    },
  );
}

interface Planned {
  name: string;
  created: boolean;
  joining: Joining[];
}

/** One set inside a transaction: the rule made or changed, and the processes recorded to join it. */
function plan(t: Transaction, options: SetOptions): Planned {
  const { ctx, state } = t;
  const limits = options.limits;
  const setLimits = (name: string, target: RuleTarget, created: boolean) => {
    if (created) createRule(t, name, target, { ...NO_LIMITS, ...limits });
    else {
      changeLimits(t, name, limits);
      if (limits.egress && target.kind === 'pid') repace(t, name);
    }
    state.lastRule = name;
  };
  if ('pid' in options.target) {
    const { pid, tree } = options.target;
    const name = options.name ?? ruleOfPid(ctx, pid) ?? `pid-${pid}`;
    const existing = state.rules[name];
    if (existing && existing.target.kind !== 'pid') refuseOther(name, { kind: 'pid' }, existing.target);
    setLimits(name, { kind: 'pid' }, !existing);
    return { name, created: !existing, joining: recordJoin(t, pid, name, tree) };
  }
  const found = resolveInPlace(ctx, options.target);
  const same = Object.entries(state.rules).find(([, r]) => r.target.kind !== 'pid' && r.cgroupId === found.cgroupId);
  const name = same?.[0] ?? options.name ?? found.defaultName;
  if (!name) {
    throw usageError('no-name', `${found.target.path} makes no valid rule name`, { hint: 'give the rule a --name' });
  }
  if (same && options.name !== undefined && options.name !== same[0]) {
    throw usageError('name-taken', `${found.target.path} is limited by rule ${same[0]} already`, {
      hint: `change it with --name ${same[0]}, or leave --name out`,
    });
  }
  const existing = state.rules[name];
  if (existing && existing.cgroupId !== found.cgroupId) refuseOther(name, found.target, existing.target);
  setLimits(name, found.target, !existing);
  return { name, created: !existing, joining: [] };
}

/**
 * Limits a process (its rule is made, or changed if it is in one; it moves
 * there with its threads and, with tree, its descendants), or a cgroup in
 * place without moving anything.
 */
export function setRule(ctx: Context, options: SetOptions): Promise<SetResult> {
  return setRules(ctx, [options]).then(([result]) => result);
}

/** Several set operations in one transaction (one lock, one state write): all or none. */
export function setRules(ctx: Context, list: SetOptions[]): Promise<SetResult[]> {
  for (const options of list) {
    if ('pid' in options.target) requireUserProcess(options.target.pid);
    if (options.name !== undefined) validateRuleName(options.name);
  }
  return transaction(ctx, { attach: true }, (t) => {
    const planned = list.map((options) => plan(t, options));
    const joined = completeJoins(
      t,
      planned.flatMap((p) => p.joining),
    );
    let next = 0;
    return planned.map(({ name, created, joining }) => ({
      rule: describeInTransaction(t, name),
      created,
      joined: joined.slice(next, (next += joining.length)),
    }));
  });
}
