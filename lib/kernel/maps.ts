/** The instance's pinned maps, opened for reading and writing. */
import { closeSync } from 'node:fs';
import type { Instance } from '../instance.js';
import {
  decodeCgroupId,
  decodeRule,
  decodeState,
  emptyRuleBuffer,
  emptyStateBuffer,
  encodeCgroupId,
  encodeSlot,
  MAP_CONFIG,
  MAP_RULES,
  MAP_SOCKETS,
  MAP_STATE,
  type RuleValue,
  type StateValue,
} from './abi.js';
import { mapKeys, mapLookup, objGet } from './bpf.js';
import { pinPath } from './pins.js';

export interface MapFds {
  rules: number;
  state: number;
  sockets: number;
  config: number;
  close(): void;
}

/** The pinned maps user space writes, or null when the instance has none. */
export function openMaps(instance: Instance): MapFds | null {
  const fds: number[] = [];
  for (const name of [MAP_RULES, MAP_STATE, MAP_SOCKETS, MAP_CONFIG]) {
    const fd = objGet(pinPath(instance, name));
    if (fd === null) {
      fds.forEach((f) => closeSync(f));
      return null;
    }
    fds.push(fd);
  }
  const [rules, state, sockets, config] = fds as [number, number, number, number];
  return { rules, state, sockets, config, close: () => fds.forEach((fd) => closeSync(fd)) };
}

export interface KernelRule {
  value: RuleValue;
  /** null if its slot is unreadable */
  counters: StateValue | null;
}

/** A rule's limits and counters as the kernel holds them; null without a limit. */
export function readRule(maps: MapFds, cgroupId: number): KernelRule | null {
  const ruleBuf = emptyRuleBuffer();
  if (!mapLookup(maps.rules, encodeCgroupId(cgroupId), ruleBuf)) return null;
  const value = decodeRule(ruleBuf);
  const stateBuf = emptyStateBuffer();
  return { value, counters: mapLookup(maps.state, encodeSlot(value.slot), stateBuf) ? decodeState(stateBuf) : null };
}

/** Every rule the kernel limits: cgroup id → its limits and slot. */
export function kernelRules(maps: MapFds): Map<number, RuleValue> {
  const rules = new Map<number, RuleValue>();
  const value = emptyRuleBuffer();
  for (const key of mapKeys(maps.rules, 8)) {
    if (mapLookup(maps.rules, key, value)) rules.set(decodeCgroupId(key), decodeRule(value));
  }
  return rules;
}
