/**
 * Many rules at once. Creating 10 000 rules through `set` needs 10 000
 * processes; the bench instead writes empty rules (cgroup, map entries,
 * state record) the way `set` does, then measures real commands against them.
 */
import { join } from 'node:path';
import { encodeCgroupId, encodeRule, encodeSlot, emptyStateBuffer, NO_LIMIT } from '../lib/abi.js';
import { cgroupId, createCgroup } from '../lib/cgroup.js';
import { mapUpdate } from '../lib/libbpf.js';
import type { Context } from '../lib/preflight.js';
import { openMaps } from '../lib/program.js';
import { makeLimit } from '../lib/rules.js';
import { loadState, saveState } from '../lib/state.js';

export function addEmptyRules(ctx: Context, count: number, rateBytes: number): void {
  const maps = openMaps(ctx.instance);
  if (!maps) throw new Error('the instance has no maps: set one rule first');
  try {
    const state = loadState(ctx.instance.stateFile);
    const used = new Set(Object.values(state.rules).map((r) => r.slot));
    let slot = 0;
    const limit = makeLimit(rateBytes);
    for (let i = 0; i < count; i++) {
      while (used.has(slot)) slot++;
      const name = `bench-${i}`;
      const dir = join(ctx.instance.cgroupDir, name);
      createCgroup(dir);
      const id = cgroupId(dir);
      mapUpdate(maps.state, encodeSlot(slot), emptyStateBuffer());
      mapUpdate(maps.rules, encodeCgroupId(id), encodeRule({ limits: { egress: limit, ingress: NO_LIMIT }, slot }));
      state.rules[name] = { cgroupId: id, slot, members: {}, released: [] };
      used.add(slot);
    }
    saveState(ctx.instance.stateFile, state);
  } finally {
    maps.close();
  }
}
