/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The encapsulation stage: a received frame, rewritten in place to reach its
 * backend by the VIP's forwarding method; and the ICMP answer to a packet
 * too big to forward. Plain bytes, no DPDK: with an mbuf, pass
 * rte_pktmbuf_mtod() and rte_pktmbuf_headroom(), then move data_off back by
 * the bytes the frame grew in front and set the lengths to *len.
 *
 * fulcrum is not a router for the inner packet: the inner IP packet leaves
 * byte for byte as it came, TTL included. Only the outer header is new.
 */
#ifndef FL_DP_ENCAP_H
#define FL_DP_ENCAP_H

#include <linux/types.h>
#include "counters.h"
#include "flow.h"
#include "pkt.h"
#include "tables.h"

/* The most a method adds in front of the received frame's L2 header: GUE
 * over IPv6. */
#define FL_ENCAP_MAX_OVERHEAD (FL_IPV6_HLEN + FL_UDP_HLEN)

/* Per port, fixed at start; shared read-only by the workers of the port. */
struct fl_encap_ctx {
	__u8 src_mac[6];		/* the port's MAC */
	__u8 next_hop_mac[6];		/* router toward the backends (tunnel methods) */
	union fl_addr tunnel_src_v4;	/* outer source toward IPv4 backends */
	union fl_addr tunnel_src_v6;	/* outer source toward IPv6 backends */
	__be16 gue_dport;		/* GUE UDP destination port */
	__u16 mtu;			/* egress IP MTU: the largest outer IP packet */
};

/*
 * Rewrites the frame at *frame (*len bytes, described by p) for method m
 * toward backend b. The headroom bytes in front of *frame may be written.
 *
 * Kept: the received L2 header (p->l3_off bytes, VLAN tags included, so the
 * frame leaves on the same VLAN) with source MAC c->src_mac and destination
 * c->next_hop_mac (L2 DSR: b->mac), and the inner IP packet (p->ip_len bytes
 * at p->l3_off), unchanged. Added between them: the outer header of the
 * backend's family. Dropped: frame padding after the inner packet.
 *
 * IPIP and IP6IP6 carry the inner packet as protocol 4 (IPv4) or 41 (IPv6),
 * whichever it is, in an outer header of the backend's family; GUE puts a UDP
 * header in front of it (RFC 8086, "GUE variant 1"); L2 DSR adds nothing.
 *
 * Returns 0 with *frame and *len describing the new frame, or -1 with
 * *reason set and the frame untouched:
 *  FL_DROP_TOO_BIG      the outer packet would exceed c->mtu (answer it with
 *                       fl_icmp_too_big());
 *  FL_DROP_NO_HEADROOM  fewer than fl_encap_overhead() bytes in front;
 *  FL_DROP_NO_NEXT_HOP  the destination MAC (c->next_hop_mac, or b->mac for
 *                       L2 DSR) is all zero;
 *  FL_DROP_NO_BACKEND   m is not a forwarding method;
 *  FL_DROP_IP_BAD_HEADER p does not describe the frame (a parse bug).
 */
int fl_encap(const struct fl_encap_ctx *c, enum fl_method m, const struct fl_backend *b,
	     const struct fl_pkt *p, __u8 **frame, __u32 *len, __u32 headroom,
	     enum fl_drop_reason *reason);

/* The bytes method m adds in front of the inner IP packet toward a backend
 * of backend_family (FL_AF_INET or FL_AF_INET6); 0 for L2 DSR and unknown
 * methods. The inner MTU a client may use is c->mtu minus this. */
__u32 fl_encap_overhead(enum fl_method m, __u8 backend_family);

/*
 * Builds into out (room bytes) the answer to the received packet in frame/p
 * that was too big to forward: ICMP "fragmentation needed" (type 3 code 4)
 * for IPv4, ICMPv6 "packet too big" (type 2) for IPv6, reporting mtu (the
 * caller's c->mtu - fl_encap_overhead()). It goes from src (an address of
 * ours of the packet's family; the VIP, p->key.dst, is what the client
 * expects) to the packet's source, behind the received L2 header with the
 * MACs swapped, quoting as much of the packet as RFC 1812 4.3.2.3 and
 * RFC 4443 2.4(c) allow: up to 576 (IPv4) or 1280 (IPv6) bytes of IP.
 *
 * Returns the frame length, or 0 when no answer may or can be sent: the
 * packet is itself an ICMP error or a non-first fragment, its source is not
 * unicast, or room cannot hold the packet's IP header and 8 bytes more.
 * The DF bit is not looked at: RFC 792 defines the answer for DF packets,
 * but with no outer fragmentation an IPv4 packet without DF is refused too,
 * and Linux heeds the answer without checking the quoted DF; answering it
 * is the caller's choice. frame and out must not overlap.
 */
__u32 fl_icmp_too_big(const __u8 *frame, const struct fl_pkt *p, const union fl_addr *src,
		      __u16 mtu, __u8 *out, __u32 room);

#endif /* FL_DP_ENCAP_H */
