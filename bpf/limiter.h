/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * The ABI shared by the BPF program and user space. lib/abi.ts mirrors it and
 * test/unit/abi.test.ts checks that mirror against the BTF of the built object.
 * The maps outlive the program (reload keeps them), so a changed value layout
 * makes libbpf refuse to reuse the old pins.
 */
#ifndef LIMITER_H
#define LIMITER_H

#include <linux/types.h>

#define LIMITER_MAX_RULES 16384
#define LIMITER_MAX_SOCKETS 65536

/* Names as the kernel and bpffs see them (BPF object names are <= 15 chars). */
#define LIMITER_PROG_EGRESS    "limiter_egress"
#define LIMITER_PROG_INGRESS   "limiter_ingress"
#define LIMITER_PROG_TC_EGRESS "limiter_tc_egress"
#define LIMITER_PROG_SOCKOPS   "limiter_sockops"
#define LIMITER_MAP_RULES      "limiter_rules"
#define LIMITER_MAP_STATE      "limiter_state"
#define LIMITER_MAP_SOCKETS    "limiter_socks"
#define LIMITER_MAP_CONFIG     "limiter_config"
#define LIMITER_MAP_SK_RULE    "limiter_sk_rule"

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

/* Value of the rules map (key: cgroup id, __u64). Written only by user space. */
struct limiter_rule {
	struct limiter_limit limit[LIMITER_DIRECTIONS];
	__u32 slot;  /* index of this rule's limiter_state */
	__u32 flags; /* reserved, 0 */
};

/*
 * Token bucket as a point in time: the bucket holds
 * min(bucket, (now - empty_at_ns) * rate) bytes. Keeping a time instead of a
 * token count lets every CPU update it with one atomic add and no lock.
 */
struct limiter_counters {
	__u64 empty_at_ns;
	__u64 passed_bytes;
	__u64 passed_packets;
	__u64 dropped_bytes;
	__u64 dropped_packets;
};

/* Value of the state array (key: slot, __u32). Written only by the programs. */
struct limiter_state {
	struct limiter_counters dir[LIMITER_DIRECTIONS];
	/* TCP flows counted in the current and the previous epoch of
	 * LIMITER_FLOW_EPOCH_NS: each is paced at its share of the rate.
	 * Sockets that send little (a control connection, an interactive one)
	 * do not count and take no share. */
	__u64 flow_epoch;
	__u32 flows_now;
	__u32 flows_prev;
	/* A recent clock reading: while the bucket holds tokens as of then, it
	 * holds them now, and reading the clock (slow on VMs) can wait. */
	__u64 clock_ns;
};

#define LIMITER_FLOW_EPOCH_NS 500000000ULL

/* Value of the socket storage (per TCP socket created in a rule). */
struct limiter_sk {
	__u64 rule_cgroup_id; /* noted in connect() or listen(); accepted sockets inherit it */
	__u64 epoch;          /* the last flow epoch the socket was seen in */
	__u64 acked_mark;     /* bytes_acked when it was last counted */
	__u32 pacing;         /* the SO_MAX_PACING_RATE last set, bytes per second */
	__u32 counted;        /* counted among the sending flows of that epoch */
};

/*
 * Value of the sockets map (key: socket cookie, __u64): the rule a socket
 * belongs to although it was created outside that rule's cgroup (a socket
 * keeps the cgroup it was created in, design.md K5). Written only by user space.
 */
struct limiter_socket {
	__u64 rule_cgroup_id;
};

/* The single value of the config array (key 0). Written only by user space. */
struct limiter_config {
	__u32 adopted_sockets; /* entries in the sockets map; 0 spares the lookup */
	__u32 flags;           /* reserved, 0 */
};

#endif
