/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The encapsulation stage (dp/encap.h) on crafted frames: the exact bytes
 * of every method and family, with and without a VLAN tag, against frames
 * written out here field by field (and one written out in hex, cross-checked
 * with scapy); the MTU, headroom and next-hop refusals; and the ICMP
 * too-big answers. Checksums are checked with the plain RFC 1071 routine
 * below, not with the one under test.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "frame.h"
#include "encap.h"

#define HEADROOM 128u
#define BUF_SIZE (HEADROOM + 2048u)
#define PAD_LEN 6u	/* Ethernet padding after the IP packet, to be dropped */
#define HASH 0x9a3c5e71u
#define TCI 0x6064u	/* priority 3, VLAN 100 */
#define GUE_PORT 6080u

static const uint8_t PORT_MAC[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
static const uint8_t PEER_MAC[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0xfe};	/* client side router */
static const uint8_t NH_MAC[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x99};
static const uint8_t BACKEND_MAC[6] = {0x02, 0x00, 0x00, 0x00, 0x0b, 0x01};

static const uint8_t CLIENT4[4] = {198, 51, 100, 7};
static const uint8_t VIP4[4] = {192, 0, 2, 10};
static const uint8_t TUN4[4] = {10, 0, 0, 1};
static const uint8_t BACKEND4[4] = {10, 1, 0, 5};
static const uint8_t CLIENT6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, [15] = 7};
static const uint8_t VIP6[16] = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, [15] = 0x10};
static const uint8_t TUN6[16] = {0xfd, 0, [15] = 1};
static const uint8_t BACKEND6[16] = {0xfd, 0, 0, 1, [15] = 5};

/* ---- independent reference: RFC 1071 over big-endian 16-bit words ---- */

static uint32_t ref_sum(uint32_t sum, const uint8_t *d, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)d[i] << 8 | d[i + 1];
	if (n & 1)
		sum += (uint32_t)d[n - 1] << 8;
	return sum;
}

static uint16_t ref_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static uint32_t ref_pseudo6(const uint8_t *src, const uint8_t *dst, uint32_t len, uint8_t proto)
{
	uint32_t sum = ref_sum(ref_sum(0, src, 16), dst, 16);

	return sum + (len >> 16) + (len & 0xffff) + proto;
}

static uint16_t get16(const uint8_t *d)
{
	return (uint16_t)(d[0] << 8 | d[1]);
}

static uint32_t get32(const uint8_t *d)
{
	return (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
}

static void set16(uint8_t *d, unsigned v)
{
	d[0] = (uint8_t)(v >> 8);
	d[1] = (uint8_t)v;
}

/* Ethernet from src to dst, one 802.1Q tag (TCI) if vlan, then ethertype. */
static void put_l2(struct frame *w, const uint8_t *dst, const uint8_t *src, int vlan,
		   unsigned ethertype)
{
	putn(w, dst, 6);
	putn(w, src, 6);
	if (vlan) {
		put16(w, 0x8100);
		put16(w, TCI);
	}
	put16(w, ethertype);
}

/* An IPv4 header without options, its checksum by the reference routine. */
static void put_ip4(struct frame *w, uint8_t tos, unsigned tot_len, unsigned id, unsigned frag,
		    uint8_t ttl, uint8_t proto, const uint8_t *src, const uint8_t *dst)
{
	const size_t at = w->len;

	put8(w, 0x45);
	put8(w, tos);
	put16(w, tot_len);
	put16(w, id);
	put16(w, frag);
	put8(w, ttl);
	put8(w, proto);
	put16(w, 0);
	putn(w, src, 4);
	putn(w, dst, 4);
	set16(w->b + at + 10, (uint16_t)~ref_fold(ref_sum(0, w->b + at, 20)));
}

/* ---- received frames ---- */

struct rx {
	uint8_t buf[BUF_SIZE];
	uint8_t orig[BUF_SIZE];	/* the frame as built, from HEADROOM */
	uint8_t *frame;
	uint32_t len;
	struct fl_pkt p;
	int vlan;
};

/*
 * A client's TCP segment to the VIP: Ethernet (one 802.1Q tag if vlan),
 * IPv4 or IPv6, a 20-byte TCP header and payload bytes of a fixed pattern,
 * then PAD_LEN bytes of Ethernet padding. p is filled as the parse stage
 * would fill it.
 */
static void rx_build(struct rx *r, int family, int vlan, uint32_t payload, int df, uint8_t tos)
{
	static struct frame w;
	size_t l3, ip_len = (family == 6 ? 40u : 20u) + 20u + payload;

	memset(r, 0, sizeof(*r));
	r->frame = r->buf + HEADROOM;
	r->vlan = vlan;
	w.len = 0;
	put_l2(&w, PORT_MAC, PEER_MAC, vlan, family == 6 ? 0x86dd : 0x0800);
	l3 = w.len;
	if (family == 4) {
		put_ip4(&w, tos, (unsigned)ip_len, 0x1234, df ? 0x4000 : 0, 57, 6, CLIENT4, VIP4);
	} else {
		put32(&w, 6u << 28 | (uint32_t)tos << 20 | 0xabcde);
		put16(&w, 20 + payload);
		put8(&w, 6);
		put8(&w, 57);
		putn(&w, CLIENT6, 16);
		putn(&w, VIP6, 16);
	}
	/* TCP: 40000 -> 443, seq, ack, offset 5, ACK|PSH, window; checksum
	 * left arbitrary: encap does not look at it. */
	put16(&w, 40000);
	put16(&w, 443);
	put32(&w, 0x01020304);
	put32(&w, 0x05060708);
	put16(&w, 0x5018);
	put16(&w, 0xffff);
	put16(&w, 0xbeef);
	put16(&w, 0);
	for (uint32_t i = 0; i < payload; i++)
		put8(&w, i * 7 + 3);
	for (uint32_t i = 0; i < PAD_LEN; i++)
		put8(&w, 0xee);
	r->len = w.len;
	memcpy(r->frame, w.b, w.len);
	memcpy(r->orig, r->frame, r->len);

	r->p.key.family = family == 6 ? FL_AF_INET6 : FL_AF_INET;
	memcpy(r->p.key.src.bytes, family == 6 ? CLIENT6 : CLIENT4, family == 6 ? 16 : 4);
	memcpy(r->p.key.dst.bytes, family == 6 ? VIP6 : VIP4, family == 6 ? 16 : 4);
	r->p.key.sport = __builtin_bswap16(40000);
	r->p.key.dport = __builtin_bswap16(443);
	r->p.key.proto = 6;
	r->p.hash = HASH;
	r->p.l3_off = (__u16)l3;
	r->p.l4_off = (__u16)(l3 + (family == 6 ? 40 : 20));
	r->p.ip_len = (__u16)ip_len;
	r->p.n_vlans = vlan ? 1 : 0;
	r->p.tcp_flags = 0x18;
	r->p.flags = (family == 6 || df) ? FL_PKT_DF : 0;
	r->p.ttl = 57;
	r->p.tos = tos;
}

static void ctx_init(struct fl_encap_ctx *c, __u16 mtu)
{
	memset(c, 0, sizeof(*c));
	memcpy(c->src_mac, PORT_MAC, 6);
	memcpy(c->next_hop_mac, NH_MAC, 6);
	memcpy(c->tunnel_src_v4.bytes, TUN4, 4);
	memcpy(c->tunnel_src_v6.bytes, TUN6, 16);
	c->gue_dport = __builtin_bswap16(GUE_PORT);
	c->mtu = mtu;
}

static void backend_init(struct fl_backend *b, int family)
{
	memset(b, 0, sizeof(*b));
	b->key.family = family == 6 ? FL_AF_INET6 : FL_AF_INET;
	memcpy(b->key.addr.bytes, family == 6 ? BACKEND6 : BACKEND4, family == 6 ? 16 : 4);
	b->epoch = 1;
	b->state = FL_BACKEND_UP;
	b->weight = 100;
	memcpy(b->mac, BACKEND_MAC, 6);
}

/* One fl_encap call: the received frame, the port's context, the backend,
 * and the frame pointer and length fl_encap moves. */
struct encap_call {
	struct rx r;
	struct fl_encap_ctx c;
	struct fl_backend b;
	uint8_t *f;
	uint32_t len;
};

/* After e->r is built: a port with this mtu, a backend of family bfam, the
 * frame as received. */
static void encap_prepare(struct encap_call *e, __u16 mtu, int bfam)
{
	ctx_init(&e->c, mtu);
	backend_init(&e->b, bfam);
	e->f = e->r.frame;
	e->len = e->r.len;
}

static int encap_run(struct encap_call *e, enum fl_method m, __u32 headroom,
		     enum fl_drop_reason *why)
{
	return fl_encap(&e->c, m, &e->b, &e->r.p, &e->f, &e->len, headroom, why);
}

/*
 * The frame fl_encap must produce, written out from the method's definition
 * (encap.h and the RFCs), independently of encap.c.
 */
static size_t expected(uint8_t *out, const struct rx *r, enum fl_method m, int bfam)
{
	const int inner6 = r->p.key.family == FL_AF_INET6;
	const int outer6 = m == FL_METHOD_L2DSR ? inner6 : bfam == 6;
	const int gue = m == FL_METHOD_GUE;
	const uint8_t *inner = r->orig + r->p.l3_off;
	const uint32_t ip_len = r->p.ip_len;
	const uint32_t payload = ip_len + (gue ? 8 : 0);
	const uint8_t proto = gue ? 17 : inner6 ? 41 : 4;
	const int df = inner6 || (inner[6] & 0x40);
	static struct frame w;
	size_t udp_at = 0;

	w.len = 0;

	put_l2(&w, m == FL_METHOD_L2DSR ? BACKEND_MAC : NH_MAC, PORT_MAC, r->vlan,
	       outer6 ? 0x86dd : 0x0800);
	if (m != FL_METHOD_L2DSR && !outer6) {
		put_ip4(&w, r->p.tos, 20 + payload,
			df ? 0 : (unsigned)(get16(inner + 4) ^ (HASH >> 16)), df ? 0x4000 : 0, 64,
			proto, TUN4, BACKEND4);
	} else if (m != FL_METHOD_L2DSR) {
		put32(&w, 6u << 28 | (uint32_t)r->p.tos << 20 | ((HASH >> 12) & 0xfffff));
		put16(&w, payload);
		put8(&w, proto);
		put8(&w, 64);
		putn(&w, TUN6, 16);
		putn(&w, BACKEND6, 16);
	}
	if (gue) {
		udp_at = w.len;
		put16(&w, 0x8000 | (HASH >> 17));
		put16(&w, GUE_PORT);
		put16(&w, 8 + ip_len);
		put16(&w, 0);
	}
	putn(&w, inner, ip_len);
	if (gue && outer6) {
		uint32_t s = ref_pseudo6(TUN6, BACKEND6, 8 + ip_len, 17);
		uint16_t ck = (uint16_t)~ref_fold(ref_sum(s, w.b + udp_at, 8 + ip_len));

		set16(w.b + udp_at + 6, ck ? ck : 0xffff);
	}
	memcpy(out, w.b, w.len);
	return w.len;
}

static const char *mname(enum fl_method m)
{
	static const char *const n[FL_METHOD__MAX] = {
		[FL_METHOD_NONE] = "none", [FL_METHOD_IPIP] = "ipip",
		[FL_METHOD_IP6IP6] = "ip6ip6", [FL_METHOD_GUE] = "gue",
		[FL_METHOD_L2DSR] = "l2dsr",
	};
	return m < FL_METHOD__MAX ? n[m] : "?";
}

static void dump(const char *what, const uint8_t *d, size_t n)
{
	fprintf(stderr, "%s (%zu):", what, n);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%s%02x", i % 16 ? " " : "\n  ", d[i]);
	fputc('\n', stderr);
}

/* Encapsulates one frame and compares every byte with expected(), then
 * checks the outer checksums with the reference routine. */
static void check_built(const struct rx *rx, enum fl_method m, int bfam)
{
	static struct rx r;
	static uint8_t want[BUF_SIZE];
	struct fl_encap_ctx c;
	struct fl_backend b;
	enum fl_drop_reason why = FL_DROP__MAX;
	const int ifam = rx->p.key.family == FL_AF_INET6 ? 6 : 4, vlan = rx->vlan;
	const int df = ifam == 6 || (rx->p.flags & FL_PKT_DF);
	uint8_t *f;
	uint32_t len, hlen, l3;
	size_t wlen;
	int rc;

	r = *rx;
	r.frame = r.buf + (rx->frame - rx->buf);
	ctx_init(&c, 1500);
	backend_init(&b, bfam);
	wlen = expected(want, &r, m, bfam);
	f = r.frame;
	len = r.len;
	l3 = r.p.l3_off;
	hlen = fl_encap_overhead(m, b.key.family);

	rc = fl_encap(&c, m, &b, &r.p, &f, &len, HEADROOM, &why);
	REQUIRE(rc == 0, "%s inner v%d backend v%d vlan %d: rc %d reason %d", mname(m), ifam,
		bfam, vlan, rc, (int)why);
	CHECK(f == r.frame - hlen, "%s: frame moved by %td, not %u", mname(m), r.frame - f, hlen);
	CHECK(len == l3 + hlen + r.p.ip_len, "%s: len %u (padding kept?)", mname(m), len);
	REQUIRE(len == wlen, "%s v%d/v%d vlan %d: len %u, expected %zu", mname(m), ifam, bfam,
		vlan, len, wlen);
	if (memcmp(f, want, wlen) != 0) {
		CHECK(0, "%s inner v%d backend v%d vlan %d df %d: bytes differ", mname(m), ifam,
		      bfam, vlan, df);
		dump("got", f, len);
		dump("want", want, wlen);
		return;
	}
	CHECK(memcmp(f + l3 + hlen, r.orig + l3, r.p.ip_len) == 0, "inner packet changed");

	if (m == FL_METHOD_L2DSR)
		return;
	if (bfam == 4) {
		CHECK(ref_fold(ref_sum(0, f + l3, 20)) == 0xffff, "outer IPv4 checksum");
		if (m == FL_METHOD_GUE)
			CHECK(get16(f + l3 + 26) == 0, "GUE over IPv4 sends no UDP checksum");
	} else if (m == FL_METHOD_GUE) {
		uint32_t s = ref_pseudo6(f + l3 + 8, f + l3 + 24, 8 + r.p.ip_len, 17);

		CHECK(get16(f + l3 + 46) != 0, "UDP over IPv6 needs a checksum");
		CHECK(ref_fold(ref_sum(s, f + l3 + 40, 8 + r.p.ip_len)) == 0xffff,
		      "UDP/IPv6 checksum");
	}
}

static void check_encap(enum fl_method m, int ifam, int bfam, int vlan, int df, uint8_t tos,
			uint32_t payload)
{
	static struct rx r;

	rx_build(&r, ifam, vlan, payload, df, tos);
	check_built(&r, m, bfam);
}

/* ---- cases ---- */

static void test_overhead(void)
{
	CHECK(fl_encap_overhead(FL_METHOD_IPIP, FL_AF_INET) == 20, "ipip v4");
	CHECK(fl_encap_overhead(FL_METHOD_IP6IP6, FL_AF_INET6) == 40, "ip6ip6");
	CHECK(fl_encap_overhead(FL_METHOD_GUE, FL_AF_INET) == 28, "gue v4");
	CHECK(fl_encap_overhead(FL_METHOD_GUE, FL_AF_INET6) == 48, "gue v6");
	CHECK(fl_encap_overhead(FL_METHOD_L2DSR, FL_AF_INET) == 0, "l2dsr");
	CHECK(fl_encap_overhead(FL_METHOD_NONE, FL_AF_INET) == 0, "none");
	CHECK(FL_ENCAP_MAX_OVERHEAD == 48, "max overhead");
}

static void test_ipip(void)
{
	for (int vlan = 0; vlan <= 1; vlan++) {
		check_encap(FL_METHOD_IPIP, 4, 4, vlan, 1, 0x2e, 100);	/* DF: ID 0 */
		check_encap(FL_METHOD_IPIP, 4, 4, vlan, 0, 0x00, 0);	/* no DF: ID from hash */
		check_encap(FL_METHOD_IPIP, 4, 4, vlan, 1, 0xb9, 1);	/* odd length */
	}
}

/*
 * IPIP of a small TCP segment, the expected frame written out in hex. Cross-
 * checked once with scapy:
 *   Ether(dst="02:00:00:00:00:99", src="02:00:00:00:00:01") /
 *   IP(src="10.0.0.1", dst="10.1.0.5", tos=0x2e, flags="DF", id=0, ttl=64, proto=4) /
 *   <the inner IPv4 packet's bytes>
 */
static void test_ipip_golden(void)
{
	static const uint8_t want[] = {
		0x02, 0x00, 0x00, 0x00, 0x00, 0x99, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
		0x08, 0x00,
		/* outer IPv4 */
		0x45, 0x2e, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x04, 0x26, 0x8a,
		0x0a, 0x00, 0x00, 0x01, 0x0a, 0x01, 0x00, 0x05,
		/* inner IPv4, unchanged */
		0x45, 0x2e, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x39, 0x06, 0x43, 0x29,
		0xc6, 0x33, 0x64, 0x07, 0xc0, 0x00, 0x02, 0x0a,
		/* TCP */
		0x9c, 0x40, 0x01, 0xbb, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0x50, 0x18, 0xff, 0xff, 0xbe, 0xef, 0x00, 0x00,
	};
	static struct encap_call e;
	enum fl_drop_reason why;

	rx_build(&e.r, 4, 0, 0, 1, 0x2e);
	encap_prepare(&e, 1500, 4);
	REQUIRE(encap_run(&e, FL_METHOD_IPIP, HEADROOM, &why) == 0, "encap");
	REQUIRE(e.len == sizeof(want), "len %u", e.len);
	if (memcmp(e.f, want, sizeof(want)) != 0) {
		CHECK(0, "bytes differ from the golden frame");
		dump("got", e.f, e.len);
	}
}

static void test_ip6ip6(void)
{
	for (int vlan = 0; vlan <= 1; vlan++) {
		check_encap(FL_METHOD_IP6IP6, 6, 6, vlan, 1, 0x00, 100);
		check_encap(FL_METHOD_IP6IP6, 6, 6, vlan, 1, 0xb8, 3);
	}
}

/* The outer header follows the backend, the protocol the inner packet:
 * 6in4 is protocol 41 (RFC 4213), 4in6 next header 4 (RFC 2473). */
static void test_ipip_cross_family(void)
{
	for (int vlan = 0; vlan <= 1; vlan++) {
		check_encap(FL_METHOD_IPIP, 6, 4, vlan, 1, 0x28, 64);
		check_encap(FL_METHOD_IP6IP6, 4, 6, vlan, 0, 0x28, 64);
		check_encap(FL_METHOD_IP6IP6, 4, 6, vlan, 1, 0x28, 64);
	}
}

static void test_gue_v4(void)
{
	for (int vlan = 0; vlan <= 1; vlan++) {
		check_encap(FL_METHOD_GUE, 4, 4, vlan, 1, 0x10, 200);
		check_encap(FL_METHOD_GUE, 4, 4, vlan, 0, 0x10, 0);
		check_encap(FL_METHOD_GUE, 6, 4, vlan, 1, 0x10, 200);
	}
}

static void test_gue_v6(void)
{
	for (int vlan = 0; vlan <= 1; vlan++) {
		check_encap(FL_METHOD_GUE, 6, 6, vlan, 1, 0x00, 200);
		check_encap(FL_METHOD_GUE, 6, 6, vlan, 1, 0x00, 1);	/* odd UDP length */
		check_encap(FL_METHOD_GUE, 6, 6, vlan, 1, 0x00, 1392);	/* exactly 1500 */
		check_encap(FL_METHOD_GUE, 4, 6, vlan, 0, 0x04, 77);
	}
}

/* A UDP checksum that computes to 0 goes out as 0xffff (RFC 768, RFC 8200
 * 8.1): the last payload word is chosen to make the sum come out so. */
static void test_gue_v6_zero_checksum(void)
{
	static struct rx r;
	uint8_t *word;
	uint32_t s;
	uint16_t sum;

	for (int vlan = 0; vlan <= 1; vlan++) {
		rx_build(&r, 6, vlan, 2, 1, 0);
		word = r.frame + r.p.l3_off + 60;	/* even offset from the UDP header */
		set16(word, 0);
		s = ref_pseudo6(TUN6, BACKEND6, 8 + r.p.ip_len, 17);
		s += 0x8000 | (HASH >> 17);
		s += GUE_PORT;
		s += 8 + r.p.ip_len;
		sum = ref_fold(ref_sum(s, r.frame + r.p.l3_off, r.p.ip_len));
		set16(word, 0xffff - sum);
		memcpy(r.orig, r.frame, r.len);
		check_built(&r, FL_METHOD_GUE, 6);
	}
}

static void test_l2dsr(void)
{
	for (int vlan = 0; vlan <= 1; vlan++) {
		check_encap(FL_METHOD_L2DSR, 4, 4, vlan, 1, 0, 100);
		check_encap(FL_METHOD_L2DSR, 6, 6, vlan, 1, 0, 100);
	}
}

/* L2 DSR needs no headroom at all. */
static void test_l2dsr_no_headroom_needed(void)
{
	static struct encap_call e;
	enum fl_drop_reason why;

	rx_build(&e.r, 4, 1, 10, 1, 0);
	encap_prepare(&e, 1500, 4);
	CHECK(encap_run(&e, FL_METHOD_L2DSR, 0, &why) == 0, "headroom 0");
	CHECK(e.f == e.r.frame && e.len == e.r.len - PAD_LEN, "in place, padding gone");
}

struct variant {
	enum fl_method m;
	int ifam, bfam;
};

static const struct variant variants[] = {
	{FL_METHOD_IPIP, 4, 4},	  {FL_METHOD_IP6IP6, 6, 6}, {FL_METHOD_GUE, 4, 4},
	{FL_METHOD_GUE, 6, 6},	  {FL_METHOD_GUE, 4, 6},    {FL_METHOD_L2DSR, 4, 4},
	{FL_METHOD_L2DSR, 6, 6},
};

/* Runs fl_encap on a fresh frame; on failure also checks that the frame
 * was left as received. */
static int try_encap(const struct variant *v, int df, uint32_t payload, __u16 mtu,
		     __u32 headroom, int zero_mac, enum fl_drop_reason *why)
{
	static struct encap_call e;
	const struct rx *r = &e.r;
	int rc;

	rx_build(&e.r, v->ifam, 1, payload, df, 0);
	encap_prepare(&e, mtu, v->bfam);
	if (zero_mac) {
		memset(e.b.mac, 0, 6);
		memset(e.c.next_hop_mac, 0, 6);
	}
	rc = encap_run(&e, v->m, headroom, why);
	if (rc != 0) {
		CHECK(e.f == r->frame && e.len == r->len, "%s: frame moved on failure",
		      mname(v->m));
		CHECK(memcmp(r->buf, (uint8_t[BUF_SIZE]){0}, HEADROOM) == 0,
		      "%s: headroom written on failure", mname(v->m));
		CHECK(memcmp(r->frame, r->orig, r->len) == 0, "%s: frame changed on failure",
		      mname(v->m));
	}
	return rc;
}

static void test_too_big_boundary(void)
{
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		const struct variant *v = &variants[i];
		uint32_t ip_len = (v->ifam == 6 ? 40u : 20u) + 20u + 1000u;
		uint32_t outer = fl_encap_overhead(v->m, v->bfam == 6 ? FL_AF_INET6 : FL_AF_INET) +
				 ip_len;
		enum fl_drop_reason why = FL_DROP__MAX;

		CHECK(try_encap(v, 1, 1000, (__u16)outer, HEADROOM, 0, &why) == 0,
		      "%s v%d/v%d: outer %u == mtu must pass", mname(v->m), v->ifam, v->bfam,
		      outer);
		why = FL_DROP__MAX;
		CHECK(try_encap(v, 1, 1000, (__u16)(outer - 1), HEADROOM, 0, &why) != 0 &&
			      why == FL_DROP_TOO_BIG,
		      "%s v%d/v%d: outer %u == mtu + 1 must fail (reason %d)", mname(v->m),
		      v->ifam, v->bfam, outer, (int)why);
		if (v->ifam == 4) {
			/* No outer fragmentation: without DF too. */
			why = FL_DROP__MAX;
			CHECK(try_encap(v, 0, 1000, (__u16)(outer - 1), HEADROOM, 0, &why) != 0 &&
				      why == FL_DROP_TOO_BIG,
			      "%s: no DF, over mtu", mname(v->m));
		}
	}
}

static void test_no_headroom(void)
{
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		const struct variant *v = &variants[i];
		__u32 need = fl_encap_overhead(v->m, v->bfam == 6 ? FL_AF_INET6 : FL_AF_INET);
		enum fl_drop_reason why = FL_DROP__MAX;

		CHECK(try_encap(v, 1, 100, 1500, need, 0, &why) == 0, "%s: headroom %u suffices",
		      mname(v->m), need);
		if (need == 0)
			continue;
		why = FL_DROP__MAX;
		CHECK(try_encap(v, 1, 100, 1500, need - 1, 0, &why) != 0 &&
			      why == FL_DROP_NO_HEADROOM,
		      "%s: headroom %u (reason %d)", mname(v->m), need - 1, (int)why);
	}
}

static void test_no_next_hop(void)
{
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		const struct variant *v = &variants[i];
		enum fl_drop_reason why = FL_DROP__MAX;

		CHECK(try_encap(v, 1, 100, 1500, HEADROOM, 1, &why) != 0 &&
			      why == FL_DROP_NO_NEXT_HOP,
		      "%s v%d: zero MAC (reason %d)", mname(v->m), v->ifam, (int)why);
	}
}

/* A method that is none, and a record that does not fit its frame. */
static void test_bad_input(void)
{
	static struct encap_call e;
	enum fl_drop_reason why = FL_DROP__MAX;

	rx_build(&e.r, 4, 0, 10, 1, 0);
	encap_prepare(&e, 1500, 4);
	CHECK(encap_run(&e, FL_METHOD_NONE, HEADROOM, &why) != 0 && why == FL_DROP_NO_BACKEND,
	      "method none");
	e.len = e.r.p.l3_off + e.r.p.ip_len - 1;
	CHECK(encap_run(&e, FL_METHOD_IPIP, HEADROOM, &why) != 0 && why == FL_DROP_IP_BAD_HEADER,
	      "ip_len past the frame");
	CHECK(memcmp(e.r.frame, e.r.orig, e.r.len) == 0, "frame untouched");
}

/* ---- too-big answers ---- */

/* Checks one answer: L2 (MACs swapped, VLAN kept), IP header, ICMP type,
 * code, MTU, checksum, and the quoted bytes. */
static void check_answer(const struct rx *r, const uint8_t *a, uint32_t alen, uint16_t mtu,
			 uint32_t quote)
{
	const uint32_t l3 = r->p.l3_off;
	const int v6 = r->p.key.family == FL_AF_INET6;
	const uint8_t *ip = a + l3, *icmp = ip + (v6 ? 40 : 20);
	const uint8_t *rip = r->orig + l3;

	REQUIRE(alen == l3 + (v6 ? 48u : 28u) + quote, "length %u, quote %u", alen, quote);
	CHECK(memcmp(a, PEER_MAC, 6) == 0 && memcmp(a + 6, PORT_MAC, 6) == 0, "MACs swapped");
	CHECK(memcmp(a + 12, r->orig + 12, l3 - 12) == 0, "VLAN tag and EtherType kept");
	CHECK(memcmp(icmp + 8, rip, quote) == 0, "quoted bytes");
	if (!v6) {
		CHECK(ip[0] == 0x45 && ip[9] == 1 && ip[8] == 64, "IPv4 header, protocol ICMP");
		CHECK(get16(ip + 2) == 28 + quote, "total length %u", get16(ip + 2));
		CHECK(ref_fold(ref_sum(0, ip, 20)) == 0xffff, "IPv4 header checksum");
		CHECK(memcmp(ip + 12, VIP4, 4) == 0 && memcmp(ip + 16, CLIENT4, 4) == 0,
		      "from the VIP to the client");
		CHECK(icmp[0] == 3 && icmp[1] == 4, "type %u code %u", icmp[0], icmp[1]);
		CHECK(get16(icmp + 4) == 0 && get16(icmp + 6) == mtu, "mtu %u", get16(icmp + 6));
		CHECK(ref_fold(ref_sum(0, icmp, 8 + quote)) == 0xffff, "ICMP checksum");
		CHECK(8 + quote + 20 <= 576, "RFC 1812: at most 576 bytes");
	} else {
		uint32_t s = ref_pseudo6(ip + 8, ip + 24, 8 + quote, 58);

		CHECK(get32(ip) == 6u << 28 && ip[6] == 58 && ip[7] == 64, "IPv6 header, ICMPv6");
		CHECK(get16(ip + 4) == 8 + quote, "payload length %u", get16(ip + 4));
		CHECK(memcmp(ip + 8, VIP6, 16) == 0 && memcmp(ip + 24, CLIENT6, 16) == 0,
		      "from the VIP to the client");
		CHECK(icmp[0] == 2 && icmp[1] == 0, "type %u code %u", icmp[0], icmp[1]);
		CHECK(get32(icmp + 4) == mtu, "mtu %u", get32(icmp + 4));
		CHECK(ref_fold(ref_sum(s, icmp, 8 + quote)) == 0xffff, "ICMPv6 checksum");
		CHECK(40 + 8 + quote <= 1280, "RFC 4443: at most 1280 bytes");
	}
}

/* The answer to r with mtu, checked by check_answer to carry mtu and
 * quote bytes of r's IP packet. */
static void check_too_big(const struct rx *r, uint16_t mtu, uint32_t quote)
{
	static uint8_t out[2048];
	uint32_t n = fl_icmp_too_big(r->frame, &r->p, &r->p.key.dst, mtu, out, sizeof(out));

	check_answer(r, out, n, mtu, quote);
}

static void test_icmp4_too_big(void)
{
	static struct encap_call e;
	enum fl_drop_reason why;
	uint16_t mtu = (uint16_t)(1500 - fl_encap_overhead(FL_METHOD_GUE, FL_AF_INET));

	CHECK(mtu == 1472, "GUE over IPv4 leaves %u of 1500, want 1472", mtu);
	for (int vlan = 0; vlan <= 1; vlan++) {
		/* A full-size segment is refused, then answered with a quote cut
		 * to 576 bytes of IP. */
		rx_build(&e.r, 4, vlan, 1460, 1, 0x10);
		encap_prepare(&e, 1500, 4);
		REQUIRE(encap_run(&e, FL_METHOD_GUE, HEADROOM, &why) != 0 && why == FL_DROP_TOO_BIG,
			"1500-byte packet over GUE");
		check_too_big(&e.r, mtu, 576 - 28);

		/* A short packet is quoted whole, its padding not. */
		rx_build(&e.r, 4, vlan, 3, 1, 0);
		check_too_big(&e.r, 1400, e.r.p.ip_len);
	}
}

static void test_icmp6_too_big(void)
{
	static struct rx r;

	for (int vlan = 0; vlan <= 1; vlan++) {
		rx_build(&r, 6, vlan, 1440, 1, 0);
		check_too_big(&r, 1452, 1280 - 48);

		rx_build(&r, 6, vlan, 11, 1, 0);
		check_too_big(&r, 1460, r.p.ip_len);
	}
}

/* Exact bytes of one ICMPv4 answer, written out field by field. */
static void test_icmp4_exact(void)
{
	static struct rx r;
	static uint8_t out[256];
	static struct frame w;
	const uint8_t *want = w.b;
	size_t icmp_at;
	uint32_t n;

	rx_build(&r, 4, 1, 8, 1, 0);
	n = fl_icmp_too_big(r.frame, &r.p, &r.p.key.dst, 1480, out, sizeof(out));
	put_l2(&w, PEER_MAC, PORT_MAC, 1, 0x0800);
	/* precedence "internetwork control"; not DF, so a varying ID */
	put_ip4(&w, 0xc0, 20 + 8 + r.p.ip_len, 0x1234 ^ (HASH >> 16), 0, 64, 1, VIP4, CLIENT4);
	icmp_at = w.len;
	put8(&w, 3);
	put8(&w, 4);
	put16(&w, 0);
	put16(&w, 0);
	put16(&w, 1480);
	putn(&w, r.orig + r.p.l3_off, r.p.ip_len);
	set16(w.b + icmp_at + 2,
	      (uint16_t)~ref_fold(ref_sum(0, want + icmp_at, 8 + r.p.ip_len)));
	REQUIRE(n == w.len, "length %u, expected %u", n, w.len);
	if (memcmp(out, want, n) != 0) {
		CHECK(0, "ICMP answer bytes differ");
		dump("got", out, n);
		dump("want", want, n);
	}
}

static void test_icmp_refusals(void)
{
	static struct rx r;
	static uint8_t out[2048];
	uint32_t l3;

	rx_build(&r, 4, 0, 100, 1, 0);
	l3 = r.p.l3_off;
	/* Room for the headers and 8 bytes past the quoted IP header, no less. */
	CHECK(fl_icmp_too_big(r.frame, &r.p, &r.p.key.dst, 1400, out, l3 + 28 + 28) == l3 + 56,
	      "minimum quote");
	CHECK(fl_icmp_too_big(r.frame, &r.p, &r.p.key.dst, 1400, out, l3 + 28 + 27) == 0,
	      "too little room");
	CHECK(fl_icmp_too_big(r.frame, &r.p, &r.p.key.dst, 1400, out, 10) == 0, "tiny room");

	r.p.flags |= FL_PKT_ICMP_ERROR;
	CHECK(fl_icmp_too_big(r.frame, &r.p, &r.p.key.dst, 1400, out, sizeof(out)) == 0,
	      "no error about an error");
	r.p.flags &= (__u8)~FL_PKT_ICMP_ERROR;

	r.frame[l3 + 12] = 224;	/* multicast source */
	CHECK(fl_icmp_too_big(r.frame, &r.p, &r.p.key.dst, 1400, out, sizeof(out)) == 0,
	      "multicast source");
	r.frame[l3 + 12] = CLIENT4[0];
	r.frame[l3 + 7] = 0xb9;	/* fragment offset != 0 */
	CHECK(fl_icmp_too_big(r.frame, &r.p, &r.p.key.dst, 1400, out, sizeof(out)) == 0,
	      "non-first fragment");

	rx_build(&r, 6, 0, 100, 1, 0);
	r.frame[r.p.l3_off + 8] = 0xff;
	CHECK(fl_icmp_too_big(r.frame, &r.p, &r.p.key.dst, 1400, out, sizeof(out)) == 0,
	      "IPv6 multicast source");
}

static const struct fl_test_case cases[] = {
	{"overhead", test_overhead},
	{"ipip", test_ipip},
	{"ipip_golden", test_ipip_golden},
	{"ip6ip6", test_ip6ip6},
	{"ipip_cross_family", test_ipip_cross_family},
	{"gue_v4", test_gue_v4},
	{"gue_v6", test_gue_v6},
	{"gue_v6_zero_checksum", test_gue_v6_zero_checksum},
	{"l2dsr", test_l2dsr},
	{"l2dsr_no_headroom_needed", test_l2dsr_no_headroom_needed},
	{"too_big_boundary", test_too_big_boundary},
	{"no_headroom", test_no_headroom},
	{"no_next_hop", test_no_next_hop},
	{"bad_input", test_bad_input},
	{"icmp4_too_big", test_icmp4_too_big},
	{"icmp6_too_big", test_icmp6_too_big},
	{"icmp4_exact", test_icmp4_exact},
	{"icmp_refusals", test_icmp_refusals},
};

FL_TEST_MAIN(cases)
