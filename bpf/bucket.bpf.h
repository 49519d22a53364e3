// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/* The token bucket: what passes, what is dropped, and how far an skb that
 * would stall its flow may take the bucket into debt.
 * Kn: the kernel facts in doc/design.md. */
#ifndef LIMITER_BUCKET_BPF_H
#define LIMITER_BUCKET_BPF_H

#include "common.bpf.h"
#include "packet.bpf.h"

/* A sender's loss probe waits two ticks or more, 8 ms at HZ=250 (design.md K27). */
#define SHORT_RTT_BORROW_NS 10000000ULL

static __always_inline int would_stall(struct bpf_sock *sk)
{
	if (!sk)
		return 0;
	struct bpf_tcp_sock *tp = bpf_tcp_sock(sk);
	return tp && tp->packets_out == 0;
}

/*
 * How far a received skb may take the bucket into debt; dropped, its sender
 * waits for a timer. A retransmission of what the bucket dropped would wait
 * 200 ms or more (design.md K24): all of grace_ns. A segment its window let
 * through: what a window arriving at once leaves, since a sender sends what
 * it is offered at once, and half a round trip more, in which a window given
 * back acts; less would drop bytes that crossed the link for nothing (K30,
 * K40). An skb no larger than the bucket, of a flow whose round trip is too
 * short for a window to limit (loopback, veth), would wait for a loss probe,
 * 8 ms or more, the whole of a small bucket (K27): SHORT_RTT_BORROW_NS, and
 * no more than half the grace, so that retransmissions still find room.
 */
static __always_inline __u64 receiver_may_borrow_ns(struct __sk_buff *skb, struct bpf_sock *sk, __u32 link_header,
						    const struct limiter_limit *limit, __u32 len, __u64 grace_ns)
{
	__u32 seq, end_seq;
	sk = full_sock(skb, sk);
	struct limiter_sk *s = storage_of(sk, 0);
	struct bpf_tcp_sock *tp = sk ? bpf_tcp_sock(sk) : NULL;
	if (!s || !tp || !tcp_segment(skb, link_header, &seq, &end_seq))
		return 0;
	if (received_at(tp, seq) < s->dropped_end)
		return grace_ns;
	__u64 rtt_ns = srtt_ns(tp->srtt_us);
	if (!window_cannot_limit(tp, limit))
		return s->dir[LIMITER_INGRESS].value ? window_debt_ns(rtt_ns, limit) + rtt_ns / 2 : 0;
	if (len > limit->bucket)
		return 0;
	return grace_ns / 2 < SHORT_RTT_BORROW_NS ? grace_ns / 2 : SHORT_RTT_BORROW_NS;
}

/* Notes where a dropped received TCP segment ended. */
static __always_inline void note_dropped(struct __sk_buff *skb, struct bpf_sock *sk, __u32 link_header)
{
	__u32 seq, end_seq;
	sk = full_sock(skb, sk);
	struct bpf_tcp_sock *tp = sk ? bpf_tcp_sock(sk) : NULL;
	struct limiter_sk *s;
	if (!tp || !tcp_segment(skb, link_header, &seq, &end_seq) ||
	    !(s = storage_of(sk, BPF_SK_STORAGE_GET_F_CREATE)))
		return;
	__u64 end = received_at(tp, end_seq);
	if (end > s->dropped_end)
		s->dropped_end = end;
}

/*
 * How far an skb may take the bucket into debt rather than be lost, of
 * grace_ns: a sender's with nothing in flight (design.md K3), all of it.
 */
static __always_inline __u64 may_borrow_ns(struct __sk_buff *skb, struct bpf_sock *sk, __u32 link_header,
					   enum limiter_direction dir, const struct limiter_limit *limit, __u32 len,
					   __u64 grace_ns)
{
	if (dir == LIMITER_INGRESS)
		return receiver_may_borrow_ns(skb, sk, link_header, limit, len, grace_ns);
	return would_stall(full_sock(skb, sk)) ? grace_ns : 0;
}

/*
 * Token bucket that may go into debt by one skb: an skb passes whenever the
 * bucket is not empty, however large the skb (design.md K3: GSO skbs on
 * loopback reach 64 KiB, more than a small bucket ever holds).
 *
 * Tokens are judged first against the last clock reading of the rule: time
 * only adds tokens, so a bucket that was not empty then is not empty now.
 * Only a bucket that looked empty costs a fresh reading.
 */
static __always_inline int conforms(struct __sk_buff *skb, struct bpf_sock *sk, __u32 link_header,
				    const struct limiter_limit *limit, struct limiter_bucket *c, __u64 *clock_ns,
				    struct payload p, enum limiter_direction dir)
{
	__u64 now = *(volatile __u64 *)clock_ns;
	__u64 empty_at = *(volatile __u64 *)&c->empty_at_ns;

	if ((__s64)(empty_at - now) > 0) {
		now = bpf_ktime_get_ns();
		*clock_ns = now;
	}
	__u64 full_at = now > limit->burst_ns ? now - limit->burst_ns : 0;
	/* Unused time beyond a full bucket is forfeit. A lost race here only
	 * means another CPU already moved empty_at forward. */
	if ((__s64)(empty_at - full_at) < 0) {
		__sync_val_compare_and_swap(&c->empty_at_ns, empty_at, full_at);
		empty_at = full_at;
	}
	__s64 debt_ns = empty_at - now;
	if (debt_ns > 0) {
		if (!p.tcp)
			return 0;
		__u64 grace_ns = grace_of(limit, dir);
		/* a window may borrow its round trip: no more than the largest grace */
		__u64 bound = dir == LIMITER_INGRESS ? INGRESS_GRACE_MAX_NS : grace_ns;
		if (debt_ns > (__s64)bound ||
		    debt_ns > (__s64)may_borrow_ns(skb, sk, link_header, dir, limit, p.len, grace_ns))
			return 0;
	}
	__sync_fetch_and_add(&c->empty_at_ns, (__u64)p.len * NSEC_PER_SEC / limit->rate);
	return 1;
}

/*
 * 1: pass, 0: drop. The caller has checked that this direction is limited;
 * sk may be NULL (the skb's then). link_header: as for payload_of. An skb
 * sent before its sender could know of the limit passes and is counted, but
 * costs the bucket nothing (design.md K39).
 */
static __always_inline int police(struct __sk_buff *skb, struct bpf_sock *sk, const struct limiter_rule *rule,
				  __u32 slot, enum limiter_direction dir, __u32 link_header, int sent_before_limit)
{
	struct payload p = payload_of(skb, link_header);
	struct limiter_state *state = bpf_map_lookup_elem(&limiter_state, &slot);
	if (!state)
		return 1;
	struct limiter_tally *tally = bpf_map_lookup_elem(&limiter_tally, &slot);
	if (!tally)
		return 1;
	struct limiter_counters *count = &tally->dir[dir];
	if (!sent_before_limit &&
	    !conforms(skb, sk, link_header, &rule->limit[dir], &state->dir[dir], &state->clock_ns, p, dir)) {
		if (dir == LIMITER_INGRESS && p.tcp)
			note_dropped(skb, sk, link_header);
		count->dropped_bytes += p.len;
		count->dropped_packets++;
		return 0;
	}
	count->passed_bytes += p.len;
	count->passed_packets++;
	return 1;
}

#endif /* LIMITER_BUCKET_BPF_H */
