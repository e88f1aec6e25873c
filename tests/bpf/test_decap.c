/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The backend-side decapsulation program (bpf/decap.bpf.c), through
 * bpf_prog_test_run_opts(): each tunnel fulcrum sends comes out as the
 * Ethernet header and the inner packet byte for byte; what is not a tunnel
 * to us comes out untouched; a broken tunnel packet is dropped and counted
 * under its reason. The outer headers are written here, field by field, from
 * the RFCs (not with dp's fl_encap: this test stands apart from dp).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/pkt_cls.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "check.h"
#include "decap.skel.h"
#include "dp/frame.h"
#include "flow.h"
#include "rng.h"

#define GUE_PORT 6080
#define ETHERTYPE_IP 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define PROTO_IPIP 4
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_IPV6 41

/* Backend addresses the map holds (and one it does not). */
static const uint8_t be4[4] = { 10, 1, 0, 1 }, other4[4] = { 10, 1, 0, 99 };
static const uint8_t lb4[4] = { 10, 0, 0, 2 };
static const uint8_t be6[16] = { 0xfd, 0x01, [15] = 1 }, other6[16] = { 0xfd, 0x01, [15] = 99 };
static const uint8_t lb6[16] = { 0xfd, 0x00, [15] = 2 };
static const uint8_t client4[4] = { 192, 0, 2, 7 }, vip4[4] = { 10, 0, 0, 100 };
static const uint8_t client6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 };
static const uint8_t vip6[16] = { 0xfd, 0x00, [14] = 1, [15] = 0 };
static const uint8_t be_mac[6] = { 0x02, 0, 0, 0, 1, 1 }, lb_mac[6] = { 0x02, 0, 0, 0, 0, 1 };

static struct decap_bpf *skel;		/* any_dst = 0 */
static struct decap_bpf *skel_any;	/* any_dst = 1 */

/* ---- the program and its counters ---- */

static struct decap_bpf *load(int any_dst)
{
	struct decap_bpf *s = decap_bpf__open();
	union fl_addr k;
	__u8 one = 1;

	if (!s)
		return NULL;
	s->rodata->gue_port = htons(GUE_PORT);
	s->rodata->any_dst = (__u8)any_dst;
	if (decap_bpf__load(s)) {
		decap_bpf__destroy(s);
		return NULL;
	}
	memset(&k, 0, sizeof(k));
	k.bytes[10] = k.bytes[11] = 0xff;
	memcpy(k.bytes + 12, be4, 4);
	bpf_map__update_elem(s->maps.decap_local, &k, sizeof(k), &one, 1, BPF_ANY);
	memcpy(k.bytes, be6, 16);
	bpf_map__update_elem(s->maps.decap_local, &k, sizeof(k), &one, 1, BPF_ANY);
	return s;
}

/* A counter by its field name in struct decap_counters, summed over CPUs;
 * the BTF of the object is the names table, as fulcrum-decap stats reads it. */
static uint64_t counter(struct decap_bpf *s, const char *name)
{
	const struct btf *btf = bpf_object__btf(s->obj);
	__s32 id = btf ? btf__find_by_name_kind(btf, "decap_counters", BTF_KIND_STRUCT) : -1;
	const struct btf_type *t = id > 0 ? btf__type_by_id(btf, id) : NULL;
	int ncpu = libbpf_num_possible_cpus();
	static uint8_t vals[512 * 256];
	uint32_t key = 0, off = UINT32_MAX;
	uint64_t sum = 0;

	if (!t || ncpu <= 0 || (size_t)ncpu * t->size > sizeof(vals))
		return UINT64_MAX;
	for (int i = 0; i < btf_vlen(t); i++)
		if (strcmp(btf__name_by_offset(btf, btf_members(t)[i].name_off), name) == 0)
			off = btf_members(t)[i].offset / 8;
	if (off == UINT32_MAX ||
	    bpf_map__lookup_elem(s->maps.decap_stats, &key, sizeof(key), vals,
				 (size_t)ncpu * t->size, 0))
		return UINT64_MAX;
	for (int cpu = 0; cpu < ncpu; cpu++) {
		uint64_t v;

		memcpy(&v, vals + (size_t)cpu * t->size + off, 8);
		sum += v;
	}
	return sum;
}

/* Runs one frame; returns the verdict, out gets what came out. */
static int run(struct decap_bpf *s, const struct frame *in, struct frame *out)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in->b, .data_size_in = in->len,
		    .data_out = out->b, .data_size_out = sizeof(out->b), .repeat = 1);
	int err = bpf_prog_test_run_opts(bpf_program__fd(s->progs.fl_decap), &o);

	if (err)
		return -1000 + err;
	out->len = o.data_size_out;
	return (int)o.retval;
}

/* ---- frames ---- */

static void put_eth(struct frame *f, unsigned ethertype)
{
	putn(f, be_mac, 6);
	putn(f, lb_mac, 6);
	put16(f, ethertype);
}

static uint16_t csum(const uint8_t *p, uint32_t n)
{
	uint32_t s = 0;

	for (uint32_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* RFC 791 header without options; the checksum computed unless bad_csum. */
static void put_ip4(struct frame *f, unsigned tos, unsigned tot, unsigned frag, unsigned proto,
		    const uint8_t src[4], const uint8_t dst[4], int bad_csum)
{
	uint32_t at = f->len;

	put8(f, 0x45);
	put8(f, tos);
	put16(f, tot);
	put16(f, 0x1234);
	put16(f, frag);
	put8(f, 64);
	put8(f, proto);
	put16(f, 0);
	putn(f, src, 4);
	putn(f, dst, 4);
	uint16_t c = csum(f->b + at, 20) ^ (bad_csum ? 0x0100 : 0);
	f->b[at + 10] = (uint8_t)(c >> 8);
	f->b[at + 11] = (uint8_t)c;
}

static void put_ip6(struct frame *f, unsigned tclass, unsigned plen, unsigned nexthdr,
		    const uint8_t src[16], const uint8_t dst[16])
{
	put32(f, 6u << 28 | tclass << 20 | 0x12345);
	put16(f, plen);
	put8(f, nexthdr);
	put8(f, 64);
	putn(f, src, 16);
	putn(f, dst, 16);
}

/* An inner TCP packet from the client to the VIP, IPv4 or IPv6, with a
 * random payload of n bytes; the TCP checksum is whatever: the program must
 * not look at it. */
static void inner_packet(struct frame *f, int v6, unsigned tos, uint32_t n, struct rng *r)
{
	uint32_t tcp = 20 + n;

	f->len = 0;
	if (v6)
		put_ip6(f, tos, tcp, PROTO_TCP, client6, vip6);
	else
		put_ip4(f, tos, 20 + tcp, 0x4000, PROTO_TCP, client4, vip4, 0);
	put16(f, 40000 + (unsigned)(rng_next(r) % 20000));
	put16(f, 80);
	put32(f, (uint32_t)rng_next(r));
	put32(f, 0);
	put16(f, 0x5002);	/* data offset 5, SYN */
	put16(f, 65535);
	put32(f, (uint32_t)rng_next(r) & 0xffff0000u);	/* checksum, urgent 0 */
	for (uint32_t i = 0; i < n; i++)
		put8(f, (unsigned)rng_next(r));
}

enum tun { IPIP, GUE };

/* The frame fulcrum sends for inner: outer family outer_v6, IPIP (protocol
 * 4 or 41 by the inner family) or GUE (UDP to GUE_PORT, no GUE header). */
static void tunnel_frame(struct frame *f, const struct frame *inner, int outer_v6, enum tun m,
			 const void *dst, unsigned tos)
{
	const int inner_v6 = inner->b[0] >> 4 == 6;
	const unsigned proto = m == GUE ? PROTO_UDP : inner_v6 ? PROTO_IPV6 : PROTO_IPIP;
	const unsigned udp = m == GUE ? 8 : 0;

	f->len = 0;
	put_eth(f, outer_v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IP);
	if (outer_v6)
		put_ip6(f, tos, udp + inner->len, proto, lb6, dst);
	else
		put_ip4(f, tos, 20 + udp + inner->len, 0x4000, proto, lb4, dst, 0);
	if (m == GUE) {
		put16(f, 0x8000 | 1234);
		put16(f, GUE_PORT);
		put16(f, 8 + inner->len);
		put16(f, 0);	/* no checksum: the program must not care */
	}
	putn(f, inner->b, inner->len);
}

static void inner_frame(struct frame *f, const struct frame *inner)
{
	f->len = 0;
	put_eth(f, inner->b[0] >> 4 == 6 ? ETHERTYPE_IPV6 : ETHERTYPE_IP);
	putn(f, inner->b, inner->len);
}

static int same(const struct frame *a, const struct frame *b)
{
	return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

/* Expects in to come out as want with verdict TC_ACT_OK and counter +1. */
static void expect_out(struct decap_bpf *s, const struct frame *in, const struct frame *want,
		       const char *ctr, const char *what)
{
	static struct frame out;
	uint64_t before = counter(s, ctr);
	int rc = run(s, in, &out);

	CHECK(rc == TC_ACT_OK, "%s: verdict %d", what, rc);
	CHECK(same(&out, want), "%s: %u bytes out, %u expected%s", what, out.len, want->len,
	      out.len == want->len ? ", contents differ" : "");
	CHECK(counter(s, ctr) == before + 1, "%s: %s %llu -> %llu", what, ctr,
	      (unsigned long long)before, (unsigned long long)counter(s, ctr));
}

static void expect_drop(struct decap_bpf *s, const struct frame *in, const char *ctr,
			const char *what)
{
	static struct frame out;
	uint64_t before = counter(s, ctr);
	int rc = run(s, in, &out);

	CHECK(rc == TC_ACT_SHOT, "%s: verdict %d, expected a drop", what, rc);
	CHECK(counter(s, ctr) == before + 1, "%s: %s %llu -> %llu", what, ctr,
	      (unsigned long long)before, (unsigned long long)counter(s, ctr));
}

/* ---- cases ---- */

static int setup(void)
{
	if (!skel)
		skel = load(0);
	if (!skel_any)
		skel_any = load(1);
	return skel && skel_any;
}

/* Every tunnel and family combination, many sizes: inner frame out. */
static void each_tunnel(int outer_v6, enum tun m, const char *ctr)
{
	static struct frame inner, in, want;
	struct rng r = { 0x5eed0000u + (unsigned)outer_v6 * 2 + m };
	char what[96];

	REQUIRE(setup(), "the program loads");
	for (int i = 0; i < 64; i++) {
		const int inner_v6 = i & 1;
		const uint32_t n = i < 4 ? (uint32_t)i : (uint32_t)(rng_next(&r) % 1400);

		inner_packet(&inner, inner_v6, (unsigned)(rng_next(&r) & 0xfc), n, &r);
		tunnel_frame(&in, &inner, outer_v6, m, outer_v6 ? (const void *)be6 : be4, 0);
		inner_frame(&want, &inner);
		snprintf(what, sizeof(what), "%s over IPv%d, inner IPv%d, %u payload bytes",
			 m == GUE ? "GUE" : "IPIP", outer_v6 ? 6 : 4, inner_v6 ? 6 : 4, n);
		expect_out(skel, &in, &want, ctr, what);
	}
}

static void test_ipip(void)
{
	each_tunnel(0, IPIP, "decap_ipip");
}

static void test_ip6ip6(void)
{
	each_tunnel(1, IPIP, "decap_ip6tnl");
}

static void test_gue4(void)
{
	each_tunnel(0, GUE, "decap_gue4");
}

static void test_gue6(void)
{
	each_tunnel(1, GUE, "decap_gue6");
}

/* Outer IPv4 with options: all of the header goes. */
static void test_ipip_options(void)
{
	static struct frame inner, in, want;
	struct rng r = { 77 };
	uint32_t at;

	REQUIRE(setup(), "the program loads");
	inner_packet(&inner, 0, 0, 100, &r);
	in.len = 0;
	put_eth(&in, ETHERTYPE_IP);
	at = in.len;
	put8(&in, 0x46);	/* IHL 6: one word of options */
	put8(&in, 0);
	put16(&in, 24 + inner.len);
	put16(&in, 0);
	put16(&in, 0x4000);
	put8(&in, 64);
	put8(&in, PROTO_IPIP);
	put16(&in, 0);
	putn(&in, lb4, 4);
	putn(&in, be4, 4);
	put32(&in, 0x01010100);	/* NOP NOP NOP EOL */
	uint16_t c = csum(in.b + at, 24);
	in.b[at + 10] = (uint8_t)(c >> 8);
	in.b[at + 11] = (uint8_t)c;
	putn(&in, inner.b, inner.len);
	inner_frame(&want, &inner);
	expect_out(skel, &in, &want, "decap_ipip", "IPIP with outer options");
}

/* Not a tunnel: out as it came. */
static void test_not_tunnel(void)
{
	static struct frame inner, in;
	struct rng r = { 99 };

	REQUIRE(setup(), "the program loads");
	inner_packet(&inner, 0, 0, 50, &r);
	inner_frame(&in, &inner);
	expect_out(skel, &in, &in, "pass_not_tunnel", "plain IPv4 TCP");
	inner_packet(&inner, 1, 0, 50, &r);
	inner_frame(&in, &inner);
	expect_out(skel, &in, &in, "pass_not_tunnel", "plain IPv6 TCP");

	/* UDP to our address, another port */
	in.len = 0;
	put_eth(&in, ETHERTYPE_IP);
	put_ip4(&in, 0, 20 + 8 + inner.len, 0, PROTO_UDP, lb4, be4, 0);
	put16(&in, 1234);
	put16(&in, 53);
	put16(&in, 8 + inner.len);
	put16(&in, 0);
	putn(&in, inner.b, inner.len);
	expect_out(skel, &in, &in, "pass_not_tunnel", "UDP to port 53 holding an IP packet");

	/* ARP */
	in.len = 0;
	put_eth(&in, 0x0806);
	put16(&in, 1);
	put16(&in, ETHERTYPE_IP);
	put8(&in, 6);
	put8(&in, 4);
	put16(&in, 1);
	putn(&in, lb_mac, 6);
	putn(&in, lb4, 4);
	fill(&in, 6, 0);
	putn(&in, be4, 4);
	fill(&in, 18, 0);
	expect_out(skel, &in, &in, "pass_not_tunnel", "ARP request");
}

/* A tunnel to an address not in the map passes untouched; with any_dst it
 * is decapsulated. */
static void test_not_local(void)
{
	static struct frame inner, in, want;
	struct rng r = { 5 };

	REQUIRE(setup(), "the program loads");
	inner_packet(&inner, 0, 0, 200, &r);
	inner_frame(&want, &inner);

	tunnel_frame(&in, &inner, 0, IPIP, other4, 0);
	expect_out(skel, &in, &in, "pass_not_local", "IPIP to 10.1.0.99");
	expect_out(skel_any, &in, &want, "decap_ipip", "IPIP to 10.1.0.99, any_dst");
	tunnel_frame(&in, &inner, 1, GUE, other6, 0);
	expect_out(skel, &in, &in, "pass_not_local", "GUE to fd01::99");
	expect_out(skel_any, &in, &want, "decap_gue6", "GUE to fd01::99, any_dst");
	/* an IPv4 address holding the IPv4-mapped form's bytes is not ours */
	tunnel_frame(&in, &inner, 0, GUE, (const uint8_t[4]){ 0, 0, 0xff, 0xff }, 0);
	expect_out(skel, &in, &in, "pass_not_local", "GUE to 0.0.255.255");
}

static void test_malformed(void)
{
	static struct frame inner, inner6, in;
	struct rng r = { 11 };

	REQUIRE(setup(), "the program loads");
	inner_packet(&inner, 0, 0, 300, &r);
	inner_packet(&inner6, 1, 0, 300, &r);

	/* the inner packet cut short: the outer lengths cover what is there */
	for (int outer_v6 = 0; outer_v6 < 2; outer_v6++)
		for (int m = IPIP; m <= GUE; m++) {
			const void *dst = outer_v6 ? (const void *)be6 : be4;
			struct frame cut = inner;

			cut.len = 100;
			tunnel_frame(&in, &cut, outer_v6, (enum tun)m, dst, 0);
			expect_drop(skel, &in, "drop_inner_truncated", "IPv4 inner cut short");
			cut = inner6;
			cut.len = 100;
			tunnel_frame(&in, &cut, outer_v6, (enum tun)m, dst, 0);
			expect_drop(skel, &in, "drop_inner_truncated", "IPv6 inner cut short");
			cut.len = 12;
			tunnel_frame(&in, &cut, outer_v6, (enum tun)m, dst, 0);
			expect_drop(skel, &in, "drop_inner_truncated", "12 bytes of inner");
		}

	/* the frame shorter than the outer header says */
	tunnel_frame(&in, &inner, 0, IPIP, be4, 0);
	in.len -= 10;
	expect_drop(skel, &in, "drop_outer_header", "IPv4 frame shorter than tot_len");
	tunnel_frame(&in, &inner, 1, IPIP, be6, 0);
	in.len -= 10;
	expect_drop(skel, &in, "drop_outer_header", "IPv6 frame shorter than payload_len");

	/* outer checksum, fragment, IHL */
	in.len = 0;
	put_eth(&in, ETHERTYPE_IP);
	put_ip4(&in, 0, 20 + inner.len, 0x4000, PROTO_IPIP, lb4, be4, 1);
	putn(&in, inner.b, inner.len);
	expect_drop(skel, &in, "drop_outer_csum", "outer IPv4 checksum wrong");
	in.len = 0;
	put_eth(&in, ETHERTYPE_IP);
	put_ip4(&in, 0, 20 + inner.len, 0x2000, PROTO_IPIP, lb4, be4, 0);
	putn(&in, inner.b, inner.len);
	expect_drop(skel, &in, "drop_outer_fragment", "outer first fragment");
	tunnel_frame(&in, &inner, 0, IPIP, be4, 0);
	in.b[14] = 0x44;
	expect_drop(skel, &in, "drop_outer_header", "outer IHL 4");

	/* the inner version not the one the protocol names */
	tunnel_frame(&in, &inner, 0, IPIP, be4, 0);
	in.b[14 + 9] = PROTO_IPV6;
	in.b[14 + 10] = in.b[14 + 11] = 0;
	uint16_t c = csum(in.b + 14, 20);
	in.b[14 + 10] = (uint8_t)(c >> 8);
	in.b[14 + 11] = (uint8_t)c;
	expect_drop(skel, &in, "drop_inner_header", "protocol 41 holding IPv4");
	tunnel_frame(&in, &inner6, 1, IPIP, be6, 0);
	in.b[14 + 6] = PROTO_IPIP;
	expect_drop(skel, &in, "drop_inner_header", "next header 4 holding IPv6");

	/* GUE: not IP after the UDP header (a GUE variant 0 header), a bad
	 * UDP length */
	tunnel_frame(&in, &inner, 0, GUE, be4, 0);
	in.b[14 + 20 + 8] = 0x00;
	expect_drop(skel, &in, "drop_gue_not_ip", "GUE variant 0 header");
	tunnel_frame(&in, &inner, 1, GUE, be6, 0);
	in.b[14 + 40 + 4] = 0;
	in.b[14 + 40 + 5] = 7;
	expect_drop(skel, &in, "drop_udp_header", "UDP length 7");
}

/* RFC 6040: outer CE marks an ECT inner packet CE (the IPv4 checksum
 * follows); a not-ECT inner packet under outer CE is dropped; otherwise the
 * inner ECN field is left as it is. */
static void test_ecn(void)
{
	static struct frame inner, in, want, w;
	struct rng r = { 3 };

	REQUIRE(setup(), "the program loads");
	for (int v6 = 0; v6 < 2; v6++) {
		r.s = 3;
		inner_packet(&inner, v6, 0x02, 80, &r);	/* ECT(0) */
		tunnel_frame(&in, &inner, v6, IPIP, v6 ? (const void *)be6 : be4, 0x03);
		r.s = 3;
		inner_packet(&w, v6, 0x03, 80, &r);	/* the same packet, CE */
		inner_frame(&want, &w);
		expect_out(skel, &in, &want, "decap_ecn_ce", v6 ? "IPv6 ECT(0) under CE" :
								 "IPv4 ECT(0) under CE");
		if (!v6)
			CHECK(csum(want.b + 14, 20) == 0, "the expected header sums right");

		r.s = 3;
		inner_packet(&inner, v6, 0x00, 80, &r);	/* not ECT */
		tunnel_frame(&in, &inner, v6, IPIP, v6 ? (const void *)be6 : be4, 0x03);
		expect_drop(skel, &in, "drop_ecn", "not-ECT under CE");

		/* outer ECT(1), inner not-ECT: nothing changes */
		tunnel_frame(&in, &inner, v6, GUE, v6 ? (const void *)be6 : be4, 0x01);
		inner_frame(&want, &inner);
		expect_out(skel, &in, &want, v6 ? "decap_gue6" : "decap_gue4", "outer ECT(1)");
	}
}

/* Every counter is a named field, and the loader reads them from BTF. */
static void test_counters_named(void)
{
	REQUIRE(setup(), "the program loads");
	CHECK(counter(skel, "decap_ipip") != UINT64_MAX, "decap_ipip is readable");
	CHECK(counter(skel, "no_such_counter") == UINT64_MAX, "unknown names are refused");
}

static const struct fl_test_case cases[] = {
	{ "ipip", test_ipip },
	{ "ip6ip6", test_ip6ip6 },
	{ "gue4", test_gue4 },
	{ "gue6", test_gue6 },
	{ "ipip_options", test_ipip_options },
	{ "not_tunnel", test_not_tunnel },
	{ "not_local", test_not_local },
	{ "malformed", test_malformed },
	{ "ecn", test_ecn },
	{ "counters_named", test_counters_named },
};

FL_TEST_MAIN(cases)
