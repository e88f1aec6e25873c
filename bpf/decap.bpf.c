/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Backend-side decapsulation, for hosts whose kernel has no ipip, ip6_tunnel
 * or fou driver: on tc ingress, a tunnel packet from fulcrum addressed to
 * one of this host's addresses loses its outer headers and goes up the stack
 * as the client's packet, to the VIP configured on lo.
 *
 * Accepted, as dp/encap.c sends them: outer IPv4 protocol 4 (IPv4) or 41
 * (IPv6); outer IPv6 next header 41 or 4; outer IPv4 or IPv6 UDP to the GUE
 * port with an IP header right after the UDP header (RFC 8086 variant 1).
 * Everything else passes untouched; a tunnel packet we cannot decapsulate is
 * dropped and counted, since the kernel behind us has no driver for it.
 *
 * tc rather than XDP: bpf_skb_adjust_room() keeps the skb's metadata right
 * (protocol, header offsets, checksum state, GRO-built GSO packets), the
 * kernel re-validates the inner packet in ip_rcv()/ipv6_rcv() as for any
 * frame, and non-linear skbs need no special case.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "flow.h"

/* Linux 6.3 UAPI; older headers lack them. bpf_skb_adjust_room() then sets
 * skb->protocol to the inner family. */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif

#define IP4_MF 0x2000
#define IP4_OFFSET 0x1fff
#define ECN_MASK 3
#define ECN_CE 3

/*
 * The counters, per CPU. User space reads their names from this struct's
 * BTF (fulcrum-decap stats, the test), so a field is its own names table:
 * add one here and it shows up everywhere. decap_* by outer header, pass_*
 * left untouched, drop_* a tunnel packet dropped, by reason.
 */
struct decap_counters {
	__u64 decap_ipip;		/* outer IPv4, protocol 4 or 41 */
	__u64 decap_ip6tnl;		/* outer IPv6, next header 41 or 4 */
	__u64 decap_gue4;		/* outer IPv4 UDP to the GUE port */
	__u64 decap_gue6;		/* outer IPv6 UDP to the GUE port */
	__u64 decap_ecn_ce;		/* of those, CE copied to the inner header */
	__u64 pass_not_tunnel;		/* not IP, or IP but no tunnel */
	__u64 pass_not_local;		/* a tunnel, to an address not ours */
	__u64 drop_outer_header;	/* outer IP header bad or cut short */
	__u64 drop_outer_csum;		/* outer IPv4 header checksum wrong */
	__u64 drop_outer_fragment;	/* a fragment: reassembly is past us */
	__u64 drop_udp_header;		/* GUE: UDP header bad or cut short */
	__u64 drop_gue_not_ip;		/* GUE: payload is not IPv4 or IPv6 */
	__u64 drop_inner_header;	/* inner version wrong, header bad */
	__u64 drop_inner_truncated;	/* inner packet longer than the outer payload */
	__u64 drop_ecn;			/* outer CE, inner not ECN-capable (RFC 6040) */
	__u64 drop_adjust_room;		/* the kernel refused to strip the headers */
};

/* Load-time knobs, set by the loader before load. */
const volatile __be16 gue_port = bpf_htons(6080);	/* 0: no GUE */
const volatile __u8 any_dst = 0;	/* 1: decapsulate whatever the outer destination */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct decap_counters);
} decap_stats SEC(".maps");

/* The host's own addresses, filled by the loader: IPv6 as is, IPv4 mapped
 * (::ffff:a.b.c.d), which no interface can hold as an IPv6 address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, union fl_addr);
	__type(value, __u8);
} decap_local SEC(".maps");

/* Written once by the loader: what detach needs to undo. */
struct decap_meta {
	__u32 ifindex;
	__u8 created_clsact;	/* detach removes the qdisc only if we made it */
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct decap_meta);
} decap_meta SEC(".maps");

#define COUNT(c, field)            \
	do {                       \
		if (c)             \
			(c)->field++; \
	} while (0)

/* What the outer header told us about the tunnel. */
struct tunnel {
	__u32 outer_len;	/* bytes to strip after the Ethernet header */
	__u32 payload_len;	/* inner packet bytes the outer header covers */
	__u8 inner_proto;	/* IPPROTO_IPIP or IPPROTO_IPV6, or 0: see the payload */
	__u8 outer_ecn;
};

static __always_inline int is_local_v4(__be32 a)
{
	union fl_addr k = { .v6 = { 0, 0, bpf_htonl(0xffff), a } };

	return any_dst || bpf_map_lookup_elem(&decap_local, &k) != NULL;
}

static __always_inline int is_local_v6(const struct ipv6hdr *ip6)
{
	union fl_addr k;

	__builtin_memcpy(&k, &ip6->daddr, sizeof(k));
	return any_dst || bpf_map_lookup_elem(&decap_local, &k) != NULL;
}

/* The one's-complement sum of an IPv4 header is 0xffff when it is right. */
static __always_inline int ip4_csum_ok(const __u8 *hdr, __u32 ihl4)
{
	__s64 s = bpf_csum_diff(0, 0, (__be32 *)hdr, ihl4, 0);
	__u32 v = (__u32)s;

	v = (v & 0xffff) + (v >> 16);
	v = (v & 0xffff) + (v >> 16);
	return s >= 0 && v == 0xffff;
}

/*
 * Classification first, validation after: a packet is a tunnel by its
 * protocol (4, 41) or by its UDP destination port, and only a tunnel to one
 * of our addresses is validated, so traffic we only see (a bridge port in
 * promiscuous mode) is never dropped by us.
 */

/* The UDP header at off: 1 when it goes to the GUE port, else 0. */
static __always_inline int is_gue(struct __sk_buff *skb, __u32 off, struct udphdr *udp)
{
	if (gue_port == 0 || bpf_skb_load_bytes(skb, off, udp, sizeof(*udp)) < 0)
		return 0;
	return udp->dest == gue_port;
}

/* GUE after the outer header: room is the outer payload length. */
static __always_inline int check_gue(struct decap_counters *c, const struct udphdr *udp,
				     __u32 room, struct tunnel *t)
{
	__u32 ulen = bpf_ntohs(udp->len);

	if (ulen < sizeof(*udp) || ulen > room) {
		COUNT(c, drop_udp_header);
		return -1;
	}
	t->outer_len += sizeof(*udp);
	t->payload_len = ulen - sizeof(*udp);
	t->inner_proto = 0;	/* the payload says */
	return 1;
}

/* Outer IPv4: 1 with t filled for a tunnel to us, 0 to pass, -1 to drop. */
static __always_inline int parse_outer4(struct __sk_buff *skb, struct decap_counters *c,
					__u32 frame_len, struct tunnel *t, int *gue)
{
	__u8 hdr[60] = {};
	struct iphdr *ip = (struct iphdr *)hdr;
	struct udphdr udp;
	__u32 ihl4, tot;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, hdr, sizeof(struct iphdr)) < 0)
		goto not_tunnel;
	ihl4 = (hdr[0] & 0xf) * 4;
	*gue = ip->protocol == IPPROTO_UDP && ihl4 >= sizeof(struct iphdr) &&
	       !(ip->frag_off & bpf_htons(IP4_OFFSET)) && is_gue(skb, ETH_HLEN + ihl4, &udp);
	if (ip->protocol != IPPROTO_IPIP && ip->protocol != IPPROTO_IPV6 && !*gue)
		goto not_tunnel;
	if (!is_local_v4(ip->daddr)) {
		COUNT(c, pass_not_local);
		return 0;
	}

	tot = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || ihl4 < sizeof(struct iphdr) || tot < ihl4 ||
	    tot > frame_len - ETH_HLEN)
		goto bad;
	if (ihl4 > sizeof(struct iphdr) && ihl4 <= sizeof(hdr) &&
	    bpf_skb_load_bytes(skb, ETH_HLEN, hdr, ihl4) < 0)
		goto bad;
	if (!ip4_csum_ok(hdr, ihl4)) {
		COUNT(c, drop_outer_csum);
		return -1;
	}
	if (ip->frag_off & bpf_htons(IP4_MF | IP4_OFFSET)) {
		COUNT(c, drop_outer_fragment);
		return -1;
	}
	t->outer_len = ihl4;
	t->payload_len = tot - ihl4;
	t->inner_proto = ip->protocol;
	t->outer_ecn = hdr[1] & ECN_MASK;
	return *gue ? check_gue(c, &udp, t->payload_len, t) : 1;
not_tunnel:
	COUNT(c, pass_not_tunnel);
	return 0;
bad:
	COUNT(c, drop_outer_header);
	return -1;
}

/* Outer IPv6, no extension headers (fulcrum sends none). */
static __always_inline int parse_outer6(struct __sk_buff *skb, struct decap_counters *c,
					__u32 frame_len, struct tunnel *t, int *gue)
{
	struct ipv6hdr ip6;
	struct udphdr udp;
	__u32 plen;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
		goto not_tunnel;
	*gue = ip6.nexthdr == IPPROTO_UDP && is_gue(skb, ETH_HLEN + sizeof(ip6), &udp);
	if (ip6.nexthdr != IPPROTO_IPIP && ip6.nexthdr != IPPROTO_IPV6 && !*gue)
		goto not_tunnel;
	if (!is_local_v6(&ip6)) {
		COUNT(c, pass_not_local);
		return 0;
	}

	plen = bpf_ntohs(ip6.payload_len);
	if (ip6.version != 6 || plen > frame_len - ETH_HLEN - sizeof(ip6)) {
		COUNT(c, drop_outer_header);
		return -1;
	}
	t->outer_len = sizeof(ip6);
	t->payload_len = plen;
	t->inner_proto = ip6.nexthdr;
	t->outer_ecn = (ip6.flow_lbl[0] >> 4) & ECN_MASK;
	return *gue ? check_gue(c, &udp, plen, t) : 1;
not_tunnel:
	COUNT(c, pass_not_tunnel);
	return 0;
}

/*
 * The inner header at off: its family (ETH_P_IP or ETH_P_IPV6), or 0 to
 * drop. It must match the outer protocol (IPIP) or stand alone (GUE), and
 * the packet it announces must fit in the outer payload; padding after it
 * is left for ip_rcv() to trim. *ecn gets its ECN field.
 */
static __always_inline __u16 check_inner(struct __sk_buff *skb, struct decap_counters *c,
					 __u32 off, const struct tunnel *t, __u8 *ecn)
{
	__u8 b[8];
	__u32 len;
	__u8 v;

	if (t->payload_len < sizeof(struct iphdr) ||
	    bpf_skb_load_bytes(skb, off, b, sizeof(b)) < 0) {
		COUNT(c, drop_inner_truncated);
		return 0;
	}
	v = b[0] >> 4;
	if (t->inner_proto == 0 && v != 4 && v != 6) {
		COUNT(c, drop_gue_not_ip);
		return 0;
	}
	if (v == 4 && t->inner_proto != IPPROTO_IPV6) {
		len = (__u32)b[2] << 8 | b[3];
		if ((b[0] & 0xf) < 5 || len < (__u32)(b[0] & 0xf) * 4) {
			COUNT(c, drop_inner_header);
			return 0;
		}
		if (len > t->payload_len) {
			COUNT(c, drop_inner_truncated);
			return 0;
		}
		*ecn = b[1] & ECN_MASK;
		return ETH_P_IP;
	}
	if (v == 6 && t->inner_proto != IPPROTO_IPIP) {
		len = sizeof(struct ipv6hdr) + ((__u32)b[4] << 8 | b[5]);
		if (len > t->payload_len) {
			COUNT(c, drop_inner_truncated);
			return 0;
		}
		*ecn = (b[1] >> 4) & ECN_MASK;
		return ETH_P_IPV6;
	}
	COUNT(c, drop_inner_header);
	return 0;
}

/* RFC 6040 4.2, after the strip: the inner header is at ETH_HLEN. Only an
 * ECT inner header gets here with outer CE (check_inner's caller drops
 * not-ECT); CE stays CE. */
static __always_inline int mark_ce(struct __sk_buff *skb, __u16 family)
{
	__u8 b[2];
	__u16 old, new;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, b, 2) < 0)
		return -1;
	__builtin_memcpy(&old, b, 2);
	if (family == ETH_P_IP)
		b[1] |= ECN_CE;
	else
		b[1] |= ECN_CE << 4;
	__builtin_memcpy(&new, b, 2);
	if (family == ETH_P_IP &&
	    bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old, new, 2) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, ETH_HLEN, b, 2, 0);
}

SEC("tc")
int fl_decap(struct __sk_buff *skb)
{
	const __u32 zero = 0;
	struct decap_counters *c = bpf_map_lookup_elem(&decap_stats, &zero);
	const __u32 frame_len = skb->len;
	struct tunnel t = {};
	__u16 outer, inner;
	__be16 eth_proto;
	__u8 ecn = 0;
	__u64 flags;
	int gue, r;

	/* A VLAN tag still in the frame (QinQ's inner one) is not ours. */
	if (bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_proto), &eth_proto, 2) < 0) {
		COUNT(c, pass_not_tunnel);
		return TC_ACT_OK;
	}
	outer = bpf_ntohs(eth_proto);
	if (outer == ETH_P_IP)
		r = parse_outer4(skb, c, frame_len, &t, &gue);
	else if (outer == ETH_P_IPV6)
		r = parse_outer6(skb, c, frame_len, &t, &gue);
	else {
		COUNT(c, pass_not_tunnel);
		return TC_ACT_OK;
	}
	if (r <= 0)
		return r == 0 ? TC_ACT_OK : TC_ACT_SHOT;

	inner = check_inner(skb, c, ETH_HLEN + t.outer_len, &t, &ecn);
	if (!inner)
		return TC_ACT_SHOT;
	if (t.outer_ecn == ECN_CE && ecn == 0) {
		COUNT(c, drop_ecn);
		return TC_ACT_SHOT;
	}

	flags = inner == ETH_P_IP ? BPF_F_ADJ_ROOM_DECAP_L3_IPV4 : BPF_F_ADJ_ROOM_DECAP_L3_IPV6;
	if (bpf_skb_adjust_room(skb, -(__s32)t.outer_len, BPF_ADJ_ROOM_MAC, flags) < 0) {
		COUNT(c, drop_adjust_room);
		return TC_ACT_SHOT;
	}
	/* The Ethernet header moved as it was: name the inner family. */
	if (inner != outer) {
		eth_proto = bpf_htons(inner);
		if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &eth_proto, 2, 0) < 0) {
			COUNT(c, drop_adjust_room);
			return TC_ACT_SHOT;
		}
	}
	if (t.outer_ecn == ECN_CE && ecn != ECN_CE) {
		if (mark_ce(skb, inner) < 0) {
			COUNT(c, drop_adjust_room);
			return TC_ACT_SHOT;
		}
		COUNT(c, decap_ecn_ce);
	}

	if (outer == ETH_P_IP) {
		if (gue)
			COUNT(c, decap_gue4);
		else
			COUNT(c, decap_ipip);
	} else {
		if (gue)
			COUNT(c, decap_gue6);
		else
			COUNT(c, decap_ip6tnl);
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
