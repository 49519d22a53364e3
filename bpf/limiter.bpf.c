// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
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

/* cgroup_skb/egress verdicts (design.md K2): a plain drop (0) makes UDP send()
 * fail with EPERM; 2 drops and signals congestion, which applications never see. */
#define CGROUP_DROP 0
#define CGROUP_PASS 1
#define CGROUP_DROP_CN 2
#define SOL_SOCKET 1
#define SO_MAX_PACING_RATE 47
#define SOL_TCP 6
#define TCP_MAXSEG 2
#define TCP_MAXSEG_MAX 32767 /* the kernel's MAX_TCP_WINDOW: it refuses a larger TCP_MAXSEG */
#define TCP_WINDOW_CLAMP 10

/* tcx verdicts: let the next program decide, or drop. */
#define TCX_NEXT (-1)
#define TCX_DROP 2

char LICENSE[] SEC("license") = "Dual MIT/GPL";

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
/* A sender's loss probe waits two ticks or more, 8 ms at HZ=250 (design.md K27). */
#define SHORT_RTT_BORROW_NS 10000000ULL
#define PACING_MARGIN_NS 5000000ULL
/* A sender paced at its share leaves the bucket where it is, and TCP's pacing
 * catches up after a delay: its debt drifts down to where one with nothing in
 * flight stalls. Past half of that it is paced at 0.9 of its share (K37). */
#define DEBT_PACING_GAIN 922
/* Flows starting together must count within their initial windows (10
 * segments), before the bucket runs dry: otherwise each is paced at the whole
 * rate, all but one meet an empty bucket, and they stall for seconds. A
 * control connection or a request stays below it. */
#define FLOW_BYTES_MAX 8192ULL
/* A receive window smaller than this many segments stalls a flow (delayed
 * acknowledgements, loss recovery): no window is clamped below it. */
#define MIN_WINDOW_SEGMENTS 2
/* A sender's first flight (RFC 6928), and the segment size it is reckoned in before a connection has one. */
#define INITIAL_WINDOW_SEGMENTS 10
#define TYPICAL_MSS 1448
/* The segment size a path with an MTU of 1500 asks for (IPv4; IPv6 1440):
 * TCP_MAXSEG at or above it leaves such paths alone. */
#define MTU_1500_MSS 1460
/* Under a ms a receiver's estimate says nothing: TCP timestamps tick in ms,
 * and since 6.16 a sample of no tick is skipped, which leaves the time a
 * window takes to arrive, µs for a clamped one (design.md K32). */
#define RECEIVER_RTT_MIN_US 1000
/* TCP_WINDOW_CLAMP cannot be removed once set: this is "no clamp". */
#define NO_WINDOW_CLAMP (64U << 20)

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

static __always_inline int would_stall(struct bpf_sock *sk)
{
	if (!sk)
		return 0;
	struct bpf_tcp_sock *tp = bpf_tcp_sock(sk);
	return tp && tp->packets_out == 0;
}

/*
 * An skb's TCP header, or NULL when it has none; *offset is where it starts.
 * link_header is the bytes before the IP header (0 in cgroup_skb; at tc, link_header_len()).
 */
static __always_inline struct tcphdr *tcp_header(struct __sk_buff *skb, __u32 link_header, __u32 *offset)
{
	void *data = (void *)(long)skb->data + link_header;
	void *end = (void *)(long)skb->data_end;
	struct tcphdr *tcp;
	__u32 ip_len;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;
		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
			return NULL;
		ip_len = (ip->ihl * 4) & 0x3f;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return NULL;
		ip_len = sizeof(*ip6);
	} else {
		return NULL;
	}
	tcp = data + ip_len;
	if ((void *)(tcp + 1) > end)
		return NULL;
	*offset = link_header + ip_len;
	return tcp;
}

/* Where a TCP segment's data ends; its header starts at offset. */
static __always_inline __u32 end_seq_of(struct __sk_buff *skb, struct tcphdr *tcp, __u32 offset)
{
	__u32 headers = offset + tcp->doff * 4;
	return bpf_ntohl(tcp->seq) + (skb->len > headers ? skb->len - headers : 0);
}

/* The sequence range of a received TCP segment, or 0 when the skb is none. */
static __always_inline int tcp_segment(struct __sk_buff *skb, __u32 link_header, __u32 *seq, __u32 *end_seq)
{
	__u32 offset;
	struct tcphdr *tcp = tcp_header(skb, link_header, &offset);
	if (!tcp)
		return 0;
	*seq = bpf_ntohl(tcp->seq);
	*end_seq = end_seq_of(skb, tcp, offset);
	return 1;
}

#define TCPOPT_NOP 1
#define TCPOPT_TIMESTAMP 8
#define TCPOLEN_TIMESTAMP 10
/* limiter_sk.first_tsval: a TSval noted, or a first segment without one */
#define FIRST_TSVAL_NOTED (1ULL << 32)
#define FIRST_TSVAL_NONE (1ULL << 33)

/*
 * A TCP segment's timestamps, where RFC 7323 (appendix A) puts them and
 * Linux and the BSDs send them: the first option, after two NOPs.
 * 0 when the segment carries none there.
 */
static __always_inline int tcp_timestamps(struct __sk_buff *skb, struct tcphdr *tcp, __u32 *tsval, __u32 *tsecr)
{
	__u8 *option = (__u8 *)(tcp + 1);
	if (tcp->doff * 4 < sizeof(*tcp) + 12 || (void *)(option + 12) > (void *)(long)skb->data_end)
		return 0;
	if (option[0] != TCPOPT_NOP || option[1] != TCPOPT_NOP || option[2] != TCPOPT_TIMESTAMP ||
	    option[3] != TCPOLEN_TIMESTAMP)
		return 0;
	*tsval = bpf_ntohl(*(__u32 *)(option + 4));
	*tsecr = bpf_ntohl(*(__u32 *)(option + 8));
	return 1;
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

/* What the bucket counts of an skb, and whether it is TCP: only TCP stalls
 * on a drop, so only TCP borrows, and nothing else costs a socket lookup (K31). */
struct payload {
	__u32 len;
	__u32 tcp;
};

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
 * Rates count TCP and UDP payload: what TCP paces, and what applications and
 * iperf3 report. Other packets count whole from the IP header. link_header
 * is the bytes before the IP header (0 in cgroup_skb; at tc, link_header_len()).
 */
static __always_inline struct payload payload_of(struct __sk_buff *skb, __u32 link_header)
{
	void *data = (void *)(long)skb->data + link_header;
	void *end = (void *)(long)skb->data_end;
	struct payload whole = { .len = skb->len - link_header, .tcp = 0 };
	__u32 ip_len, transport_len = 0;
	__u8 protocol;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;
		if ((void *)(ip + 1) > end)
			return whole;
		ip_len = ip->ihl * 4;
		protocol = ip->protocol;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) > end)
			return whole;
		ip_len = sizeof(*ip6);
		protocol = ip6->nexthdr; /* extension headers count as payload */
	} else {
		return whole;
	}
	if (protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = data + (ip_len & 0x3f);
		if ((void *)(tcp + 1) > end)
			return whole;
		transport_len = tcp->doff * 4;
	} else if (protocol == IPPROTO_UDP) {
		transport_len = sizeof(struct udphdr);
	}
	__u32 headers = link_header + ip_len + transport_len;
	struct payload p = { .len = skb->len > headers ? skb->len - headers : 0, .tcp = protocol == IPPROTO_TCP };
	return p;
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

/* The flows counted in epoch: the larger of its count so far and the previous epoch's. */
static __always_inline __u32 flows_counted(const struct limiter_flows *flows, __u64 epoch)
{
	if (flows->epoch == epoch)
		return flows->now > flows->prev ? flows->now : flows->prev;
	return flows->epoch + 1 == epoch ? flows->now : 0;
}

/*
 * The rule's flows in one direction: a socket counts once a 64th of its
 * share (per epoch) or FLOW_BYTES_MAX has moved (progress: bytes acknowledged
 * for senders, received for receivers), or at once when starting. Returns
 * the socket's share of the rate.
 */
static __always_inline __u64 share_of(struct limiter_state *state, const struct limiter_limit *limit,
				      struct limiter_sk_flow *f, enum limiter_direction dir, __u64 progress, __u64 now,
				      int starting)
{
	struct limiter_flows *flows = &state->flows[dir];
	__u64 rate = limit->rate;
	__u64 epoch = now / LIMITER_FLOW_EPOCH_NS;
	__u64 seen = *(volatile __u64 *)&flows->epoch;
	/* The first flow into a new epoch closes the count of the last one; a
	 * CPU that loses the race to do it leaves the count alone. */
	if (seen != epoch && __sync_val_compare_and_swap(&flows->epoch, seen, epoch) == seen) {
		__u32 ended = __sync_lock_test_and_set(&flows->now, 0);
		flows->prev = seen + 1 == epoch ? ended : 0;
	}
	/* Bytes count from when the socket was last counted: a slow flow may
	 * see one acknowledgement in an epoch, a few hundred ms apart (measured
	 * with 8 flows at 10 Mbit/s), and must still count in it. A socket
	 * silent for a whole epoch starts again. */
	if (f->epoch != epoch) {
		if (f->epoch + 1 < epoch)
			f->mark = progress;
		f->epoch = epoch;
		f->counted = 0;
	}
	__u32 counted = flows_counted(flows, epoch);
	__u64 share_now = rate / (counted ? counted : 1);
	__u64 enough = share_now * LIMITER_FLOW_EPOCH_NS / NSEC_PER_SEC / 64;
	if (enough > FLOW_BYTES_MAX)
		enough = FLOW_BYTES_MAX;
	if (!f->counted && (starting || progress - f->mark >= enough)) {
		f->counted = 1;
		f->mark = progress;
		__sync_fetch_and_add(&flows->now, 1);
	}
	counted = flows_counted(flows, epoch);
	return rate / (counted ? counted : 1);
}

/* The margin the gain works over: the one asked for, half the bucket at most
 * (then the gain's band is narrowed, K29). */
static __always_inline __u64 gain_margin_ns(const struct limiter_limit *limit, __u64 margin_ns)
{
	return limit->burst_ns / 2 < margin_ns ? limit->burst_ns / 2 : margin_ns;
}

/*
 * Feedback from the bucket, in 1/1024ths: 1024 where it aims (full but for
 * margin_ns of rate, or half a smaller bucket), up to 1.2 times that with it
 * full, and down to 0.9 times half a margin below the aim and lower.
 */
static __always_inline __u64 bucket_gain(struct limiter_state *state, const struct limiter_limit *limit,
					 enum limiter_direction dir, __u64 now, __u64 margin_ns)
{
	__u64 margin = gain_margin_ns(limit, margin_ns);
	if (!margin)
		return 1024;
	/* How far above half a margin below the aim the bucket is, within 0 .. 1.5 margins. */
	__s64 above = (__s64)(now - state->dir[dir].empty_at_ns) - (__s64)(limit->burst_ns - margin - margin / 2);
	__u64 offset = above <= 0 ? 0 : (__u64)above > margin + margin / 2 ? margin + margin / 2 : (__u64)above;
	/* A bucket narrower than the margin asked for moves the gain less: a
	 * window that acts a round trip late would swing past it (K29). */
	return 1024 - 102 * margin / margin_ns + offset * 205 / margin_ns;
}

/*
 * A sender is paced at its share (design.md K3, K9). TCP delivers less than
 * its pacing rate at high rates, and shares go unused: while the bucket stays
 * above its aim, flows may send up to 1.2 times their share (less over long
 * round trips). Never less: sending too much is the bucket's to stop.
 * bpf_setsockopt takes an int; ~0U is no limit.
 */
static __always_inline void pace(struct bpf_sock_ops *skops, struct limiter_sk_flow *f, __u64 share,
				 struct limiter_state *state, const struct limiter_limit *limit, __u64 now)
{
	__u64 gain = bucket_gain(state, limit, LIMITER_EGRESS, now, PACING_MARGIN_NS);
	/* A pacing rate holds for a round trip (RTT_CB comes once in one): what
	 * it sends beyond the share in that time must fit in the bucket (K38). */
	__u64 rtt_ns = srtt_ns(skops->srtt_us);
	__u64 gain_max = rtt_ns ? 1024 + 1024 * limit->burst_ns / rtt_ns : gain;
	if (gain > gain_max)
		gain = gain_max;
	__s64 debt_ns = (__s64)(state->dir[LIMITER_EGRESS].empty_at_ns - now);
	if (gain > 1024)
		share = share * gain / 1024;
	else if (debt_ns > 0 && (__u64)debt_ns > grace_of(limit, LIMITER_EGRESS) / 2)
		share = share * DEBT_PACING_GAIN / 1024;
	__u32 pacing = share < 0xffffffffULL ? (share ? share : 1) : 0xffffffffU;
	__u32 change = pacing > f->value ? pacing - f->value : f->value - pacing;
	/* A rate above the share is not held once the bucket is at its aim (K38). */
	if (change > f->value / 64 || (pacing < f->value && gain <= 1024)) {
		f->value = pacing;
		bpf_setsockopt(skops, SOL_SOCKET, SO_MAX_PACING_RATE, &pacing, sizeof(pacing));
	}
}

/*
 * The bucket's margin for windows: half a round trip of rate, 5 ms at least.
 * A window acts a round trip late: with a narrower band the gain swung
 * between 0.9 and 1.2 every few round trips at 80 ms, and the kernel, which
 * lowers a window at once and raises it a segment at a time, moved 0.94 of
 * the rate (design.md K29).
 */
static __always_inline __u64 window_margin_ns(__u64 rtt_us)
{
	return rtt_us * 500 > PACING_MARGIN_NS ? rtt_us * 500 : PACING_MARGIN_NS;
}

/*
 * The round trip a window is reckoned over. A sender's runs from a segment to
 * its acknowledgement; the receiver's, measured here, from an acknowledgement
 * to the data it let go, and ran 3-6 % shorter at 20 ms (design.md K36). A
 * bucket with room for the gain makes that up; where its band is narrowed
 * (K29), a 16th is added.
 */
static __always_inline __u64 window_rtt_us(__u64 rtt_us, int narrowed)
{
	return narrowed ? rtt_us + rtt_us / 16 : rtt_us;
}

/*
 * The window a receiver may offer: its share of the rate over its round trip,
 * scaled by how full the bucket is (bucket_gain): 0.9 times the share below
 * its aim, up to 1.2 times with it full. Where a round trip is too short for
 * a window to limit (many flows at a low rate, loopback), still two segments:
 * fewer bytes in flight for the bucket to drop (design.md K23). Kept in f
 * unless it moved by more than a 16th, so that a sender sees it steady.
 */
static __always_inline __u32 receive_window(struct limiter_sk_flow *f, __u64 share, struct limiter_state *state,
					    const struct limiter_limit *limit, __u64 now, __u64 rtt_us, __u64 mss,
					    __u32 ports)
{
	/* A window is set as a segment arrives, when a burst has the bucket at
	 * its lowest: it is judged as it will be half a round trip on (a
	 * bucket's length at most), when the burst has been paid for
	 * (design.md K33, K35). */
	__u64 half_rtt_ns = rtt_us * 500;
	__u64 dip_ns = half_rtt_ns < limit->burst_ns ? half_rtt_ns : limit->burst_ns;
	__u64 margin_ns = window_margin_ns(rtt_us);
	__u64 gain = bucket_gain(state, limit, LIMITER_INGRESS, now + dip_ns, margin_ns);
	__u64 window = share * gain / 1024 * window_rtt_us(rtt_us, gain_margin_ns(limit, margin_ns) < margin_ns) / 1000000;
	/* Debt beyond what a window arriving at once leaves means the flows run
	 * ahead of the rate, and is taken off the window (K30, K40). */
	__s64 owed_ns = (__s64)(state->dir[LIMITER_INGRESS].empty_at_ns - now) - (__s64)window_debt_ns(rtt_us * 1000, limit);
	if (owed_ns > 0) {
		__u64 owed = share * (__u64)owed_ns / NSEC_PER_SEC;
		window = window > owed ? window - owed : 0;
	}
	if (window > NO_WINDOW_CLAMP || !rtt_us) {
		window = NO_WINDOW_CLAMP;
	} else {
		/* A sender sends whole segments that fit the window: each
		 * window rounds to whole segments at its flow's own point, so
		 * that many small windows add up to their share instead of
		 * each losing up to a segment (design.md K26). The point moves
		 * on every round trip: a few flows' fixed points may all round
		 * down (K35). */
		__u32 round_trips = now / (rtt_us * 1000);
		__u64 segments = (window * 1024 / mss + (((ports + round_trips) * 2654435769U) >> 22)) / 1024;
		if (segments < MIN_WINDOW_SEGMENTS)
			segments = MIN_WINDOW_SEGMENTS;
		/* half a segment spare: the kernel rounds the window down to its idea of the segment size */
		window = segments * mss + mss / 2;
	}
	__u32 value = window;
	__u32 change = value > f->value ? value - f->value : f->value - value;
	if (change > f->value / 16)
		f->value = value;
	return f->value;
}

/* A receiver's round trip: its own estimate, the handshake's (srtt_us, << 3) until it has one. */
static __always_inline __u64 receiver_rtt_us(struct tcp_sock___limiter *tp, __u32 srtt_us)
{
	__u64 rtt_us = BPF_CORE_READ(tp, rcv_rtt_est.rtt_us) >> 3;
	if (!rtt_us)
		rtt_us = srtt_us >> 3;
	return rtt_us && rtt_us < RECEIVER_RTT_MIN_US ? RECEIVER_RTT_MIN_US : rtt_us;
}

/*
 * A receiver advertises no more window than its share moves in a round
 * trip, so that its sender slows down before sending what the bucket would
 * drop after it crossed the link (design.md K16, K23).
 */
static __always_inline void clamp_window(struct bpf_sock_ops *skops, struct bpf_sock *socket, struct limiter_sk_flow *f,
					 __u64 share, struct limiter_state *state, const struct limiter_limit *limit,
					 __u64 now)
{
	struct tcp_sock___limiter *tp = (void *)bpf_skc_to_tcp_sock(socket);
	if (!tp)
		return;
	__u32 clamp = receive_window(f, share, state, limit, now, receiver_rtt_us(tp, skops->srtt_us),
				     skops->mss_cache ? skops->mss_cache : TYPICAL_MSS,
				     skops->local_port ^ skops->remote_port);
	/* The kernel raises the clamp as its receive buffer grows, and sets it
	 * from the buffer when the skbs' overhead changes (design.md K23):
	 * before each segment goes out, it is set again. */
	if (BPF_CORE_READ(tp, window_clamp) != clamp)
		bpf_setsockopt(skops, SOL_TCP, TCP_WINDOW_CLAMP, &clamp, sizeof(clamp));
}

/*
 * The window a receiver offers in its SYN or SYN-ACK, in segments: before
 * any clamp applies, its sender may fill it, and a window's right edge
 * never moves back (design.md K26). Flows starting together share the
 * bucket: each offers at most its part of it, and no more than a sender's
 * first flight (10 segments).
 */
static __always_inline __u32 initial_window(struct limiter_state *state, const struct limiter_limit *limit)
{
	__u64 epoch = bpf_ktime_get_ns() / LIMITER_FLOW_EPOCH_NS;
	__u64 segments = limit->bucket / (flows_counted(&state->flows[LIMITER_INGRESS], epoch) + 1) / TYPICAL_MSS;
	if (segments < MIN_WINDOW_SEGMENTS)
		return MIN_WINDOW_SEGMENTS;
	return segments > INITIAL_WINDOW_SEGMENTS ? INITIAL_WINDOW_SEGMENTS : segments;
}

/*
 * The largest segment a receiver asks its sender for: one the bucket holds
 * a floor window of twice over, so that a segment the bucket cannot pass
 * at once may borrow instead of waiting for a timer, and a drop leaves a
 * segment in flight to tell of it (design.md K34). On loopback a segment is
 * 64 KiB, five times a 10 ms bucket at 10 Mbit/s. Never below what a path
 * with an MTU of 1500 asks for: such paths keep their segments. An
 * application's own smaller TCP_MAXSEG stays. Asked before the SYN goes out.
 */
static __always_inline void ask_small_segments(struct bpf_sock_ops *skops, const struct limiter_limit *limit)
{
	__u64 mss = limit->bucket / (2 * MIN_WINDOW_SEGMENTS);
	if (mss < MTU_1500_MSS)
		mss = MTU_1500_MSS;
	if (mss > TCP_MAXSEG_MAX)
		return; /* the bucket holds four of the largest segments already */
	struct tcp_sock___limiter *tp = skops->sk ? (void *)bpf_skc_to_tcp_sock(skops->sk) : NULL;
	if (!tp)
		return;
	__u32 asked = BPF_CORE_READ(tp, rx_opt.user_mss);
	if (!asked || mss < asked) {
		int value = mss;
		bpf_setsockopt(skops, SOL_TCP, TCP_MAXSEG, &value, sizeof(value));
	}
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

/*
 * The bytes before the IP header of an skb at tc: Ethernet framing on lo,
 * veth and NICs, none on TUN devices (VPNs) and other links without a header
 * (design.md K28). tc programs are not told, on every kernel limiter runs on:
 * the IP header as the kernel knows it is found in the packet, at 0 or after
 * an Ethernet header. Larger than LINK_HEADER_MAX: at neither.
 */
#define LINK_HEADER_MAX ETH_HLEN
#define IP_HEADER_COMPARED 12
static __always_inline int same_bytes(const __u8 *packet, const __u8 *ip)
{
	int same = 1;
#pragma unroll
	for (int i = 0; i < IP_HEADER_COMPARED; i++)
		same &= packet[i] == ip[i];
	return same;
}

static __always_inline __u32 link_header_len(struct __sk_buff *skb)
{
	__u8 ip[IP_HEADER_COMPARED];
	__u8 *data = (void *)(long)skb->data;
	if ((void *)(data + ETH_HLEN + sizeof(ip)) > (void *)(long)skb->data_end ||
	    bpf_skb_load_bytes_relative(skb, 0, ip, sizeof(ip), BPF_HDR_START_NET))
		return LINK_HEADER_MAX + 1;
	if (same_bytes(data, ip))
		return 0;
	return same_bytes(data + ETH_HLEN, ip) ? ETH_HLEN : LINK_HEADER_MAX + 1;
}

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
				      tcp->mss_cache ? tcp->mss_cache : TYPICAL_MSS, sk->src_port ^ sk->dst_port);
	__u32 wscale = BPF_CORE_READ_BITFIELD_PROBED(tp, rx_opt.rcv_wscale);
	note_adopted_end(s, tcp, sk);
	__u32 tsval, tsecr;
	if (!s->first_tsval)
		s->first_tsval = tcp_timestamps(skb, th, &tsval, &tsecr) ? FIRST_TSVAL_NOTED | tsval : FIRST_TSVAL_NONE;
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

/*
 * At tc ingress a packet has no socket yet (design.md K15): the socket it is
 * for is looked up by its addresses and ports, TCP or UDP, v4 or v6.
 */
static __always_inline struct bpf_sock *receiver(struct __sk_buff *skb, __u32 link_header)
{
	void *data = (void *)(long)skb->data + link_header;
	void *end = (void *)(long)skb->data_end;
	struct bpf_sock_tuple tuple = {};
	__u32 tuple_size;
	__u8 protocol;
	void *l4;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return NULL;
		tuple.ipv4.saddr = ip->saddr;
		tuple.ipv4.daddr = ip->daddr;
		tuple_size = sizeof(tuple.ipv4);
		protocol = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) > end)
			return NULL;
		__builtin_memcpy(tuple.ipv6.saddr, &ip6->saddr, sizeof(tuple.ipv6.saddr));
		__builtin_memcpy(tuple.ipv6.daddr, &ip6->daddr, sizeof(tuple.ipv6.daddr));
		tuple_size = sizeof(tuple.ipv6);
		protocol = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		return NULL;
	}
	/* The ports sit at the same place in TCP and UDP headers. */
	struct udphdr *ports = l4;
	if ((void *)(ports + 1) > end)
		return NULL;
	if (tuple_size == sizeof(tuple.ipv4)) {
		tuple.ipv4.sport = ports->source;
		tuple.ipv4.dport = ports->dest;
	} else {
		tuple.ipv6.sport = ports->source;
		tuple.ipv6.dport = ports->dest;
	}
	if (protocol == IPPROTO_TCP)
		return bpf_sk_lookup_tcp(skb, &tuple, tuple_size, BPF_F_CURRENT_NETNS, 0);
	if (protocol == IPPROTO_UDP)
		return bpf_sk_lookup_udp(skb, &tuple, tuple_size, BPF_F_CURRENT_NETNS, 0);
	return NULL;
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
	int echoes = (s->first_tsval & FIRST_TSVAL_NOTED) && tcp_timestamps(skb, th, &tsval, &tsecr);
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
