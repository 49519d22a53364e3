// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/* Sockets limited while they already ran, outside the rule's cgroup: what
 * the tcx programs know of them.
 * Kn: the kernel facts in doc/design.md. */
#ifndef LIMITER_ADOPTED_BPF_H
#define LIMITER_ADOPTED_BPF_H

#include "common.bpf.h"
#include "packet.bpf.h"
#include "window.bpf.h"

/*
 * Sockets given to a rule although their cgroup is outside it (created before
 * their process was limited, design.md K5, or accepted by such a listener,
 * K14): the tcx programs on the interfaces of their network namespace police
 * them. Sockets inside the rule's own cgroup tree are the rule programs'
 * (they say so with LIMITER_SK_INSIDE on the first packet they see). The
 * rule of such a socket, with its storage and slot, or NULL.
 */
static __always_inline const struct limiter_rule *adopted_rule(struct bpf_sock *sk, struct limiter_sk **storage,
								 __u32 *slot)
{
	struct limiter_sk *s = owned(sk);
	if (!s || s->slot == LIMITER_NO_SLOT || (s->flags & LIMITER_SK_INSIDE))
		return NULL;
	__u32 key = s->slot;
	struct limiter_rule *rule = bpf_map_lookup_elem(&limiter_rules, &key);
	if (!rule || rule->cgroup_id != s->owner)
		return NULL;
	*storage = s;
	*slot = key;
	return rule;
}

/*
 * Notes, once, where the window an adopted receiver offered before the tc
 * programs first saw it ends: a receiver never moves that end back, so no
 * earlier offer ended further.
 */
static __always_inline void note_adopted_end(struct limiter_sk *s, struct bpf_tcp_sock *tcp, struct bpf_sock *sk)
{
	if (s->adopted_end)
		return;
	struct tcp_sock___limiter *tp = (void *)bpf_skc_to_tcp_sock(sk);
	if (tp)
		s->adopted_end = received_at(tcp, BPF_CORE_READ(tp, rcv_wup) + BPF_CORE_READ(tp, rcv_wnd));
}

/*
 * An adopted TCP receiver offers the window clamp_window would set for it,
 * at most: no sock_ops program sees it (design.md K28), so the window field
 * of what it sends is narrowed on the way out. Its own window is left as it
 * is; the sender goes by the narrower one.
 */
static __always_inline void narrow_window(struct __sk_buff *skb, struct bpf_sock *sk, struct limiter_sk *s,
					  const struct limiter_limit *limit, __u32 slot, __u32 link_header)
{
	struct bpf_tcp_sock *tcp = bpf_tcp_sock(sk);
	struct tcp_sock___limiter *tp = (void *)bpf_skc_to_tcp_sock(sk);
	struct limiter_state *state = bpf_map_lookup_elem(&limiter_state, &slot);
	__u32 offset;
	struct tcphdr *th = tcp_header(skb, link_header, &offset);
	/* a SYN's window is not scaled, and the connection's are set up already */
	if (!tcp || !tp || !state || !th || th->syn || !th->ack)
		return;
	__be16 offered = th->window;
	__u64 now = bpf_ktime_get_ns();
	struct limiter_sk_flow *f = &s->dir[LIMITER_INGRESS];
	__u64 share = share_of(state, limit, f, LIMITER_INGRESS, tcp->bytes_received, now, 0);
	__u32 window = receive_window(f, share, state, limit, now, receiver_rtt_us(tp, tcp->srtt_us),
				      tcp->mss_cache ? tcp->mss_cache : TYPICAL_MSS, sk->src_port ^ sk->dst_port, 1);
	__u32 wscale = BPF_CORE_READ_BITFIELD_PROBED(tp, rx_opt.rcv_wscale);
	note_adopted_end(s, tcp, sk);
	__u32 tsval, tsecr;
	if (!s->first_tsval)
		s->first_tsval = tcp_timestamps(skb, th, &tsval, &tsecr) ? LIMITER_FIRST_TSVAL_NOTED | tsval : LIMITER_FIRST_TSVAL_NONE;
	__u64 acknowledged = received_at(tcp, bpf_ntohl(th->ack_seq));
	__u64 offered_end = acknowledged + ((__u64)bpf_ntohs(offered) << wscale);
	__u32 scaled = window >> wscale;
	if (scaled < bpf_ntohs(offered)) {
		__be16 narrowed = bpf_htons(scaled ? scaled : 1);
		bpf_l4_csum_replace(skb, offset + offsetof(struct tcphdr, check), offered, narrowed, sizeof(narrowed));
		bpf_skb_store_bytes(skb, offset + offsetof(struct tcphdr, window), &narrowed, sizeof(narrowed), 0);
		offered_end = acknowledged + ((__u64)(scaled ? scaled : 1) << wscale);
	}
	if (offered_end > s->window_end)
		s->window_end = offered_end;
}

/*
 * A received segment that ends within the window an adopted receiver offered
 * before the tc programs saw it, and that its sender sent before it saw a
 * narrowed window: it echoes a timestamp no later than the first the tc
 * programs saw the receiver send (a timestamp ticks once a ms: segments
 * sent before that one in the same ms carry it too, and megabytes may
 * answer them), or, without timestamps, it ends beyond every window offered
 * since. It has crossed the link already; dropped, it would be sent again at
 * what cwnd the sender kept in recovery, a few segments a round trip
 * (design.md K39, K40).
 */
static __always_inline int sent_before_limit(struct __sk_buff *skb, struct bpf_sock *sk, struct limiter_sk *s,
					     __u32 link_header)
{
	__u32 offset, tsval, tsecr;
	struct tcphdr *th = tcp_header(skb, link_header, &offset);
	if (!th)
		return 0;
	int echoes = (s->first_tsval & LIMITER_FIRST_TSVAL_NOTED) && tcp_timestamps(skb, th, &tsval, &tsecr);
	/* Sent since: nearly every segment once the flight has passed, told without a helper call. */
	if (echoes && (__s32)(tsecr - (__u32)s->first_tsval) > 0)
		return 0;
	struct bpf_tcp_sock *tcp = bpf_tcp_sock(sk);
	if (!tcp)
		return 0;
	note_adopted_end(s, tcp, sk);
	__u64 end = received_at(tcp, end_seq_of(skb, th, offset));
	if (end > s->adopted_end)
		return 0;
	/* the receiver has sent nothing since it was adopted, or the segment echoes what it sent before */
	if (!s->first_tsval || echoes)
		return 1;
	return end > s->window_end;
}

#endif /* LIMITER_ADOPTED_BPF_H */
