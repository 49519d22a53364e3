/** `limiter unset`: take a process out of its rule, or stop limiting a cgroup in place. */
import type { Context } from '../context.js';
import { notFound } from '../errors.js';
import { descendants, requireUserProcess } from '../kernel/proc.js';
import { dropRecord, ruleOfPid } from '../store/rule.js';
import { transaction } from '../store/transaction.js';
import { leaveRule, type LeaveResult } from './membership.js';
import { resolveInPlace, type InPlaceSpec } from './target.js';

/** Moves a process (with tree, its limited descendants too) back where it came from. */
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

/**
 * Removes the rule that limits a cgroup in place: its programs are detached
 * and its slot freed. The cgroup, its processes and whatever else is attached
 * there stay as they were.
 */
export async function unsetInPlace(ctx: Context, spec: InPlaceSpec): Promise<{ rule: string; path: string }> {
  const found = resolveInPlace(ctx, spec);
  return transaction(ctx, { attach: false }, (t) => {
    const entry = Object.entries(t.state.rules).find(
      ([, r]) => r.target.kind !== 'pid' && r.cgroupId === found.cgroupId,
    );
    if (!entry) {
      throw notFound('not-limited', `${found.target.path} is not limited by instance ${ctx.instance.name}`);
    }
    dropRecord(t, entry[0]);
    return { rule: entry[0], path: found.target.path };
  });
}
