// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/* What every part of the programs uses: the maps, the grace an skb may
 * borrow, a socket's storage and round trip, and the two measures that
 * both the bucket and the windows go by.
 * Kn: the kernel facts in doc/design.md. */
#ifndef LIMITER_COMMON_BPF_H
#define LIMITER_COMMON_BPF_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "limiter.h"

#define NSEC_PER_SEC 1000000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LIMITER_MAX_RULES);
	__type(key, __u32);
	__type(value, struct limiter_rule);
} limiter_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LIMITER_MAX_RULES);
	__type(key, __u32);
	__type(value, struct limiter_state);
} limiter_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LIMITER_MAX_RULES);
	__type(key, __u32);
	__type(value, struct limiter_tally);
} limiter_tally SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_STORAGE);
	__type(key, __u64);
	__type(value, struct limiter_attach);
} limiter_attach SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct limiter_sk);
} limiter_sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct limiter_config);
} limiter_config SEC(".maps");

/* The fields of the kernel's struct tcp_sock the programs read (CO-RE: found by name in its BTF). */
struct tcp_sock___limiter {
	struct {
		__u32 rtt_us; /* the receiver's round-trip estimate, << 3 */
	} rcv_rtt_est;
	struct {
		__u16 user_mss; /* TCP_MAXSEG: the largest segment it asks its peer for; 0: the route's */
		__u16 snd_wscale : 4, rcv_wscale : 4; /* the window it advertises is in units of 2^rcv_wscale bytes */
	} rx_opt;
	__u32 window_clamp;
	__u32 rcv_wup; /* the window it last offered ends at rcv_wup + rcv_wnd */
	__u32 rcv_wnd;
} __attribute__((preserve_access_index));

/*
 * A TCP skb dropped while its socket has nothing in flight waits for the
 * probe timer, 200 ms or more (design.md K3). Such an skb may take the bucket
 * further into debt rather than stall its flow: by 64 KiB or, sending, by
 * the bucket's length if that is more (K37), and by no more than 1/16 s of rate,
 * so that any window stays within 1/16 of its bound.
 */
#define STALL_GRACE_BYTES 65536ULL
#define STALL_GRACE_MAX_NS (NSEC_PER_SEC / 16)
#define INGRESS_GRACE_FACTOR 4
#define INGRESS_GRACE_MAX_NS (INGRESS_GRACE_FACTOR * STALL_GRACE_MAX_NS)
/* A receive window smaller than this many segments stalls a flow (delayed
 * acknowledgements, loss recovery): no window is clamped below it. */
#define MIN_WINDOW_SEGMENTS 2

/*
 * How far an skb that would otherwise be lost may take the bucket into debt.
 * Received, a retransmission may borrow more: one loopback GSO skb alone
 * takes 64 KiB (design.md K24).
 */
static __always_inline __u64 grace_of(const struct limiter_limit *limit, enum limiter_direction dir)
{
	if (dir == LIMITER_INGRESS) {
		__u64 grace_ns = INGRESS_GRACE_FACTOR * STALL_GRACE_BYTES * NSEC_PER_SEC / limit->rate;
		return grace_ns < INGRESS_GRACE_MAX_NS ? grace_ns : INGRESS_GRACE_MAX_NS;
	}
	__u64 grace_ns = STALL_GRACE_BYTES * NSEC_PER_SEC / limit->rate;
	if (grace_ns < limit->burst_ns)
		grace_ns = limit->burst_ns;
	return grace_ns < STALL_GRACE_MAX_NS ? grace_ns : STALL_GRACE_MAX_NS;
}

/* The skb's full socket: sk when the caller has it already, else looked up. */
static __always_inline struct bpf_sock *full_sock(struct __sk_buff *skb, struct bpf_sock *sk)
{
	return sk || !skb->sk ? sk : bpf_sk_fullsock(skb->sk);
}

/* A full socket's storage, or NULL (none, or no socket). */
static __always_inline struct limiter_sk *storage_of(struct bpf_sock *sk, __u64 flags)
{
	return sk ? bpf_sk_storage_get(&limiter_sockets, sk, 0, flags) : NULL;
}

/* A socket's smoothed round trip in ns; the kernel keeps it as 8 × µs. */
static __always_inline __u64 srtt_ns(__u32 srtt_us_x8)
{
	return (__u64)(srtt_us_x8 >> 3) * 1000;
}

/*
 * A received sequence number as a count of the connection's bytes: its
 * distance from the next byte the socket expects (never more than a window,
 * < 2^30) added to the bytes it has received.
 */
static __always_inline __u64 received_at(struct bpf_tcp_sock *tp, __u32 seq)
{
	return tp->bytes_received + (__s32)(seq - tp->rcv_nxt);
}

/*
 * How far a round trip's share, sent at once, takes the bucket into debt as
 * it arrives: the round trip less what the bucket holds, and half a round
 * trip at least. Debt beyond it means a receiver's flows run ahead of the
 * rate (design.md K30, K40).
 */
static __always_inline __u64 window_debt_ns(__u64 rtt_ns, const struct limiter_limit *limit)
{
	return rtt_ns > 2 * limit->burst_ns ? rtt_ns - limit->burst_ns : rtt_ns / 2;
}

/* No window can hold a flow at the whole rate over its round trip: even two segments carry more. */
static __always_inline int window_cannot_limit(struct bpf_tcp_sock *tp, const struct limiter_limit *limit)
{
	return limit->rate * (tp->srtt_us >> 3) / 1000000 < MIN_WINDOW_SEGMENTS * tp->mss_cache;
}

/* The storage of a socket that user space gave to a rule (or released), or NULL. */
static __always_inline struct limiter_sk *owned(struct bpf_sock *sk)
{
	struct limiter_sk *s = storage_of(sk, 0);
	return s && (s->flags & LIMITER_SK_OWNED) ? s : NULL;
}

static __always_inline int owned_sockets_exist(void)
{
	__u32 zero = 0;
	struct limiter_config *config = bpf_map_lookup_elem(&limiter_config, &zero);
	return config && config->owned_sockets;
}

#endif /* LIMITER_COMMON_BPF_H */
