/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * For the namespace tests: on tc ingress of the balancer's veth, drop every
 * frame before the kernel's stack sees it. Packet sockets (net_af_packet)
 * get their copy before tc ingress, so fulcrum-dp still sees everything and
 * the kernel sees the port only through fulcrum-dp's TAP: as with a NIC
 * bound to DPDK.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int kernel_blind(struct __sk_buff *skb)
{
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
