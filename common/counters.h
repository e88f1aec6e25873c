/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Counters every data plane keeps, per worker (fulcrum-dp) or per CPU (XDP),
 * with the same names everywhere. Each writer owns its block; readers sum.
 */
#ifndef FL_COUNTERS_H
#define FL_COUNTERS_H

#include <linux/types.h>

/* Why a packet was dropped. Every drop has exactly one. */
enum fl_drop_reason {
	FL_DROP_ETH_TRUNCATED,		/* shorter than its Ethernet/VLAN headers */
	FL_DROP_VLAN_TOO_DEEP,		/* more than two 802.1Q tags */
	FL_DROP_IP_TRUNCATED,		/* shorter than its IP header */
	FL_DROP_IP_BAD_HEADER,		/* bad version, IHL or total length */
	FL_DROP_IPV6_EXT_HEADER,	/* extension header the parser does not walk */
	FL_DROP_IP_FRAGMENT,		/* fragment of VIP traffic */
	FL_DROP_L4_TRUNCATED,		/* shorter than its TCP/UDP/ICMP header */
	FL_DROP_TCP_BAD_HEADER,		/* TCP data offset out of range */
	FL_DROP_TTL_EXCEEDED,		/* TTL or hop limit would reach zero */
	FL_DROP_NO_BACKEND,		/* VIP with no backend in its ring */
	FL_DROP_TOO_BIG,		/* over the egress MTU with DF set (answered) */
	FL_DROP_NO_HEADROOM,		/* no room in front for the outer headers */
	FL_DROP_NO_NEXT_HOP,		/* next-hop or backend MAC unknown */
	FL_DROP_ICMP_UNMATCHED,		/* ICMP error about no VIP flow */
	FL_DROP_EXCEPTION_FULL,		/* the kernel's exception queue was full */
	FL_DROP_TX_FULL,		/* the port's TX queue was full */
	FL_DROP__MAX
};

#ifndef __bpf__
/* Names for stats and metrics, by designated initializer so that reordering
 * the enum cannot shift a name onto another reason. */
static const char *const fl_drop_names[FL_DROP__MAX] = {
	[FL_DROP_ETH_TRUNCATED] = "eth_truncated",
	[FL_DROP_VLAN_TOO_DEEP] = "vlan_too_deep",
	[FL_DROP_IP_TRUNCATED] = "ip_truncated",
	[FL_DROP_IP_BAD_HEADER] = "ip_bad_header",
	[FL_DROP_IPV6_EXT_HEADER] = "ipv6_ext_header",
	[FL_DROP_IP_FRAGMENT] = "ip_fragment",
	[FL_DROP_L4_TRUNCATED] = "l4_truncated",
	[FL_DROP_TCP_BAD_HEADER] = "tcp_bad_header",
	[FL_DROP_TTL_EXCEEDED] = "ttl_exceeded",
	[FL_DROP_NO_BACKEND] = "no_backend",
	[FL_DROP_TOO_BIG] = "too_big",
	[FL_DROP_NO_HEADROOM] = "no_headroom",
	[FL_DROP_NO_NEXT_HOP] = "no_next_hop",
	[FL_DROP_ICMP_UNMATCHED] = "icmp_unmatched",
	[FL_DROP_EXCEPTION_FULL] = "exception_full",
	[FL_DROP_TX_FULL] = "tx_full",
};
#endif

/* One worker's totals; a cache line multiple so no two workers share one. */
struct fl_worker_counters {
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 new_flows;		/* flows recorded in conntrack */
	__u64 ct_hits;
	__u64 ct_misses;
	__u64 ct_evictions;		/* oldest record pushed out by a new one */
	__u64 ct_expired;		/* records found idle past their timeout */
	__u64 ct_occupancy;		/* records in use now (a gauge) */
	__u64 ct_rate_capped;		/* new flows forwarded by hash, unrecorded */
	__u64 ct_reselected;		/* records whose backend was gone */
	__u64 exception_packets;	/* sent to the kernel */
	__u64 exception_tx_packets;	/* from the kernel out of the port */
	__u64 icmp_forwarded;		/* ICMP errors sent to the owning backend */
	__u64 icmp_generated;		/* too-big answers we sent */
	__u64 drops[FL_DROP__MAX];
} __attribute__((aligned(64)));

struct fl_vip_counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
	__u64 pad;
};

struct fl_backend_counters {
	__u64 packets;
	__u64 bytes;
};

_Static_assert(sizeof(struct fl_worker_counters) % 64 == 0, "worker counters fill whole lines");

#ifndef __bpf__
/* The scalar counters by name, for stats and metrics (drops: fl_drop_names). */
struct fl_counter_field {
	const char *name;
	unsigned offset;
};

#define FL_COUNTER(f) { #f, __builtin_offsetof(struct fl_worker_counters, f) }
static const struct fl_counter_field fl_counter_fields[] = {
	FL_COUNTER(rx_packets), FL_COUNTER(rx_bytes), FL_COUNTER(tx_packets),
	FL_COUNTER(tx_bytes), FL_COUNTER(new_flows), FL_COUNTER(ct_hits),
	FL_COUNTER(ct_misses), FL_COUNTER(ct_evictions), FL_COUNTER(ct_expired),
	FL_COUNTER(ct_occupancy), FL_COUNTER(ct_rate_capped), FL_COUNTER(ct_reselected),
	FL_COUNTER(exception_packets), FL_COUNTER(exception_tx_packets),
	FL_COUNTER(icmp_forwarded), FL_COUNTER(icmp_generated),
};
#undef FL_COUNTER
_Static_assert(sizeof(fl_counter_fields) / sizeof(fl_counter_fields[0]) ==
		       __builtin_offsetof(struct fl_worker_counters, drops) / sizeof(__u64),
	       "every scalar counter has a name");
#endif
_Static_assert(sizeof(struct fl_vip_counters) == 32, "vip counters layout");
_Static_assert(sizeof(struct fl_backend_counters) == 16, "backend counters layout");

#endif /* FL_COUNTERS_H */
