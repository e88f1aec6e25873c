/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The parse stage (parse.h). Every read is preceded by a bounds check
 * against the end of what it may read: the frame for L2 and the IP header,
 * then the end of the IP packet (l3_off + ip_len), so frame padding is never
 * taken for L4 bytes. Offsets are __u32 and stay below 2^17, so `off + n`
 * cannot wrap.
 */
#include <string.h>

#include "parse.h"

#define ETH_HLEN	14
#define ETH_P_IPV4	0x0800
#define ETH_P_IPV6	0x86dd
#define ETH_P_8021Q	0x8100
#define ETH_P_8021AD	0x88a8
#define VLAN_HLEN	4
#define MAX_VLANS	2

#define IPV4_HLEN	20
#define IPV4_DF		0x4000
#define IPV4_MF_OFF	0x3fff	/* more-fragments and fragment offset */
#define IPV4_OFF	0x1fff
#define IPV6_HLEN	40
#define IPV6_MAX_EXT	4
#define IPV6_EXT_MIN	8	/* every walked extension header is 8n bytes */

#define P_ICMP		1
#define P_TCP		6
#define P_UDP		17
#define P_V6_HOP	0
#define P_V6_ROUTING	43
#define P_V6_FRAGMENT	44
#define P_ICMPV6	58
#define P_V6_DSTOPTS	60

#define TCP_HLEN	20
#define UDP_HLEN	8
#define ICMP_HLEN	8
#define L4_PORTS_LEN	8	/* what an ICMP error must quote past the inner IP header */

#define ICMP_DEST_UNREACH	3
#define ICMP_FRAG_NEEDED	4
#define ICMPV6_PKT_TOOBIG	2

/* A big-endian 16-bit field as a host number (one load and a rotate). */
static inline __u32 rd16(const __u8 *b)
{
	return (__u32)b[0] << 8 | b[1];
}

static inline __u32 rd32(const __u8 *b)
{
	return (__u32)b[0] << 24 | (__u32)b[1] << 16 | (__u32)b[2] << 8 | b[3];
}

/*
 * The key's fields are stored in the widths the next stages load them in:
 * classify reads the destination as 8-byte words and protocol and family
 * as one 16-bit word right after parse, and a load that spans two stores
 * cannot be forwarded from the store buffer (it waits for both to retire).
 * An IPv4 address goes in as a whole 8-byte word, its upper half zero.
 */
static inline void store_v4(union fl_addr *a, const __u8 *b)
{
	__u32 v;
	__u64 w;

	memcpy(&v, b, 4);
	w = v;
	memcpy(a->bytes, &w, 8);
}

static inline void store_proto_family(struct fl_flow_key *k, __u32 proto, __u32 family)
{
	__u16 w = (__u16)(proto | family << 8);

	_Static_assert(__builtin_offsetof(struct fl_flow_key, family) ==
		       __builtin_offsetof(struct fl_flow_key, proto) + 1, "family follows proto");
	memcpy(&k->proto, &w, 2);
}

static inline enum fl_parse_verdict drop(enum fl_drop_reason *reason, enum fl_drop_reason why)
{
	*reason = why;
	return FL_PARSE_DROP;
}

static inline int has_ports(__u32 proto)
{
	return proto == P_TCP || proto == P_UDP;
}

/* Ports stay in network order: copied, never converted. */
static inline void read_ports(struct fl_flow_key *k, const __u8 *l4)
{
	memcpy(&k->sport, l4, 2);
	memcpy(&k->dport, l4 + 2, 2);
}

static inline enum fl_parse_verdict parse_tcp(const __u8 *frame, __u32 off, __u32 end,
					      struct fl_pkt *p, enum fl_drop_reason *reason)
{
	const __u8 *th = frame + off;
	__u32 doff;

	if (off + TCP_HLEN > end)
		return drop(reason, FL_DROP_L4_TRUNCATED);
	doff = (__u32)(th[12] >> 4) * 4;
	if (doff < TCP_HLEN || off + doff > end)
		return drop(reason, FL_DROP_TCP_BAD_HEADER);
	read_ports(&p->key, th);
	p->tcp_flags = th[13];
	return FL_PARSE_FLOW;
}

static inline enum fl_parse_verdict parse_udp(const __u8 *frame, __u32 off, __u32 end,
					      struct fl_pkt *p, enum fl_drop_reason *reason)
{
	if (off + UDP_HLEN > end)
		return drop(reason, FL_DROP_L4_TRUNCATED);
	read_ports(&p->key, frame + off);
	return FL_PARSE_FLOW;
}

/* The key of the flow an ICMP error quotes: the quote is the backend's
 * reply (VIP -> client), so its reverse names the client -> VIP flow. */
static inline enum fl_parse_verdict icmp_error_key(struct fl_pkt *p, struct fl_flow_key *inner,
						   const __u8 *ports, __u32 mtu)
{
	read_ports(inner, ports);
	fl_flow_key_reverse(&p->key, inner);
	p->flags |= FL_PKT_ICMP_ERROR;
	p->icmp_mtu = (__u16)(mtu > 0xffff ? 0xffff : mtu);
	return FL_PARSE_FLOW;
}

/* ICMPv4: only "fragmentation needed" is about a flow; the rest is the host's. */
static inline enum fl_parse_verdict parse_icmp4(const __u8 *frame, __u32 off, __u32 end,
						struct fl_pkt *p, enum fl_drop_reason *reason)
{
	const __u8 *ih = frame + off, *ip;
	__u32 in = off + ICMP_HLEN, ihl;
	struct fl_flow_key k = { .family = FL_AF_INET };

	if (off + ICMP_HLEN > end)
		return drop(reason, FL_DROP_L4_TRUNCATED);
	if (ih[0] != ICMP_DEST_UNREACH || ih[1] != ICMP_FRAG_NEEDED)
		return FL_PARSE_HOST;
	if (in + IPV4_HLEN > end)
		return drop(reason, FL_DROP_L4_TRUNCATED);
	ip = ih + ICMP_HLEN;
	ihl = (__u32)(ip[0] & 0x0f) * 4;
	if (ip[0] >> 4 != 4 || ihl < IPV4_HLEN)
		return drop(reason, FL_DROP_IP_BAD_HEADER);
	/* A later fragment quotes data, not ports: no flow to name. */
	if (!has_ports(ip[9]) || (rd16(ip + 6) & IPV4_OFF))
		return FL_PARSE_HOST;
	if (in + ihl + L4_PORTS_LEN > end)
		return drop(reason, FL_DROP_L4_TRUNCATED);
	memcpy(&k.src.v4, ip + 12, 4);
	memcpy(&k.dst.v4, ip + 16, 4);
	k.proto = ip[9];
	return icmp_error_key(p, &k, ip + ihl, rd16(ih + 6));
}

/* ICMPv6: only "packet too big" is about a flow. The quote's extension
 * headers are not walked: a backend's TCP/UDP reply carries none. */
static inline enum fl_parse_verdict parse_icmp6(const __u8 *frame, __u32 off, __u32 end,
						struct fl_pkt *p, enum fl_drop_reason *reason)
{
	const __u8 *ih = frame + off, *ip;
	__u32 in = off + ICMP_HLEN;
	struct fl_flow_key k = { .family = FL_AF_INET6 };

	if (off + ICMP_HLEN > end)
		return drop(reason, FL_DROP_L4_TRUNCATED);
	if (ih[0] != ICMPV6_PKT_TOOBIG)
		return FL_PARSE_HOST;
	if (in + IPV6_HLEN > end)
		return drop(reason, FL_DROP_L4_TRUNCATED);
	ip = ih + ICMP_HLEN;
	if (ip[0] >> 4 != 6)
		return drop(reason, FL_DROP_IP_BAD_HEADER);
	if (!has_ports(ip[6]))
		return FL_PARSE_HOST;
	if (in + IPV6_HLEN + L4_PORTS_LEN > end)
		return drop(reason, FL_DROP_L4_TRUNCATED);
	memcpy(k.src.bytes, ip + 8, 16);
	memcpy(k.dst.bytes, ip + 24, 16);
	k.proto = ip[6];
	return icmp_error_key(p, &k, ip + IPV6_HLEN, rd32(ih + 4));
}

/* From off to end, by proto; the caller passes what it has just stored in
 * *p so that nothing is loaded back. */
static inline enum fl_parse_verdict parse_l4(const __u8 *frame, __u32 off, __u32 end, __u32 proto,
					     __u32 family, struct fl_pkt *p,
					     enum fl_drop_reason *reason)
{
	switch (proto) {
	case P_TCP:
		return parse_tcp(frame, off, end, p, reason);
	case P_UDP:
		return parse_udp(frame, off, end, p, reason);
	case P_ICMP:
		if (family == FL_AF_INET)
			return parse_icmp4(frame, off, end, p, reason);
		return FL_PARSE_HOST;
	case P_ICMPV6:
		if (family == FL_AF_INET6)
			return parse_icmp6(frame, off, end, p, reason);
		return FL_PARSE_HOST;
	default:
		return FL_PARSE_HOST;
	}
}

static inline enum fl_parse_verdict parse_ipv4(const __u8 *frame, __u32 len, __u32 l3,
					       struct fl_pkt *p, enum fl_drop_reason *reason)
{
	__u32 avail = len - l3, ihl, tot, frag;
	const __u8 *ip = frame + l3;

	if (avail < IPV4_HLEN)
		return drop(reason, FL_DROP_IP_TRUNCATED);
	ihl = (__u32)(ip[0] & 0x0f) * 4;
	if (ip[0] >> 4 != 4 || ihl < IPV4_HLEN)
		return drop(reason, FL_DROP_IP_BAD_HEADER);
	if (ihl > avail)
		return drop(reason, FL_DROP_IP_TRUNCATED);
	tot = rd16(ip + 2);
	if (tot < ihl || tot > avail)
		return drop(reason, FL_DROP_IP_BAD_HEADER);

	p->ip_len = (__u16)tot;
	p->l4_off = (__u16)(l3 + ihl);
	p->tos = ip[1];
	p->ttl = ip[8];
	store_proto_family(&p->key, ip[9], FL_AF_INET);
	store_v4(&p->key.src, ip + 12);
	store_v4(&p->key.dst, ip + 16);

	frag = rd16(ip + 6);
	p->flags = (frag & IPV4_DF) ? FL_PKT_DF : 0;
	/* A fragment's L4 is not read (ports stay 0): the caller drops those
	 * to a VIP. Fragments of protocols no VIP serves are the host's. */
	if (frag & IPV4_MF_OFF) {
		p->flags |= FL_PKT_FRAGMENT;
		return has_ports(ip[9]) ? FL_PARSE_FLOW : FL_PARSE_HOST;
	}
	return parse_l4(frame, l3 + ihl, l3 + tot, ip[9], FL_AF_INET, p, reason);
}

static inline int ipv6_ext(__u32 nh)
{
	return nh == P_V6_HOP || nh == P_V6_ROUTING || nh == P_V6_DSTOPTS || nh == P_V6_FRAGMENT;
}

/*
 * Walks at most IPV6_MAX_EXT extension headers from off and returns the
 * upper layer's offset, its protocol in *nh; 0 for a header cut short or a
 * chain too long. The walk stops at a fragment header: in later fragments
 * what follows it is data, and stopping there in all of them gives every
 * fragment the same key.
 */
static inline __u32 ipv6_walk(const __u8 *frame, __u32 off, __u32 end, __u32 *nh, int *frag)
{
	__u32 hlen, next = *nh;

	for (int i = 0; i < IPV6_MAX_EXT && ipv6_ext(next); i++) {
		const __u8 *eh = frame + off;

		if (off + IPV6_EXT_MIN > end)
			return 0;
		if (next == P_V6_FRAGMENT) {
			*frag = 1;
			*nh = eh[0];
			return off + IPV6_EXT_MIN;
		}
		hlen = ((__u32)eh[1] + 1) * 8;
		if (off + hlen > end)
			return 0;
		next = eh[0];
		off += hlen;
	}
	*nh = next;
	return ipv6_ext(next) ? 0 : off;
}

static inline enum fl_parse_verdict parse_ipv6(const __u8 *frame, __u32 len, __u32 l3,
					       struct fl_pkt *p, enum fl_drop_reason *reason)
{
	const __u8 *ip = frame + l3;
	__u32 iplen, l4, nh;
	int frag = 0;

	if (len - l3 < IPV6_HLEN)
		return drop(reason, FL_DROP_IP_TRUNCATED);
	iplen = IPV6_HLEN + rd16(ip + 4);
	/* ip_len is 16 bits: a packet longer than 64 KiB cannot be in one
	 * mbuf segment anyway. */
	if (ip[0] >> 4 != 6 || iplen > len - l3 || iplen > 0xffff)
		return drop(reason, FL_DROP_IP_BAD_HEADER);

	p->ip_len = (__u16)iplen;
	p->tos = (__u8)(rd16(ip) >> 4);
	p->ttl = ip[7];
	p->key.family = FL_AF_INET6;	/* even if the walk below fails */
	memcpy(p->key.src.bytes, ip + 8, 16);
	memcpy(p->key.dst.bytes, ip + 24, 16);

	nh = ip[6];
	l4 = ipv6_walk(frame, l3 + IPV6_HLEN, l3 + iplen, &nh, &frag);
	if (!l4)
		return drop(reason, FL_DROP_IPV6_EXT_HEADER);
	p->l4_off = (__u16)l4;
	store_proto_family(&p->key, nh, FL_AF_INET6);
	/* IPv6 routers never fragment: every IPv6 packet is DF. */
	p->flags = FL_PKT_DF | (frag ? FL_PKT_FRAGMENT : 0);
	if (frag)
		return has_ports(nh) ? FL_PARSE_FLOW : FL_PARSE_HOST;
	return parse_l4(frame, l4, l3 + iplen, nh, FL_AF_INET6, p, reason);
}

enum fl_parse_verdict fl_parse(const __u8 *frame, __u32 len, struct fl_pkt *p,
			       enum fl_drop_reason *reason)
{
	__u32 off = ETH_HLEN, etype;
	int n = 0;

	*p = (struct fl_pkt){ .n_vlans = 0 };
	if (len < ETH_HLEN)
		return drop(reason, FL_DROP_ETH_TRUNCATED);
	etype = rd16(frame + ETH_HLEN - 2);
	for (; n < MAX_VLANS && (etype == ETH_P_8021Q || etype == ETH_P_8021AD); n++) {
		if (off + VLAN_HLEN > len)
			return drop(reason, FL_DROP_ETH_TRUNCATED);
		etype = rd16(frame + off + 2);
		off += VLAN_HLEN;
	}
	if (etype == ETH_P_8021Q || etype == ETH_P_8021AD)
		return drop(reason, FL_DROP_VLAN_TOO_DEEP);
	p->n_vlans = (__u8)n;
	p->l3_off = (__u16)off;

	if (etype == ETH_P_IPV4)
		return parse_ipv4(frame, len, off, p, reason);
	if (etype == ETH_P_IPV6)
		return parse_ipv6(frame, len, off, p, reason);
	return FL_PARSE_HOST;
}
