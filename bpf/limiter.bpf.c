// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "limiter.h"

#define NSEC_PER_SEC 1000000000ULL

/* cgroup_skb/egress verdicts (DESIGN K2): a plain drop (0) makes UDP send()
 * fail with EPERM; 2 drops and signals congestion, which applications never see. */
#define CGROUP_PASS 1
#define CGROUP_DROP_CN 2
/* tcx verdicts: let the next program decide, or drop (the sender sees congestion as above). */
#define TCX_NEXT (-1)
#define TCX_DROP 2

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LIMITER_MAX_RULES);
	__type(key, __u64);
	__type(value, struct limiter_rule);
} limiter_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LIMITER_MAX_RULES);
	__type(key, __u32);
	__type(value, struct limiter_state);
} limiter_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LIMITER_MAX_SOCKETS);
	__type(key, __u64);
	__type(value, struct limiter_socket);
} limiter_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct limiter_config);
} limiter_config SEC(".maps");

/*
 * Token bucket that may go into debt by one skb: an skb passes whenever the
 * bucket is not empty, however large the skb (DESIGN K3: GSO skbs on loopback
 * reach 64 KiB, more than a small bucket ever holds).
 */
static __always_inline int conforms(const struct limiter_limit *limit,
				    struct limiter_counters *c, __u32 len)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 full_at = now > limit->burst_ns ? now - limit->burst_ns : 0;
	__u64 empty_at = *(volatile __u64 *)&c->empty_at_ns;

	/* Unused time beyond a full bucket is forfeit. A lost race here only
	 * means another CPU already moved empty_at forward. */
	if ((__s64)(empty_at - full_at) < 0) {
		__sync_val_compare_and_swap(&c->empty_at_ns, empty_at, full_at);
		empty_at = full_at;
	}
	if ((__s64)(empty_at - now) > 0)
		return 0;
	__sync_fetch_and_add(&c->empty_at_ns, (__u64)len * NSEC_PER_SEC / limit->rate);
	return 1;
}

/* 1: pass, 0: drop. Traffic of a cgroup without a rule costs the one lookup. */
static __always_inline int police(struct limiter_rule *rule, enum limiter_direction dir, __u32 len)
{
	__u32 slot = rule->slot;
	struct limiter_state *state = bpf_map_lookup_elem(&limiter_state, &slot);
	if (!state)
		return 1;

	const struct limiter_limit *limit = &rule->limit[dir];
	struct limiter_counters *c = &state->dir[dir];
	if (limit->rate && !conforms(limit, c, len)) {
		__sync_fetch_and_add(&c->dropped_bytes, len);
		__sync_fetch_and_add(&c->dropped_packets, 1);
		return 0;
	}
	__sync_fetch_and_add(&c->passed_bytes, len);
	__sync_fetch_and_add(&c->passed_packets, 1);
	return 1;
}

/*
 * Whether the skb's socket has an entry in the sockets map, and if so the
 * rule it belongs to (0: released, no rule).
 */
static __always_inline int adopted(struct __sk_buff *skb, __u64 *rule_cgroup_id)
{
	__u32 zero = 0;
	struct limiter_config *config = bpf_map_lookup_elem(&limiter_config, &zero);
	if (!config || !config->adopted_sockets)
		return 0;
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct limiter_socket *socket = bpf_map_lookup_elem(&limiter_socks, &cookie);
	if (!socket)
		return 0;
	*rule_cgroup_id = socket->rule_cgroup_id;
	return 1;
}

/* Keyed on the socket's cgroup, not the current task's (DESIGN K1). */
SEC("cgroup_skb/egress")
int limiter_egress(struct __sk_buff *skb)
{
	__u64 key;
	if (!adopted(skb, &key))
		key = bpf_skb_cgroup_id(skb);
	struct limiter_rule *rule = bpf_map_lookup_elem(&limiter_rules, &key);
	if (!rule)
		return CGROUP_PASS;
	return police(rule, LIMITER_EGRESS, skb->len) ? CGROUP_PASS : CGROUP_DROP_CN;
}

/*
 * Sockets created before their process was limited live in a cgroup outside
 * the instance, where limiter_egress never runs. This program, attached with
 * tcx to the interfaces of their network namespace, limits them by cookie.
 */
SEC("tc")
int limiter_tc_egress(struct __sk_buff *skb)
{
	__u64 key;
	if (!adopted(skb, &key))
		return TCX_NEXT;
	/* limiter_egress has already policed sockets that live in a rule's cgroup */
	__u64 cgroup = bpf_skb_cgroup_id(skb);
	if (bpf_map_lookup_elem(&limiter_rules, &cgroup))
		return TCX_NEXT;
	struct limiter_rule *rule = bpf_map_lookup_elem(&limiter_rules, &key);
	if (!rule)
		return TCX_NEXT;
	return police(rule, LIMITER_EGRESS, skb->len) ? TCX_NEXT : TCX_DROP;
}
