/**
 * `limiter top`: rates per rule and direction, from the differences of the
 * kernel's counters between two samples. Reading only: no map is written.
 */
import type { Context } from '../context.js';
import { DIRECTIONS, type Counters, type DirectionName, type Limit, type StateValue } from '../kernel/abi.js';
import { listRules } from './list.js';

export interface RuleSample {
  name: string;
  cgroupId: number;
  pids: number[];
  limits: Record<DirectionName, Limit>;
  counters: StateValue;
}

export interface Sample {
  /** CLOCK_MONOTONIC, ns */
  at: bigint;
  rules: RuleSample[];
}

/** Every rule's limits and counters now: the rules as list sees them; those without a limit are left out. */
export function sampleRules(ctx: Context): Sample {
  const at = process.hrtime.bigint();
  const rules = listRules(ctx).flatMap((r) =>
    r.value && r.counters
      ? [{ name: r.name, cgroupId: r.cgroupId, pids: r.pids, limits: r.value.limits, counters: r.counters }]
      : [],
  );
  return { at, rules };
}

export interface DirectionRate {
  /** bytes per second; 0: not limited */
  limit: number;
  bucket: number;
  /** passed bytes per second, or null before two samples of the same rule */
  bytesPerSec: number | null;
  /** dropped ÷ (passed + dropped) packets, in percent, or null */
  dropPercent: number | null;
}

export interface RuleRate {
  name: string;
  cgroupId: number;
  pids: number[];
  egress: DirectionRate;
  ingress: DirectionRate;
}

const U64 = 1n << 64n;

/** cur − prev of a u64 counter that may have wrapped once. */
export function counterDelta(prev: bigint, cur: bigint): bigint {
  return cur >= prev ? cur - prev : cur + U64 - prev;
}

function directionRate(limit: Limit, prev: Counters | null, cur: Counters, seconds: number): DirectionRate {
  const base = { limit: limit.rate, bucket: limit.bucket };
  if (!prev || seconds <= 0) return { ...base, bytesPerSec: null, dropPercent: null };
  const passedBytes = counterDelta(prev.passedBytes, cur.passedBytes);
  const passed = counterDelta(prev.passedPackets, cur.passedPackets);
  const dropped = counterDelta(prev.droppedPackets, cur.droppedPackets);
  const packets = passed + dropped;
  return {
    ...base,
    bytesPerSec: Number(passedBytes) / seconds,
    dropPercent: packets === 0n ? 0 : (Number(dropped) * 100) / Number(packets),
  };
}

/**
 * Rates of the rules in cur, from what they passed since prev. A rule that is
 * new, or was removed and made again under its name (another cgroup id), has
 * no rate until the next sample; rules gone from cur are gone.
 */
export function ratesBetween(prev: Sample | null, cur: Sample): RuleRate[] {
  const seconds = prev ? Number(cur.at - prev.at) / 1e9 : 0;
  const before = new Map(prev?.rules.map((r) => [r.name, r]) ?? []);
  return cur.rules.map((rule) => {
    const old = before.get(rule.name);
    const same = old && old.cgroupId === rule.cgroupId ? old : null;
    const [egress, ingress] = DIRECTIONS.map((dir) =>
      directionRate(rule.limits[dir], same?.counters[dir] ?? null, rule.counters[dir], seconds),
    ) as [DirectionRate, DirectionRate];
    return { name: rule.name, cgroupId: rule.cgroupId, pids: rule.pids, egress, ingress };
  });
}
