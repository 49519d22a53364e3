/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * The ABI shared by the BPF programs and user space. lib/kernel/abi.ts
 * mirrors it and test/unit/abi.test.ts checks that mirror against the BTF of
 * the built object. The maps outlive the programs (reload keeps them), so a
 * changed value layout makes libbpf refuse to reuse the old pins.
 *
 * A rule is a slot: its limits in limiter_rules[slot], its buckets and
 * counters in limiter_state[slot]. The programs are attached to each rule's
 * cgroup; the cgroup's limiter_attach (per-attachment cgroup storage) names
 * the slot, so a packet costs no lookup by key (doc/design.md K20).
 */
#ifndef LIMITER_H
#define LIMITER_H

#include <linux/types.h>

#define LIMITER_MAX_RULES 16384

/* Names as the kernel and bpffs see them (BPF object names are <= 15 chars). */
#define LIMITER_PROG_EGRESS     "limiter_egress"
#define LIMITER_PROG_INGRESS    "limiter_ingress"
#define LIMITER_PROG_SOCKOPS    "limiter_sockops"
#define LIMITER_PROG_TC_EGRESS  "limiter_tc_egress"
#define LIMITER_PROG_TC_INGRESS "limiter_tc_ingress"
#define LIMITER_MAP_RULES       "limiter_rules"
#define LIMITER_MAP_STATE       "limiter_state"
#define LIMITER_MAP_ATTACH      "limiter_attach"
#define LIMITER_MAP_SOCKETS     "limiter_sockets"
#define LIMITER_MAP_CONFIG      "limiter_config"
#define LIMITER_MAP_TALLY       "limiter_tally"

enum limiter_direction {
	LIMITER_EGRESS = 0,
	LIMITER_INGRESS = 1,
	LIMITER_DIRECTIONS = 2,
};

/* One direction's token bucket. rate == 0: this direction is not limited. */
struct limiter_limit {
	__u64 rate;     /* bytes per second */
	__u64 bucket;   /* bytes */
	__u64 burst_ns; /* bucket / rate, in ns: user space divides so the program need not */
};

/* Value of the rules array (key: slot). Written only by user space. */
struct limiter_rule {
	struct limiter_limit limit[LIMITER_DIRECTIONS];
	/* the cgroup the rule limits (its programs are attached there); 0: slot free */
	__u64 cgroup_id;
};

/*
 * Token bucket as a point in time: the bucket holds
 * min(bucket, (now - empty_at_ns) * rate) bytes. Keeping a time instead of a
 * token count lets every CPU update it with one atomic add and no lock.
 */
struct limiter_bucket {
	__u64 empty_at_ns;
};

/* What a rule let through and dropped in one direction, payload bytes and packets. */
struct limiter_counters {
	__u64 passed_bytes;
	__u64 passed_packets;
	__u64 dropped_bytes;
	__u64 dropped_packets;
};

/*
 * Value of the tally array (key: slot): per CPU, so that counting costs no
 * atomic operation; user space adds the CPUs up. Written only by the programs.
 */
struct limiter_tally {
	struct limiter_counters dir[LIMITER_DIRECTIONS];
};

/*
 * TCP flows of a rule moving data in one direction, counted in the current
 * and the previous epoch of LIMITER_FLOW_EPOCH_NS: each gets its share of
 * the rate (senders as a pacing rate, receivers as a receive window).
 * Sockets that move little (a control connection, an interactive one) do
 * not count and take no share; a receiver counts from its handshake until
 * the epoch after it, so that flows starting together share from the start.
 */
struct limiter_flows {
	__u64 epoch;
	__u32 now;
	__u32 prev;
};

/* Value of the state array (key: slot). Written only by the programs. */
struct limiter_state {
	struct limiter_bucket dir[LIMITER_DIRECTIONS];
	struct limiter_flows flows[LIMITER_DIRECTIONS];
	/* A recent clock reading: while the bucket holds tokens as of then, it
	 * holds them now, and reading the clock (slow on VMs) can wait. */
	__u64 clock_ns;
};

#define LIMITER_FLOW_EPOCH_NS 500000000ULL

/*
 * Value of the per-attachment cgroup storage (key: the cgroup id; shared by
 * the egress, ingress and sockops attachments of one cgroup). Written by user
 * space once the programs are attached; all zero until then.
 */
struct limiter_attach {
	__u32 slot;
	__u32 active; /* 1 once slot is valid */
};

/* No rule: a socket released from its rule (limiter_sk.slot). */
#define LIMITER_NO_SLOT 0xffffffffU
/* limiter_sk.flags */
#define LIMITER_SK_OWNED 1  /* user space: the socket belongs to limiter_sk.slot, wherever its cgroup is */
#define LIMITER_SK_INSIDE 2 /* the programs: it lives in that rule's cgroup tree, whose programs police it */
/* limiter_sk.first_tsval above its TSval: one was noted, or the first segment carried none */
#define LIMITER_FIRST_TSVAL_NOTED (1ULL << 32)
#define LIMITER_FIRST_TSVAL_NONE (1ULL << 33)

/* A TCP socket's part in its rule's flows of one direction. */
struct limiter_sk_flow {
	__u64 epoch;   /* the last flow epoch the socket was seen in */
	__u64 mark;    /* bytes acknowledged (egress) or received (ingress) when it was last counted */
	__u32 value;   /* what was last set: SO_MAX_PACING_RATE (bytes/s) or TCP_WINDOW_CLAMP (bytes) */
	__u32 counted; /* counted among the flows of that epoch */
};

/*
 * Value of the socket storage. User space writes owner, slot and flags
 * (through a socket fd) for the sockets of a process it limits or releases;
 * a listener's storage is copied to the connections it accepts (BPF_F_CLONE).
 * The sockops program keeps the flow fields of sockets in a rule.
 */
struct limiter_sk {
	__u64 owner; /* cgroup id of the rule at slot when it was written: a reused slot is another rule */
	__u32 slot;
	__u32 flags;
	struct limiter_sk_flow dir[LIMITER_DIRECTIONS];
	/* TCP, received: where the last segment the bucket dropped ended, as a
	 * count of the connection's bytes (0: none dropped), so that its
	 * retransmission is known and let through. A count, not a sequence
	 * number: sequence numbers wrap and start anywhere (design.md K27). */
	__u64 dropped_end;
	/* TCP, received, adopted: the end of the window it had offered when the
	 * tc programs first saw it, and the furthest end offered since, narrowed
	 * or not (counts, as dropped_end; 0: none yet). What arrives between the
	 * two was sent before its sender knew of the limit (design.md K39). */
	__u64 adopted_end;
	__u64 window_end;
	/* TCP, received, adopted: the TSval of the first segment it sent that
	 * the tc programs saw, with a LIMITER_FIRST_TSVAL_ flag above it (0: none yet). A segment
	 * echoing no later one was sent before its sender saw a window they
	 * narrowed (design.md K40). */
	__u64 first_tsval;
};

/* The single value of the config array (key 0). Written only by user space. */
struct limiter_config {
	__u32 owned_sockets; /* some socket has LIMITER_SK_OWNED: rule programs must look */
	__u32 flags;         /* reserved, 0 */
};

#endif
