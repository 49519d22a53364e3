/**
 * Many rules at once. Each rule needs a process in it (a rule whose
 * processes have all gone is removed), so the bench starts that many sleeps
 * and writes their rules the way `set` does, in one go rather than through
 * thousands of commands; then it times real commands against them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { emptyStateBuffer, encodeCgroupId, encodeRule, encodeSlot } from '../lib/abi.js';
import { cgroupId, cgroupOfPid, createCgroup, movePid } from '../lib/cgroup.js';
import { mapUpdate } from '../lib/libbpf.js';
import type { Context } from '../lib/preflight.js';
import { openMaps } from '../lib/program.js';
import { descendants, readProcess } from '../lib/proc.js';
import { loadState, saveState } from '../lib/state.js';
import { ruleValueOf } from '../lib/transaction.js';

/** count sleeping processes, children of one shell; kill() ends them all. */
export async function startSleepers(count: number): Promise<{ pids: number[]; kill(): void }> {
  const shell: ChildProcess = spawn('sh', ['-c', `i=0; while [ $i -lt ${count} ]; do sleep 3600 & i=$((i+1)); done; echo started; wait`], {
    stdio: ['ignore', 'pipe', 'ignore'],
    detached: true,
  });
  await new Promise<void>((resolve) => shell.stdout!.once('data', () => resolve()));
  return { pids: descendants(shell.pid!).slice(1), kill: () => process.kill(-shell.pid!, 'SIGKILL') };
}

/** One rule per pid, as `set --pid <pid> --rate <rate>` would make it. */
export function addRules(ctx: Context, pids: number[], rateBytes: number): void {
  const maps = openMaps(ctx.instance);
  if (!maps) throw new Error('the instance has no maps: set one rule first');
  try {
    const state = loadState(ctx.instance.stateFile);
    const used = new Set(Object.values(state.rules).map((r) => r.slot));
    let slot = 0;
    for (const pid of pids) {
      while (used.has(slot)) slot++;
      const name = `bench-${pid}`;
      const dir = join(ctx.instance.cgroupDir, name);
      createCgroup(dir);
      const record = {
        cgroupId: cgroupId(dir),
        slot,
        egress: { rate: rateBytes, bucket: rateBytes },
        ingress: null,
        members: { [pid]: { origin: cgroupOfPid(pid)!, startTime: readProcess(pid)!.startTime, sockets: [] } },
        released: [],
      };
      mapUpdate(maps.state, encodeSlot(slot), emptyStateBuffer());
      mapUpdate(maps.rules, encodeCgroupId(record.cgroupId), encodeRule(ruleValueOf(record)));
      movePid(pid, dir);
      state.rules[name] = record;
      used.add(slot);
    }
    saveState(ctx.instance.stateFile, state);
  } finally {
    maps.close();
  }
}
