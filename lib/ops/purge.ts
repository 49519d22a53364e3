/** `limiter purge`: remove everything the instance owns. */
import type { Context } from '../context.js';
import { operationFailed } from '../errors.js';
import { childCgroups, listPids, removeCgroup } from '../kernel/cgroup.js';
import { log } from '../log.js';
import { acquireLock } from '../store/lock.js';
import { memberOf, ruleDir } from '../store/rule.js';
import { emptyState, loadState, type State } from '../store/state.js';
import { removeInstance } from '../store/transaction.js';
import { removeDropIns } from './dropins.js';
import { returnToOrigin } from './membership.js';

export interface PurgeResult {
  rules: string[];
  /** processes moved back out of rules */
  pids: number[];
}

/**
 * Removes everything the instance owns: processes go back where they came
 * from, then rule cgroups, the links (detaching the programs, also from the
 * cgroups limited in place, which stay as they were), the maps, the instance
 * cgroup and the runtime directory. Idempotent; carries on past a failed step
 * and reports the failures at the end.
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
    // Rules that limit a cgroup in place lose their links with the instance's pins; their cgroups stay.
    for (const [name, record] of Object.entries(state.rules)) if (record.target.kind !== 'pid') result.rules.push(name);
    attempt(() => removeInstance(ctx));
    attempt(() => removeDropIns(ctx));
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
