/**
 * TypeScript mirror of bpf/limiter.h. test/unit/abi.test.ts checks every
 * layout here against the BTF of the built object.
 */
import { usageError } from '../errors.js';

export const MAX_RULES = 16384;
export const MAX_SOCKETS = 65536;

export const PROG_EGRESS = 'limiter_egress';
export const PROG_INGRESS = 'limiter_ingress';
export const PROG_TC_EGRESS = 'limiter_tc_egress';
export const PROG_SOCKOPS = 'limiter_sockops';
export const MAP_RULES = 'limiter_rules';
export const MAP_STATE = 'limiter_state';
export const MAP_SOCKETS = 'limiter_socks';
export const MAP_CONFIG = 'limiter_config';
export const MAP_SK_RULE = 'limiter_sk_rule';

export const MAPS = [MAP_RULES, MAP_STATE, MAP_SOCKETS, MAP_CONFIG, MAP_SK_RULE] as const;
export const PROGRAMS = [PROG_EGRESS, PROG_INGRESS, PROG_TC_EGRESS, PROG_SOCKOPS] as const;
export type MapName = (typeof MAPS)[number];
export type ProgramName = (typeof PROGRAMS)[number];

/**
 * Pins in the instance's bpffs directory: every map and program under its
 * own name, the three cgroup links, and one tcx link per interface that
 * adopted sockets use (tcx_<netns inode>_<ifindex>).
 */
export const PIN = {
  egressLink: 'link_egress',
  ingressLink: 'link_ingress',
  sockopsLink: 'link_sockops',
  tcxLinkPrefix: 'tcx_',
} as const;

export const Direction = { egress: 0, ingress: 1 } as const;
export type DirectionName = keyof typeof Direction;
export const DIRECTIONS = Object.keys(Direction) as DirectionName[];

interface Member {
  offset: number;
  size: number;
}
interface Layout {
  size: number;
  members: Record<string, Member>;
}

export const LAYOUT = {
  limiter_limit: {
    size: 24,
    members: { rate: { offset: 0, size: 8 }, bucket: { offset: 8, size: 8 }, burst_ns: { offset: 16, size: 8 } },
  },
  limiter_rule: {
    size: 56,
    members: { limit: { offset: 0, size: 48 }, slot: { offset: 48, size: 4 }, flags: { offset: 52, size: 4 } },
  },
  limiter_counters: {
    size: 40,
    members: {
      empty_at_ns: { offset: 0, size: 8 },
      passed_bytes: { offset: 8, size: 8 },
      passed_packets: { offset: 16, size: 8 },
      dropped_bytes: { offset: 24, size: 8 },
      dropped_packets: { offset: 32, size: 8 },
    },
  },
  limiter_state: {
    size: 104,
    members: {
      dir: { offset: 0, size: 80 },
      flow_epoch: { offset: 80, size: 8 },
      flows_now: { offset: 88, size: 4 },
      flows_prev: { offset: 92, size: 4 },
      clock_ns: { offset: 96, size: 8 },
    },
  },
  limiter_sk: {
    size: 32,
    members: {
      rule_cgroup_id: { offset: 0, size: 8 },
      epoch: { offset: 8, size: 8 },
      acked_mark: { offset: 16, size: 8 },
      pacing: { offset: 24, size: 4 },
      counted: { offset: 28, size: 4 },
    },
  },
  limiter_socket: {
    size: 8,
    members: { rule_cgroup_id: { offset: 0, size: 8 } },
  },
  limiter_config: {
    size: 8,
    members: { adopted_sockets: { offset: 0, size: 4 }, flags: { offset: 4, size: 4 } },
  },
} satisfies Record<string, Layout>;

const L = LAYOUT;

export interface Limit {
  /** bytes per second; 0: not limited in this direction */
  rate: number;
  bucket: number;
  burstNs: bigint;
}

export interface RuleValue {
  limits: Record<DirectionName, Limit>;
  slot: number;
}

/** A direction's counters: u64 in the kernel, so bigint here (they may wrap). */
export interface Counters {
  emptyAtNs: bigint;
  passedBytes: bigint;
  passedPackets: bigint;
  droppedBytes: bigint;
  droppedPackets: bigint;
}

export type StateValue = Record<DirectionName, Counters>;

export const NO_LIMIT: Limit = { rate: 0, bucket: 0, burstNs: 0n };

const NSEC_PER_SEC = 1_000_000_000n;

/** A direction's limit; the bucket defaults to one second of rate. */
export function makeLimit(rate: number, bucket: number = rate): Limit {
  const burstNs = (BigInt(bucket) * NSEC_PER_SEC) / BigInt(rate);
  // burst_ns must stay far from u64 overflow in the program's time arithmetic.
  if (burstNs > 1n << 62n) {
    throw usageError('out-of-range', `a bucket of ${bucket} bytes lasts too long at ${rate} bytes/s`, {
      hint: 'use a smaller bucket or a higher rate',
    });
  }
  return { rate, bucket, burstNs: burstNs > 0n ? burstNs : 1n };
}

export function encodeCgroupId(id: number): Buffer {
  const key = Buffer.alloc(8);
  key.writeBigUInt64LE(BigInt(id));
  return key;
}

export function decodeCgroupId(key: Buffer): number {
  return Number(key.readBigUInt64LE(0));
}

/** Socket cookies are u64 map keys; they travel as decimal strings. */
export function encodeCookie(cookie: string): Buffer {
  const key = Buffer.alloc(8);
  key.writeBigUInt64LE(BigInt(cookie));
  return key;
}

export function encodeSocket(ruleCgroupId: number): Buffer {
  const value = Buffer.alloc(L.limiter_socket.size);
  value.writeBigUInt64LE(BigInt(ruleCgroupId), L.limiter_socket.members.rule_cgroup_id.offset);
  return value;
}

export function encodeConfig(adoptedSockets: number): Buffer {
  const value = Buffer.alloc(L.limiter_config.size);
  value.writeUInt32LE(adoptedSockets, L.limiter_config.members.adopted_sockets.offset);
  return value;
}

export function encodeSlot(slot: number): Buffer {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(slot);
  return key;
}

export function encodeRule(rule: RuleValue): Buffer {
  const buf = Buffer.alloc(L.limiter_rule.size);
  for (const dir of DIRECTIONS) {
    const base = L.limiter_rule.members.limit.offset + Direction[dir] * L.limiter_limit.size;
    const limit = rule.limits[dir];
    buf.writeBigUInt64LE(BigInt(limit.rate), base + L.limiter_limit.members.rate.offset);
    buf.writeBigUInt64LE(BigInt(limit.bucket), base + L.limiter_limit.members.bucket.offset);
    buf.writeBigUInt64LE(limit.burstNs, base + L.limiter_limit.members.burst_ns.offset);
  }
  buf.writeUInt32LE(rule.slot, L.limiter_rule.members.slot.offset);
  return buf;
}

export function decodeRule(buf: Buffer): RuleValue {
  const limit = (dir: DirectionName): Limit => {
    const base = L.limiter_rule.members.limit.offset + Direction[dir] * L.limiter_limit.size;
    return {
      rate: Number(buf.readBigUInt64LE(base + L.limiter_limit.members.rate.offset)),
      bucket: Number(buf.readBigUInt64LE(base + L.limiter_limit.members.bucket.offset)),
      burstNs: buf.readBigUInt64LE(base + L.limiter_limit.members.burst_ns.offset),
    };
  };
  return {
    limits: { egress: limit('egress'), ingress: limit('ingress') },
    slot: buf.readUInt32LE(L.limiter_rule.members.slot.offset),
  };
}

export function decodeState(buf: Buffer): StateValue {
  const counters = (dir: DirectionName): Counters => {
    const base = L.limiter_state.members.dir.offset + Direction[dir] * L.limiter_counters.size;
    const m = L.limiter_counters.members;
    const u64 = (offset: number) => buf.readBigUInt64LE(base + offset);
    return {
      emptyAtNs: buf.readBigUInt64LE(base + m.empty_at_ns.offset),
      passedBytes: u64(m.passed_bytes.offset),
      passedPackets: u64(m.passed_packets.offset),
      droppedBytes: u64(m.dropped_bytes.offset),
      droppedPackets: u64(m.dropped_packets.offset),
    };
  };
  return { egress: counters('egress'), ingress: counters('ingress') };
}

export const emptyRuleBuffer = () => Buffer.alloc(L.limiter_rule.size);
export const emptyStateBuffer = () => Buffer.alloc(L.limiter_state.size);
