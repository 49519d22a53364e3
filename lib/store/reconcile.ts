/**
 * Repairs what findings.ts finds, before every state change under the lock:
 * after a crash, a reboot, or a cgroup, pin or state file removed by hand.
 * The kernel is the truth about what is enforced; each repair is reported on
 * stderr.
 */
import { emptyRuleBuffer, u32Key } from '../kernel/abi.js';
import { mapUpdate } from '../kernel/bpf.js';
import { cgroupDirOf, listPids, movePid } from '../kernel/cgroup.js';
import { detachRule } from '../kernel/links.js';
import { readProcess } from '../kernel/proc.js';
import { log } from '../log.js';
import { ruleFindings, type Finding } from './findings.js';
import {
  attachPrograms,
  dropRecord,
  kernelOf,
  removeIfEmpty,
  removeRule,
  ruleDir,
  targetDir,
  type Transaction,
} from './rule.js';

/** Repairs every finding about the rules. `ending`: a rule whose end is expected, not reported. */
export function reconcile(t: Transaction, ending?: string): void {
  for (const finding of ruleFindings(t.ctx, t.state, t.maps)) {
    const action = repair(t, finding);
    if (action === null || (finding.kind === 'rule-ended' && finding.rule === ending)) continue;
    log.warn(`${action} (instance ${t.ctx.instance.name})`);
  }
}

/** Repairs one finding; returns what it did, in words, or null when there is nothing to say. */
function repair(t: Transaction, f: Finding): string | null {
  const { ctx, state } = t;
  switch (f.kind) {
    case 'cgroup-gone':
      dropRecord(t, f.rule);
      if (f.fromFile)
        return `the cgroup of rule ${f.rule} is gone; the rule waits in the rules file until the cgroup is back`;
      return f.inPlace
        ? `the cgroup rule ${f.rule} limited was removed (by its manager?); the rule went with it ` +
            `(the rules file keeps a unit's limit across restarts)`
        : `rule ${f.rule} had lost its cgroup; forgot it`;
    case 'member-gone':
      delete state.rules[f.rule].members[f.pid];
      return null;
    case 'unrecorded-rule': {
      const members = Object.fromEntries(
        listPids(ruleDir(ctx, f.rule)).flatMap((pid) => {
          const process = readProcess(pid);
          const member = { origin: '/', startTime: process?.startTime ?? 0, adopted: { sockets: 0, listeners: 0 } };
          return process ? [[String(pid), member]] : [];
        }),
      );
      state.rules[f.rule] = { target: { kind: 'pid' }, source: 'cli', cgroupId: f.cgroupId, members, owned: true };
      return `rule ${f.rule} was missing from the state file; recovered it from the kernel (where its processes came from is unknown: unset moves them to the root cgroup)`;
    }
    case 'unlimited-cgroup':
      for (const pid of listPids(ruleDir(ctx, f.rule))) movePid(pid, cgroupDirOf(ctx.cgroupMount, '/'));
      removeRule(t, f.rule);
      return `cgroup ${f.rule} had no limit; removed it (processes in it went to the root cgroup)`;
    case 'orphan-limit': {
      detachRule(ctx.instance, f.cgroupId);
      const kernel = kernelOf(t).get(f.cgroupId);
      if (kernel) {
        mapUpdate(t.maps.rules, u32Key(kernel.slot), emptyRuleBuffer());
        kernelOf(t).delete(f.cgroupId);
      }
      return `a limit for cgroup ${f.cgroupId} belonged to no rule; removed it`;
    }
    case 'limit-missing': {
      const record = state.rules[f.rule];
      if (record.target.kind === 'pid') {
        for (const pid of listPids(ruleDir(ctx, f.rule))) {
          movePid(pid, cgroupDirOf(ctx.cgroupMount, record.members[pid]?.origin ?? '/'));
        }
      }
      removeRule(t, f.rule);
      return `rule ${f.rule} had no limit in the kernel any more (its maps were lost); removed it${record.target.kind === 'pid' ? ' and moved its processes back' : ''}`;
    }
    case 'links-missing': {
      const record = state.rules[f.rule];
      const { slot, value } = kernelOf(t).get(record.cgroupId)!;
      attachPrograms(t, targetDir(ctx, f.rule, record.target), record.cgroupId, slot, value.limits);
      return `rule ${f.rule} had lost its ${f.hooks.join(', ')} link; attached it again`;
    }
    case 'rule-ended':
      if (!state.rules[f.rule]) return null;
      return removeIfEmpty(t, f.rule) ? `rule ${f.rule}: its processes have all exited; removed it` : null;
    case 'pins-missing':
      return null; // repaired before the maps are opened (transaction.ts)
  }
}
