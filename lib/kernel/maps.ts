/** The instance's pinned maps, opened, and the rules as the kernel holds them. */
import { closeSync } from 'node:fs';
import type { Instance } from '../instance.js';
import {
  decodeAttach,
  decodeRule,
  decodeState,
  emptyAttachBuffer,
  emptyStateBuffer,
  emptyTallyBuffer,
  LAYOUT,
  MAP_ATTACH,
  MAP_CONFIG,
  MAP_RULES,
  MAP_SOCKETS,
  MAP_STATE,
  MAP_TALLY,
  MAX_RULES,
  u32Key,
  u64Key,
  type RuleValue,
  type StateValue,
} from './abi.js';
import { arrayValues, mapLookup, mapUpdate, objGet, possibleCpus } from './bpf.js';
import { pinPath } from './pins.js';

export interface MapFds {
  rules: number;
  state: number;
  tally: number;
  attach: number;
  sockets: number;
  config: number;
  close(): void;
}

/** The pinned maps, or null when the instance lacks any of them. */
export function openMaps(instance: Instance): MapFds | null {
  const fds: number[] = [];
  for (const name of [MAP_RULES, MAP_STATE, MAP_TALLY, MAP_ATTACH, MAP_SOCKETS, MAP_CONFIG]) {
    const fd = objGet(pinPath(instance, name));
    if (fd === null) {
      fds.forEach((f) => closeSync(f));
      return null;
    }
    fds.push(fd);
  }
  const [rules, state, tally, attach, sockets, config] = fds as [number, number, number, number, number, number];
  return { rules, state, tally, attach, sockets, config, close: () => fds.forEach((fd) => closeSync(fd)) };
}

export interface KernelRule {
  slot: number;
  value: RuleValue;
}

/** Every rule the kernel has, by the cgroup it limits. */
export function kernelRules(maps: MapFds): Map<number, KernelRule> {
  const size = LAYOUT.limiter_rule.size;
  const all = arrayValues(maps.rules, size, MAX_RULES);
  const rules = new Map<number, KernelRule>();
  for (let slot = 0; slot < MAX_RULES; slot++) {
    const value = decodeRule(all, slot * size);
    if (value.cgroupId !== 0) rules.set(value.cgroupId, { slot, value });
  }
  return rules;
}

/** A slot's counters and bucket state, or null when unreadable. */
export function readCounters(maps: MapFds, slot: number): StateValue | null {
  const cpus = possibleCpus();
  const state = emptyStateBuffer();
  const tally = emptyTallyBuffer(cpus);
  const key = u32Key(slot);
  return mapLookup(maps.state, key, state) && mapLookup(maps.tally, key, tally)
    ? decodeState(state, tally, cpus)
    : null;
}

/** Makes a slot's bucket full and its counters zero, for a new rule. */
export function resetSlot(maps: MapFds, slot: number): void {
  mapUpdate(maps.state, u32Key(slot), emptyStateBuffer());
  mapUpdate(maps.tally, u32Key(slot), emptyTallyBuffer(possibleCpus()));
}

/** The slot a cgroup's attachments name, or null (nothing attached there, or not set yet). */
export function attachedSlot(maps: MapFds, cgroupId: number): number | null {
  const buf = emptyAttachBuffer();
  return mapLookup(maps.attach, u64Key(cgroupId), buf) ? decodeAttach(buf) : null;
}
