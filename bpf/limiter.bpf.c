// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/* The programs; what they are built from is in the headers beside this file.
 * Kn: the kernel facts in doc/design.md. */
#include "common.bpf.h"
#include "packet.bpf.h"
#include "bucket.bpf.h"
#include "window.bpf.h"
#include "adopted.bpf.h"

/* cgroup_skb/egress verdicts (design.md K2): a plain drop (0) makes UDP send()
 * fail with EPERM; 2 drops and signals congestion, which applications never see. */
#define CGROUP_DROP 0
#define CGROUP_PASS 1
#define CGROUP_DROP_CN 2

/* tcx verdicts: let the next program decide, or drop. */
#define TCX_NEXT (-1)
#define TCX_DROP 2

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/*
 * The programs on a rule's cgroup: every socket of the cgroup and its
 * descendants passes here, whenever it was created (doc/design.md K20). The
 * attachment's own storage names the rule: an unlimited direction costs a
 * helper call and an array read.
 */
static __always_inline int rule_program(struct __sk_buff *skb, enum limiter_direction dir)
{
	struct limiter_attach *attach = bpf_get_local_storage(&limiter_attach, 0);
	if (!attach->active)
		return 1;
	__u32 slot = attach->slot;
	struct limiter_rule *rule = bpf_map_lookup_elem(&limiter_rules, &slot);
	if (!rule || !rule->limit[dir].rate)
		return 1;
	struct bpf_sock *sk = NULL;
	/* A socket given to another rule, or released, is not this rule's. One
	 * given to this rule is, and the tcx programs need not police it. */
	if (owned_sockets_exist()) {
		sk = skb->sk ? bpf_sk_fullsock(skb->sk) : NULL;
		struct limiter_sk *s = owned(sk);
		if (s && s->slot != slot)
			return 1;
		if (s && !(s->flags & LIMITER_SK_INSIDE))
			__sync_fetch_and_or(&s->flags, LIMITER_SK_INSIDE);
	}
	return police(skb, sk, rule, slot, dir, 0, 0);
}

SEC("cgroup_skb/egress")
int limiter_egress(struct __sk_buff *skb)
{
	return rule_program(skb, LIMITER_EGRESS) ? CGROUP_PASS : CGROUP_DROP_CN;
}

/*
 * Received traffic, after the IP layer, before TCP or UDP sees it. A drop is
 * a loss to the remote sender, which slows down and sends the segment again;
 * the application sees nothing.
 */
SEC("cgroup_skb/ingress")
int limiter_ingress(struct __sk_buff *skb)
{
	return rule_program(skb, LIMITER_INGRESS) ? CGROUP_PASS : CGROUP_DROP;
}

/*
 * TCP sockets of a rule's cgroup, both ways: senders are paced at their
 * share of the upload rate, so that they seldom meet an empty bucket (a
 * dropped skb stays at the head of the send queue and, with nothing in
 * flight, waits for the probe timer, design.md K3); receivers advertise a
 * window of their share of the download rate.
 */
SEC("sockops")
int limiter_sockops(struct bpf_sock_ops *skops)
{
	struct limiter_attach *attach = bpf_get_local_storage(&limiter_attach, 0);
	if (!attach->active)
		return 1;
	__u32 slot = attach->slot;
	struct limiter_rule *rule = bpf_map_lookup_elem(&limiter_rules, &slot);
	if (!rule)
		return 1;
	__u32 op = skops->op;
	switch (op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: {
		/* Called back while the socket sends (RTT samples), and before
		 * each segment it sends, acknowledgements included (header
		 * options' length; none is reserved), while it receives. */
		__u32 flags = skops->bpf_sock_ops_cb_flags;
		if (rule->limit[LIMITER_EGRESS].rate)
			flags |= BPF_SOCK_OPS_RTT_CB_FLAG;
		if (rule->limit[LIMITER_INGRESS].rate)
			flags |= BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG;
		bpf_sock_ops_cb_flags_set(skops, flags);
		break;
	}
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		/* Not a listener's: it would ask for small segments long after the rule is gone. */
		if (rule->limit[LIMITER_INGRESS].rate)
			ask_small_segments(skops, &rule->limit[LIMITER_INGRESS]);
		return 1;
	case BPF_SOCK_OPS_RWND_INIT: {
		/* sk is a request socket for a connection being accepted: no storage */
		if (!rule->limit[LIMITER_INGRESS].rate)
			return 1;
		struct limiter_state *state = bpf_map_lookup_elem(&limiter_state, &slot);
		if (state)
			skops->reply = initial_window(state, &rule->limit[LIMITER_INGRESS]);
		return 1;
	}
	case BPF_SOCK_OPS_RTT_CB:
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		break;
	default:
		return 1;
	}
	struct bpf_sock *socket = skops->sk;
	if (!socket)
		return 1;
	struct limiter_sk *sk = bpf_sk_storage_get(&limiter_sockets, socket, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!sk)
		return 1;
	/* A socket given to another rule moves at that rule's share. */
	if (sk->flags & LIMITER_SK_OWNED) {
		slot = sk->slot;
		if (slot == LIMITER_NO_SLOT)
			return 1;
		rule = bpf_map_lookup_elem(&limiter_rules, &slot);
		if (!rule)
			return 1;
	}
	struct limiter_state *state = bpf_map_lookup_elem(&limiter_state, &slot);
	if (!state)
		return 1;
	/* One clock reading serves the flow count and the bucket's gain. */
	__u64 now = bpf_ktime_get_ns();
	if (op != BPF_SOCK_OPS_HDR_OPT_LEN_CB && rule->limit[LIMITER_EGRESS].rate) {
		struct limiter_sk_flow *f = &sk->dir[LIMITER_EGRESS];
		const struct limiter_limit *limit = &rule->limit[LIMITER_EGRESS];
		pace(skops, f, share_of(state, limit, f, LIMITER_EGRESS, skops->bytes_acked, now, 0), state, limit, now);
	}
	if (op != BPF_SOCK_OPS_RTT_CB && rule->limit[LIMITER_INGRESS].rate) {
		struct limiter_sk_flow *f = &sk->dir[LIMITER_INGRESS];
		const struct limiter_limit *limit = &rule->limit[LIMITER_INGRESS];
		/* A new connection counts as a flow at once: flows starting
		 * together must not each offer a window for the whole rate
		 * (design.md K26). One that moves little stops counting after
		 * an epoch. */
		int starting = op != BPF_SOCK_OPS_HDR_OPT_LEN_CB;
		__u64 share = share_of(state, limit, f, LIMITER_INGRESS, skops->bytes_received, now, starting);
		clamp_window(skops, socket, f, share, state, limit, now);
	}
	return 1;
}

SEC("tc")
int limiter_tc_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk ? bpf_sk_fullsock(skb->sk) : NULL;
	struct limiter_sk *s;
	__u32 slot;
	const struct limiter_rule *rule = sk ? adopted_rule(sk, &s, &slot) : NULL;
	if (!rule)
		return TCX_NEXT;
	__u32 link_header = link_header_len(skb);
	if (link_header > LINK_HEADER_MAX)
		return TCX_NEXT;
	if (rule->limit[LIMITER_EGRESS].rate && !police(skb, sk, rule, slot, LIMITER_EGRESS, link_header, 0))
		return TCX_DROP;
	if (rule->limit[LIMITER_INGRESS].rate)
		narrow_window(skb, sk, s, &rule->limit[LIMITER_INGRESS], slot, link_header);
	return TCX_NEXT;
}

SEC("tc")
int limiter_tc_ingress(struct __sk_buff *skb)
{
	if (!owned_sockets_exist())
		return TCX_NEXT;
	__u32 link_header = link_header_len(skb);
	if (link_header > LINK_HEADER_MAX)
		return TCX_NEXT;
	struct bpf_sock *sk = receiver(skb, link_header);
	if (!sk)
		return TCX_NEXT;
	struct limiter_sk *s;
	__u32 slot;
	const struct limiter_rule *rule = adopted_rule(sk, &s, &slot);
	int pass = !rule || !rule->limit[LIMITER_INGRESS].rate ||
		   police(skb, sk, rule, slot, LIMITER_INGRESS, link_header, sent_before_limit(skb, sk, s, link_header));
	bpf_sk_release(sk);
	return pass ? TCX_NEXT : TCX_DROP;
}
