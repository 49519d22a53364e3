/**
 * TypeScript mirror of bpf/limiter.h. test/unit/abi.test.ts checks every
 * layout and name here against the BTF and the header of the built object.
 */
import { usageError } from '../errors.js';

export const MAX_RULES = 16384;
/** limiter_sk.slot of a socket released from its rule */
export const NO_SLOT = 0xffffffff;
/** limiter_sk.flags */
export const SK_OWNED = 1;

export const PROG_EGRESS = 'limiter_egress';
export const PROG_INGRESS = 'limiter_ingress';
export const PROG_SOCKOPS = 'limiter_sockops';
export const PROG_TC_EGRESS = 'limiter_tc_egress';
export const PROG_TC_INGRESS = 'limiter_tc_ingress';
export const MAP_RULES = 'limiter_rules';
export const MAP_STATE = 'limiter_state';
export const MAP_ATTACH = 'limiter_attach';
export const MAP_SOCKETS = 'limiter_sockets';
export const MAP_CONFIG = 'limiter_config';
export const MAP_TALLY = 'limiter_tally';

export const MAPS = [MAP_RULES, MAP_STATE, MAP_ATTACH, MAP_SOCKETS, MAP_CONFIG, MAP_TALLY] as const;
export const PROGRAMS = [PROG_EGRESS, PROG_INGRESS, PROG_SOCKOPS, PROG_TC_EGRESS, PROG_TC_INGRESS] as const;
export type MapName = (typeof MAPS)[number];
export type ProgramName = (typeof PROGRAMS)[number];

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
    members: { limit: { offset: 0, size: 48 }, cgroup_id: { offset: 48, size: 8 } },
  },
  limiter_bucket: {
    size: 8,
    members: { empty_at_ns: { offset: 0, size: 8 } },
  },
  limiter_counters: {
    size: 32,
    members: {
      passed_bytes: { offset: 0, size: 8 },
      passed_packets: { offset: 8, size: 8 },
      dropped_bytes: { offset: 16, size: 8 },
      dropped_packets: { offset: 24, size: 8 },
    },
  },
  limiter_tally: {
    size: 64,
    members: { dir: { offset: 0, size: 64 } },
  },
  limiter_flows: {
    size: 16,
    members: { epoch: { offset: 0, size: 8 }, now: { offset: 8, size: 4 }, prev: { offset: 12, size: 4 } },
  },
  limiter_state: {
    size: 56,
    members: {
      dir: { offset: 0, size: 16 },
      flows: { offset: 16, size: 32 },
      clock_ns: { offset: 48, size: 8 },
    },
  },
  limiter_attach: {
    size: 8,
    members: { slot: { offset: 0, size: 4 }, active: { offset: 4, size: 4 } },
  },
  limiter_sk_flow: {
    size: 24,
    members: {
      epoch: { offset: 0, size: 8 },
      mark: { offset: 8, size: 8 },
      value: { offset: 16, size: 4 },
      counted: { offset: 20, size: 4 },
    },
  },
  limiter_sk: {
    size: 96,
    members: {
      owner: { offset: 0, size: 8 },
      slot: { offset: 8, size: 4 },
      flags: { offset: 12, size: 4 },
      dir: { offset: 16, size: 48 },
      dropped_end: { offset: 64, size: 8 },
      adopted_end: { offset: 72, size: 8 },
      window_end: { offset: 80, size: 8 },
      first_tsval: { offset: 88, size: 8 },
    },
  },
  limiter_config: {
    size: 8,
    members: { owned_sockets: { offset: 0, size: 4 }, flags: { offset: 4, size: 4 } },
  },
} satisfies Record<string, Layout>;

const L = LAYOUT;

export interface Limit {
  /** bytes per second; 0: not limited in this direction */
  rate: number;
  bucket: number;
  burstNs: bigint;
}

export type Limits = Record<DirectionName, Limit>;

/** A slot of the rules array. */
export interface RuleValue {
  limits: Limits;
  /** the cgroup the rule limits; 0: a free slot */
  cgroupId: number;
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
export const NO_LIMITS: Limits = { egress: NO_LIMIT, ingress: NO_LIMIT };

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

export function u32Key(value: number): Buffer {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(value);
  return key;
}

export function u64Key(value: number): Buffer {
  const key = Buffer.alloc(8);
  key.writeBigUInt64LE(BigInt(value));
  return key;
}

/** The key of the sockets map from user space: a file descriptor of the socket. */
export const socketKey = (fd: number) => {
  const key = Buffer.alloc(4);
  key.writeInt32LE(fd);
  return key;
};

export function encodeRule(rule: RuleValue): Buffer {
  const buf = Buffer.alloc(L.limiter_rule.size);
  for (const dir of DIRECTIONS) {
    const base = L.limiter_rule.members.limit.offset + Direction[dir] * L.limiter_limit.size;
    const limit = rule.limits[dir];
    buf.writeBigUInt64LE(BigInt(limit.rate), base + L.limiter_limit.members.rate.offset);
    buf.writeBigUInt64LE(BigInt(limit.bucket), base + L.limiter_limit.members.bucket.offset);
    buf.writeBigUInt64LE(limit.burstNs, base + L.limiter_limit.members.burst_ns.offset);
  }
  buf.writeBigUInt64LE(BigInt(rule.cgroupId), L.limiter_rule.members.cgroup_id.offset);
  return buf;
}

export function decodeRule(buf: Buffer, at = 0): RuleValue {
  const limit = (dir: DirectionName): Limit => {
    const base = at + L.limiter_rule.members.limit.offset + Direction[dir] * L.limiter_limit.size;
    return {
      rate: Number(buf.readBigUInt64LE(base + L.limiter_limit.members.rate.offset)),
      bucket: Number(buf.readBigUInt64LE(base + L.limiter_limit.members.bucket.offset)),
      burstNs: buf.readBigUInt64LE(base + L.limiter_limit.members.burst_ns.offset),
    };
  };
  return {
    limits: { egress: limit('egress'), ingress: limit('ingress') },
    cgroupId: Number(buf.readBigUInt64LE(at + L.limiter_rule.members.cgroup_id.offset)),
  };
}

/**
 * A rule's buckets (from its state) and counters (from its tally, one value
 * per possible CPU, each rounded up to 8 bytes, which are added up).
 */
export function decodeState(state: Buffer, tally: Buffer, cpus: number): StateValue {
  const read = (dir: DirectionName): Counters => {
    const bucket = L.limiter_state.members.dir.offset + Direction[dir] * L.limiter_bucket.size;
    const m = L.limiter_counters.members;
    const sum = (offset: number) => {
      let total = 0n;
      for (let cpu = 0; cpu < cpus; cpu++) {
        total += tally.readBigUInt64LE(cpu * L.limiter_tally.size + Direction[dir] * L.limiter_counters.size + offset);
      }
      return total & 0xffffffffffffffffn;
    };
    return {
      emptyAtNs: state.readBigUInt64LE(bucket + L.limiter_bucket.members.empty_at_ns.offset),
      passedBytes: sum(m.passed_bytes.offset),
      passedPackets: sum(m.passed_packets.offset),
      droppedBytes: sum(m.dropped_bytes.offset),
      droppedPackets: sum(m.dropped_packets.offset),
    };
  };
  return { egress: read('egress'), ingress: read('ingress') };
}

export function encodeAttach(slot: number): Buffer {
  const value = Buffer.alloc(L.limiter_attach.size);
  value.writeUInt32LE(slot, L.limiter_attach.members.slot.offset);
  value.writeUInt32LE(1, L.limiter_attach.members.active.offset);
  return value;
}

/** The slot an attachment's storage names, or null while it is not set. */
export function decodeAttach(buf: Buffer): number | null {
  return buf.readUInt32LE(L.limiter_attach.members.active.offset) === 1
    ? buf.readUInt32LE(L.limiter_attach.members.slot.offset)
    : null;
}

/** A socket's storage that gives it to the rule at slot (made for owner, its cgroup id), or releases it (NO_SLOT). */
export function encodeOwnedSocket(owner: number, slot: number): Buffer {
  const value = Buffer.alloc(L.limiter_sk.size);
  value.writeBigUInt64LE(BigInt(owner), L.limiter_sk.members.owner.offset);
  value.writeUInt32LE(slot, L.limiter_sk.members.slot.offset);
  value.writeUInt32LE(SK_OWNED, L.limiter_sk.members.flags.offset);
  return value;
}

export function encodeConfig(ownedSockets: boolean): Buffer {
  const value = Buffer.alloc(L.limiter_config.size);
  value.writeUInt32LE(ownedSockets ? 1 : 0, L.limiter_config.members.owned_sockets.offset);
  return value;
}

export const emptyRuleBuffer = () => Buffer.alloc(L.limiter_rule.size);
export const emptyStateBuffer = () => Buffer.alloc(L.limiter_state.size);
export const emptyTallyBuffer = (cpus: number) => Buffer.alloc(L.limiter_tally.size * cpus);
export const emptyAttachBuffer = () => Buffer.alloc(L.limiter_attach.size);
export const emptySocketBuffer = () => Buffer.alloc(L.limiter_sk.size);
