// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/* The cheapest possible cgroup_skb program: the bench's yardstick for per-skb cost. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("cgroup_skb/egress")
int trivial_egress(struct __sk_buff *skb)
{
	return 1;
}
