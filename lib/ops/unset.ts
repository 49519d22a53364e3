/** `limiter unset`: take a process out of its rule, back to where it came from. */
import type { Context } from '../context.js';
import { notFound } from '../errors.js';
import { descendants, requireUserProcess } from '../kernel/proc.js';
import { ruleOfPid } from '../store/rule.js';
import { transaction } from '../store/transaction.js';
import { leaveRule, type LeaveResult } from './membership.js';

export function unsetPid(ctx: Context, pid: number, tree = false): Promise<LeaveResult[]> {
  requireUserProcess(pid);
  const notLimited = () => notFound('not-limited', `pid ${pid} is not limited by instance ${ctx.instance.name}`);
  if (ruleOfPid(ctx, pid) === null) throw notLimited();
  return transaction(ctx, { attach: false }, (t) => {
    if (ruleOfPid(ctx, pid) === null) throw notLimited();
    const pids = tree ? descendants(pid) : [pid];
    return pids.map((p) => leaveRule(t, p)).filter((r): r is LeaveResult => r !== null);
  });
}
