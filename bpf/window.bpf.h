// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/* TCP flow control from the bucket: each flow's share of the rate, the pacing
 * of senders and the windows receivers offer.
 * Kn: the kernel facts in doc/design.md. */
#ifndef LIMITER_WINDOW_BPF_H
#define LIMITER_WINDOW_BPF_H

#include "common.bpf.h"

/* The socket options the programs set with bpf_setsockopt. */
#define SOL_SOCKET 1
#define SO_MAX_PACING_RATE 47
#define SOL_TCP 6
#define TCP_MAXSEG 2
#define TCP_MAXSEG_MAX 32767 /* the kernel's MAX_TCP_WINDOW: it refuses a larger TCP_MAXSEG */
#define TCP_WINDOW_CLAMP 10

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
 * A window is set as a segment arrives, when a burst has the bucket at its
 * lowest: it is judged as the bucket will be once the burst has been paid
 * for: half a round trip on, a bucket's length at most (design.md K33, K35).
 * An adopted flow's sender, never paced by a window from its start, sends a
 * round trip's data in one block: it is paid for a round trip on, two
 * buckets' length at most (K41).
 */
static __always_inline __u64 window_dip_ns(__u64 rtt_us, __u64 burst_ns, int adopted)
{
	__u64 half_rtt_ns = rtt_us * 500;
	__u64 dip_ns = half_rtt_ns < burst_ns ? half_rtt_ns : burst_ns;
	return adopted ? 2 * dip_ns : dip_ns;
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
					    __u32 ports, int adopted)
{
	__u64 dip_ns = window_dip_ns(rtt_us, limit->burst_ns, adopted);
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
				     skops->local_port ^ skops->remote_port, 0);
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

#endif /* LIMITER_WINDOW_BPF_H */
