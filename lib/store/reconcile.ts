/**
 * Repairs what findings.ts finds, before every state change under the lock:
 * after a crash, a reboot, or a cgroup, pin or state file removed by hand.
 * The kernel is the truth about what is enforced; each repair is reported on
 * stderr.
 */
import { encodeCgroupId, encodeCookie, encodeSocket } from '../kernel/abi.js';
import { mapDelete, mapUpdate } from '../kernel/bpf.js';
import { cgroupDirOf, listPids, movePid } from '../kernel/cgroup.js';
import { readProcess } from '../kernel/proc.js';
import { log } from '../log.js';
import { ruleFindings, type Finding } from './findings.js';
import { dropRecord, forgetSockets, removeIfEmpty, removeRule, ruleDir, type Transaction } from './rule.js';

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
  const { ctx, state, maps } = t;
  switch (f.kind) {
    case 'cgroup-gone':
      dropRecord(t, f.rule);
      return `rule ${f.rule} had lost its cgroup; forgot it`;
    case 'member-gone': {
      const record = state.rules[f.rule];
      forgetSockets(t, record.members[f.pid].sockets);
      delete record.members[f.pid];
      return null;
    }
    case 'unrecorded-rule': {
      const members = Object.fromEntries(
        listPids(ruleDir(ctx, f.rule)).flatMap((pid) => {
          const process = readProcess(pid);
          return process ? [[String(pid), { origin: '/', startTime: process.startTime, sockets: [] }]] : [];
        }),
      );
      state.rules[f.rule] = { cgroupId: f.cgroupId, members, released: [] };
      return `rule ${f.rule} was missing from the state file; recovered it from the kernel (where its processes came from is unknown: unset moves them to the root cgroup)`;
    }
    case 'unlimited-cgroup':
      for (const pid of listPids(ruleDir(ctx, f.rule))) movePid(pid, cgroupDirOf(ctx.cgroupMount, '/'));
      removeRule(t, f.rule);
      return `cgroup ${f.rule} had no limit; removed it (processes in it went to the root cgroup)`;
    case 'orphan-limit':
      mapDelete(maps.rules, encodeCgroupId(f.cgroupId));
      t.slots = undefined;
      return `a limit for cgroup ${f.cgroupId} belonged to no rule; removed it`;
    case 'limit-missing': {
      const record = state.rules[f.rule];
      for (const pid of listPids(ruleDir(ctx, f.rule))) {
        movePid(pid, cgroupDirOf(ctx.cgroupMount, record.members[pid]?.origin ?? '/'));
      }
      removeRule(t, f.rule);
      return `rule ${f.rule} had no limit in the kernel any more (its maps were lost); removed it and moved its processes back`;
    }
    case 'socket-entries-missing':
      for (const { cookie, target } of f.entries) mapUpdate(maps.sockets, encodeCookie(cookie), encodeSocket(target));
      return null;
    case 'rule-ended':
      if (!state.rules[f.rule]) return null;
      return removeIfEmpty(t, f.rule) ? `rule ${f.rule}: its processes have all exited; removed it` : null;
    case 'pins-missing':
      return null; // repaired before the maps are opened (transaction.ts)
  }
}
