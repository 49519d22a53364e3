/** `limiter set`: limit a process, in a rule of its own or a named one. */
import type { Context } from '../context.js';
import { validateRuleName } from '../instance.js';
import { requireUserProcess } from '../kernel/proc.js';
import { changeLimits, createRule, ruleOfPid, type Limits } from '../store/rule.js';
import { transaction } from '../store/transaction.js';
import { describeRule, type RuleInfo } from './list.js';
import { completeJoins, recordJoin, type JoinResult } from './membership.js';

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
  return setRules(ctx, [options]).then(([result]) => result);
}

/** Several set operations in one transaction (one lock, one state write): all or none. */
export function setRules(ctx: Context, list: SetOptions[]): Promise<SetResult[]> {
  for (const options of list) {
    requireUserProcess(options.pid);
    if (options.name !== undefined) validateRuleName(options.name);
  }
  return transaction(ctx, { attach: true }, (t) => {
    const planned = list.map((options) => {
      const current = ruleOfPid(ctx, options.pid);
      const name = options.name ?? current ?? `pid-${options.pid}`;
      let record = t.state.rules[name];
      const created = !record;
      if (record) changeLimits(t, record, options.limits);
      else
        record = createRule(t, name, {
          egress: options.limits.egress ?? null,
          ingress: options.limits.ingress ?? null,
        });
      t.state.lastRule = name;
      return { name, cgroupId: record.cgroupId, created, joining: recordJoin(t, options.pid, name, options.tree) };
    });
    const joined = completeJoins(
      t,
      planned.flatMap((p) => p.joining),
    );
    let next = 0;
    return planned.map(({ name, cgroupId, created, joining }) => ({
      rule: describeRule(ctx, t.maps, name, cgroupId, t.state),
      created,
      joined: joined.slice(next, (next += joining.length)),
    }));
  });
}
