/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a data plane learns of a packet (struct fl_pkt) and the parse that
 * learns it, written once: gcc compiles it into fulcrum-dp (dp/parse.c is
 * its parse stage) and clang -target bpf into the XDP balancer, so both
 * read the same fields out of the same bytes. The stages after parse take
 * plain byte buffers and this record, not mbufs, so each one is tested on
 * crafted bytes alone.
 *
 * The parse is written for the BPF verifier as much as for gcc: every read
 * is preceded by a bounds check against the end of what it may read (the
 * frame for L2 and the IP header, then the end of the IP packet, l3_off +
 * ip_len, so frame padding is never taken for L4 bytes); loops have
 * constant bounds; no library call. Offsets are __u32 and stay below 2^17,
 * so `off + n` cannot wrap.
 */
#ifndef FL_PKT_H
#define FL_PKT_H

#include <linux/types.h>
#include "flow.h"
#include "counters.h"

/* bpf_helpers.h and glibc's sys/cdefs.h define it; not every gcc user
 * includes either first. */
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

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

/*
 * Offsets are 16 bits: a frame fits in one mbuf segment or one XDP buffer,
 * and fulcrum-dp keeps one record for each packet of a burst.
 */
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

_Static_assert(sizeof(struct fl_pkt) == 60, "fl_pkt is 60 bytes");

enum fl_parse_verdict {
	FL_PARSE_FLOW,		/* key is valid: look for a VIP */
	FL_PARSE_HOST,		/* not a balanced flow (ARP, ND, other protocols): to the kernel */
	FL_PARSE_DROP,		/* malformed: *reason says why */
};

#define FL_ETH_HLEN		14
#define FL_ETH_P_IPV4		0x0800
#define FL_ETH_P_IPV6		0x86dd
#define FL_ETH_P_8021Q		0x8100
#define FL_ETH_P_8021AD		0x88a8
#define FL_VLAN_HLEN		4
#define FL_MAX_VLANS		2
#define FL_L2_MAX		(FL_ETH_HLEN + FL_MAX_VLANS * FL_VLAN_HLEN)

#define FL_IPV4_HLEN		20
#define FL_IPV4_DF		0x4000
#define FL_IPV4_MF_OFF		0x3fff	/* more-fragments and fragment offset */
#define FL_IPV4_OFF		0x1fff
#define FL_IPV6_HLEN		40
#define FL_IPV6_MAX_EXT		4
#define FL_IPV6_EXT_MIN		8	/* every walked extension header is 8n bytes */

#define FL_P_ICMP		1
#define FL_P_IPIP		4
#define FL_P_TCP		6
#define FL_P_UDP		17
#define FL_P_IPV6		41
#define FL_P_V6_HOP		0
#define FL_P_V6_ROUTING		43
#define FL_P_V6_FRAGMENT	44
#define FL_P_ICMPV6		58
#define FL_P_V6_DSTOPTS		60

#define FL_TCP_HLEN		20
#define FL_UDP_HLEN		8
#define FL_ICMP_HLEN		8
#define FL_L4_PORTS_LEN		8	/* what an ICMP error must quote past the inner IP header */

#define FL_ICMP_DEST_UNREACH	3
#define FL_ICMP_FRAG_NEEDED	4
#define FL_ICMPV6_PKT_TOOBIG	2

/* What both data planes write: the outer header's TTL, and the longest
 * too-big answer (RFC 1812 4.3.2.3; RFC 4443 2.4(c), the IPv6 minimum MTU). */
#define FL_OUTER_TTL		64
#define FL_ICMP4_MAX_IP		576
#define FL_ICMP6_MAX_IP		1280

/* ---- the two compilers' ways to reach frame bytes ---- */

/*
 * fl_bytes(base, data_end, off, n, limit): the n bytes at base + off, or
 * NULL unless off + n <= limit. base is a frame pointer already checked (the
 * frame's start, a header's), off and limit are offsets from it, and limit
 * (the frame's length or the IP packet's end) lies within the frame.
 */
#ifdef __bpf__
/*
 * The verifier believes a read only after that very pointer is compared
 * with the frame's end, and wants the offset it was built from bounded: so
 * the pointer is built from a masked offset and checked again. Real XDP
 * frames are far shorter than the mask.
 */
#define FL_PARSE_OFF_MASK	0x3fff

static __always_inline const __u8 *fl_bytes(const __u8 *base, const __u8 *data_end, __u32 off,
					    __u32 n, __u32 limit)
{
	const __u8 *b = base + (off & FL_PARSE_OFF_MASK);

	if (off + n > limit)
		return (const __u8 *)0;
	if (b + n > data_end)
		return (const __u8 *)0;
	return b;
}

/* Inlined in the XDP program, like the rest of the parse. */
#define FL_PARSE_RARE	__always_inline

/*
 * Words in the frame, in network order. The frame's alignment is unknown;
 * the word loads the x86-64 and arm64 JITs emit need none, and the verifier
 * allows them (the program is not loaded with strict alignment), while
 * __builtin_memcpy through a byte pointer compiles to a byte at a time:
 * several times the instructions.
 */
static __always_inline __u16 fl_ld16(const void *b)
{
	return *(const __u16 *)b;
}

static __always_inline __u32 fl_ld32(const void *b)
{
	return *(const __u32 *)b;
}

static __always_inline void fl_ld_addr6(union fl_addr *a, const __u8 *b)
{
	a->v6[0] = fl_ld32(b);
	a->v6[1] = fl_ld32(b + 4);
	a->v6[2] = fl_ld32(b + 8);
	a->v6[3] = fl_ld32(b + 12);
}
#else
/* limit lies within the frame, so the check against it is the whole proof.
 * A frame with bytes to read is not at NULL: told so, gcc drops the
 * callers' NULL tests after the check. */
static __always_inline const __u8 *fl_bytes(const __u8 *base, const __u8 *data_end, __u32 off,
					    __u32 n, __u32 limit)
{
	(void)data_end;
	if (off + n > limit)
		return (const __u8 *)0;
	if (!base)
		__builtin_unreachable();
	return base + off;
}

/*
 * The ICMP error parses, out of line in fulcrum-dp: inlined, the registers
 * they need were saved and restored for every packet (two pushes and two
 * pops of a TCP packet's 110 instructions or so).
 */
#define FL_PARSE_RARE	__attribute__((noinline, unused))

static __always_inline __u16 fl_ld16(const void *b)
{
	__u16 v;

	__builtin_memcpy(&v, b, 2);
	return v;
}

static __always_inline __u32 fl_ld32(const void *b)
{
	__u32 v;

	__builtin_memcpy(&v, b, 4);
	return v;
}

static __always_inline void fl_ld_addr6(union fl_addr *a, const __u8 *b)
{
	__builtin_memcpy(a->bytes, b, 16);
}
#endif

/* ---- the parse ---- */

/* A big-endian 16-bit field as a host number. */
static __always_inline __u32 fl_rd16(const __u8 *b)
{
	return (__u32)b[0] << 8 | b[1];
}

static __always_inline __u32 fl_rd32(const __u8 *b)
{
	return (__u32)b[0] << 24 | (__u32)b[1] << 16 | (__u32)b[2] << 8 | b[3];
}

/*
 * The key's fields are stored in the widths fulcrum-dp's next stages load
 * them in: classify reads the destination as 8-byte words and protocol and
 * family as one 16-bit word right after parse, and a load that spans two
 * stores cannot be forwarded from the store buffer (it waits for both to
 * retire). An IPv4 address goes in as a whole 8-byte word, its upper half
 * zero.
 */
static __always_inline void fl_store_v4(union fl_addr *a, const __u8 *b)
{
	__u64 w = fl_ld32(b);

	__builtin_memcpy(a->bytes, &w, 8);
}

static __always_inline void fl_store_proto_family(struct fl_flow_key *k, __u32 proto,
						  __u32 family)
{
	__u16 w = (__u16)(proto | family << 8);

	_Static_assert(__builtin_offsetof(struct fl_flow_key, family) ==
		       __builtin_offsetof(struct fl_flow_key, proto) + 1, "family follows proto");
	__builtin_memcpy(&k->proto, &w, 2);
}

static __always_inline enum fl_parse_verdict fl_parse_drop(enum fl_drop_reason *reason,
							   enum fl_drop_reason why)
{
	*reason = why;
	return FL_PARSE_DROP;
}

static __always_inline int fl_has_ports(__u32 proto)
{
	return proto == FL_P_TCP || proto == FL_P_UDP;
}

/* Ports stay in network order: copied, never converted. */
static __always_inline void fl_read_ports(struct fl_flow_key *k, const __u8 *l4)
{
	k->sport = fl_ld16(l4);
	k->dport = fl_ld16(l4 + 2);
}

/* The IPv4 header at base + off, within limit (fl_bytes), and its length
 * in *ihl; NULL with *reason set for a header cut short (cut_short: the
 * caller's name for it) or a bad version or IHL. */
static __always_inline const __u8 *fl_ipv4_header(const __u8 *base, const __u8 *data_end,
						  __u32 off, __u32 limit,
						  enum fl_drop_reason cut_short, __u32 *ihl,
						  enum fl_drop_reason *reason)
{
	const __u8 *ip = fl_bytes(base, data_end, off, FL_IPV4_HLEN, limit);

	if (!ip) {
		*reason = cut_short;
		return ip;
	}
	*ihl = (__u32)(ip[0] & 0x0f) * 4;
	if (ip[0] >> 4 != 4 || *ihl < FL_IPV4_HLEN) {
		*reason = FL_DROP_IP_BAD_HEADER;
		return (const __u8 *)0;
	}
	return ip;
}

static __always_inline enum fl_parse_verdict
fl_parse_tcp(const __u8 *data, const __u8 *data_end, __u32 off, __u32 end, struct fl_pkt *p,
	     enum fl_drop_reason *reason)
{
	const __u8 *th;
	__u32 doff;

	th = fl_bytes(data, data_end, off, FL_TCP_HLEN, end);
	if (!th)
		return fl_parse_drop(reason, FL_DROP_L4_TRUNCATED);
	doff = (__u32)(th[12] >> 4) * 4;
	if (doff < FL_TCP_HLEN || off + doff > end)
		return fl_parse_drop(reason, FL_DROP_TCP_BAD_HEADER);
	fl_read_ports(&p->key, th);
	p->tcp_flags = th[13];
	return FL_PARSE_FLOW;
}

static __always_inline enum fl_parse_verdict
fl_parse_udp(const __u8 *data, const __u8 *data_end, __u32 off, __u32 end, struct fl_pkt *p,
	     enum fl_drop_reason *reason)
{
	const __u8 *uh;

	uh = fl_bytes(data, data_end, off, FL_UDP_HLEN, end);
	if (!uh)
		return fl_parse_drop(reason, FL_DROP_L4_TRUNCATED);
	fl_read_ports(&p->key, uh);
	return FL_PARSE_FLOW;
}

/* The key of the flow an ICMP error quotes: the quote is the backend's
 * reply (VIP -> client), so its reverse names the client -> VIP flow. */
static __always_inline enum fl_parse_verdict fl_icmp_error_key(struct fl_pkt *p,
							       struct fl_flow_key *inner,
							       const __u8 *ports, __u32 mtu)
{
	fl_read_ports(inner, ports);
	fl_flow_key_reverse(&p->key, inner);
	p->flags |= FL_PKT_ICMP_ERROR;
	p->icmp_mtu = (__u16)(mtu > 0xffff ? 0xffff : mtu);
	return FL_PARSE_FLOW;
}

/* ICMPv4: only "fragmentation needed" is about a flow; the rest is the host's. */
static FL_PARSE_RARE enum fl_parse_verdict
fl_parse_icmp4(const __u8 *data, const __u8 *data_end, __u32 off, __u32 end, struct fl_pkt *p,
	       enum fl_drop_reason *reason)
{
	struct fl_flow_key k = { .family = FL_AF_INET };
	__u32 in = off + FL_ICMP_HLEN, ihl;
	const __u8 *ih, *ip, *ports;

	ih = fl_bytes(data, data_end, off, FL_ICMP_HLEN, end);
	if (!ih)
		return fl_parse_drop(reason, FL_DROP_L4_TRUNCATED);
	if (ih[0] != FL_ICMP_DEST_UNREACH || ih[1] != FL_ICMP_FRAG_NEEDED)
		return FL_PARSE_HOST;
	ip = fl_ipv4_header(data, data_end, in, end, FL_DROP_L4_TRUNCATED, &ihl, reason);
	if (!ip)
		return FL_PARSE_DROP;
	/* A later fragment quotes data, not ports: no flow to name. */
	if (!fl_has_ports(ip[9]) || (fl_rd16(ip + 6) & FL_IPV4_OFF))
		return FL_PARSE_HOST;
	/* from the quoted header, which lies within end */
	ports = fl_bytes(ip, data_end, ihl, FL_L4_PORTS_LEN, end - in);
	if (!ports)
		return fl_parse_drop(reason, FL_DROP_L4_TRUNCATED);
	k.src.v4 = fl_ld32(ip + 12);
	k.dst.v4 = fl_ld32(ip + 16);
	k.proto = ip[9];
	return fl_icmp_error_key(p, &k, ports, fl_rd16(ih + 6));
}

/* ICMPv6: only "packet too big" is about a flow. The quote's extension
 * headers are not walked: a backend's TCP/UDP reply carries none. */
static FL_PARSE_RARE enum fl_parse_verdict
fl_parse_icmp6(const __u8 *data, const __u8 *data_end, __u32 off, __u32 end, struct fl_pkt *p,
	       enum fl_drop_reason *reason)
{
	struct fl_flow_key k = { .family = FL_AF_INET6 };
	__u32 in = off + FL_ICMP_HLEN;
	const __u8 *ih, *ip;

	ih = fl_bytes(data, data_end, off, FL_ICMP_HLEN, end);
	if (!ih)
		return fl_parse_drop(reason, FL_DROP_L4_TRUNCATED);
	if (ih[0] != FL_ICMPV6_PKT_TOOBIG)
		return FL_PARSE_HOST;
	ip = fl_bytes(data, data_end, in, FL_IPV6_HLEN, end);
	if (!ip)
		return fl_parse_drop(reason, FL_DROP_L4_TRUNCATED);
	if (ip[0] >> 4 != 6)
		return fl_parse_drop(reason, FL_DROP_IP_BAD_HEADER);
	if (!fl_has_ports(ip[6]))
		return FL_PARSE_HOST;
	ip = fl_bytes(data, data_end, in, FL_IPV6_HLEN + FL_L4_PORTS_LEN, end);
	if (!ip)
		return fl_parse_drop(reason, FL_DROP_L4_TRUNCATED);
	fl_ld_addr6(&k.src, ip + 8);
	fl_ld_addr6(&k.dst, ip + 24);
	k.proto = ip[6];
	return fl_icmp_error_key(p, &k, ip + FL_IPV6_HLEN, fl_rd32(ih + 4));
}

/* From off to end, by proto; the caller passes what it has just stored in
 * *p so that nothing is loaded back. Tests in the order of frequency: as a
 * switch, gcc tested TCP after UDP and ICMP. */
static __always_inline enum fl_parse_verdict
fl_parse_l4(const __u8 *data, const __u8 *data_end, __u32 off, __u32 end, __u32 proto,
	    __u32 family, struct fl_pkt *p, enum fl_drop_reason *reason)
{
	if (proto == FL_P_TCP)
		return fl_parse_tcp(data, data_end, off, end, p, reason);
	if (proto == FL_P_UDP)
		return fl_parse_udp(data, data_end, off, end, p, reason);
	if (proto == FL_P_ICMP && family == FL_AF_INET)
		return fl_parse_icmp4(data, data_end, off, end, p, reason);
	if (proto == FL_P_ICMPV6 && family == FL_AF_INET6)
		return fl_parse_icmp6(data, data_end, off, end, p, reason);
	return FL_PARSE_HOST;
}

static __always_inline enum fl_parse_verdict
fl_parse_ipv4(const __u8 *data, const __u8 *data_end, __u32 len, __u32 l3, struct fl_pkt *p,
	      enum fl_drop_reason *reason)
{
	__u32 avail = len - l3, ihl, tot, frag;
	const __u8 *ip;

	ip = fl_ipv4_header(data + l3, data_end, 0, avail, FL_DROP_IP_TRUNCATED, &ihl, reason);
	if (!ip)
		return FL_PARSE_DROP;
	if (ihl > avail)
		return fl_parse_drop(reason, FL_DROP_IP_TRUNCATED);
	tot = fl_rd16(ip + 2);
	if (tot < ihl || tot > avail)
		return fl_parse_drop(reason, FL_DROP_IP_BAD_HEADER);

	p->ip_len = (__u16)tot;
	p->l4_off = (__u16)(l3 + ihl);
	p->tos = ip[1];
	p->ttl = ip[8];
	fl_store_proto_family(&p->key, ip[9], FL_AF_INET);
	fl_store_v4(&p->key.src, ip + 12);
	fl_store_v4(&p->key.dst, ip + 16);

	frag = fl_rd16(ip + 6);
	p->flags = (frag & FL_IPV4_DF) ? FL_PKT_DF : 0;
	/* A fragment's L4 is not read (ports stay 0): the caller drops those
	 * to a VIP. Fragments of protocols no VIP serves are the host's. */
	if (frag & FL_IPV4_MF_OFF) {
		p->flags |= FL_PKT_FRAGMENT;
		return fl_has_ports(ip[9]) ? FL_PARSE_FLOW : FL_PARSE_HOST;
	}
	return fl_parse_l4(data, data_end, l3 + ihl, l3 + tot, ip[9], FL_AF_INET, p, reason);
}

static __always_inline int fl_ipv6_ext(__u32 nh)
{
	return nh == FL_P_V6_HOP || nh == FL_P_V6_ROUTING || nh == FL_P_V6_DSTOPTS ||
	       nh == FL_P_V6_FRAGMENT;
}

/*
 * Walks at most FL_IPV6_MAX_EXT extension headers from off and returns the
 * upper layer's offset, its protocol in *nh; 0 for a header cut short or a
 * chain too long. The walk stops at a fragment header: in later fragments
 * what follows it is data, and stopping there in all of them gives every
 * fragment the same key.
 */
static __always_inline __u32 fl_ipv6_walk(const __u8 *data, const __u8 *data_end, __u32 off,
					  __u32 end, __u32 *nh, int *frag)
{
	__u32 hlen, next = *nh;

	for (int i = 0; i < FL_IPV6_MAX_EXT && fl_ipv6_ext(next); i++) {
		const __u8 *eh;

		eh = fl_bytes(data, data_end, off, FL_IPV6_EXT_MIN, end);
		if (!eh)
			return 0;
		if (next == FL_P_V6_FRAGMENT) {
			*frag = 1;
			*nh = eh[0];
			return off + FL_IPV6_EXT_MIN;
		}
		hlen = ((__u32)eh[1] + 1) * 8;
		if (off + hlen > end)
			return 0;
		next = eh[0];
		off += hlen;
	}
	*nh = next;
	return fl_ipv6_ext(next) ? 0 : off;
}

static __always_inline enum fl_parse_verdict
fl_parse_ipv6(const __u8 *data, const __u8 *data_end, __u32 len, __u32 l3, struct fl_pkt *p,
	      enum fl_drop_reason *reason)
{
	__u32 avail = len - l3, iplen, l4, nh;
	const __u8 *ip;
	int frag = 0;

	ip = fl_bytes(data + l3, data_end, 0, FL_IPV6_HLEN, avail);
	if (!ip)
		return fl_parse_drop(reason, FL_DROP_IP_TRUNCATED);
	iplen = FL_IPV6_HLEN + fl_rd16(ip + 4);
	/* ip_len is 16 bits: a packet longer than 64 KiB cannot be in one
	 * mbuf segment or XDP buffer anyway. */
	if (ip[0] >> 4 != 6 || iplen > avail || iplen > 0xffff)
		return fl_parse_drop(reason, FL_DROP_IP_BAD_HEADER);

	p->ip_len = (__u16)iplen;
	p->tos = (__u8)(fl_rd16(ip) >> 4);
	p->ttl = ip[7];
	p->key.family = FL_AF_INET6;	/* even if the walk below fails */
	fl_ld_addr6(&p->key.src, ip + 8);
	fl_ld_addr6(&p->key.dst, ip + 24);

	nh = ip[6];
	l4 = fl_ipv6_walk(data, data_end, l3 + FL_IPV6_HLEN, l3 + iplen, &nh, &frag);
	if (!l4)
		return fl_parse_drop(reason, FL_DROP_IPV6_EXT_HEADER);
	p->l4_off = (__u16)l4;
	fl_store_proto_family(&p->key, nh, FL_AF_INET6);
	/* IPv6 routers never fragment: every IPv6 packet is DF. */
	p->flags = FL_PKT_DF | (frag ? FL_PKT_FRAGMENT : 0);
	if (frag)
		return fl_has_ports(nh) ? FL_PARSE_FLOW : FL_PARSE_HOST;
	return fl_parse_l4(data, data_end, l4, l3 + iplen, nh, FL_AF_INET6, p, reason);
}

/*
 * Parse the Ethernet frame [data, data_end); never reads outside it,
 * whatever the bytes. In fulcrum-dp the frame must be contiguous (one mbuf
 * segment).
 *
 * Every field of *p is written: what the parse did not reach is zero, the
 * key's padding and unused address words are always zero, p->hash is 0.
 * - FL_PARSE_FLOW: p->key is a TCP or UDP flow, client -> VIP, in network
 *   byte order; l3_off, l4_off, ip_len, ttl, tos, flags are set, tcp_flags
 *   for TCP. With FL_PKT_FRAGMENT the ports are 0 (every fragment of a
 *   datagram gets the same key) and L4 is not read. With FL_PKT_ICMP_ERROR
 *   the key is the flow the ICMP error quotes, reversed, icmp_mtu is set
 *   and l4_off points at the ICMP header.
 * - FL_PARSE_HOST: well formed but not a balanced flow (ARP, ICMP other
 *   than FN/PTB, other IP protocols): for the kernel. Fields are filled as
 *   far as the parse went.
 * - FL_PARSE_DROP: malformed; *reason says why. *reason is written only
 *   on this verdict.
 * Offsets, ip_len and icmp_mtu are in host byte order.
 */
static __always_inline enum fl_parse_verdict fl_parse_frame(const __u8 *data,
							    const __u8 *data_end,
							    struct fl_pkt *p,
							    enum fl_drop_reason *reason)
{
	__u32 len = (__u32)(data_end - data), off = FL_ETH_HLEN, etype;
	const __u8 *eth, *tag;
	int n = 0;

	*p = (struct fl_pkt){ .n_vlans = 0 };
	eth = fl_bytes(data, data_end, 0, FL_ETH_HLEN, len);
	if (!eth)
		return fl_parse_drop(reason, FL_DROP_ETH_TRUNCATED);
	etype = fl_rd16(eth + FL_ETH_HLEN - 2);
	for (; n < FL_MAX_VLANS && (etype == FL_ETH_P_8021Q || etype == FL_ETH_P_8021AD); n++) {
		tag = fl_bytes(data, data_end, off, FL_VLAN_HLEN, len);
		if (!tag)
			return fl_parse_drop(reason, FL_DROP_ETH_TRUNCATED);
		etype = fl_rd16(tag + 2);
		off += FL_VLAN_HLEN;
	}
	if (etype == FL_ETH_P_8021Q || etype == FL_ETH_P_8021AD)
		return fl_parse_drop(reason, FL_DROP_VLAN_TOO_DEEP);
	p->n_vlans = (__u8)n;
	p->l3_off = (__u16)off;

	if (etype == FL_ETH_P_IPV4)
		return fl_parse_ipv4(data, data_end, len, off, p, reason);
	if (etype == FL_ETH_P_IPV6)
		return fl_parse_ipv6(data, data_end, len, off, p, reason);
	return FL_PARSE_HOST;
}

#endif /* FL_PKT_H */
