/**
 * Everything an instance owns, as one comparable value: the cgroup tree and
 * its processes, the pins, the entries of the maps user space writes (the
 * attachments' storage and the sockets' storage cannot be listed), and the
 * state file. Two snapshots are equal when nothing changed.
 */
import { closeSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAYOUT, MAP_CONFIG, MAP_RULES } from '../../lib/kernel/abi.js';
import { findCgroup2Mount, listPids } from '../../lib/kernel/cgroup.js';
import { BPFFS_ROOT, RUN_ROOT } from '../../lib/instance.js';
import { mapKeys, mapLookup, objGet } from '../../lib/kernel/bpf.js';

/** The entries of a map, those of an array that are all zero left out. */
function dumpMap(path: string, keySize: number, valueSize: number): string[] {
  const fd = objGet(path);
  if (fd === null) return [];
  try {
    return mapKeys(fd, keySize)
      .map((key) => {
        const value = Buffer.alloc(valueSize);
        mapLookup(fd, key, value);
        return value.some((b) => b !== 0) ? [`${key.toString('hex')}=${value.toString('hex')}`] : [];
      })
      .flat()
      .sort();
  } finally {
    closeSync(fd);
  }
}

export interface Snapshot {
  cgroups: Record<string, number[]>;
  pins: string[];
  rules: string[];
  config: string[];
  state: string | null;
}

export function snapshot(instance: string): Snapshot {
  const cgroupDir = join(findCgroup2Mount(), instance);
  const cgroups: Record<string, number[]> = {};
  if (existsSync(cgroupDir)) {
    cgroups['.'] = listPids(cgroupDir);
    for (const entry of readdirSync(cgroupDir, { withFileTypes: true })) {
      if (entry.isDirectory()) cgroups[entry.name] = listPids(join(cgroupDir, entry.name));
    }
  }
  const bpffsDir = join(BPFFS_ROOT, instance);
  const stateFile = join(RUN_ROOT, instance, 'state.json');
  return {
    cgroups,
    pins: existsSync(bpffsDir) ? readdirSync(bpffsDir).sort() : [],
    rules: dumpMap(join(bpffsDir, MAP_RULES), 4, LAYOUT.limiter_rule.size),
    config: dumpMap(join(bpffsDir, MAP_CONFIG), 4, LAYOUT.limiter_config.size),
    state: existsSync(stateFile) ? readFileSync(stateFile, 'utf8') : null,
  };
}
