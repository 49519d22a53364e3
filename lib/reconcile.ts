/**
 * Brings the runtime state in line with the kernel, which is the truth about
 * what is enforced. Runs under the lock before every state change, so that a
 * crash, a reboot, or a cgroup, pin or state file removed by hand is noticed,
 * reported on stderr, and repaired.
 */
import { decodeCgroupId, decodeRule, emptyRuleBuffer, encodeCgroupId, encodeCookie, encodeRule, encodeSocket } from './abi.js';
import { cgroupId, childCgroups, listPids, movePid, cgroupDirOf } from './cgroup.js';
import { mapDelete, mapKeys, mapLookup, mapUpdate } from './libbpf.js';
import { log } from './log.js';
import { readProcess } from './proc.js';
import {
  RELEASED,
  dropRecord,
  forgetSockets,
  memberOf,
  removeIfEmpty,
  removeRule,
  ruleDir,
  ruleValueOf,
  toRecord,
  type Transaction,
} from './transaction.js';

export function reconcile(t: Transaction, ending?: string): void {
  const { ctx, maps, state } = t;
  const found = (what: string) => log.warn(`${what} (instance ${ctx.instance.name})`);
  const ids = new Map(childCgroups(ctx.instance.cgroupDir).map((name) => [name, cgroupId(ruleDir(ctx, name))]));

  // Records whose cgroup has gone: removed by hand, or a reboot left the state file behind.
  for (const [name, record] of Object.entries(state.rules)) {
    if (ids.get(name) !== record.cgroupId) {
      dropRecord(t, name);
      found(`rule ${name} had lost its cgroup; forgot it`);
    }
  }

  // Members that have exited or that something else moved out of the rule.
  for (const [name, record] of Object.entries(state.rules)) {
    const inCgroup = new Set(listPids(ruleDir(ctx, name)));
    for (const [pid, member] of Object.entries(record.members)) {
      if (memberOf(state, name, Number(pid)) === null || !inCgroup.has(Number(pid))) {
        forgetSockets(t, member.sockets);
        delete record.members[pid];
      }
    }
  }

  // Cgroups without a record: after a crash or a lost state file. The kernel's limit is the record.
  for (const [name, id] of ids) {
    if (state.rules[name]) continue;
    const buf = emptyRuleBuffer();
    if (mapLookup(maps.rules, encodeCgroupId(id), buf)) {
      const value = decodeRule(buf);
      const members = Object.fromEntries(
        listPids(ruleDir(ctx, name)).flatMap((pid) => {
          const process = readProcess(pid);
          return process ? [[String(pid), { origin: '/', startTime: process.startTime, sockets: [] }]] : [];
        }),
      );
      state.rules[name] = {
        cgroupId: id,
        slot: value.slot,
        egress: toRecord(value.limits.egress),
        ingress: toRecord(value.limits.ingress),
        members,
        released: [],
      };
      found(`rule ${name} was missing from the state file; recovered it from the kernel (where its processes came from is unknown: unset moves them to the root cgroup)`);
    } else {
      for (const pid of listPids(ruleDir(ctx, name))) movePid(pid, cgroupDirOf(ctx.cgroupMount, '/'));
      removeRule(t, name);
      found(`cgroup ${name} had no limit; removed it (processes in it went to the root cgroup)`);
    }
  }

  // Limits in the kernel without a rule, and rules whose limit the kernel lost.
  const recorded = new Set(Object.values(state.rules).map((r) => r.cgroupId));
  for (const key of mapKeys(maps.rules, 8)) {
    if (!recorded.has(decodeCgroupId(key))) {
      mapDelete(maps.rules, key);
      found(`a limit for cgroup ${decodeCgroupId(key)} belonged to no rule; removed it`);
    }
  }
  for (const [name, record] of Object.entries(state.rules)) {
    const key = encodeCgroupId(record.cgroupId);
    const expected = encodeRule(ruleValueOf(record));
    const buf = emptyRuleBuffer();
    if (!mapLookup(maps.rules, key, buf) || !buf.equals(expected)) {
      mapUpdate(maps.rules, key, expected);
      found(`the kernel's limit of rule ${name} was missing or differed; restored it`);
    }
  }

  // Sockets entries the kernel lost with a removed map.
  for (const record of Object.values(state.rules)) {
    const expect = [
      ...Object.values(record.members).flatMap((m) => m.sockets.map((c) => [c, record.cgroupId] as const)),
      ...record.released.map((c) => [c, RELEASED] as const),
    ];
    for (const [cookie, target] of expect) {
      if (!mapLookup(maps.sockets, encodeCookie(cookie), Buffer.alloc(8))) mapUpdate(maps.sockets, encodeCookie(cookie), encodeSocket(target));
    }
  }

  // Rules whose processes have all exited are done (a set in progress fills its rule after this).
  for (const name of Object.keys(state.rules)) {
    if (removeIfEmpty(t, name) && name !== ending) found(`rule ${name}: its processes have all exited; removed it`);
  }
}
