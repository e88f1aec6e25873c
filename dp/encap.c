/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The encapsulation stage and the too-big answer (encap.h). Per packet in a
 * worker: no loop but the checksum, constant-size copies, and one inline
 * body per (outer family, UDP or not) so each variant compiles to straight
 * code (VPP lb_node_fn's shape).
 */
#include <arpa/inet.h>
#include <string.h>

#include "encap.h"

/*
 * Headers are composed in registers as native words and stored whole: built
 * field by field in memory and read back for the checksum, they cost a
 * store-forwarding stall each. A native word holds the wire bytes b0 b1 b2
 * b3 as b0 | b1 << 8 | b2 << 16 | b3 << 24: the host is little-endian
 * (flow.h refuses any other), and a network-order field keeps its bytes.
 */
static inline void store64(__u8 *d, __u64 v)
{
	memcpy(d, &v, 8);
}

static inline void store32(__u8 *d, __u32 v)
{
	memcpy(d, &v, 4);
}

/*
 * The Internet checksum (RFC 1071), the one implementation in fulcrum-dp.
 * Sums native 64-bit words with end-around carry; the one's-complement sum is
 * byte-order independent, so storing the folded result natively gives the
 * network-order checksum. A trailing odd byte is the high-order byte of a
 * zero-padded network word, which on a little-endian host (flow.h insists on
 * one) is the low byte of the native word.
 */
static inline __u64 csum_add64(__u64 acc, __u64 w)
{
	acc += w;
	return acc + (acc < w);
}

static inline __u64 csum_add(__u64 acc, const void *buf, __u32 len)
{
	const __u8 *d = buf;
	__u64 w[4], b = 0, c = 0, e = 0;

	/* Four carry chains side by side: a single one is bound by its
	 * add-with-carry latency (about 1.6 times slower over 1500 bytes). */
	for (; len >= 32; d += 32, len -= 32) {
		memcpy(w, d, 32);
		acc = csum_add64(acc, w[0]);
		b = csum_add64(b, w[1]);
		c = csum_add64(c, w[2]);
		e = csum_add64(e, w[3]);
	}
	acc = csum_add64(csum_add64(acc, b), csum_add64(c, e));
	for (; len >= 8; d += 8, len -= 8) {
		memcpy(w, d, 8);
		acc = csum_add64(acc, w[0]);
	}
	w[0] = 0;
	if (len & 4) {
		__u32 x;

		memcpy(&x, d, 4);
		w[0] = x;
		d += 4;
	}
	if (len & 2) {
		__u16 x;

		memcpy(&x, d, 2);
		w[0] += (__u64)x << 32;
		d += 2;
	}
	if (len & 1)
		w[0] += (__u64)*d << 48;
	return csum_add64(acc, w[0]);
}

/* Folds a partial sum to 16 bits; 0 only when every summed word was 0. */
static inline __u16 csum_fold(__u64 s)
{
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffu) + (s >> 16);
	s = (s & 0xffffu) + (s >> 16);
	return (__u16)s;
}

/* The IPv6 pseudo-header (RFC 8200 8.1) of an upper-layer packet. */
static inline __u64 csum_pseudo6(const __u8 *saddr, const __u8 *daddr, __u32 len, __u8 proto)
{
	__u64 a[4];

	memcpy(a, saddr, 16);
	memcpy(a + 2, daddr, 16);
	return csum_add64(csum_add64(csum_add64(csum_add64(htonl(len) + (__u64)htonl(proto),
							   a[0]), a[1]), a[2]), a[3]);
}

static inline int mac_is_zero(const __u8 mac[6])
{
	__u32 a;
	__u16 b;

	memcpy(&a, mac, 4);
	memcpy(&b, mac + 4, 2);
	return (a | b) == 0;
}

/* Writes the L2 header in front of an IP packet: Ethernet (and VLAN tags)
 * of the received frame, new MACs, innermost EtherType of the new family. */
static inline void put_l2(__u8 *dst, const __u8 *rx, __u32 l3, const __u8 *dmac,
			  const __u8 *smac, __u16 ethertype)
{
	__be16 et = htons(ethertype);
	__u8 tags[FL_L2_MAX - 6];

	/* Everything after the destination MAC, in one constant-size copy
	 * through registers: rx and dst may overlap. It reads and writes past
	 * l3 at most FL_L2_MAX - 14 bytes, which both the received frame
	 * (an IP header follows) and the new one (its outer header or ICMP
	 * header is written next) hold. */
	memcpy(tags, rx + 6, sizeof(tags));
	memcpy(dst + 6, tags, sizeof(tags));
	memcpy(dst, dmac, 6);
	memcpy(dst + 6, smac, 6);
	memcpy(dst + l3 - 2, &et, 2);
}

/* The outer (or answer's) IPv4 ID: 0 for an atomic datagram (DF, RFC 6864);
 * otherwise the inner ID mixed with the flow hash, so it varies per packet
 * as the inner one does and differs between flows sharing the tunnel. */
static inline __be16 ip4_id(int df, const __u8 *inner, int inner_v6, __u32 hash)
{
	__be16 id;

	if (df || inner_v6)
		return 0;
	memcpy(&id, inner + 4, 2);
	return id ^ htons((__u16)(hash >> 16));
}

/* An IPv4 header without options; its checksum is a straight sum of the
 * five words (RFC 1071), the checksum field counting as zero. */
static inline void put_ip4(__u8 *dst, __u8 tos, __u32 tot_len, __be16 id, int df, __u8 proto,
			   __be32 saddr, __be32 daddr)
{
	const __u32 w0 = 0x45u | (__u32)tos << 8 | (__u32)htons((__u16)tot_len) << 16;
	const __u32 w1 = id | (__u32)(df ? htons(FL_IPV4_DF) : 0) << 16;
	__u32 w2 = FL_OUTER_TTL | (__u32)proto << 8;

	w2 |= (__u32)(__u16)~csum_fold((__u64)w0 + w1 + w2 + saddr + daddr) << 16;
	store64(dst, w0 | (__u64)w1 << 32);
	store64(dst + 8, w2 | (__u64)saddr << 32);
	store32(dst + 16, daddr);
}

/* The first 8 bytes of an IPv6 header, as one native word. */
static inline __u64 ip6_word0(__u8 tclass, __u32 flow, __u32 payload_len, __u8 nexthdr,
			      __u8 hop_limit)
{
	const __u32 w0 = htonl(6u << 28 | (__u32)tclass << 20 | (flow & 0xfffffu));
	const __u32 w1 = htons((__u16)payload_len) | (__u32)nexthdr << 16 |
			 (__u32)hop_limit << 24;

	return w0 | (__u64)w1 << 32;
}

static inline void put_ip6(__u8 *dst, __u64 word0, const __u8 *saddr, const __u8 *daddr)
{
	store64(dst, word0);
	memcpy(dst + 8, saddr, 16);
	memcpy(dst + 24, daddr, 16);
}

/*
 * One body for every tunnel: outer IPv4 or IPv6 (outer_v6), with or without
 * a UDP header (gue). Both flags are constants at each call, so each variant
 * is straight code. Outer fragmentation is not implemented: a packet whose
 * outer form exceeds the MTU is refused as too big whatever its DF bit.
 * TOS/traffic class, ECN included, is copied (RFC 6040 normal mode).
 */
static inline __attribute__((always_inline)) int
encap_tunnel(const struct fl_encap_ctx *c, const struct fl_backend *b, const struct fl_pkt *p,
	     __u8 **frame, __u32 *len, __u32 headroom, enum fl_drop_reason *reason,
	     const int outer_v6, const int gue)
{
	const __u32 ip_hlen = outer_v6 ? FL_IPV6_HLEN : FL_IPV4_HLEN;
	const __u32 hlen = ip_hlen + (gue ? FL_UDP_HLEN : 0);
	const __u32 l3 = p->l3_off, ip_len = p->ip_len;
	const int inner_v6 = p->key.family == FL_AF_INET6;
	const int df = inner_v6 || (p->flags & FL_PKT_DF);
	const __u8 proto = gue ? FL_P_UDP : inner_v6 ? FL_P_IPV6 : FL_P_IPIP;
	__u8 *rx = *frame, *tx, *outer;

	if (mac_is_zero(c->next_hop_mac)) {
		*reason = FL_DROP_NO_NEXT_HOP;
		return -1;
	}
	if (hlen + ip_len > c->mtu) {
		*reason = FL_DROP_TOO_BIG;
		return -1;
	}
	if (headroom < hlen) {
		*reason = FL_DROP_NO_HEADROOM;
		return -1;
	}

	tx = rx - hlen;
	outer = tx + l3;
	put_l2(tx, rx, l3, c->next_hop_mac, c->src_mac, outer_v6 ? FL_ETH_P_IPV6 : FL_ETH_P_IPV4);
	if (outer_v6)
		put_ip6(outer, ip6_word0(p->tos, p->hash >> 12, hlen - ip_hlen + ip_len, proto,
					 FL_OUTER_TTL),
			c->tunnel_src_v6.bytes, b->key.addr.bytes);
	else
		put_ip4(outer, p->tos, hlen + ip_len, ip4_id(df, rx + l3, inner_v6, p->hash), df,
			proto, c->tunnel_src_v4.v4, b->key.addr.v4);

	if (gue) {
		/* Source port from the top bits of the flow hash (the ring index
		 * uses hash % M), in the ephemeral range, for backend RSS. */
		const __u32 ports = htons((__u16)(0x8000u | p->hash >> 17)) |
				    (__u32)c->gue_dport << 16;
		const __u32 ulen = htons((__u16)(FL_UDP_HLEN + ip_len));
		__u16 check = 0;

		/* IPv4 may omit the UDP checksum. IPv6 may too (RFC 6935), but
		 * Linux drops such packets unless the tunnel allows it. */
		if (outer_v6) {
			__u64 s = csum_pseudo6(c->tunnel_src_v6.bytes, b->key.addr.bytes,
					       FL_UDP_HLEN + ip_len, FL_P_UDP);

			s = csum_add(csum_add64(s, ports | (__u64)ulen << 32), rx + l3, ip_len);
			check = (__u16)~csum_fold(s);
			if (check == 0)
				check = 0xffff;	/* RFC 768: 0 means none */
		}
		store64(outer + ip_hlen, ports | (__u64)(ulen | (__u32)check << 16) << 32);
	}

	*frame = tx;
	*len = l3 + hlen + ip_len;
	return 0;
}

static int encap_l2dsr(const struct fl_encap_ctx *c, const struct fl_backend *b,
		       const struct fl_pkt *p, __u8 *frame, __u32 *len, enum fl_drop_reason *reason)
{
	if (mac_is_zero(b->mac)) {
		*reason = FL_DROP_NO_NEXT_HOP;
		return -1;
	}
	if (p->ip_len > c->mtu) {
		*reason = FL_DROP_TOO_BIG;
		return -1;
	}
	memcpy(frame, b->mac, 6);
	memcpy(frame + 6, c->src_mac, 6);
	*len = (__u32)p->l3_off + p->ip_len;
	return 0;
}

int fl_encap(const struct fl_encap_ctx *c, enum fl_method m, const struct fl_backend *b,
	     const struct fl_pkt *p, __u8 **frame, __u32 *len, __u32 headroom,
	     enum fl_drop_reason *reason)
{
	const int v6 = b->key.family == FL_AF_INET6;

	/* The parse stage promises this; a broken promise must not become a
	 * write outside the buffer. */
	if (p->l3_off < FL_ETH_HLEN || p->l3_off > FL_L2_MAX ||
	    p->ip_len < FL_IPV4_HLEN || (__u32)p->l3_off + p->ip_len > *len) {
		*reason = FL_DROP_IP_BAD_HEADER;
		return -1;
	}

	switch (m) {
	case FL_METHOD_IPIP:
	case FL_METHOD_IP6IP6:
		return v6 ? encap_tunnel(c, b, p, frame, len, headroom, reason, 1, 0)
			  : encap_tunnel(c, b, p, frame, len, headroom, reason, 0, 0);
	case FL_METHOD_GUE:
		return v6 ? encap_tunnel(c, b, p, frame, len, headroom, reason, 1, 1)
			  : encap_tunnel(c, b, p, frame, len, headroom, reason, 0, 1);
	case FL_METHOD_L2DSR:
		return encap_l2dsr(c, b, p, *frame, len, reason);
	default:
		/* A VIP without a method has no way to any backend. */
		*reason = FL_DROP_NO_BACKEND;
		return -1;
	}
}

__u32 fl_encap_overhead(enum fl_method m, __u8 backend_family)
{
	const __u32 ip = backend_family == FL_AF_INET6 ? FL_IPV6_HLEN : FL_IPV4_HLEN;

	switch (m) {
	case FL_METHOD_IPIP:
	case FL_METHOD_IP6IP6:
		return ip;
	case FL_METHOD_GUE:
		return ip + FL_UDP_HLEN;
	default:
		return 0;
	}
}

/* How much of the offending IP packet an answer quotes: all that fits under
 * max_ip and in room, but no less than want (else 0: no answer). */
static inline __u32 quote_len(__u32 ip_len, __u32 max_quote, __u32 room, __u32 hdr, __u32 want)
{
	__u32 q = ip_len < max_quote ? ip_len : max_quote;

	if (room < hdr)
		return 0;
	if (q > room - hdr)
		q = room - hdr;
	if (want > ip_len)
		want = ip_len;
	return q < want ? 0 : q;
}

/* The ICMP header of an answer and its quote: type, code, checksum, then the
 * 4 bytes of MTU field (IPv4 FN: 2 unused, 2 of MTU; ICMPv6 PTB: 4 of MTU).
 * sum is the pseudo-header's for ICMPv6, 0 for ICMP. */
static inline void put_icmp(__u8 *dst, __u8 type, __u8 code, __u32 mtu, const __u8 *quote,
			    __u32 q, __u64 sum)
{
	__u64 w = type | (__u32)code << 8 | (__u64)htonl(mtu) << 32;

	memcpy(dst + FL_ICMP_HLEN, quote, q);
	w |= (__u64)(__u16)~csum_fold(csum_add(csum_add64(sum, w), quote, q)) << 16;
	store64(dst, w);
}

static __u32 too_big4(const __u8 *frame, const struct fl_pkt *p, __be32 src, __u16 mtu,
		      __u8 *out, __u32 room)
{
	const __u32 l3 = p->l3_off, hdr = l3 + FL_IPV4_HLEN + FL_ICMP_HLEN;
	const __u8 *ip = frame + l3;
	const __u32 ihl = (ip[0] & 0x0fu) * 4;
	__be16 frag;
	__be32 client;
	__u32 q;

	memcpy(&frag, ip + 6, 2);
	memcpy(&client, ip + 12, 4);
	/* RFC 1812 4.3.2.7: no error about a non-first fragment, nor to a
	 * source that is not one host (0/8 "this network", multicast, class E,
	 * broadcast). */
	if (ntohs(frag) & FL_IPV4_OFF || ip[12] == 0 || ip[12] >= 224)
		return 0;
	q = quote_len(p->ip_len, FL_ICMP4_MAX_IP - FL_IPV4_HLEN - FL_ICMP_HLEN, room, hdr,
		      ihl + FL_L4_PORTS_LEN);
	if (q == 0)
		return 0;

	put_l2(out, frame, l3, frame + 6, frame, FL_ETH_P_IPV4);
	/* Precedence "internetwork control", as Linux marks its ICMP errors;
	 * not DF, so an ID that varies like the offending packet's. */
	put_ip4(out + l3, 0xc0, FL_IPV4_HLEN + FL_ICMP_HLEN + q, ip4_id(0, ip, 0, p->hash), 0,
		FL_P_ICMP, src, client);
	put_icmp(out + l3 + FL_IPV4_HLEN, FL_ICMP_DEST_UNREACH, FL_ICMP_FRAG_NEEDED, mtu, ip, q, 0);
	return hdr + q;
}

static __u32 too_big6(const __u8 *frame, const struct fl_pkt *p, const __u8 *src, __u16 mtu,
		      __u8 *out, __u32 room)
{
	const __u32 l3 = p->l3_off, hdr = l3 + FL_IPV6_HLEN + FL_ICMP_HLEN;
	const __u8 *ip = frame + l3, *client = ip + 8;
	__u64 a[2];
	__u32 q;

	/* RFC 4443 2.4(e): not to the unspecified address; a multicast
	 * source is invalid (RFC 4291 2.7). */
	memcpy(a, client, 16);
	if ((a[0] | a[1]) == 0 || client[0] == 0xff)
		return 0;
	q = quote_len(p->ip_len, FL_ICMP6_MAX_IP - FL_IPV6_HLEN - FL_ICMP_HLEN, room, hdr,
		      FL_IPV6_HLEN + FL_L4_PORTS_LEN);
	if (q == 0)
		return 0;

	put_l2(out, frame, l3, frame + 6, frame, FL_ETH_P_IPV6);
	put_ip6(out + l3, ip6_word0(0, 0, FL_ICMP_HLEN + q, FL_P_ICMPV6, FL_OUTER_TTL), src, client);
	put_icmp(out + l3 + FL_IPV6_HLEN, FL_ICMPV6_PKT_TOOBIG, 0, mtu, ip, q,
		 csum_pseudo6(src, client, FL_ICMP_HLEN + q, FL_P_ICMPV6));
	return hdr + q;
}

__u32 fl_icmp_too_big(const __u8 *frame, const struct fl_pkt *p, const union fl_addr *src,
		      __u16 mtu, __u8 *out, __u32 room)
{
	/* RFC 1122 3.2.2, RFC 4443 2.4(e): never an error about an error. */
	if (p->flags & FL_PKT_ICMP_ERROR)
		return 0;
	if (p->l3_off < FL_ETH_HLEN || p->l3_off > FL_L2_MAX)
		return 0;
	if (p->key.family == FL_AF_INET6)
		return too_big6(frame, p, src->bytes, mtu, out, room);
	return too_big4(frame, p, src->v4, mtu, out, room);
}
