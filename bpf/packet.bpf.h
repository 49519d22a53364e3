// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/* Reading packets: TCP headers, sequence numbers and timestamps, what the
 * bucket counts of an skb, the link header at tc, and the socket a packet
 * arriving at tc is for.
 * Kn: the kernel facts in doc/design.md. */
#ifndef LIMITER_PACKET_BPF_H
#define LIMITER_PACKET_BPF_H

#include "common.bpf.h"

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

/* What the bucket counts of an skb, and whether it is TCP: only TCP stalls
 * on a drop, so only TCP borrows, and nothing else costs a socket lookup (K31). */
struct payload {
	__u32 len;
	__u32 tcp;
};

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

#endif /* LIMITER_PACKET_BPF_H */
