/** `limiter move`: put a process into a rule that exists. */
import { realpathSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Context } from '../context.js';
import { errnoCode, notFound, usageError } from '../errors.js';
import { requireUserProcess } from '../kernel/proc.js';
import type { State } from '../store/state.js';
import { transaction } from '../store/transaction.js';
import { describeInTransaction, type RuleInfo } from './list.js';
import { joinAll, type JoinResult } from './membership.js';

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
    const name = Object.keys(state.rules).find((n) => state.rules[n].cgroupId === target.cgroupId);
    if (!name)
      throw notFound('no-such-rule', `no rule of instance ${ctx.instance.name} has cgroup id ${target.cgroupId}`);
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
  if (dirname(real) !== realpathSync(ctx.instance.cgroupDir) || state.rules[name]?.target.kind !== 'pid') {
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
): Promise<{ rule: RuleInfo; joined: JoinResult[] }> {
  requireUserProcess(pid);
  return transaction(ctx, { attach: false }, (t) => {
    const rule = resolveTarget(ctx, t.state, target);
    if (t.state.rules[rule].target.kind !== 'pid') {
      throw usageError('in-place-rule', `rule ${rule} limits a cgroup in place; processes are not moved into it`, {
        hint: "move the process into that cgroup with the tool that manages it, or use 'limiter set --pid'",
      });
    }
    const joined = joinAll(t, pid, rule, tree);
    return { rule: describeInTransaction(t, rule), joined };
  });
}
