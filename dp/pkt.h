/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the parse stage learns of a packet, handed to the stages after it
 * (classify, conntrack, select, encap, tx). Stages take plain byte buffers
 * and this record, not mbufs, so each one is tested on crafted bytes alone.
 */
#ifndef FL_DP_PKT_H
#define FL_DP_PKT_H

#include <linux/types.h>
#include "flow.h"
#include "counters.h"

enum fl_pkt_flags {
	FL_PKT_ICMP_ERROR = 0x01,	/* FN/PTB: key is the inner flow, reversed */
	FL_PKT_DF = 0x02,		/* IPv4 don't-fragment set (always for IPv6) */
	FL_PKT_FRAGMENT = 0x04,		/* an IP fragment: ports unknown or partial */
};

/* Bits of fl_pkt.tcp_flags (the TCP header's flags byte). */
#define FL_TCP_FIN 0x01
#define FL_TCP_SYN 0x02
#define FL_TCP_RST 0x04
#define FL_TCP_ACK 0x10

struct fl_pkt {
	struct fl_flow_key key;	/* client -> VIP, network byte order */
	__u32 hash;		/* fl_flow_hash(key); set by the select stage */
	__u16 l3_off;		/* outer IP header */
	__u16 l4_off;		/* TCP/UDP/ICMP header (after IPv6 extensions) */
	__u16 ip_len;		/* IP packet length from l3_off (frame padding excluded) */
	__u16 icmp_mtu;		/* the MTU an FN/PTB reports */
	__u8 n_vlans;
	__u8 tcp_flags;		/* TCP flags byte; 0 for other protocols */
	__u8 flags;		/* enum fl_pkt_flags */
	__u8 ttl;		/* TTL or hop limit */
	__u8 tos;		/* IPv4 TOS or IPv6 traffic class */
	__u8 pad[3];
};

enum fl_parse_verdict {
	FL_PARSE_FLOW,		/* key is valid: look for a VIP */
	FL_PARSE_HOST,		/* not a balanced flow (ARP, ND, other protocols): to the kernel */
	FL_PARSE_DROP,		/* malformed: *reason says why */
};

#endif /* FL_DP_PKT_H */
