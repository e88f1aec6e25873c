/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The parse stage (dp/parse.h) on frames built here byte by byte: exact
 * keys, offsets and verdicts for each kind of frame, every truncation of
 * valid frames, and a million random and mutated frames. Every parse reads
 * from a heap copy of exactly `len` bytes, so under -fsanitize=address any
 * read past the frame is caught.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"
#include "frame.h"
#include "parse.h"

#define TCP 6
#define UDP 17
#define ICMP 1
#define ICMPV6 58

#define TH_SYN 0x02
#define TH_ACK 0x10

#define TOS4 0xb8
#define TTL4 64
#define TC6 0x2e
#define HLIM6 63

/* Client, VIP and a router on the way, from the documentation ranges. */
#define CLIENT4 0xc6336407u	/* 198.51.100.7 */
#define VIP4 0xcb00710au	/* 203.0.113.10 */
#define ROUTER4 0xc0000201u	/* 192.0.2.1 */
static const __u8 client6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, [15] = 7 };
static const __u8 vip6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, [15] = 0x10 };
static const __u8 router6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0xee, [15] = 1 };

#define CPORT 40000
#define VPORT 443

/* What fl_parse promises never to leave in *reason unless it drops. */
#define NO_REASON FL_DROP__MAX

/* ---- frame builders ---------------------------------------------------- */

static void set16(struct frame *f, __u32 at, unsigned v)
{
	f->b[at] = (__u8)(v >> 8);
	f->b[at + 1] = (__u8)v;
}

/* Destination and source MAC, then each tag (TPID, TCI) and the ethertype. */
static void put_eth(struct frame *f, const unsigned *tpids, int ntags, unsigned etype)
{
	static const __u8 macs[12] = { 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2 };

	f->len = 0;
	putn(f, macs, sizeof(macs));
	for (int i = 0; i < ntags; i++) {
		put16(f, tpids[i]);
		put16(f, 100 + i);
	}
	put16(f, etype);
}

/* An IPv4 header with optlen bytes of options (NOPs then EOL); the total
 * length is left to ipv4_done. Returns the header's offset. */
static __u32 put_ipv4(struct frame *f, unsigned proto, __u32 src, __u32 dst, unsigned optlen,
		      unsigned frag)
{
	__u32 l3 = f->len;

	put8(f, 0x40 | (5 + optlen / 4));
	put8(f, TOS4);
	put16(f, 0);
	put16(f, 0x1234);
	put16(f, frag);
	put8(f, TTL4);
	put8(f, proto);
	put16(f, 0);
	put32(f, src);
	put32(f, dst);
	for (unsigned i = 0; i < optlen; i++)
		put8(f, i + 1 < optlen ? 1 : 0);
	return l3;
}

static void ipv4_set_len(struct frame *f, __u32 l3, unsigned tot)
{
	__u32 sum = 0, ihl = (f->b[l3] & 0x0f) * 4u;

	set16(f, l3 + 2, tot);
	set16(f, l3 + 10, 0);
	for (__u32 i = 0; i < ihl; i += 2)
		sum += (__u32)f->b[l3 + i] << 8 | f->b[l3 + i + 1];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	set16(f, l3 + 10, ~sum & 0xffff);
}

static void ipv4_done(struct frame *f, __u32 l3)
{
	ipv4_set_len(f, l3, f->len - l3);
}

static __u32 put_ipv6(struct frame *f, unsigned nh, const __u8 *src, const __u8 *dst)
{
	__u32 l3 = f->len;

	put32(f, 6u << 28 | (__u32)TC6 << 20 | 0x12345);
	put16(f, 0);
	put8(f, nh);
	put8(f, HLIM6);
	putn(f, src, 16);
	putn(f, dst, 16);
	return l3;
}

static void ipv6_done(struct frame *f, __u32 l3)
{
	set16(f, l3 + 4, f->len - l3 - 40);
}

/* Hop-by-hop, routing or destination options: 8 * (units + 1) bytes. */
static void put_ext6(struct frame *f, unsigned nh, unsigned units)
{
	put8(f, nh);
	put8(f, units);
	fill(f, 6 + 8 * units, 0);
}

static void put_frag6(struct frame *f, unsigned nh, unsigned offset8, int more)
{
	put8(f, nh);
	put8(f, 0);
	put16(f, offset8 << 3 | (more ? 1 : 0));
	put32(f, 0xabcdef01);
}

/* A TCP header with optlen bytes of options (an MSS, then NOPs). */
static __u32 put_tcp(struct frame *f, unsigned sport, unsigned dport, unsigned flags,
		     unsigned optlen)
{
	__u32 l4 = f->len;

	put16(f, sport);
	put16(f, dport);
	put32(f, 0x01020304);
	put32(f, 0);
	put8(f, (5 + optlen / 4) << 4);
	put8(f, flags);
	put16(f, 0xffff);
	put32(f, 0);
	if (optlen >= 4) {
		put32(f, 0x020405b4);
		optlen -= 4;
	}
	fill(f, optlen, 1);
	return l4;
}

static void put_udp(struct frame *f, unsigned sport, unsigned dport, unsigned paylen)
{
	put16(f, sport);
	put16(f, dport);
	put16(f, 8 + paylen);
	put16(f, 0);
	fill(f, paylen, 0x5a);
}

static void put_icmp(struct frame *f, unsigned type, unsigned code, __u32 rest)
{
	put8(f, type);
	put8(f, code);
	put16(f, 0);
	put32(f, rest);
}

/* ---- the frames the cases and the random loop share -------------------- */

static void build_v4_tcp(struct frame *f)
{
	__u32 l3;

	put_eth(f, NULL, 0, 0x0800);
	l3 = put_ipv4(f, TCP, CLIENT4, VIP4, 0, 0x4000);
	put_tcp(f, CPORT, VPORT, TH_SYN, 0);
	ipv4_done(f, l3);
}

static void build_v4_udp(struct frame *f)
{
	__u32 l3;

	put_eth(f, NULL, 0, 0x0800);
	l3 = put_ipv4(f, UDP, CLIENT4, VIP4, 0, 0);
	put_udp(f, 5353, 53, 10);
	ipv4_done(f, l3);
}

/* One 802.1ad and one 802.1Q tag, 8 bytes of IP options, 12 of TCP
 * options and 5 bytes of data. */
static void build_v4_rich(struct frame *f)
{
	static const unsigned tags[] = { 0x88a8, 0x8100 };
	__u32 l3;

	put_eth(f, tags, 2, 0x0800);
	l3 = put_ipv4(f, TCP, CLIENT4, VIP4, 8, 0x4000);
	put_tcp(f, CPORT, VPORT, TH_ACK, 12);
	fill(f, 5, 'x');
	ipv4_done(f, l3);
}

static void build_v6_tcp(struct frame *f)
{
	__u32 l3;

	put_eth(f, NULL, 0, 0x86dd);
	l3 = put_ipv6(f, TCP, client6, vip6);
	put_tcp(f, CPORT, VPORT, TH_SYN, 0);
	ipv6_done(f, l3);
}

/* Hop-by-hop (8) -> destination options (16) -> routing (8) -> TCP. */
static void build_v6_ext(struct frame *f)
{
	__u32 l3;

	put_eth(f, NULL, 0, 0x86dd);
	l3 = put_ipv6(f, 0, client6, vip6);
	put_ext6(f, 60, 0);
	put_ext6(f, 43, 1);
	put_ext6(f, TCP, 0);
	put_tcp(f, CPORT, VPORT, TH_ACK, 8);
	fill(f, 3, 'y');
	ipv6_done(f, l3);
}

static void build_v6_frag(struct frame *f, unsigned offset8, int more)
{
	__u32 l3;

	put_eth(f, NULL, 0, 0x86dd);
	l3 = put_ipv6(f, 44, client6, vip6);
	put_frag6(f, UDP, offset8, more);
	if (offset8 == 0)
		put_udp(f, CPORT, VPORT, 16);
	else
		fill(f, 24, 0x77);
	ipv6_done(f, l3);
}

/* A router's "fragmentation needed" to the VIP, quoting the backend's
 * reply VIP:443 -> client:40000 (with inner_opt bytes of IP options) and
 * quote_l4 bytes of its TCP header. */
static void build_icmp4_fn(struct frame *f, unsigned inner_proto, unsigned inner_opt,
			   unsigned quote_l4, unsigned mtu)
{
	__u32 l3, in;

	put_eth(f, NULL, 0, 0x0800);
	l3 = put_ipv4(f, ICMP, ROUTER4, VIP4, 0, 0);
	put_icmp(f, 3, 4, mtu);
	in = put_ipv4(f, inner_proto, VIP4, CLIENT4, inner_opt, 0x4000);
	ipv4_set_len(f, in, 1500);
	put_tcp(f, VPORT, CPORT, TH_ACK, 0);
	f->len -= 20 - quote_l4;
	ipv4_done(f, l3);
}

static void build_icmp6_ptb(struct frame *f, unsigned quote_l4, __u32 mtu)
{
	__u32 l3, in;

	put_eth(f, NULL, 0, 0x86dd);
	l3 = put_ipv6(f, ICMPV6, router6, vip6);
	put_icmp(f, 2, 0, mtu);
	in = put_ipv6(f, TCP, vip6, client6);
	set16(f, in + 4, 1460);
	put_tcp(f, VPORT, CPORT, TH_ACK, 0);
	fill(f, 40, 'd');
	f->len -= 60 - quote_l4;
	ipv6_done(f, l3);
}

/* ---- running and checking ---------------------------------------------- */

/* Parse a heap copy of exactly len bytes; *p starts as garbage and *why
 * as NO_REASON, so the checks see what fl_parse wrote. */
static enum fl_parse_verdict parse_exact(const __u8 *bytes, __u32 len, struct fl_pkt *p,
					 enum fl_drop_reason *why)
{
	__u8 *buf = malloc(len ? len : 1);
	enum fl_parse_verdict v;

	if (!buf)
		abort();
	memcpy(buf, bytes, len);
	memset(p, 0xa5, sizeof(*p));
	*why = NO_REASON;
	v = fl_parse(buf, len, p, why);
	free(buf);
	return v;
}

static const char *verdict_name(enum fl_parse_verdict v)
{
	return v == FL_PARSE_FLOW ? "flow" : v == FL_PARSE_HOST ? "host" :
	       v == FL_PARSE_DROP ? "drop" : "?";
}

static const char *reason_name(enum fl_drop_reason r)
{
	return (unsigned)r < FL_DROP__MAX ? fl_drop_names[r] : "none";
}

static void dump_pkt(const struct fl_pkt *p)
{
	const __u8 *k = (const __u8 *)&p->key;

	fprintf(stderr, "  key");
	for (unsigned i = 0; i < sizeof(p->key); i++)
		fprintf(stderr, "%s%02x", i % 4 ? "" : " ", k[i]);
	fprintf(stderr, "\n  hash %u l3 %u l4 %u ip_len %u mtu %u vlans %u"
		" tcpf %#x flags %#x ttl %u tos %#x\n",
		p->hash, p->l3_off, p->l4_off, p->ip_len, p->icmp_mtu, p->n_vlans,
		p->tcp_flags, p->flags, p->ttl, p->tos);
}

/* Parse f whole and compare with the expected verdict (and reason for a
 * drop); with want, every byte of *p must equal *want. */
static void expect_at(int line, const struct frame *f, __u32 len, enum fl_parse_verdict v,
		      enum fl_drop_reason r, const struct fl_pkt *want)
{
	struct fl_pkt p;
	enum fl_drop_reason why;
	enum fl_parse_verdict got = parse_exact(f->b, len, &p, &why);

	CHECK(got == v && why == (v == FL_PARSE_DROP ? r : NO_REASON),
	      "line %d len %u: got %s/%s, want %s/%s", line, len, verdict_name(got),
	      reason_name(why), verdict_name(v), reason_name(v == FL_PARSE_DROP ? r : NO_REASON));
	if (want && memcmp(&p, want, sizeof(p)) != 0) {
		CHECK(0, "line %d: fl_pkt differs", line);
		fprintf(stderr, " got:\n");
		dump_pkt(&p);
		fprintf(stderr, " want:\n");
		dump_pkt(want);
	}
}

#define EXPECT(f, v, want) expect_at(__LINE__, (f), (f)->len, (v), NO_REASON, (want))
#define EXPECT_DROP(f, r) expect_at(__LINE__, (f), (f)->len, FL_PARSE_DROP, (r), NULL)
#define EXPECT_DROP_LEN(f, len, r) expect_at(__LINE__, (f), (len), FL_PARSE_DROP, (r), NULL)

static struct fl_flow_key key4(__u32 src, __u32 dst, unsigned sport, unsigned dport, unsigned proto)
{
	struct fl_flow_key k;

	memset(&k, 0, sizeof(k));
	k.src.v4 = htonl(src);
	k.dst.v4 = htonl(dst);
	k.sport = htons((__u16)sport);
	k.dport = htons((__u16)dport);
	k.proto = (__u8)proto;
	k.family = FL_AF_INET;
	return k;
}

static struct fl_flow_key key6(const __u8 *src, const __u8 *dst, unsigned sport, unsigned dport,
			       unsigned proto)
{
	struct fl_flow_key k;

	memset(&k, 0, sizeof(k));
	memcpy(k.src.bytes, src, 16);
	memcpy(k.dst.bytes, dst, 16);
	k.sport = htons((__u16)sport);
	k.dport = htons((__u16)dport);
	k.proto = (__u8)proto;
	k.family = FL_AF_INET6;
	return k;
}

/* The fl_pkt of a parse: every field named, the rest (hash, pad) zero. */
static struct fl_pkt pkt(struct fl_flow_key k, unsigned l3, unsigned l4, unsigned ip_len,
			 unsigned vlans, unsigned tcpf, unsigned flags, unsigned ttl, unsigned tos)
{
	struct fl_pkt p;

	memset(&p, 0, sizeof(p));
	p.key = k;
	p.l3_off = (__u16)l3;
	p.l4_off = (__u16)l4;
	p.ip_len = (__u16)ip_len;
	p.n_vlans = (__u8)vlans;
	p.tcp_flags = (__u8)tcpf;
	p.flags = (__u8)flags;
	p.ttl = (__u8)ttl;
	p.tos = (__u8)tos;
	return p;
}

/* ---- the cases --------------------------------------------------------- */

static void test_ipv4_tcp(void)
{
	struct frame f;
	struct fl_pkt want = pkt(key4(CLIENT4, VIP4, CPORT, VPORT, TCP), 14, 34, 40, 0, TH_SYN,
				 FL_PKT_DF, TTL4, TOS4);

	build_v4_tcp(&f);
	REQUIRE(f.len == 54, "frame is %u bytes", f.len);
	EXPECT(&f, FL_PARSE_FLOW, &want);
}

static void test_ipv4_udp(void)
{
	struct frame f;
	struct fl_pkt want = pkt(key4(CLIENT4, VIP4, 5353, 53, UDP), 14, 34, 38, 0, 0, 0, TTL4, TOS4);

	build_v4_udp(&f);
	EXPECT(&f, FL_PARSE_FLOW, &want);
}

static void test_vlan_one(void)
{
	static const unsigned tag[] = { 0x8100 };
	struct frame f;
	__u32 l3;
	struct fl_pkt want = pkt(key4(CLIENT4, VIP4, CPORT, VPORT, TCP), 18, 38, 40, 1, TH_SYN,
				 0, TTL4, TOS4);

	put_eth(&f, tag, 1, 0x0800);
	l3 = put_ipv4(&f, TCP, CLIENT4, VIP4, 0, 0);
	put_tcp(&f, CPORT, VPORT, TH_SYN, 0);
	ipv4_done(&f, l3);
	EXPECT(&f, FL_PARSE_FLOW, &want);
}

static void test_vlan_two(void)
{
	struct frame f;
	struct fl_pkt want = pkt(key4(CLIENT4, VIP4, CPORT, VPORT, TCP), 22, 22 + 28,
				 28 + 32 + 5, 2, TH_ACK, FL_PKT_DF, TTL4, TOS4);

	build_v4_rich(&f);
	EXPECT(&f, FL_PARSE_FLOW, &want);
}

static void test_vlan_three(void)
{
	static const unsigned tags[] = { 0x88a8, 0x8100, 0x8100 };
	static const unsigned qinq[] = { 0x88a8, 0x88a8 };
	struct frame f;
	__u32 l3;

	put_eth(&f, tags, 3, 0x0800);
	l3 = put_ipv4(&f, TCP, CLIENT4, VIP4, 0, 0);
	put_tcp(&f, CPORT, VPORT, TH_SYN, 0);
	ipv4_done(&f, l3);
	EXPECT_DROP(&f, FL_DROP_VLAN_TOO_DEEP);

	/* Two tags, but the frame ends inside the second. */
	put_eth(&f, qinq, 2, 0x0800);
	EXPECT_DROP_LEN(&f, 20, FL_DROP_ETH_TRUNCATED);
	EXPECT_DROP_LEN(&f, 21, FL_DROP_ETH_TRUNCATED);
	/* Tagged ARP goes to the host with its tags counted. */
	put_eth(&f, qinq, 2, 0x0806);
	fill(&f, 28, 0);
	{
		struct fl_pkt want;

		memset(&want, 0, sizeof(want));
		want.l3_off = 22;
		want.n_vlans = 2;
		EXPECT(&f, FL_PARSE_HOST, &want);
	}
}

static void test_ipv4_options(void)
{
	struct frame f;
	__u32 l3;
	struct fl_pkt want = pkt(key4(CLIENT4, VIP4, CPORT, VPORT, TCP), 14, 14 + 60, 60 + 20, 0,
				 TH_SYN, 0, TTL4, TOS4);

	put_eth(&f, NULL, 0, 0x0800);
	l3 = put_ipv4(&f, TCP, CLIENT4, VIP4, 40, 0);	/* IHL 15, the largest */
	put_tcp(&f, CPORT, VPORT, TH_SYN, 0);
	ipv4_done(&f, l3);
	EXPECT(&f, FL_PARSE_FLOW, &want);
}

static void test_ipv4_padding(void)
{
	struct frame f;
	__u32 l3;
	struct fl_pkt want = pkt(key4(CLIENT4, VIP4, CPORT, VPORT, TCP), 14, 34, 40, 0, TH_SYN,
				 FL_PKT_DF, TTL4, TOS4);

	/* A 54-byte SYN padded to the 60-byte minimum: padding is not IP. */
	build_v4_tcp(&f);
	fill(&f, 6, 0);
	EXPECT(&f, FL_PARSE_FLOW, &want);

	/* A tiny UDP datagram padded likewise. */
	put_eth(&f, NULL, 0, 0x0800);
	l3 = put_ipv4(&f, UDP, CLIENT4, VIP4, 0, 0);
	put_udp(&f, CPORT, 53, 1);
	ipv4_done(&f, l3);
	fill(&f, 60 - f.len, 0);
	want = pkt(key4(CLIENT4, VIP4, CPORT, 53, UDP), 14, 34, 29, 0, 0, 0, TTL4, TOS4);
	EXPECT(&f, FL_PARSE_FLOW, &want);

	/* The padding must not stand in for a TCP header cut short: total
	 * length says 10 bytes of TCP, the frame has 20 and padding. */
	build_v4_tcp(&f);
	ipv4_set_len(&f, 14, 30);
	fill(&f, 6, 0);
	EXPECT_DROP(&f, FL_DROP_L4_TRUNCATED);
}

static void test_ipv6_tcp(void)
{
	struct frame f;
	struct fl_pkt want = pkt(key6(client6, vip6, CPORT, VPORT, TCP), 14, 54, 60, 0, TH_SYN,
				 FL_PKT_DF, HLIM6, TC6);

	build_v6_tcp(&f);
	EXPECT(&f, FL_PARSE_FLOW, &want);
}

static void test_ipv6_ext_chain(void)
{
	struct frame f;
	unsigned l4 = 14 + 40 + 8 + 16 + 8;
	struct fl_pkt want = pkt(key6(client6, vip6, CPORT, VPORT, TCP), 14, l4, l4 - 14 + 28 + 3, 0,
				 TH_ACK, FL_PKT_DF, HLIM6, TC6);

	build_v6_ext(&f);
	EXPECT(&f, FL_PARSE_FLOW, &want);
}

static void test_ipv6_fragment(void)
{
	struct frame f;
	struct fl_flow_key k = key6(client6, vip6, 0, 0, UDP);
	struct fl_pkt want = pkt(k, 14, 62, 40 + 8 + 24, 0, 0, FL_PKT_DF | FL_PKT_FRAGMENT,
				 HLIM6, TC6);
	__u32 l3;

	/* First and later fragments: the same 3-tuple key, ports 0. */
	build_v6_frag(&f, 0, 1);
	EXPECT(&f, FL_PARSE_FLOW, &want);
	build_v6_frag(&f, 185, 0);
	EXPECT(&f, FL_PARSE_FLOW, &want);

	/* Hop-by-hop, then the fragment header. */
	put_eth(&f, NULL, 0, 0x86dd);
	l3 = put_ipv6(&f, 0, client6, vip6);
	put_ext6(&f, 44, 0);
	put_frag6(&f, TCP, 0, 1);
	put_tcp(&f, CPORT, VPORT, TH_SYN, 0);
	ipv6_done(&f, l3);
	want = pkt(key6(client6, vip6, 0, 0, TCP), 14, 14 + 40 + 16, 76, 0, 0,
		   FL_PKT_DF | FL_PKT_FRAGMENT, HLIM6, TC6);
	EXPECT(&f, FL_PARSE_FLOW, &want);

	/* A fragmented ICMPv6 message is the host's. */
	put_eth(&f, NULL, 0, 0x86dd);
	l3 = put_ipv6(&f, 44, client6, vip6);
	put_frag6(&f, ICMPV6, 0, 1);
	put_icmp(&f, 128, 0, 0);
	ipv6_done(&f, l3);
	want = pkt(key6(client6, vip6, 0, 0, ICMPV6), 14, 62, 56, 0, 0,
		   FL_PKT_DF | FL_PKT_FRAGMENT, HLIM6, TC6);
	EXPECT(&f, FL_PARSE_HOST, &want);

	/* A fragment header cut short. */
	build_v6_frag(&f, 0, 1);
	f.len = 14 + 40 + 7;
	set16(&f, 14 + 4, 7);
	EXPECT_DROP(&f, FL_DROP_IPV6_EXT_HEADER);
}

static void build_v6_n_ext(struct frame *f, int n, unsigned last)
{
	static const unsigned chain[] = { 0, 60, 43, 60, 43 };
	__u32 l3;

	put_eth(f, NULL, 0, 0x86dd);
	l3 = put_ipv6(f, n ? chain[0] : last, client6, vip6);
	for (int i = 0; i < n; i++)
		put_ext6(f, i + 1 < n ? chain[i + 1] : last, (unsigned)i % 2);
	put_tcp(f, CPORT, VPORT, TH_SYN, 0);
	ipv6_done(f, l3);
}

static void test_ipv6_ext_limit(void)
{
	struct frame f;
	struct fl_pkt want = pkt(key6(client6, vip6, CPORT, VPORT, TCP), 14, 14 + 40 + 8 + 16 + 8 + 16,
				 40 + 48 + 20, 0, TH_SYN, FL_PKT_DF, HLIM6, TC6);

	build_v6_n_ext(&f, 4, TCP);
	EXPECT(&f, FL_PARSE_FLOW, &want);
	build_v6_n_ext(&f, 5, TCP);
	EXPECT_DROP(&f, FL_DROP_IPV6_EXT_HEADER);
	/* Four walked, the fifth a fragment header: still too many. */
	build_v6_n_ext(&f, 4, 44);
	EXPECT_DROP(&f, FL_DROP_IPV6_EXT_HEADER);

	/* An extension header whose length runs past the payload. */
	build_v6_n_ext(&f, 1, TCP);
	f.b[14 + 40 + 1] = 3;
	EXPECT_DROP(&f, FL_DROP_IPV6_EXT_HEADER);
	/* Or which is cut before its length byte. */
	build_v6_n_ext(&f, 1, TCP);
	f.len = 14 + 40 + 1;
	set16(&f, 14 + 4, 1);
	EXPECT_DROP(&f, FL_DROP_IPV6_EXT_HEADER);
}

static void test_ipv6_host_protocols(void)
{
	static const unsigned protos[] = { 50, 51, 59, 47, 135 };
	struct frame f;
	__u32 l3;

	for (unsigned i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		struct fl_pkt want = pkt(key6(client6, vip6, 0, 0, protos[i]), 14, 54, 40 + 16, 0, 0,
					 FL_PKT_DF, HLIM6, TC6);

		put_eth(&f, NULL, 0, 0x86dd);
		l3 = put_ipv6(&f, protos[i], client6, vip6);
		fill(&f, 16, 0x33);
		ipv6_done(&f, l3);
		EXPECT(&f, FL_PARSE_HOST, &want);
	}
	/* ESP behind a destination-options header. */
	put_eth(&f, NULL, 0, 0x86dd);
	l3 = put_ipv6(&f, 60, client6, vip6);
	put_ext6(&f, 50, 0);
	fill(&f, 16, 0x33);
	ipv6_done(&f, l3);
	EXPECT(&f, FL_PARSE_HOST, NULL);
	/* And in IPv4: GRE, ESP, ICMPv6-in-IPv4. */
	for (unsigned proto = 47; proto <= 58; proto += 11) {
		put_eth(&f, NULL, 0, 0x0800);
		l3 = put_ipv4(&f, proto, CLIENT4, VIP4, 0, 0);
		fill(&f, 16, 0x33);
		ipv4_done(&f, l3);
		EXPECT(&f, FL_PARSE_HOST, NULL);
	}
}

static void test_arp_lldp(void)
{
	struct frame f;
	struct fl_pkt want;

	memset(&want, 0, sizeof(want));
	want.l3_off = 14;
	put_eth(&f, NULL, 0, 0x0806);
	fill(&f, 28, 1);
	EXPECT(&f, FL_PARSE_HOST, &want);
	put_eth(&f, NULL, 0, 0x88cc);
	fill(&f, 40, 2);
	EXPECT(&f, FL_PARSE_HOST, &want);
	/* A bare Ethernet header of an unknown type is still the host's. */
	put_eth(&f, NULL, 0, 0x0806);
	EXPECT(&f, FL_PARSE_HOST, &want);
}

static void test_icmp_host(void)
{
	static const unsigned v4[][2] = { { 8, 0 }, { 0, 0 }, { 3, 3 }, { 3, 1 }, { 11, 0 } };
	static const unsigned v6[][2] = { { 128, 0 }, { 135, 0 }, { 134, 0 }, { 1, 4 }, { 3, 0 } };
	struct frame f;
	__u32 l3;

	for (unsigned i = 0; i < 5; i++) {
		struct fl_pkt want = pkt(key4(CLIENT4, VIP4, 0, 0, ICMP), 14, 34, 20 + 8 + 28, 0, 0, 0,
					 TTL4, TOS4);

		put_eth(&f, NULL, 0, 0x0800);
		l3 = put_ipv4(&f, ICMP, CLIENT4, VIP4, 0, 0);
		put_icmp(&f, v4[i][0], v4[i][1], 0x00010002);
		fill(&f, 28, 0);
		ipv4_done(&f, l3);
		EXPECT(&f, FL_PARSE_HOST, &want);

		want = pkt(key6(client6, vip6, 0, 0, ICMPV6), 14, 54, 40 + 8 + 48, 0, 0, FL_PKT_DF,
			   HLIM6, TC6);
		put_eth(&f, NULL, 0, 0x86dd);
		l3 = put_ipv6(&f, ICMPV6, client6, vip6);
		put_icmp(&f, v6[i][0], v6[i][1], 0);
		fill(&f, 48, 0);
		ipv6_done(&f, l3);
		EXPECT(&f, FL_PARSE_HOST, &want);
	}
	/* An ICMP header shorter than 8 bytes. */
	put_eth(&f, NULL, 0, 0x0800);
	l3 = put_ipv4(&f, ICMP, CLIENT4, VIP4, 0, 0);
	put16(&f, 0x0800);
	put16(&f, 0);
	ipv4_done(&f, l3);
	EXPECT_DROP(&f, FL_DROP_L4_TRUNCATED);
}

static void test_icmp4_frag_needed(void)
{
	struct frame f;
	struct fl_pkt want = pkt(key4(CLIENT4, VIP4, CPORT, VPORT, TCP), 14, 34, 20 + 8 + 28, 0, 0,
				 FL_PKT_ICMP_ERROR, TTL4, TOS4);

	want.icmp_mtu = 1400;
	build_icmp4_fn(&f, TCP, 0, 8, 1400);
	EXPECT(&f, FL_PARSE_FLOW, &want);

	/* The whole inner TCP header quoted, and inner options. */
	want.ip_len = 20 + 8 + 24 + 20;
	build_icmp4_fn(&f, TCP, 4, 20, 1400);
	EXPECT(&f, FL_PARSE_FLOW, &want);

	want = pkt(key4(CLIENT4, VIP4, CPORT, VPORT, UDP), 14, 34, 20 + 8 + 28, 0, 0,
		   FL_PKT_ICMP_ERROR, TTL4, TOS4);
	want.icmp_mtu = 576;
	build_icmp4_fn(&f, UDP, 0, 8, 576);
	EXPECT(&f, FL_PARSE_FLOW, &want);

	/* A quote one byte short of the ports and sequence number. */
	build_icmp4_fn(&f, TCP, 0, 7, 1400);
	EXPECT_DROP(&f, FL_DROP_L4_TRUNCATED);
	build_icmp4_fn(&f, TCP, 0, 0, 1400);
	f.len -= 1;
	set16(&f, 14 + 2, f.len - 14);
	EXPECT_DROP(&f, FL_DROP_L4_TRUNCATED);
	/* A quoted ICMP echo is not a balanced flow. */
	build_icmp4_fn(&f, ICMP, 0, 8, 1400);
	EXPECT(&f, FL_PARSE_HOST, NULL);
	/* A quote that is not IPv4. */
	build_icmp4_fn(&f, TCP, 0, 8, 1400);
	f.b[14 + 28] = 0x65;
	EXPECT_DROP(&f, FL_DROP_IP_BAD_HEADER);
}

static void test_icmp6_packet_too_big(void)
{
	struct frame f;
	struct fl_pkt want = pkt(key6(client6, vip6, CPORT, VPORT, TCP), 14, 54, 40 + 8 + 48, 0, 0,
				 FL_PKT_ICMP_ERROR | FL_PKT_DF, HLIM6, TC6);

	want.icmp_mtu = 1280;
	build_icmp6_ptb(&f, 8, 1280);
	EXPECT(&f, FL_PARSE_FLOW, &want);

	/* An MTU past 16 bits is clamped. */
	want.icmp_mtu = 0xffff;
	want.ip_len = 40 + 8 + 40 + 60;
	build_icmp6_ptb(&f, 60, 0x12345);
	EXPECT(&f, FL_PARSE_FLOW, &want);

	build_icmp6_ptb(&f, 7, 1280);
	EXPECT_DROP(&f, FL_DROP_L4_TRUNCATED);
	/* A quote with an extension header first is not walked. */
	build_icmp6_ptb(&f, 8, 1280);
	f.b[14 + 48 + 6] = 0;
	EXPECT(&f, FL_PARSE_HOST, NULL);
	f.b[14 + 48] = 0x45;
	EXPECT_DROP(&f, FL_DROP_IP_BAD_HEADER);
}

static void test_ipv4_fragment(void)
{
	struct frame f;
	__u32 l3;
	struct fl_pkt want = pkt(key4(CLIENT4, VIP4, 0, 0, TCP), 14, 34, 40, 0, 0, FL_PKT_FRAGMENT,
				 TTL4, TOS4);

	/* First fragment (MF), a middle one and the last: one key. */
	build_v4_tcp(&f);
	set16(&f, 14 + 6, 0x2000);
	EXPECT(&f, FL_PARSE_FLOW, &want);
	set16(&f, 14 + 6, 0x2000 | 185);
	EXPECT(&f, FL_PARSE_FLOW, &want);
	set16(&f, 14 + 6, 370);
	EXPECT(&f, FL_PARSE_FLOW, &want);
	/* A later fragment too short to hold a TCP header is still one. */
	set16(&f, 14 + 6, 370);
	ipv4_set_len(&f, 14, 24);
	f.len = 14 + 24;
	want.ip_len = 24;
	EXPECT(&f, FL_PARSE_FLOW, &want);

	/* A fragmented ping is the host's. */
	put_eth(&f, NULL, 0, 0x0800);
	l3 = put_ipv4(&f, ICMP, CLIENT4, VIP4, 0, 0x2000);
	put_icmp(&f, 8, 0, 0);
	fill(&f, 64, 0);
	ipv4_done(&f, l3);
	EXPECT(&f, FL_PARSE_HOST, NULL);
}

static void test_bad_ihl(void)
{
	struct frame f;

	for (unsigned ihl = 0; ihl < 5; ihl++) {
		build_v4_tcp(&f);
		f.b[14] = (__u8)(0x40 | ihl);
		EXPECT_DROP(&f, FL_DROP_IP_BAD_HEADER);
	}
	/* IHL 15 with only 40 bytes of IP packet in the frame. */
	build_v4_tcp(&f);
	f.b[14] = 0x4f;
	f.len = 14 + 40;
	EXPECT_DROP(&f, FL_DROP_IP_TRUNCATED);
}

static void test_total_length(void)
{
	struct frame f;

	build_v4_tcp(&f);
	ipv4_set_len(&f, 14, 41);
	EXPECT_DROP(&f, FL_DROP_IP_BAD_HEADER);
	ipv4_set_len(&f, 14, 0xffff);
	EXPECT_DROP(&f, FL_DROP_IP_BAD_HEADER);
	ipv4_set_len(&f, 14, 19);
	EXPECT_DROP(&f, FL_DROP_IP_BAD_HEADER);
	ipv4_set_len(&f, 14, 0);
	EXPECT_DROP(&f, FL_DROP_IP_BAD_HEADER);

	/* Total length below IHL * 4 with options. */
	build_v4_rich(&f);
	ipv4_set_len(&f, 22, 27);
	EXPECT_DROP(&f, FL_DROP_IP_BAD_HEADER);
	/* Exactly the IP header: a TCP packet without its TCP header. */
	ipv4_set_len(&f, 22, 28);
	EXPECT_DROP(&f, FL_DROP_L4_TRUNCATED);

	/* IPv6 payload length one past the frame. */
	build_v6_tcp(&f);
	set16(&f, 14 + 4, 21);
	EXPECT_DROP(&f, FL_DROP_IP_BAD_HEADER);
	set16(&f, 14 + 4, 0xffff);
	EXPECT_DROP(&f, FL_DROP_IP_BAD_HEADER);
}

static void test_tcp_bad_offset(void)
{
	struct frame f;

	for (unsigned doff = 0; doff < 5; doff++) {
		build_v4_tcp(&f);
		f.b[34 + 12] = (__u8)(doff << 4);
		EXPECT_DROP(&f, FL_DROP_TCP_BAD_HEADER);
		build_v6_tcp(&f);
		f.b[54 + 12] = (__u8)(doff << 4);
		EXPECT_DROP(&f, FL_DROP_TCP_BAD_HEADER);
	}
	/* Options past the end of the packet, even with frame padding. */
	build_v4_tcp(&f);
	f.b[34 + 12] = 6 << 4;
	EXPECT_DROP(&f, FL_DROP_TCP_BAD_HEADER);
	fill(&f, 6, 0);
	EXPECT_DROP(&f, FL_DROP_TCP_BAD_HEADER);
	build_v4_tcp(&f);
	f.b[34 + 12] = 15 << 4;
	EXPECT_DROP(&f, FL_DROP_TCP_BAD_HEADER);
	/* A UDP header cut short. */
	build_v4_udp(&f);
	ipv4_set_len(&f, 14, 27);
	EXPECT_DROP(&f, FL_DROP_L4_TRUNCATED);
}

static void test_zero_length(void)
{
	struct frame f;
	struct fl_pkt p;
	enum fl_drop_reason why = NO_REASON;

	build_v4_tcp(&f);
	EXPECT_DROP_LEN(&f, 0, FL_DROP_ETH_TRUNCATED);
	EXPECT_DROP_LEN(&f, 13, FL_DROP_ETH_TRUNCATED);
	/* Nothing at all is read from an empty frame. */
	CHECK(fl_parse(NULL, 0, &p, &why) == FL_PARSE_DROP && why == FL_DROP_ETH_TRUNCATED,
	      "NULL frame: reason %s", reason_name(why));
}

static void test_bad_version(void)
{
	struct frame f;

	for (unsigned v = 0; v < 16; v++) {
		if (v == 4)
			continue;
		build_v4_tcp(&f);
		f.b[14] = (__u8)(v << 4 | 5);
		EXPECT_DROP(&f, FL_DROP_IP_BAD_HEADER);
	}
	build_v6_tcp(&f);
	f.b[14] = 0x45;
	EXPECT_DROP(&f, FL_DROP_IP_BAD_HEADER);
}

/* ---- every truncation -------------------------------------------------- */

/*
 * Cut f at every length. A cut frame whose IP header still claims the full
 * length is a bad header (total/payload length past the frame), so the
 * reason is fixed by where the cut falls: in L2, in the IP header, or after.
 */
static void sweep_cut(const struct frame *f, unsigned l3, unsigned ip_hlen, const char *name)
{
	struct fl_pkt p;
	enum fl_drop_reason why, want;
	unsigned bad = 0;

	for (__u32 len = 0; len <= f->len; len++) {
		enum fl_parse_verdict v = parse_exact(f->b, len, &p, &why);

		if (len == f->len) {
			CHECK(v == FL_PARSE_FLOW, "%s: whole frame gives %s", name, verdict_name(v));
			continue;
		}
		want = len < l3 ? FL_DROP_ETH_TRUNCATED :
		       len < l3 + ip_hlen ? FL_DROP_IP_TRUNCATED : FL_DROP_IP_BAD_HEADER;
		if (v != FL_PARSE_DROP || why != want) {
			if (bad++ < 5)
				CHECK(0, "%s cut at %u: %s/%s, want drop/%s", name, len, verdict_name(v),
				      reason_name(why), reason_name(want));
		}
	}
	CHECK(bad == 0, "%s: %u cuts wrong", name, bad);
}

/*
 * Cut the IP packet at every length and make its length field agree, so
 * the cut reaches the L4 and extension-header checks: the IP end is then
 * the heap buffer's end and any over-read is the sanitizer's to see.
 * A cut inside a header must drop with a truncation-type reason.
 */
static void sweep_consistent(const struct frame *f, unsigned l3, int v6, unsigned l4_end,
			     const char *name)
{
	struct frame c;
	struct fl_pkt p;
	enum fl_drop_reason why;
	unsigned bad = 0, min_ip = v6 ? 40 : (f->b[l3] & 0x0f) * 4u;

	for (__u32 len = l3 + min_ip; len <= f->len; len++) {
		enum fl_parse_verdict v;
		int ok;

		c = *f;
		c.len = len;
		if (v6)
			set16(&c, l3 + 4, len - l3 - 40);
		else
			ipv4_set_len(&c, l3, len - l3);
		v = parse_exact(c.b, len, &p, &why);
		if (len >= l4_end)
			ok = v == FL_PARSE_FLOW;
		else
			ok = v == FL_PARSE_DROP &&
			     (why == FL_DROP_L4_TRUNCATED || why == FL_DROP_TCP_BAD_HEADER ||
			      why == FL_DROP_IPV6_EXT_HEADER);
		if (!ok && bad++ < 5)
			CHECK(0, "%s packet cut to %u: %s/%s", name, len, verdict_name(v),
			      reason_name(why));
	}
	CHECK(bad == 0, "%s: %u consistent cuts wrong", name, bad);
}

static void test_truncation(void)
{
	struct frame f;

	build_v4_tcp(&f);
	sweep_cut(&f, 14, 20, "ipv4 tcp");
	sweep_consistent(&f, 14, 0, f.len, "ipv4 tcp");
	build_v4_rich(&f);
	sweep_cut(&f, 22, 28, "ipv4 qinq options");
	sweep_consistent(&f, 22, 0, 22 + 28 + 32, "ipv4 qinq options");
	build_v6_tcp(&f);
	sweep_cut(&f, 14, 40, "ipv6 tcp");
	sweep_consistent(&f, 14, 1, f.len, "ipv6 tcp");
	build_v6_ext(&f);
	sweep_cut(&f, 14, 40, "ipv6 ext");
	sweep_consistent(&f, 14, 1, 14 + 40 + 32 + 28, "ipv6 ext");
	build_icmp4_fn(&f, TCP, 4, 8, 1400);
	sweep_cut(&f, 14, 20, "icmp4 fn");
	sweep_consistent(&f, 14, 0, f.len, "icmp4 fn");
	build_icmp6_ptb(&f, 8, 1280);
	sweep_cut(&f, 14, 40, "icmp6 ptb");
	sweep_consistent(&f, 14, 1, f.len, "icmp6 ptb");
}

/* ---- random frames ----------------------------------------------------- */


static int parse_reason(enum fl_drop_reason r)
{
	switch (r) {
	case FL_DROP_ETH_TRUNCATED:
	case FL_DROP_VLAN_TOO_DEEP:
	case FL_DROP_IP_TRUNCATED:
	case FL_DROP_IP_BAD_HEADER:
	case FL_DROP_IPV6_EXT_HEADER:
	case FL_DROP_L4_TRUNCATED:
	case FL_DROP_TCP_BAD_HEADER:
		return 1;
	default:
		return 0;
	}
}

/* What must hold of any parse, whatever the bytes. */
static int sane(enum fl_parse_verdict v, enum fl_drop_reason why, const struct fl_pkt *p, __u32 len)
{
	const struct fl_flow_key *k = &p->key;

	if (v == FL_PARSE_DROP)
		return parse_reason(why);
	if (why != NO_REASON || (v != FL_PARSE_FLOW && v != FL_PARSE_HOST))
		return 0;
	if (p->hash || p->pad[0] || p->pad[1] || p->pad[2] || k->pad[0] || k->pad[1])
		return 0;
	if (k->family == FL_AF_INET && (k->src.v6[1] | k->src.v6[2] | k->src.v6[3] |
					k->dst.v6[1] | k->dst.v6[2] | k->dst.v6[3]))
		return 0;
	if (v != FL_PARSE_FLOW)
		return 1;
	if (k->proto != TCP && k->proto != UDP)
		return 0;
	if (k->family != FL_AF_INET && k->family != FL_AF_INET6)
		return 0;
	if (p->l3_off != 14 + 4 * p->n_vlans || p->n_vlans > 2)
		return 0;
	if (p->l4_off <= p->l3_off || p->l4_off > p->l3_off + p->ip_len ||
	    (__u32)p->l3_off + p->ip_len > len)
		return 0;
	if (!(p->flags & (FL_PKT_FRAGMENT | FL_PKT_ICMP_ERROR)) &&
	    p->l4_off + (k->proto == TCP ? 20u : 8u) > (__u32)p->l3_off + p->ip_len)
		return 0;
	if ((p->flags & FL_PKT_FRAGMENT) && (k->sport || k->dport))
		return 0;
	return 1;
}

#define N_RANDOM 1000000

static void test_random(void)
{
	static const unsigned etypes[] = { 0x0800, 0x86dd, 0x8100, 0x88a8 };
	struct frame tpl[10], f;
	struct rng r = { 0x5eed0f1a9c3b7d21ULL };
	unsigned long verdicts[3] = { 0 }, reasons[FL_DROP__MAX] = { 0 };
	unsigned bad = 0, n_tpl = 0;

	build_v4_tcp(&tpl[n_tpl++]);
	build_v4_udp(&tpl[n_tpl++]);
	build_v4_rich(&tpl[n_tpl++]);
	build_v6_tcp(&tpl[n_tpl++]);
	build_v6_ext(&tpl[n_tpl++]);
	build_v6_frag(&tpl[n_tpl++], 0, 1);
	build_icmp4_fn(&tpl[n_tpl++], TCP, 4, 8, 1400);
	build_icmp6_ptb(&tpl[n_tpl++], 8, 1280);
	build_v6_n_ext(&tpl[n_tpl++], 4, TCP);
	build_icmp4_fn(&tpl[n_tpl++], UDP, 0, 20, 1400);

	for (unsigned long i = 0; i < N_RANDOM; i++) {
		uint64_t x = rng_next(&r);
		__u32 len = (__u32)(x % 201);
		struct fl_pkt p;
		enum fl_drop_reason why;
		enum fl_parse_verdict v;

		for (unsigned j = 0; j < 200; j += 8) {
			uint64_t w = rng_next(&r);

			memcpy(f.b + j, &w, 8);
		}
		if (i & 1) {
			/* A valid frame with 1 to 4 bytes changed, whole half the time. */
			const struct frame *t = &tpl[(x >> 8) % n_tpl];
			unsigned flips = 1 + (x >> 16) % 4;

			memcpy(f.b, t->b, t->len);
			if ((x >> 20) & 1)
				len = t->len;
			for (unsigned j = 0; j < flips; j++) {
				uint64_t y = rng_next(&r);

				f.b[y % t->len] ^= (__u8)(1 + (y >> 32) % 255);
			}
		} else if ((x >> 8) % 4) {
			/* Random bytes behind a plausible ethertype and version. */
			unsigned et = etypes[(x >> 16) % 4];

			set16(&f, 12, et);
			f.b[14] = (__u8)((et == 0x86dd ? 0x60 : 0x40) | (f.b[14] & 0x0f));
		}
		v = parse_exact(f.b, len, &p, &why);
		if ((unsigned)v < 3)
			verdicts[v]++;
		if (v == FL_PARSE_DROP && (unsigned)why < FL_DROP__MAX)
			reasons[why]++;
		if (!sane(v, why, &p, len) && bad++ < 5) {
			CHECK(0, "random frame %lu (len %u): %s/%s", i, len, verdict_name(v),
			      reason_name(why));
			dump_pkt(&p);
		}
	}
	CHECK(bad == 0, "%u random frames failed", bad);
	CHECK(verdicts[FL_PARSE_FLOW] > N_RANDOM / 20, "too few flows to mean anything: %lu",
	      verdicts[FL_PARSE_FLOW]);
	printf("random: %d frames: flow %lu host %lu drop %lu\n", N_RANDOM,
	       verdicts[FL_PARSE_FLOW], verdicts[FL_PARSE_HOST], verdicts[FL_PARSE_DROP]);
	for (unsigned i = 0; i < FL_DROP__MAX; i++)
		if (reasons[i])
			printf("  drop %-16s %lu\n", fl_drop_names[i], reasons[i]);
}

static const struct fl_test_case cases[] = {
	{ "ipv4_tcp", test_ipv4_tcp },
	{ "ipv4_udp", test_ipv4_udp },
	{ "vlan_one", test_vlan_one },
	{ "vlan_two", test_vlan_two },
	{ "vlan_three", test_vlan_three },
	{ "ipv4_options", test_ipv4_options },
	{ "ipv4_padding", test_ipv4_padding },
	{ "ipv4_fragment", test_ipv4_fragment },
	{ "ipv6_tcp", test_ipv6_tcp },
	{ "ipv6_ext_chain", test_ipv6_ext_chain },
	{ "ipv6_fragment", test_ipv6_fragment },
	{ "ipv6_ext_limit", test_ipv6_ext_limit },
	{ "host_protocols", test_ipv6_host_protocols },
	{ "arp_lldp", test_arp_lldp },
	{ "icmp_host", test_icmp_host },
	{ "icmp4_frag_needed", test_icmp4_frag_needed },
	{ "icmp6_packet_too_big", test_icmp6_packet_too_big },
	{ "bad_ihl", test_bad_ihl },
	{ "total_length", test_total_length },
	{ "tcp_bad_offset", test_tcp_bad_offset },
	{ "zero_length", test_zero_length },
	{ "bad_version", test_bad_version },
	{ "truncation", test_truncation },
	{ "random", test_random },
};

FL_TEST_MAIN(cases)
