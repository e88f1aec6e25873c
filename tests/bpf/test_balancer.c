/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The XDP balancer (bpf/balancer.bpf.c) through BPF_PROG_TEST_RUN, against
 * fulcrum-dp's stages as the reference: golden packets for every method and
 * family, with and without a VLAN tag, must come out byte for byte as
 * dp/encap.c's fl_encap makes them; ICMP errors, host traffic and malformed
 * packets get the same verdicts and counters as dp/pipeline.c; conntrack
 * keeps, drains, moves and reselects flows by the same rule, and within its
 * new-flow rate keeps established flows through a SYN flood; and 100,000
 * random flows pick the same backend (the same bytes) in both data planes
 * on the same shared-memory tables. Needs root. The process is pinned to
 * one CPU (test_run runs on the caller's); other_cpu and other_cpu_close
 * move it to show a record followed from, and closed on, another CPU, and
 * ct_two_cpus and ct_neighbour_writes run one thread on each of two CPUs
 * on one conntrack, which every CPU shares.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <net/if.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "check.h"
#include "dp/frame.h"
#include "rng.h"
#include "maglev.h"
#include "encap.h"
#include "parse.h"
#include "pipeline.h"
#include "balancer.skel.h"
#include "xdp.h"

#define M 1021u			/* ring size per VIP (prime, small for speed) */
#define NVIPS 8u
#define NB 32u
#define HEADROOM 256u
#define OUT_MAX 4096u
#define TCP 6
#define UDP 17
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_ACK 0x10
#define GUE_PORT 6080
#define PARITY_FLOWS 100000u

#include "tables_model.h"

static const struct fl_shm_params params = { .max_vips = 16, .max_backends = 64,
					      .ring_entries = 16 * M, .max_workers = 2 };

/* VIPs: IPv4 ones in 192.0.2.0/24, IPv6 ones in 2001:db8:ffff::/64. */
enum { V4_IPIP, V4_GUE, V4_L2DSR, V6_IP6IP6, V6_GUE, V6_L2DSR, V4_UDP, V6_IPIP4 };
static const struct {
	__u8 family, proto, method, backend_family, first, count;
	__u16 port;
} vip_def[NVIPS] = {
	[V4_IPIP] = { 4, TCP, FL_METHOD_IPIP, 4, 0, 4, 80 },
	[V4_GUE] = { 4, TCP, FL_METHOD_GUE, 4, 4, 3, 443 },
	[V4_L2DSR] = { 4, TCP, FL_METHOD_L2DSR, 4, 7, 2, 80 },
	[V6_IP6IP6] = { 6, TCP, FL_METHOD_IP6IP6, 6, 9, 3, 80 },
	[V6_GUE] = { 6, TCP, FL_METHOD_GUE, 6, 12, 3, 443 },
	[V6_L2DSR] = { 6, TCP, FL_METHOD_L2DSR, 6, 15, 2, 80 },
	[V4_UDP] = { 4, UDP, FL_METHOD_GUE, 6, 17, 2, 53 },
	[V6_IPIP4] = { 6, TCP, FL_METHOD_IPIP, 4, 19, 2, 8080 },
};

static const __u8 PORT_MAC[6] = { 2, 0, 0, 0, 0, 1 };
static const __u8 PEER_MAC[6] = { 2, 0, 0, 0, 0, 0xfe };

static void vip_addr(unsigned v, union fl_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (vip_def[v].family == 4) {
		a->v4 = htonl(0xc000020au + v);
	} else {
		static const __u8 p[8] = { 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0 };

		memcpy(a->bytes, p, 8);
		a->bytes[15] = (__u8)(0x10 + v);
	}
}

/* ---- the tables, as fulcrum-cp publishes them ---- */

static void model_init(struct model *m)
{
	memset(m, 0, sizeof(*m));
	m->seed = 0x5eed1234abcdull;
	for (__u32 v = 0; v < NVIPS; v++) {
		struct fl_vip *x = &m->vips[v];

		vip_addr(v, &x->addr);
		x->port = htons(vip_def[v].port);
		x->proto = vip_def[v].proto;
		x->family = vip_def[v].family;
		x->method = vip_def[v].method;
		x->flags = FL_VIP_IN_USE;
		x->ring_offset = v * M;
		x->ring_size = M;
		for (__u32 i = 0; i < vip_def[v].count; i++)
			model_backend(m, vip_def[v].first + i, v, vip_def[v].backend_family,
				      vip_def[v].first + i + 1);
	}
}

/* ---- both data planes on one mapping ---- */

struct env {
	char name[128];
	struct fl_shm shm;
	struct fl_worker w;
	void *ct_mem;
	struct fl_xdp x;
	struct fl_encap_ctx encap;
	struct model m;
	__u8 next_hop_mac[6];	/* published in the slot header; zero = none */
	int prog_fd;
	__u8 buf[HEADROOM + OUT_MAX];
};

static struct env *E;
static int env_setup(void);
static void env_teardown(void);

/* Every case runs on the one environment, made by the first (a case may be
 * run alone: `test_balancer parity`). */
#define NEED_ENV() REQUIRE(E || env_setup() == 0, "setup (root, BPF and /dev/shm needed)")

/* Publishes the model to shared memory, then the same slot to the maps. */
static int publish(struct env *e)
{
	char err[256];

	if (model_publish(&e->shm, &params, &e->m, e->next_hop_mac) != 0)
		return -1;
	if (fl_xdp_publish(&e->x, fl_writer_active(&e->shm), err, sizeof(err)) != 0) {
		fprintf(stderr, "xdp publish: %s\n", err);
		return -1;
	}
	return 0;
}

static const __u8 KNOB_NEXT_HOP[6] = { 2, 0, 0, 0, 0, 0x99 };

/* The knobs of every loaded program but the next hop's. */
static void knobs_init(struct fl_xdp_knobs *k)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->src_mac, PORT_MAC, 6);
	k->tunnel_src_v4.v4 = htonl(0x0a000001);
	k->tunnel_src_v6.bytes[0] = 0xfd;
	k->tunnel_src_v6.bytes[15] = 1;
	k->gue_port = GUE_PORT;
	k->mtu = 1500;
	k->max_vips = params.max_vips;
	k->max_backends = params.max_backends;
	k->ring_entries = params.ring_entries;
	k->ct_capacity = 4 * PARITY_FLOWS;
}

static int env_setup(void)
{
	static struct env env;
	struct fl_xdp_knobs k;
	struct fl_ct_params ctp;
	char err[512];
	cpu_set_t cpus;
	size_t ct_len;
	int cpu = sched_getcpu();

	CPU_ZERO(&cpus);
	CPU_SET(cpu < 0 ? 0 : cpu, &cpus);
	if (sched_setaffinity(0, sizeof(cpus), &cpus) != 0) {
		perror("sched_setaffinity");
		return -1;
	}
	E = &env;
	atexit(env_teardown);
	knobs_init(&k);
	memcpy(k.next_hop_mac, KNOB_NEXT_HOP, 6);

	memcpy(env.encap.src_mac, k.src_mac, 6);
	memcpy(env.encap.next_hop_mac, k.next_hop_mac, 6);
	env.encap.tunnel_src_v4 = k.tunnel_src_v4;
	env.encap.tunnel_src_v6 = k.tunnel_src_v6;
	env.encap.gue_dport = htons(GUE_PORT);
	env.encap.mtu = k.mtu;

	if (fl_xdp_open_load(&env.x, &k, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	env.prog_fd = fl_xdp_prog_fd(&env.x);
	snprintf(env.name, sizeof(env.name), "/dev/shm/fulcrum-test-%d-xdp", (int)getpid());
	fl_shm_unlink(env.name);
	if (fl_shm_create(env.name, &params, &env.shm, err, sizeof(err)) != 0) {
		fprintf(stderr, "shm: %s\n", err);
		return -1;
	}
	model_init(&env.m);
	if (publish(&env) != 0)
		return -1;
	fl_ct_params_default(&ctp);
	ct_len = fl_ct_mem_size(4 * PARITY_FLOWS);
	env.ct_mem = aligned_alloc(64, (ct_len + 63) & ~(size_t)63);
	if (!env.ct_mem || fl_worker_init(&env.w, &env.shm, 0, env.ct_mem, ct_len,
					  4 * PARITY_FLOWS, &ctp, &env.encap, 0, err,
					  sizeof(err)) != 0) {
		fprintf(stderr, "worker: %s\n", err);
		return -1;
	}
	return 0;
}

static void env_teardown(void)
{
	fl_worker_fini(&E->w);
	fl_shm_detach(&E->shm);
	fl_shm_unlink(E->name);
	free(E->ct_mem);
	fl_xdp_close(&E->x);
}

/* ---- frames ---- */

struct flow {
	__u8 family, proto, tcp_flags;
	union fl_addr src, dst;
	__u16 sport, dport;	/* host order */
};

static void put_l2(struct frame *f, int vlans, unsigned etype)
{
	f->len = 0;
	putn(f, PORT_MAC, 6);
	putn(f, PEER_MAC, 6);
	for (int i = 0; i < vlans; i++) {
		put16(f, 0x8100);
		put16(f, 0x6064 + i);
	}
	put16(f, etype);
}

static void put_ip(struct frame *f, __u8 family, __u8 proto, const union fl_addr *src,
		   const union fl_addr *dst, unsigned frag, __u8 tos)
{
	if (family == 4) {
		put8(f, 0x45);
		put8(f, tos);
		put16(f, 0);	/* total length: ip_done */
		put16(f, 0x1234);
		put16(f, frag);
		put8(f, 57);
		put8(f, proto);
		put16(f, 0);
		putn(f, (const __u8 *)&src->v4, 4);
		putn(f, (const __u8 *)&dst->v4, 4);
	} else {
		put32(f, 6u << 28 | (__u32)tos << 20 | 0xabcde);
		put16(f, 0);	/* payload length: ip_done */
		put8(f, proto);
		put8(f, 57);
		putn(f, src->bytes, 16);
		putn(f, dst->bytes, 16);
	}
}

static void ip_done(struct frame *f, __u32 l3, __u8 family)
{
	__u32 n = f->len - l3 - (family == 6 ? 40 : 0);

	f->b[l3 + (family == 6 ? 4 : 2)] = (__u8)(n >> 8);
	f->b[l3 + (family == 6 ? 5 : 3)] = (__u8)n;
}

/* A client's packet of flow fl, payload bytes, then pad bytes of Ethernet
 * padding the encapsulation must drop. */
static void build(struct frame *f, const struct flow *fl, int vlans, unsigned payload,
		  unsigned pad, __u8 tos, int df)
{
	__u32 l3;

	put_l2(f, vlans, fl->family == 6 ? 0x86dd : 0x0800);
	l3 = f->len;
	put_ip(f, fl->family, fl->proto, &fl->src, &fl->dst, df ? 0x4000 : 0, tos);
	put16(f, fl->sport);
	put16(f, fl->dport);
	if (fl->proto == TCP) {
		put32(f, 0x01020304);
		put32(f, 0x05060708);
		put8(f, 5 << 4);
		put8(f, fl->tcp_flags);
		put16(f, 0xffff);
		put32(f, 0);
	} else {
		put16(f, 8 + payload);
		put16(f, 0);
	}
	for (unsigned i = 0; i < payload; i++)
		put8(f, (__u8)(i * 7 + 3));
	ip_done(f, l3, fl->family);
	fill(f, pad, 0);
}

static void flow_to(struct flow *fl, unsigned v, __u32 client, __u16 cport, __u8 flags)
{
	memset(fl, 0, sizeof(*fl));
	fl->family = vip_def[v].family;
	fl->proto = vip_def[v].proto;
	fl->tcp_flags = flags;
	vip_addr(v, &fl->dst);
	if (fl->family == 4) {
		fl->src.v4 = htonl(0xc6330000u | (client & 0xffff));
	} else {
		fl->src.bytes[0] = 0x20;
		fl->src.bytes[1] = 0x01;
		fl->src.bytes[2] = 0x0d;
		fl->src.bytes[3] = 0xb8;
		memcpy(fl->src.bytes + 12, &client, 4);
	}
	fl->sport = cport;
	fl->dport = vip_def[v].port;
}

/* ---- running a frame ---- */

struct out {
	__u32 retval;	/* XDP verdict, or enum fl_verdict for dp */
	__u32 len;
	__u8 reason;
	__u8 b[OUT_MAX];
};

static int run_prog(int prog_fd, const struct frame *f, struct out *o)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f->b, .data_size_in = f->len,
		    .data_out = o->b, .data_size_out = sizeof(o->b), .repeat = 1);

	if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
		fprintf(stderr, "test_run: %s\n", strerror(errno));
		return -1;
	}
	o->retval = opts.retval;
	o->len = opts.data_size_out;
	return 0;
}

static int run_xdp(const struct frame *f, struct out *o)
{
	return run_prog(E->prog_fd, f, o);
}

static void run_dp(const struct frame *f, struct out *o)
{
	struct fl_buf b;

	memset(&b, 0, sizeof(b));
	memcpy(E->buf + HEADROOM, f->b, f->len);
	b.data = E->buf + HEADROOM;
	b.len = f->len;
	b.headroom = HEADROOM;
	fl_pipeline_run(&E->w, &b, 1, fl_ct_now());
	o->retval = b.verdict;
	o->reason = b.drop_reason;
	o->len = b.verdict == FL_VERDICT_TX ? b.len : 0;
	if (o->len)
		memcpy(o->b, b.data, b.len);
}

/* The reference: fl_parse, the flow hash, fl_tables_pick and fl_encap on a
 * copy of the frame; the backend id in *id. -1 if any stage refuses. */
static int reference(const struct frame *f, struct out *o, __u32 *id)
{
	const struct fl_tables *t = fl_writer_active(&E->shm);
	enum fl_drop_reason reason;
	const struct fl_vip *v;
	struct fl_pkt p;
	__u8 *data = E->buf + HEADROOM;
	__u32 len = f->len, vip_id;

	memcpy(data, f->b, f->len);
	if (fl_parse(data, len, &p, &reason) != FL_PARSE_FLOW)
		return -1;
	v = fl_vip_find(t, &p.key.dst, p.key.family, p.key.dport, p.key.proto, &vip_id);
	if (!v)
		return -1;
	p.hash = fl_flow_hash(&p.key, t->hdr->hash_seed);
	*id = fl_tables_pick(t, v, p.hash);
	if (*id >= NB)
		return -1;
	if (fl_encap(&E->encap, (enum fl_method)v->method, &t->backends[*id], &p, &data, &len,
		     HEADROOM, &reason) != 0)
		return -1;
	memcpy(o->b, data, len);
	o->len = len;
	return 0;
}

static int same_bytes(const struct out *a, const struct out *b)
{
	return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

static void dump(const char *what, const struct out *o)
{
	fprintf(stderr, "%s (%u bytes):", what, o->len);
	for (__u32 i = 0; i < o->len && i < 128; i++)
		fprintf(stderr, "%s%02x", i % 16 ? " " : "\n  ", o->b[i]);
	fputc('\n', stderr);
}

static __u64 drops(enum fl_drop_reason r)
{
	struct fl_worker_counters c;

	return fl_xdp_counters(&E->x, &c) == 0 ? c.drops[r] : ~0ull;
}

/* ---- cases ---- */

static void test_golden(void)
{
	static struct frame f;
	static struct out want, got, dp;
	unsigned n = 0;

	NEED_ENV();

	for (unsigned v = 0; v < NVIPS; v++) {
		for (int vlans = 0; vlans <= 2; vlans++) {
			for (int df = 0; df <= 1; df++) {
				struct flow fl;
				__u32 id;

				flow_to(&fl, v, 0x1000 + v * 16 + vlans * 2 + df,
					(__u16)(40000 + v), TH_SYN);
				build(&f, &fl, vlans, 100 + v * 13 + (unsigned)vlans, 6,
				      (__u8)(0x28 + df), df);
				REQUIRE(reference(&f, &want, &id) == 0, "reference for VIP %u", v);
				REQUIRE(run_xdp(&f, &got) == 0, "test_run");
				run_dp(&f, &dp);
				CHECK(got.retval == XDP_TX, "VIP %u vlans %d: verdict %u", v, vlans,
				      got.retval);
				CHECK(same_bytes(&got, &want), "VIP %u vlans %d df %d: bytes differ",
				      v, vlans, df);
				CHECK(dp.retval == FL_VERDICT_TX && same_bytes(&dp, &want),
				      "fulcrum-dp differs from fl_encap for VIP %u", v);
				if (!same_bytes(&got, &want)) {
					dump("want", &want);
					dump("got", &got);
				}
				n++;
			}
		}
	}
	printf("golden: %u frames (%u VIPs: IPIP, GUE v4/v6, L2DSR v4/v6, IP6IP6, "
	       "IPv6-in-IPv4; 0-2 VLAN tags; DF on/off) equal to fl_encap\n", n, NVIPS);
}

/* A verdict of dp and XDP, and the XDP drop counter, for one frame. */
static void same_verdict(const struct frame *f, __u32 want_xdp, int reason, const char *what)
{
	static struct out got, dp;
	__u64 before = reason >= 0 ? drops((enum fl_drop_reason)reason) : 0;
	__u32 want_dp = want_xdp == XDP_PASS ? FL_VERDICT_KERNEL : FL_VERDICT_DROP;

	REQUIRE(run_xdp(f, &got) == 0, "test_run");
	run_dp(f, &dp);
	CHECK(got.retval == want_xdp, "%s: XDP verdict %u, want %u", what, got.retval, want_xdp);
	CHECK(dp.retval == want_dp, "%s: dp verdict %u, want %u", what, dp.retval, want_dp);
	if (reason >= 0) {
		CHECK(drops((enum fl_drop_reason)reason) == before + 1, "%s: counter %s not +1",
		      what, fl_drop_names[reason]);
		CHECK(dp.reason == reason, "%s: dp reason %u, want %d", what, dp.reason, reason);
	}
}

static void test_host_and_malformed(void)
{
	static struct frame f;
	struct flow fl;
	union fl_addr other;

	NEED_ENV();

	/* ARP */
	put_l2(&f, 0, 0x0806);
	fill(&f, 28, 1);
	same_verdict(&f, XDP_PASS, -1, "ARP");
	/* the host's own address and a VIP's address on another port */
	flow_to(&fl, V4_IPIP, 1, 1234, TH_SYN);
	memset(&other, 0, sizeof(other));
	other.v4 = htonl(0xc0000263);
	fl.dst = other;
	build(&f, &fl, 0, 10, 0, 0, 1);
	same_verdict(&f, XDP_PASS, -1, "non-VIP IPv4");
	flow_to(&fl, V6_GUE, 1, 1234, TH_SYN);
	fl.dport = 22;
	build(&f, &fl, 1, 10, 0, 0, 1);
	same_verdict(&f, XDP_PASS, -1, "VIP address, SSH port");
	/* ICMP echo to a VIP: the host's */
	put_l2(&f, 0, 0x0800);
	{
		union fl_addr va;
		__u32 l3 = f.len;

		vip_addr(V4_IPIP, &va);
		put_ip(&f, 4, 1, &fl.src, &va, 0, 0);
		put8(&f, 8);
		fill(&f, 15, 0);
		ip_done(&f, l3, 4);
	}
	same_verdict(&f, XDP_PASS, -1, "ICMP echo");

	/* malformed */
	put_l2(&f, 0, 0x8100);
	same_verdict(&f, XDP_DROP, FL_DROP_ETH_TRUNCATED, "tag cut short");
	put_l2(&f, 3, 0x0800);
	fill(&f, 40, 0);
	same_verdict(&f, XDP_DROP, FL_DROP_VLAN_TOO_DEEP, "three tags");
	put_l2(&f, 0, 0x0800);
	fill(&f, 12, 0x45);
	same_verdict(&f, XDP_DROP, FL_DROP_IP_TRUNCATED, "IPv4 cut short");
	flow_to(&fl, V4_IPIP, 2, 1234, TH_SYN);
	build(&f, &fl, 0, 10, 0, 0, 1);
	f.b[14] = 0x44;
	same_verdict(&f, XDP_DROP, FL_DROP_IP_BAD_HEADER, "IHL 4");
	build(&f, &fl, 1, 10, 0, 0, 1);
	f.b[18 + 20 + 12] = 0x30;
	same_verdict(&f, XDP_DROP, FL_DROP_TCP_BAD_HEADER, "TCP data offset 3");
	build(&f, &fl, 0, 0, 0, 0, 1);
	f.len = 14 + 20 + 10;
	f.b[14 + 3] = 30;
	same_verdict(&f, XDP_DROP, FL_DROP_L4_TRUNCATED, "TCP cut short");
	/* IPv6 with five destination-options headers */
	put_l2(&f, 0, 0x86dd);
	{
		__u32 l3 = f.len;
		union fl_addr va;

		vip_addr(V6_IP6IP6, &va);
		put_ip(&f, 6, 60, &fl.src, &va, 0, 0);
		for (int i = 0; i < 5; i++) {
			put8(&f, i < 4 ? 60 : TCP);
			put8(&f, 0);
			fill(&f, 6, 0);
		}
		put16(&f, 1234);
		put16(&f, 80);
		fill(&f, 8, 0);
		put8(&f, 5 << 4);
		fill(&f, 7, 0);
		ip_done(&f, l3, 6);
	}
	same_verdict(&f, XDP_DROP, FL_DROP_IPV6_EXT_HEADER, "five extension headers");
	/* fragments: to a VIP dropped, to the host passed */
	flow_to(&fl, V4_UDP, 3, 5353, 0);
	build(&f, &fl, 0, 40, 0, 0, 0);
	f.b[14 + 6] = 0x20;	/* more fragments */
	same_verdict(&f, XDP_DROP, FL_DROP_IP_FRAGMENT, "fragment to a VIP");
	fl.dst = other;
	build(&f, &fl, 0, 40, 0, 0, 0);
	f.b[14 + 6] = 0x20;
	same_verdict(&f, XDP_PASS, -1, "fragment to the host");
	/* a VIP with no backend would need an empty ring: covered by dp tests */
}

/* The backend an IPIP-over-IPv4 output goes to: its outer destination's
 * id among the model's backends, or FL_BACKEND_NONE. */
static __u32 backend_of_output(const struct out *o)
{
	for (__u32 id = 0; id < NB; id++)
		if (E->m.be[id].epoch && memcmp(o->b + 14 + 16, &E->m.be[id].key.addr.v4, 4) == 0)
			return id;
	return FL_BACKEND_NONE;
}

/* Sends flow fl once through both and returns the XDP output's backend id
 * (by comparing with every backend's reference), checking dp agrees. */
static __u32 send_both(const struct flow *fl, const char *what)
{
	static struct frame f;
	static struct out got, dp;

	build(&f, fl, 0, 20, 0, 0, 1);
	if (run_xdp(&f, &got) != 0)
		return FL_BACKEND_NONE;
	run_dp(&f, &dp);
	CHECK(got.retval == XDP_TX && dp.retval == FL_VERDICT_TX, "%s: verdicts %u/%u", what,
	      got.retval, dp.retval);
	CHECK(same_bytes(&got, &dp), "%s: XDP and dp bytes differ", what);
	return backend_of_output(&got);
}

/* Where flow fl of VIP V4_IPIP falls in the model's rings (hash % M). */
static __u32 ring_slot(const struct flow *fl)
{
	struct fl_flow_key k;

	memset(&k, 0, sizeof(k));
	k.src = fl->src;
	k.dst = fl->dst;
	k.sport = htons(fl->sport);
	k.dport = htons(fl->dport);
	k.proto = TCP;
	k.family = 4;
	return fl_flow_hash(&k, E->m.seed) % M;
}

/* A flow of VIP V4_IPIP whose ring choice moves when backend `extra` joins. */
static int moving_flow(struct flow *fl, __u32 first_client, __u32 extra)
{
	struct model m2 = E->m;

	model_backend(&m2, extra, V4_IPIP, 4, 100 + extra);
	if (model_rings(&m2))
		return -1;
	for (__u32 c = first_client; c < first_client + 10000; c++) {
		__u32 h;

		flow_to(fl, V4_IPIP, c, (__u16)(20000 + c), TH_SYN);
		h = ring_slot(fl);
		if (E->m.ring[V4_IPIP][h] != m2.ring[V4_IPIP][h] && m2.ring[V4_IPIP][h] == extra)
			return 0;
	}
	return -1;
}

/* Starts fl, a flow that backend extra's joining moves in the ring (from
 * first_client on), on backend *a; then extra joins: the ring changes, the
 * flow stays. name begins the messages; *a is FL_BACKEND_NONE when a check
 * that ends the case failed. */
static void flow_across_join(struct flow *fl, __u32 first_client, __u32 extra, const char *name,
			     __u32 *a)
{
	char what[64];
	__u32 id;

	*a = FL_BACKEND_NONE;
	REQUIRE(moving_flow(fl, first_client, extra) == 0, "no flow moves");
	id = send_both(fl, name);
	REQUIRE(id < NB, "no backend");
	fl->tcp_flags = TH_ACK;
	model_backend(&E->m, extra, V4_IPIP, 4, 100 + extra);
	REQUIRE(publish(E) == 0, "publish");
	snprintf(what, sizeof(what), "%s, ring changed", name);
	CHECK(send_both(fl, what) == id, "%s left its backend on a ring change", name);
	*a = id;
}

static void test_conntrack(void)
{
	struct fl_worker_counters c0, c1;
	struct flow fl;
	__u32 a, b, extra = 24, extra2 = 25;

	NEED_ENV();

	flow_across_join(&fl, 50000, extra, "first flow", &a);
	if (a == FL_BACKEND_NONE)
		return;		/* the failed check is counted */

	/* draining keeps it */
	E->m.be[a].state = FL_BACKEND_DRAINING;
	REQUIRE(publish(E) == 0, "publish");
	CHECK(send_both(&fl, "draining") == a, "flow left its draining backend");

	/* down moves it, to what the ring says */
	fl_xdp_counters(&E->x, &c0);
	E->m.be[a].state = FL_BACKEND_DOWN;
	REQUIRE(publish(E) == 0, "publish");
	b = send_both(&fl, "down");
	fl_xdp_counters(&E->x, &c1);
	CHECK(b != a && b < NB, "flow stayed on a down backend (%u)", b);
	CHECK(c1.ct_reselected == c0.ct_reselected + 1, "ct_reselected not counted");
	E->m.be[a].state = FL_BACKEND_UP;
	REQUIRE(publish(E) == 0, "publish");
	CHECK(send_both(&fl, "back up") == b, "flow moved again when its old backend returned");

	/* the id of its backend goes to another backend (epoch + 1): the flow
	 * is chosen anew, by the ring, which now says `extra2` */
	{
		struct flow f2;
		__u32 id2;

		flow_across_join(&f2, 70000, extra2, "second flow", &id2);
		if (id2 == FL_BACKEND_NONE)
			return;
		/* same id and address, new epoch: reselect by the ring */
		E->m.be[id2].epoch++;
		REQUIRE(publish(E) == 0, "publish");
		CHECK(send_both(&f2, "epoch changed") == extra2,
		      "flow kept a backend whose epoch changed");
	}
}

/* Opens flow fl of VIP V4_IPIP from client:cport (SYN, then ACK, on backend
 * *a) and drains *a; *b is then the ring's choice for the flow, another
 * backend, or FL_BACKEND_NONE when a check failed. Messages end with where
 * (the CPU, or ""). */
static void open_then_drain(struct flow *fl, __u32 client, __u16 cport, const char *where,
			    __u32 *a, __u32 *b)
{
	char what[64];
	__u32 ring;

	*b = FL_BACKEND_NONE;
	flow_to(fl, V4_IPIP, client, cport, TH_SYN);
	snprintf(what, sizeof(what), "first SYN%s", where);
	*a = send_both(fl, what);
	REQUIRE(*a < NB, "no backend");
	fl->tcp_flags = TH_ACK;
	snprintf(what, sizeof(what), "ACK%s", where);
	CHECK(send_both(fl, what) == *a, "the flow left its backend");

	E->m.be[*a].state = FL_BACKEND_DRAINING;
	REQUIRE(publish(E) == 0, "publish");
	ring = E->m.ring[V4_IPIP][ring_slot(fl)];
	REQUIRE(ring != *a && ring < NB, "the ring still names the draining backend");
	*b = ring;
}

/* A bare SYN on a record closed by FIN/RST is a new connection on a reused
 * 5-tuple: the ring chooses it, not the record's draining backend; without
 * the FIN the SYN follows the record (dp: fl_ct_reopens). */
static void test_reopen(void)
{
	struct flow fl;
	__u32 a, b;

	NEED_ENV();

	open_then_drain(&fl, 0xa000, 41000, "", &a, &b);
	if (b == FL_BACKEND_NONE)
		return;		/* the failed check is counted */
	fl.tcp_flags = TH_SYN;
	CHECK(send_both(&fl, "bare SYN, no FIN") == a,
	      "a SYN on an open flow's record left its draining backend");
	fl.tcp_flags = TH_FIN | TH_ACK;
	CHECK(send_both(&fl, "FIN") == a, "the FIN left the draining backend");
	fl.tcp_flags = TH_SYN;
	CHECK(send_both(&fl, "bare SYN after FIN") == b,
	      "a new connection on the closed 5-tuple did not go to the ring's choice %u", b);
	fl.tcp_flags = TH_ACK;
	CHECK(send_both(&fl, "its ACK") == b, "the new connection left its backend");

	E->m.be[a].state = FL_BACKEND_UP;
	REQUIRE(publish(E) == 0, "publish");
}

/* Runs the calling thread on cpu alone; -1 when that is not possible. */
static int run_on_cpu(int cpu)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one) != 0)
		return -1;
	return sched_getcpu() == cpu ? 0 : -1;
}

/* Without RSS or RPS a flow's packets meet several CPUs, which share one
 * conntrack: a packet on another CPU than the one that made the record
 * follows it, so a table change that moves the flow's hash does not move
 * the flow. test_run runs the program on the caller's CPU. */
static void test_other_cpu(void)
{
	struct fl_worker_counters c0, c1;
	struct flow fl, syn;
	cpu_set_t saved;
	__u32 a, s, extra = 26;

	NEED_ENV();
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		printf("other_cpu: skipped, one CPU online\n");
		return;
	}
	REQUIRE(sched_getaffinity(0, sizeof(saved), &saved) == 0, "sched_getaffinity");
	REQUIRE(moving_flow(&fl, 90000, extra) == 0 && moving_flow(&syn, 100000, extra) == 0,
		"no flow moves");
	REQUIRE(run_on_cpu(0) == 0, "cannot run on CPU 0");
	a = send_both(&fl, "first packet, CPU 0");
	s = send_both(&syn, "second flow's SYN, CPU 0");
	REQUIRE(a < NB && s < NB && a != extra && s != extra, "no backend");

	model_backend(&E->m, extra, V4_IPIP, 4, 100 + extra);
	REQUIRE(publish(E) == 0, "publish");
	REQUIRE(run_on_cpu(1) == 0, "cannot run on CPU 1");
	fl.tcp_flags = TH_ACK;
	fl_xdp_counters(&E->x, &c0);
	CHECK(send_both(&fl, "ACK, CPU 1") == a,
	      "the flow moved to the ring's choice on a CPU without its record");
	fl_xdp_counters(&E->x, &c1);
	CHECK(c1.ct_hits == c0.ct_hits + 1 && c1.ct_misses == c0.ct_misses &&
	      c1.new_flows == c0.new_flows, "the other CPU's record was not a hit");
	CHECK(send_both(&fl, "ACK again, CPU 1") == a, "the record was lost");
	/* a retransmitted SYN follows the record too, as in fulcrum-dp */
	CHECK(send_both(&syn, "SYN again, CPU 1") == s, "a retransmitted SYN moved");
	REQUIRE(run_on_cpu(0) == 0, "cannot run on CPU 0");
	CHECK(send_both(&fl, "ACK, back on CPU 0") == a, "the flow moved back on CPU 0");
	REQUIRE(sched_setaffinity(0, sizeof(saved), &saved) == 0, "restore the CPU");
}

/* A FIN or RST, or the bare SYN that reopens the 5-tuple, on one CPU is
 * what the next packet on another CPU sees: a SYN reusing the 5-tuple on
 * the CPU that made the record goes to the ring's choice, not the draining
 * backend, and the new connection's ACK on the CPU of the FIN follows the
 * new record. Each packet here must do what fulcrum-dp's one record does
 * (per-CPU copies of the record once failed both). */
static void test_other_cpu_close(void)
{
	struct flow fl;
	cpu_set_t saved;
	__u32 a, b;

	NEED_ENV();
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		printf("other_cpu_close: skipped, one CPU online\n");
		return;
	}
	REQUIRE(sched_getaffinity(0, sizeof(saved), &saved) == 0, "sched_getaffinity");
	REQUIRE(run_on_cpu(0) == 0, "cannot run on CPU 0");
	open_then_drain(&fl, 0xa100, 41001, ", CPU 0", &a, &b);
	if (b == FL_BACKEND_NONE)
		return;		/* the failed check is counted */
	REQUIRE(run_on_cpu(1) == 0, "cannot run on CPU 1");
	fl.tcp_flags = TH_FIN | TH_ACK;
	CHECK(send_both(&fl, "FIN, CPU 1") == a, "the FIN left the draining backend");
	REQUIRE(run_on_cpu(0) == 0, "cannot run on CPU 0");
	fl.tcp_flags = TH_SYN;
	CHECK(send_both(&fl, "bare SYN after FIN, CPU 0") == b,
	      "a new connection on the 5-tuple closed on CPU 1 did not go to the ring's choice %u",
	      b);
	REQUIRE(run_on_cpu(1) == 0, "cannot run on CPU 1");
	fl.tcp_flags = TH_ACK;
	CHECK(send_both(&fl, "its ACK, CPU 1") == b,
	      "the new connection's ACK followed CPU 1's closed record");
	REQUIRE(run_on_cpu(0) == 0, "cannot run on CPU 0");
	CHECK(send_both(&fl, "its ACK, CPU 0") == b, "the new connection left its backend");

	E->m.be[a].state = FL_BACKEND_UP;
	REQUIRE(publish(E) == 0, "publish");
	REQUIRE(sched_setaffinity(0, sizeof(saved), &saved) == 0, "restore the CPU");
}

/* ICMP FN / PTB about a tracked flow go to that flow's backend. */
static void test_icmp(void)
{
	static struct frame f;
	static struct out got, dp;

	NEED_ENV();
	for (int fam = 4; fam <= 6; fam += 2) {
		unsigned v = fam == 4 ? V4_IPIP : V6_IP6IP6;
		struct flow fl;
		__u32 l3, want_id, id;
		static struct out want;


		flow_to(&fl, v, 0x9000 + (unsigned)fam, 33333, TH_SYN);
		build(&f, &fl, 0, 20, 0, 0, 1);
		REQUIRE(reference(&f, &want, &want_id) == 0, "reference");
		REQUIRE(run_xdp(&f, &got) == 0 && got.retval == XDP_TX, "first packet");
		run_dp(&f, &dp);

		/* a router's error about the backend's reply VIP -> client */
		put_l2(&f, 1, fam == 4 ? 0x0800 : 0x86dd);
		l3 = f.len;
		{
			union fl_addr router;

			memset(&router, 0, sizeof(router));
			if (fam == 4)
				router.v4 = htonl(0xcb007101);
			else
				memcpy(router.bytes, (const __u8[4]){ 0x20, 0x01, 0x0d, 0xb8 }, 4);
			put_ip(&f, (__u8)fam, fam == 4 ? 1 : 58, &router, &fl.dst, 0, 0);
		}
		if (fam == 4) {
			put8(&f, 3);
			put8(&f, 4);
			put16(&f, 0);
			put16(&f, 0);
			put16(&f, 1400);
		} else {
			put8(&f, 2);
			put8(&f, 0);
			put16(&f, 0);
			put32(&f, 1400);
		}
		put_ip(&f, (__u8)fam, TCP, &fl.dst, &fl.src, 0, 0);
		put16(&f, fl.dport);
		put16(&f, fl.sport);
		fill(&f, 16, 0);
		f.b[l3 + (fam == 4 ? 28 + 2 : 48 + 4)] = 0;
		f.b[l3 + (fam == 4 ? 28 + 3 : 48 + 5)] = fam == 4 ? 40 : 20;
		ip_done(&f, l3, (__u8)fam);

		REQUIRE(run_xdp(&f, &got) == 0, "test_run");
		run_dp(&f, &dp);
		CHECK(got.retval == XDP_TX, "ICMP%s: verdict %u", fam == 4 ? "" : "v6", got.retval);
		CHECK(dp.retval == FL_VERDICT_TX && same_bytes(&got, &dp),
		      "ICMP%s: XDP and dp differ", fam == 4 ? "" : "v6");
		id = FL_BACKEND_NONE;
		for (__u32 i = 0; i < NB; i++) {
			const __u8 *dst = got.b + 18 + (fam == 4 ? 16 : 24);

			if (E->m.be[i].epoch &&
			    memcmp(dst, E->m.be[i].key.addr.bytes, fam == 4 ? 4 : 16) == 0)
				id = i;
		}
		CHECK(id == want_id, "ICMP%s went to %u, the flow is on %u",
		      fam == 4 ? "" : "v6", id, want_id);
	}
}

/* The outer destination MAC of a tunnelled packet from prog_fd (one of
 * each tunnel: IPIP, IP6IP6, GUE over IPv6) equals want, and fulcrum-dp's
 * bytes equal the program's; or, with want NULL, all are no_next_hop drops.
 * Prints the first mismatch. */
static int hop_is(int prog_fd, const struct fl_xdp *x, const __u8 *want, const char *what)
{
	static const unsigned vips[] = { V4_IPIP, V6_IP6IP6, V6_GUE };
	static struct frame f;
	static struct out got, dp;
	int bad = 0;

	for (unsigned i = 0; i < sizeof(vips) / sizeof(vips[0]); i++) {
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_out = got.b, .data_size_out = sizeof(got.b),
			    .repeat = 1);
		struct fl_worker_counters c0, c1;
		struct flow fl;

		flow_to(&fl, vips[i], 0xb000 + i, 42000, TH_SYN);
		build(&f, &fl, (int)i % 2, 40, 0, 0, 1);
		o.data_in = f.b;
		o.data_size_in = f.len;
		if (fl_xdp_counters(x, &c0) != 0 || bpf_prog_test_run_opts(prog_fd, &o) != 0 ||
		    fl_xdp_counters(x, &c1) != 0)
			return -1;
		got.len = o.data_size_out;
		if (!want) {
			if (o.retval != XDP_DROP || c1.drops[FL_DROP_NO_NEXT_HOP] !=
			    c0.drops[FL_DROP_NO_NEXT_HOP] + 1) {
				fprintf(stderr, "%s: VIP %u: verdict %u, no_next_hop %llu -> %llu\n",
					what, vips[i], o.retval,
					(unsigned long long)c0.drops[FL_DROP_NO_NEXT_HOP],
					(unsigned long long)c1.drops[FL_DROP_NO_NEXT_HOP]);
				bad = 1;
			}
			continue;
		}
		run_dp(&f, &dp);
		if (o.retval != XDP_TX || memcmp(got.b, want, 6) != 0 ||
		    dp.retval != FL_VERDICT_TX || !same_bytes(&got, &dp)) {
			fprintf(stderr, "%s: VIP %u: verdict %u, to %02x:..:%02x, dp %s\n", what,
				vips[i], o.retval, got.b[0], got.b[5],
				same_bytes(&got, &dp) ? "same" : "differs");
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

/* The next hop fulcrum-cp resolved (next_hop.address) comes with the tables,
 * in the slot header: tunnels go to it, to a new one after a republish, and
 * to the configured next_hop.mac when it is zero, as in fulcrum-dp. A
 * program without next_hop.mac drops (no_next_hop) until a MAC is
 * published. */
static void test_next_hop(void)
{
	static const __u8 hop1[6] = { 2, 0, 0, 0, 0x4e, 1 }, hop2[6] = { 2, 0, 0, 0, 0x4e, 2 };
	struct fl_xdp_knobs k;
	struct fl_xdp bare;
	char err[512];

	NEED_ENV();
	memcpy(E->next_hop_mac, hop1, 6);
	REQUIRE(publish(E) == 0, "publish");
	CHECK(hop_is(E->prog_fd, &E->x, hop1, "published MAC") == 0, "not to the published MAC");
	memcpy(E->next_hop_mac, hop2, 6);
	REQUIRE(publish(E) == 0, "publish");
	CHECK(hop_is(E->prog_fd, &E->x, hop2, "republished MAC") == 0,
	      "not to the republished MAC");

	/* a program with no next_hop.mac, on the same tables */
	knobs_init(&k);
	REQUIRE(fl_xdp_open_load(&bare, &k, err, sizeof(err)) == 0, "load: %s", err);
	CHECK(fl_xdp_publish(&bare, fl_writer_active(&E->shm), err, sizeof(err)) == 0,
	      "publish: %s", err);
	CHECK(hop_is(fl_xdp_prog_fd(&bare), &bare, hop2, "no knob, published MAC") == 0,
	      "no knob: not to the published MAC");

	memset(E->next_hop_mac, 0, 6);
	REQUIRE(publish(E) == 0, "publish");
	CHECK(hop_is(E->prog_fd, &E->x, KNOB_NEXT_HOP, "zero: the knob") == 0,
	      "a zero published MAC did not fall back to next_hop.mac");
	CHECK(fl_xdp_publish(&bare, fl_writer_active(&E->shm), err, sizeof(err)) == 0,
	      "publish: %s", err);
	CHECK(hop_is(fl_xdp_prog_fd(&bare), &bare, NULL, "no MAC at all") == 0,
	      "neither MAC: not dropped as no_next_hop");
	fl_xdp_close(&bare);
	printf("next_hop: published MAC, republished MAC, zero -> next_hop.mac, neither -> "
	       "no_next_hop; fulcrum-dp the same\n");
}

/* Pins an empty map of an older layout at dir/name; 0 or -errno. */
static int pin_old(const char *dir, const char *name, enum bpf_map_type type, __u32 key_size,
		   __u32 value_size, __u32 entries)
{
	char path[400];
	int fd = bpf_map_create(type, name, key_size, value_size, entries, NULL), rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (fd < 0 || bpf_obj_pin(fd, path) != 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The layout of the map pinned at dir/name: 0 and *mi, or -1. */
static int pinned_info(const char *dir, const char *name, struct bpf_map_info *mi)
{
	__u32 len = sizeof(*mi);
	char path[400];
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = bpf_obj_get(path);
	memset(mi, 0, sizeof(*mi));
	rc = fd >= 0 && bpf_obj_get_info_by_fd(fd, mi, &len) == 0 ? 0 : -1;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* An upgrade over the pins of an older balancer whose slot_meta had no
 * next-hop MAC (32 bytes) and whose conntrack was a per-CPU LRU hash:
 * those maps are made anew (x.ct_lost tells of the conntrack), the others
 * are kept. */
static void test_old_pins(void)
{
	struct fl_xdp_keep keep = { .adopt_prog_fd = -1 };
	struct fl_xdp_knobs k;
	struct fl_xdp x;
	struct bpf_map_info mi;
	char dir[128], path[400], err[512];
	int rc;

	NEED_ENV();
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/fulcrum-test-%d", (int)getpid());
	if (mkdir(dir, 0700) != 0) {
		printf("old_pins: skipped, no bpffs at /sys/fs/bpf (%s)\n", strerror(errno));
		return;
	}
	REQUIRE(pin_old(dir, "slot_meta", BPF_MAP_TYPE_ARRAY, 4, 32, 2) == 0,
		"pin a 32-byte slot_meta: %s", strerror(errno));
	REQUIRE(pin_old(dir, "conntrack", BPF_MAP_TYPE_LRU_PERCPU_HASH, sizeof(struct fl_flow_key),
			24, FL_XDP_DEFAULT_CT_CAPACITY) == 0,
		"pin a per-CPU LRU conntrack: %s", strerror(errno));
	knobs_init(&k);
	keep.pin_dir = dir;
	rc = fl_xdp_open_pinned(&x, &k, &keep, err, sizeof(err));
	CHECK(rc == 0, "load over an older slot_meta and conntrack: %s", err);
	if (rc == 0) {
		CHECK(x.maps_pinned == 0 && x.maps_created > 0 && x.ct_lost,
		      "pinned %u, created %u, conntrack %s", x.maps_pinned, x.maps_created,
		      x.ct_lost ? "made anew" : "kept");
		CHECK(fl_xdp_publish(&x, fl_writer_active(&E->shm), err, sizeof(err)) == 0,
		      "publish: %s", err);
		fl_xdp_close(&x);
	}
	CHECK(pinned_info(dir, "slot_meta", &mi) == 0 &&
	      mi.value_size == sizeof(struct fl_xdp_slot_meta),
	      "slot_meta pinned with %u-byte values", mi.value_size);
	CHECK(pinned_info(dir, "conntrack", &mi) == 0 && mi.type == BPF_MAP_TYPE_ARRAY &&
	      mi.value_size == sizeof(struct fl_ct_bucket),
	      "conntrack pinned as type %u with %u-byte values", mi.type, mi.value_size);
	/* a second start keeps every pin, slot_meta and conntrack included */
	rc = fl_xdp_open_pinned(&x, &k, &keep, err, sizeof(err));
	CHECK(rc == 0 && x.maps_created == 0 && !x.ct_lost,
	      "restart on the new pins: %s, %u created", rc ? err : "ok", x.maps_created);
	if (rc == 0)
		fl_xdp_close(&x);
	{
		DIR *d = opendir(dir);
		struct dirent *de;

		while (d && (de = readdir(d)) != NULL) {
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			if (de->d_name[0] != '.')
				unlink(path);
		}
		if (d)
			closedir(d);
		rmdir(dir);
	}
	printf("old_pins: an older 32-byte slot_meta and a per-CPU LRU conntrack are replaced, "
	       "the rest kept\n");
}

/* ---- too-big answers ---- */

/* fulcrum-dp's answer to f reporting mtu (dp/worker.c too_big_answer), or
 * -1 when it sends none. */
static int dp_answer(const struct frame *f, __u32 mtu, struct out *o)
{
	const struct fl_tables *t = fl_writer_active(&E->shm);
	enum fl_drop_reason reason;
	struct fl_pkt p;

	if (fl_parse(f->b, f->len, &p, &reason) != FL_PARSE_FLOW)
		return -1;
	p.hash = fl_flow_hash(&p.key, t->hdr->hash_seed);
	o->len = fl_icmp_too_big(f->b, &p, &p.key.dst, (__u16)mtu, o->b, sizeof(o->b));
	return o->len ? 0 : -1;
}

/* fulcrum-dp's answer to f, over E's MTU toward the backend the ring picks:
 * the MTU it reports is what the method's headers leave (dp/pipeline.c). */
static int dp_too_big(const struct frame *f, struct out *o)
{
	const struct fl_tables *t = fl_writer_active(&E->shm);
	enum fl_drop_reason reason;
	const struct fl_vip *v;
	struct fl_pkt p;
	__u32 vip_id, id;

	if (fl_parse(f->b, f->len, &p, &reason) != FL_PARSE_FLOW)
		return -1;
	v = fl_vip_find(t, &p.key.dst, p.key.family, p.key.dport, p.key.proto, &vip_id);
	if (!v)
		return -1;
	id = fl_tables_pick(t, v, fl_flow_hash(&p.key, t->hdr->hash_seed));
	if (id >= NB)
		return -1;
	return dp_answer(f, E->encap.mtu - fl_encap_overhead((enum fl_method)v->method,
							      t->backends[id].key.family), o);
}

/* A packet the encapsulation would take past the MTU is answered with
 * fulcrum-dp's ICMP bytes (every method and family, 0-2 VLAN tags, DF on
 * and off, as fulcrum-dp answers both), XDP_TX to the client, counted as
 * too_big and icmp_generated; none to a multicast source; at most the
 * rate a second per CPU. */
static void test_too_big(void)
{
	static struct frame f;
	static struct out got, want;
	struct fl_worker_counters c0, c1;
	struct fl_xdp_knobs k;
	struct fl_xdp slow;
	char err[512];
	unsigned n = 0, answered = 0;
	struct flow fl;

	NEED_ENV();
	for (unsigned v = 0; v < NVIPS; v++) {
		for (int vlans = 0; vlans <= 2; vlans++) {
			for (int df = 0; df <= 1; df++) {
				flow_to(&fl, v, 0xe000 + v * 8 + (unsigned)(vlans * 2 + df), 44000,
					TH_ACK);
				build(&f, &fl, vlans, 1480 + v, 0, (__u8)(0x10 + v), df);
				REQUIRE(dp_too_big(&f, &want) == 0, "dp: no answer for VIP %u", v);
				fl_xdp_counters(&E->x, &c0);
				REQUIRE(run_xdp(&f, &got) == 0, "test_run");
				fl_xdp_counters(&E->x, &c1);
				CHECK(got.retval == XDP_TX && same_bytes(&got, &want),
				      "VIP %u vlans %d df %d: verdict %u, not fulcrum-dp's answer", v,
				      vlans, df, got.retval);
				if (!same_bytes(&got, &want)) {
					dump("want", &want);
					dump("got", &got);
				}
				CHECK(c1.drops[FL_DROP_TOO_BIG] == c0.drops[FL_DROP_TOO_BIG] + 1 &&
				      c1.icmp_generated == c0.icmp_generated + 1,
				      "VIP %u: too_big or icmp_generated not counted", v);
				n++;
			}
		}
	}

	/* no answer to a source that is not one host */
	flow_to(&fl, V4_IPIP, 0, 44001, TH_ACK);
	fl.src.v4 = htonl(0xe0000001);
	build(&f, &fl, 0, 1480, 0, 0, 1);
	fl_xdp_counters(&E->x, &c0);
	REQUIRE(run_xdp(&f, &got) == 0, "test_run");
	fl_xdp_counters(&E->x, &c1);
	CHECK(got.retval == XDP_DROP && dp_answer(&f, 1480, &want) != 0 &&
	      c1.drops[FL_DROP_TOO_BIG] == c0.drops[FL_DROP_TOO_BIG] + 1 &&
	      c1.icmp_generated == c0.icmp_generated, "multicast source: verdict %u", got.retval);

	/* the rate: a program allowing one answer a second answers one of 3 */
	knobs_init(&k);
	memcpy(k.next_hop_mac, KNOB_NEXT_HOP, 6);
	k.too_big_rate = 1;
	REQUIRE(fl_xdp_open_load(&slow, &k, err, sizeof(err)) == 0, "load: %s", err);
	CHECK(fl_xdp_publish(&slow, fl_writer_active(&E->shm), err, sizeof(err)) == 0,
	      "publish: %s", err);
	flow_to(&fl, V4_IPIP, 0xe100, 44002, TH_ACK);
	build(&f, &fl, 0, 1480, 0, 0, 1);
	for (int i = 0; i < 3; i++) {
		REQUIRE(run_prog(fl_xdp_prog_fd(&slow), &f, &got) == 0, "test_run");
		answered += got.retval == XDP_TX;
	}
	fl_xdp_counters(&slow, &c1);
	CHECK(answered == 1 && c1.icmp_generated == 1 && c1.drops[FL_DROP_TOO_BIG] == 3,
	      "rate 1/s: %u of 3 answered, icmp_generated %llu, too_big %llu", answered,
	      (unsigned long long)c1.icmp_generated,
	      (unsigned long long)c1.drops[FL_DROP_TOO_BIG]);
	fl_xdp_close(&slow);
	printf("too_big: %u frames (every method and family, 0-2 VLAN tags, DF on/off) answered "
	       "with fulcrum-dp's ICMP bytes; none to a multicast source; 1 of 3 at 1/s\n", n);
}

/* ---- dataplane.conntrack.new_flow_rate ---- */

#define FLOOD_SYNS 1000u
#define FLOOD_RATE 5u		/* new flows recorded per second */
#define FLOOD_HELD FLOOD_RATE	/* flows opened before the flood: the bucket's first tokens */
/* Conntrack records: room for the held flows and a few more (two buckets
 * of FL_CT_WAYS), which an unchecked flood fills many times over, each new
 * flow evicting the oldest record of its bucket: the held flows go. */
#define FLOOD_CT (2 * FLOOD_HELD - 1)

/* A program of its own with the given new-flow rate and conntrack
 * capacity, on the environment's tables. */
static int load_rate(struct fl_xdp *x, __u32 rate, __u32 ct_capacity)
{
	struct fl_xdp_knobs k;
	char err[512];

	knobs_init(&k);
	memcpy(k.next_hop_mac, KNOB_NEXT_HOP, 6);
	k.new_flow_rate = rate;
	k.ct_capacity = ct_capacity;
	if (fl_xdp_open_load(x, &k, err, sizeof(err)) != 0 ||
	    fl_xdp_publish(x, fl_writer_active(&E->shm), err, sizeof(err)) != 0) {
		fprintf(stderr, "new flow rate %u: %s\n", rate, err);
		fl_xdp_close(x);
		return -1;
	}
	return 0;
}

/* Sends fl through x; whether it went out XDP_TX with the bytes of the
 * backend Maglev picks (the reference's). */
static int sent_by_hash(const struct fl_xdp *x, const struct flow *fl)
{
	static struct frame f;
	static struct out got, want;
	__u32 id;

	build(&f, fl, 0, 20, 0, 0, 1);
	return reference(&f, &want, &id) == 0 && run_prog(fl_xdp_prog_fd(x), &f, &got) == 0 &&
	       got.retval == XDP_TX && same_bytes(&got, &want);
}

/* SYNs of n new 5-tuples of VIP V4_IPIP (clients from first on) through x,
 * back to back; returns how many were sent by the hash (sent_by_hash). */
static unsigned syn_flood(const struct fl_xdp *x, __u32 first, unsigned n)
{
	unsigned by_hash = 0;
	struct flow fl;

	for (unsigned i = 0; i < n; i++) {
		flow_to(&fl, V4_IPIP, first + i, (__u16)(30000 + i), TH_SYN);
		by_hash += sent_by_hash(x, &fl);
	}
	return by_hash;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* fulcrum-dp's new-flow cap per CPU: a SYN flood of new 5-tuples is
 * forwarded whole, by the hash, but records at most the rate a second
 * (past it counted in ct_rate_capped, not in new_flows), so flows opened
 * before it keep their records in a conntrack the flood alone would
 * overflow. */
static void test_new_flow_rate(void)
{
	struct fl_worker_counters c0, c1, c2;
	struct fl_vip_counters vc;
	struct flow held[FLOOD_HELD];
	struct timespec t0;
	struct fl_xdp x;
	unsigned by_hash, held_ok = 0, bound;
	double elapsed;
	char err[256] = "";
	__u32 a;

	NEED_ENV();
	REQUIRE(load_rate(&x, FLOOD_RATE, FLOOD_CT) == 0, "load with a rate of %u", FLOOD_RATE);
	/* the bucket starts full, when the first flow takes a token */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0; i < FLOOD_HELD; i++) {
		flow_to(&held[i], V4_IPIP, 0x5000 + i, 45000, TH_SYN);
		held_ok += sent_by_hash(&x, &held[i]);
		held[i].tcp_flags = TH_ACK;
		held_ok += sent_by_hash(&x, &held[i]);
	}
	fl_xdp_counters(&x, &c0);
	CHECK(held_ok == 2 * FLOOD_HELD && c0.new_flows == FLOOD_HELD && c0.ct_rate_capped == 0,
	      "held flows: %u of %u packets sent by the hash, %llu recorded", held_ok,
	      2 * FLOOD_HELD, (unsigned long long)c0.new_flows);

	by_hash = syn_flood(&x, 0x4000, FLOOD_SYNS);
	elapsed = seconds_since(&t0);
	/* the program's clock is a tick coarse: its span may exceed ours by one */
	bound = FLOOD_RATE + FLOOD_RATE * (unsigned)ceil(elapsed + 0.01);
	fl_xdp_counters(&x, &c0);
	CHECK(by_hash == FLOOD_SYNS, "%u of %u SYNs sent by the hash", by_hash, FLOOD_SYNS);
	CHECK(c0.new_flows <= bound && c0.new_flows + c0.ct_rate_capped == FLOOD_HELD + FLOOD_SYNS,
	      "%llu flows recorded (at most %u in %.3f s), %llu capped",
	      (unsigned long long)c0.new_flows, bound, elapsed,
	      (unsigned long long)c0.ct_rate_capped);
	CHECK(fl_xdp_counters_sum(&x, FL_XDP_COUNTERS_VIP, V4_IPIP, &vc, sizeof(vc)) == 0 &&
	      vc.new_flows == c0.new_flows, "the VIP's new_flows is not the recorded flows'");

	held_ok = 0;
	for (unsigned i = 0; i < FLOOD_HELD; i++)
		held_ok += sent_by_hash(&x, &held[i]);
	fl_xdp_counters(&x, &c1);
	CHECK(held_ok == FLOOD_HELD && c1.ct_hits == c0.ct_hits + FLOOD_HELD &&
	      c1.ct_misses == c0.ct_misses && c1.new_flows == c0.new_flows,
	      "after the flood %llu of %u held flows found their records",
	      (unsigned long long)(c1.ct_hits - c0.ct_hits), FLOOD_HELD);

	/* moving a flow off a down backend is no new flow: it needs no
	 * token, and the flood has just taken them all */
	a = E->m.ring[V4_IPIP][ring_slot(&held[0])];
	E->m.be[a].state = FL_BACKEND_DOWN;
	CHECK(publish(E) == 0 &&
	      fl_xdp_publish(&x, fl_writer_active(&E->shm), err, sizeof(err)) == 0, "publish: %s",
	      err);
	CHECK(sent_by_hash(&x, &held[0]) && sent_by_hash(&x, &held[0]),
	      "a flow off a down backend did not go where the ring says");
	fl_xdp_counters(&x, &c2);
	CHECK(c2.ct_reselected == c1.ct_reselected + 1 && c2.ct_hits == c1.ct_hits + 2 &&
	      c2.ct_rate_capped == c1.ct_rate_capped && c2.new_flows == c1.new_flows,
	      "a rebind: %llu reselected, %llu capped",
	      (unsigned long long)(c2.ct_reselected - c1.ct_reselected),
	      (unsigned long long)(c2.ct_rate_capped - c1.ct_rate_capped));
	E->m.be[a].state = FL_BACKEND_UP;
	CHECK(publish(E) == 0, "publish");
	printf("new_flow_rate: %u SYNs at %u/s in %.3f s: %u sent by the hash, %llu flows "
	       "recorded, %llu capped; then %llu of the %u flows opened before found their "
	       "records in a conntrack of %u\n", FLOOD_SYNS, FLOOD_RATE, elapsed, by_hash,
	       (unsigned long long)c0.new_flows, (unsigned long long)c0.ct_rate_capped,
	       (unsigned long long)(c1.ct_hits - c0.ct_hits), FLOOD_HELD, FLOOD_CT);
	fl_xdp_close(&x);
}

/* A rate of 0 is no cap: every new flow is recorded. */
static void test_new_flow_rate_off(void)
{
	struct fl_worker_counters c;
	struct fl_xdp x;
	unsigned by_hash;

	NEED_ENV();
	REQUIRE(load_rate(&x, 0, 2 * FLOOD_SYNS) == 0, "load with no new-flow rate");
	by_hash = syn_flood(&x, 0x4000, FLOOD_SYNS);
	fl_xdp_counters(&x, &c);
	CHECK(by_hash == FLOOD_SYNS && c.new_flows == FLOOD_SYNS && c.ct_rate_capped == 0,
	      "no cap: %u of %u SYNs sent by the hash, %llu recorded, %llu capped", by_hash,
	      FLOOD_SYNS, (unsigned long long)c.new_flows, (unsigned long long)c.ct_rate_capped);
	fl_xdp_close(&x);
}

/* A whole conntrack scan, step by step: the live records, and the steps
 * it took in *steps. */
static __u64 ct_scan(const struct fl_xdp *x, unsigned *steps)
{
	struct fl_xdp_ct_scan s;

	fl_xdp_ct_scan_begin(&s);
	for (*steps = 1; !fl_xdp_ct_scan_step(x, &s); ++*steps)
		;
	return s.live;
}

/* Conntrack occupancy, which no CPU can count for all: the scan finds the
 * live records every CPU made, over several steps, and not the ones idle
 * past their state's timeout (SYN-only flows here, after 1 s) that are
 * still in the table. */
static void test_ct_occupancy(void)
{
	const int two = sysconf(_SC_NPROCESSORS_ONLN) >= 2;
	struct fl_worker_counters c0, c1;
	struct fl_xdp_knobs k;
	struct fl_xdp x;
	struct flow fl;
	cpu_set_t saved;
	char err[512] = "";
	__u64 live;
	unsigned sent = 0, steps;

	NEED_ENV();
	knobs_init(&k);
	memcpy(k.next_hop_mac, KNOB_NEXT_HOP, 6);
	k.ct_timeout_s[FL_CT_SYN] = 1;
	k.ct_capacity = 3 * FL_XDP_CT_SCAN_BUCKETS * FL_CT_WAYS;
	REQUIRE(fl_xdp_open_load(&x, &k, err, sizeof(err)) == 0 &&
		fl_xdp_publish(&x, fl_writer_active(&E->shm), err, sizeof(err)) == 0, "load: %s",
		err);
	REQUIRE(sched_getaffinity(0, sizeof(saved), &saved) == 0, "sched_getaffinity");
	REQUIRE(run_on_cpu(0) == 0, "cannot run on CPU 0");
	sent += syn_flood(&x, 0x6000, 1500);
	for (unsigned i = 0; i < 10; i++) {
		flow_to(&fl, V4_IPIP, 0x7000 + i, 46000, TH_SYN);
		sent += sent_by_hash(&x, &fl);
		fl.tcp_flags = TH_ACK;
		sent += sent_by_hash(&x, &fl);
	}
	if (two) {
		REQUIRE(run_on_cpu(1) == 0, "cannot run on CPU 1");
		sent += syn_flood(&x, 0x8000, 20);
	}
	REQUIRE(sched_setaffinity(0, sizeof(saved), &saved) == 0, "restore the CPU");
	CHECK(sent == 1520 + (two ? 20 : 0), "%u packets sent by the hash", sent);

	live = ct_scan(&x, &steps);
	CHECK(steps == 3, "%u steps for %u buckets", steps, x.ct_buckets);
	CHECK(live == 1510 + (two ? 20 : 0), "occupancy %llu, want %u",
	      (unsigned long long)live, 1510 + (two ? 20 : 0));
	usleep(1500 * 1000);
	live = ct_scan(&x, &steps);
	CHECK(live == 10, "after the SYN timeout: occupancy %llu (want the 10 established)",
	      (unsigned long long)live);
	/* an expired flow's next packet makes its record anew, in its way */
	fl_xdp_counters(&x, &c0);
	flow_to(&fl, V4_IPIP, 0x6000, 30000, TH_SYN);	/* syn_flood's first */
	CHECK(sent_by_hash(&x, &fl), "an expired flow's SYN not sent by the hash");
	fl_xdp_counters(&x, &c1);
	CHECK(c1.ct_expired == c0.ct_expired + 1 && c1.new_flows == c0.new_flows + 1 &&
	      c1.ct_evictions == c0.ct_evictions && ct_scan(&x, &steps) == 11,
	      "expired SYN again: %llu expired, %llu new, %llu evicted",
	      (unsigned long long)(c1.ct_expired - c0.ct_expired),
	      (unsigned long long)(c1.new_flows - c0.new_flows),
	      (unsigned long long)(c1.ct_evictions - c0.ct_evictions));
	fl_xdp_close(&x);
}

/* A full table: each new flow takes the least recently seen record of its
 * bucket, counted in ct_evictions, and every packet still goes where the
 * ring says (none is dropped for want of room); flows seen in a later tick
 * than the rest keep their records. */
static void test_ct_full(void)
{
	enum { CAPACITY = 8 * FL_CT_WAYS, OLD = 200, RECENT = FL_CT_WAYS };
	struct fl_worker_counters c0, c1;
	struct fl_xdp x;
	struct flow fl;
	unsigned by_hash = 0, steps;
	__u64 live;

	NEED_ENV();
	REQUIRE(load_rate(&x, 0, CAPACITY) == 0, "load");
	for (unsigned i = 0; i < OLD + RECENT; i++) {
		if (i == OLD)
			usleep(200 * 1000);	/* 3 ticks: the recent flows are younger */
		flow_to(&fl, V4_IPIP, 0x9000 + i, 47000, TH_SYN);
		by_hash += sent_by_hash(&x, &fl);
		fl.tcp_flags = TH_ACK;
		by_hash += sent_by_hash(&x, &fl);
	}
	fl_xdp_counters(&x, &c0);
	live = ct_scan(&x, &steps);
	CHECK(by_hash == 2 * (OLD + RECENT), "%u of %u packets sent by the hash", by_hash,
	      2 * (OLD + RECENT));
	CHECK(c0.new_flows == OLD + RECENT && c0.ct_evictions == OLD + RECENT - CAPACITY,
	      "%llu new flows, %llu evictions in a table of %u", (unsigned long long)c0.new_flows,
	      (unsigned long long)c0.ct_evictions, CAPACITY);
	CHECK(live == CAPACITY, "occupancy %llu of %u", (unsigned long long)live, CAPACITY);
	for (unsigned i = OLD; i < OLD + RECENT; i++) {
		flow_to(&fl, V4_IPIP, 0x9000 + i, 47000, TH_ACK);
		sent_by_hash(&x, &fl);
	}
	fl_xdp_counters(&x, &c1);
	CHECK(c1.ct_hits - c0.ct_hits == RECENT && c1.new_flows == c0.new_flows,
	      "%llu of the %u most recent flows found", (unsigned long long)(c1.ct_hits - c0.ct_hits),
	      RECENT);
	fl_xdp_close(&x);
}

/* Sends a and b through x; the change of ct_hits and new_flows in hits and
 * made; whether both went by the hash. */
static int hits_and_new(const struct fl_xdp *x, const struct flow *a, const struct flow *b,
			__u64 *hits, __u64 *made)
{
	struct fl_worker_counters c0, c1;
	int by_hash;

	fl_xdp_counters(x, &c0);
	by_hash = sent_by_hash(x, a) && sent_by_hash(x, b);
	fl_xdp_counters(x, &c1);
	*hits = c1.ct_hits - c0.ct_hits;
	*made = c1.new_flows - c0.new_flows;
	return by_hash;
}

/* The bucket protocol (xdp.h), on one bucket, so that every flow is in it:
 * while another CPU writes a way (the bucket's seq odd, the way's way_seq
 * odd), a flow in another way still finds its record, the flow in that way
 * and a new flow go by their hash without touching the table; once the
 * writer is done a new flow is recorded, moving both on by one write. */
static void test_ct_busy(void)
{
	struct fl_xdp x;
	struct flow a, b;
	struct fl_ct_meta *m;
	__u64 hits, made;

	NEED_ENV();
	REQUIRE(load_rate(&x, 0, FL_CT_WAYS) == 0, "load");
	REQUIRE(x.ct_buckets == 1, "%u buckets", x.ct_buckets);
	m = &x.ct[0].meta;
	flow_to(&a, V4_IPIP, 0xb000, 48000, TH_SYN);
	REQUIRE(sent_by_hash(&x, &a), "first SYN");
	CHECK(m->seq == 2 && m->tags[0] && m->way_seq[0] == 2,
	      "after one insert into way 0: seq %llu, way_seq %u, want 2 and 2",
	      (unsigned long long)m->seq, m->way_seq[0]);
	a.tcp_flags = TH_ACK;
	flow_to(&b, V4_IPIP, 0xb001, 48000, TH_SYN);

	m->seq = 3;		/* another CPU writes way 1 */
	m->way_seq[1] = 1;
	CHECK(hits_and_new(&x, &a, &b, &hits, &made), "not sent by the hash, way 1 written");
	CHECK(hits == 1 && made == 0 && m->seq == 3,
	      "way 1 written: %llu hits (want a's), %llu new flows (want 0), seq %llu",
	      (unsigned long long)hits, (unsigned long long)made, (unsigned long long)m->seq);

	m->way_seq[1] = 2;	/* ... and now a's way */
	m->way_seq[0] = 3;
	CHECK(hits_and_new(&x, &a, &b, &hits, &made), "not sent by the hash, way 0 written");
	CHECK(hits == 0 && made == 0, "way 0 written: %llu hits, %llu new flows, want none",
	      (unsigned long long)hits, (unsigned long long)made);

	m->way_seq[0] = 4;	/* the writer is done */
	m->seq = 4;
	CHECK(hits_and_new(&x, &a, &b, &hits, &made), "not sent by the hash");
	CHECK(hits == 1 && made == 1 && m->seq == 6 && m->way_seq[1] == 4,
	      "after the writer: %llu hits, %llu new flows (want 1, 1), seq %llu, way 1's %u",
	      (unsigned long long)hits, (unsigned long long)made, (unsigned long long)m->seq,
	      m->way_seq[1]);
	fl_xdp_close(&x);
}

/* The backend id flow fl's packet goes to through x, or FL_BACKEND_NONE. */
static __u32 backend_via(const struct fl_xdp *x, const struct flow *fl)
{
	static struct frame f;
	static struct out got;

	build(&f, fl, 0, 20, 0, 0, 1);
	if (run_prog(fl_xdp_prog_fd(x), &f, &got) != 0 || got.retval != XDP_TX)
		return FL_BACKEND_NONE;
	return backend_of_output(&got);
}

/* A reopen (a bare SYN after the FIN) whose record cannot be rebound right
 * then, another CPU writing its bucket, goes to the record's backend,
 * where the connection's next packets go while the record says so, not
 * to the ring's choice; once the bucket is free the next bare SYN rebinds
 * to the ring's choice and the connection stays there. */
static void test_ct_reopen_busy(void)
{
	const __u32 extra = 28;
	struct fl_worker_counters c0, c1;
	struct fl_ct_meta *m;
	struct fl_xdp x;
	struct flow fl;
	char err[512];
	__u32 a, b;

	NEED_ENV();
	REQUIRE(load_rate(&x, 0, FL_CT_WAYS) == 0, "load");	/* one bucket */
	REQUIRE(moving_flow(&fl, 120000, extra) == 0, "no flow moves");
	a = backend_via(&x, &fl);
	fl.tcp_flags = TH_ACK;
	REQUIRE(a < NB && backend_via(&x, &fl) == a, "the flow did not stay on backend %u", a);
	model_backend(&E->m, extra, V4_IPIP, 4, 100 + extra);
	REQUIRE(publish(E) == 0 &&
		fl_xdp_publish(&x, fl_writer_active(&E->shm), err, sizeof(err)) == 0, "publish");
	fl.tcp_flags = TH_FIN | TH_ACK;
	CHECK(backend_via(&x, &fl) == a, "the FIN left its backend");

	m = &x.ct[0].meta;
	m->seq |= 1;		/* another CPU writes the bucket */
	fl.tcp_flags = TH_SYN;
	fl_xdp_counters(&x, &c0);
	b = backend_via(&x, &fl);
	fl_xdp_counters(&x, &c1);
	CHECK(b == a && c1.ct_reselected == c0.ct_reselected,
	      "a reopen that could not rebind went to %u, not the record's %u (%llu rebound)", b,
	      a, (unsigned long long)(c1.ct_reselected - c0.ct_reselected));
	m->seq += 1;		/* the writer is done */
	CHECK(backend_via(&x, &fl) == extra, "the reopen did not go to the ring's choice %u",
	      extra);
	fl.tcp_flags = TH_ACK;
	CHECK(backend_via(&x, &fl) == extra, "the reopened connection left its backend");
	fl_xdp_close(&x);
}

/* ---- two CPUs on one table ---- */

#define RACE_FLOWS 24u		/* flows both CPUs send, into RACE_CT records */
#define RACE_CT (2 * FL_CT_WAYS)
#define RACE_KINDS 3u		/* each flow's SYN, ACK and FIN|ACK */
#define RACE_SECONDS 0.5

/* One thread of a race: frames f[0..n) sent in random order on cpu for
 * RACE_SECONDS, each checked against want[i] (XDP_TX and those bytes)
 * unless want is NULL. */
struct race_thread {
	const struct frame *f;
	const struct out *want;
	unsigned n;
	int prog_fd;
	int cpu;
	__u64 sent;
	__u64 wrong;
	int pinned;
};

static void *race_run(void *arg)
{
	struct race_thread *t = arg;
	struct rng r = { 0x5eed0000u + (__u64)t->cpu };
	struct timespec t0;
	static __thread struct out got;

	t->pinned = run_on_cpu(t->cpu) == 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (seconds_since(&t0) < RACE_SECONDS) {
		for (unsigned k = 0; k < 256; k++) {
			unsigned i = (unsigned)(rng_next(&r) % t->n);

			if (run_prog(t->prog_fd, &t->f[i], &got) != 0 ||
			    (t->want && (got.retval != XDP_TX || !same_bytes(&got, &t->want[i]))))
				t->wrong++;
			t->sent++;
		}
	}
	return NULL;
}

/* Runs th[0] and th[1] at once; whether both ran on their CPUs. */
static int race(struct race_thread th[2])
{
	pthread_t tid[2];
	int started = 0;

	for (int k = 0; k < 2; k++)
		started += pthread_create(&tid[k], NULL, race_run, &th[k]) == 0;
	for (int k = 0; k < started; k++)
		pthread_join(tid[k], NULL);
	return started == 2 && th[0].pinned && th[1].pinned;
}

/* The table's invariants after a race: every used way's record is in
 * the bucket and under the tag its key's hash names, says the backend
 * and VIP the tables pick for its key, and no key is in two ways. */
static unsigned race_bad_records(const struct fl_xdp *x, unsigned *used)
{
	const struct fl_tables *t = fl_writer_active(&E->shm);
	unsigned bad = 0;

	*used = 0;
	for (__u32 b = 0; b < x->ct_buckets; b++) {
		const struct fl_ct_bucket *bk = &x->ct[b];

		for (unsigned w = 0; w < FL_CT_WAYS; w++) {
			const struct fl_ct_rec *rec = &bk->way[w];
			__u32 hash = fl_flow_hash(&rec->key, t->hdr->hash_seed), vip_id = 0;
			const struct fl_vip *v;

			if (!bk->meta.tags[w])
				continue;
			++*used;
			v = fl_vip_find(t, &rec->key.dst, rec->key.family, rec->key.dport,
					rec->key.proto, &vip_id);
			if ((__u32)(((__u64)hash * x->ct_buckets) >> 32) != b ||
			    bk->meta.tags[w] != (__u8)fl_ct_tag_of(hash) || !v || vip_id != rec->vip_id ||
			    fl_tables_pick(t, v, hash) != rec->backend_id)
				bad++;
			for (unsigned o = w + 1; o < FL_CT_WAYS; o++)
				if (bk->meta.tags[o] && fl_ct_key_eq(&bk->way[o], &rec->key))
					bad++;
		}
	}
	return bad;
}

/* Both CPUs send the same flows' SYNs, ACKs and FINs as fast as they can
 * through a table of two buckets, which inserts keep evicting from, and
 * where a SYN after a FIN reopens (rebinds) a record: every packet goes to
 * the backend the ring names, and afterwards every record is whole (the
 * bucket protocol of xdp.h under real contention; with plain writes
 * records mix one flow's key with another's backend). */
static void test_ct_two_cpus(void)
{
	static const __u8 kinds[RACE_KINDS] = { TH_SYN, TH_ACK, TH_FIN | TH_ACK };
	static struct frame f[RACE_FLOWS * RACE_KINDS];
	static struct out want[RACE_FLOWS * RACE_KINDS];
	struct race_thread th[2];
	struct fl_worker_counters c;
	struct fl_xdp x;
	unsigned bad, used;
	__u32 id;

	NEED_ENV();
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		printf("ct_two_cpus: skipped, one CPU online\n");
		return;
	}
	for (unsigned i = 0; i < RACE_FLOWS * RACE_KINDS; i++) {
		struct flow fl;

		flow_to(&fl, V4_IPIP, 0xc000 + i / RACE_KINDS, 49000, kinds[i % RACE_KINDS]);
		build(&f[i], &fl, 0, 20, 0, 0, 1);
		REQUIRE(reference(&f[i], &want[i], &id) == 0, "reference");
	}
	REQUIRE(load_rate(&x, 0, RACE_CT) == 0, "load");
	for (int k = 0; k < 2; k++)
		th[k] = (struct race_thread){ .f = f, .want = want, .n = RACE_FLOWS * RACE_KINDS,
					      .prog_fd = fl_xdp_prog_fd(&x), .cpu = k };
	CHECK(race(th), "the threads did not run on CPUs 0 and 1");
	fl_xdp_counters(&x, &c);
	bad = race_bad_records(&x, &used);
	printf("ct_two_cpus: %llu + %llu packets in %.1f s, %llu wrong; %llu new flows, %llu "
	       "evictions, %llu reselected; %u records, %u bad\n",
	       (unsigned long long)th[0].sent, (unsigned long long)th[1].sent, RACE_SECONDS,
	       (unsigned long long)(th[0].wrong + th[1].wrong), (unsigned long long)c.new_flows,
	       (unsigned long long)c.ct_evictions, (unsigned long long)c.ct_reselected, used, bad);
	CHECK(th[0].wrong + th[1].wrong == 0, "%llu packets not sent where the ring says",
	      (unsigned long long)(th[0].wrong + th[1].wrong));
	CHECK(bad == 0 && used > 0, "%u of %u records mixed or doubled", bad, used);
	CHECK(c.ct_evictions > 0 && c.ct_reselected > 0,
	      "the race never evicted or rebound: the test tested nothing");
	fl_xdp_close(&x);
}

/* A flow whose record and ring choice differ (a backend joined since it
 * began) keeps its backend on one CPU while another CPU keeps rewriting
 * another way of the same bucket (a flow closed and reopened over and
 * over): writes to other ways never make its packets go by the hash. */
static void test_ct_neighbour_writes(void)
{
	static struct frame ff[1], gf[2];
	static struct out want[1];
	const __u32 extra = 27;
	struct race_thread th[2];
	struct fl_worker_counters c;
	struct out got;
	struct fl_xdp x;
	struct flow fl, g;
	char err[512];

	NEED_ENV();
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		printf("ct_neighbour_writes: skipped, one CPU online\n");
		return;
	}
	REQUIRE(load_rate(&x, 0, FL_CT_WAYS) == 0, "load");	/* one bucket */
	REQUIRE(moving_flow(&fl, 110000, extra) == 0, "no flow moves");
	build(&ff[0], &fl, 0, 20, 0, 0, 1);
	REQUIRE(run_prog(fl_xdp_prog_fd(&x), &ff[0], &want[0]) == 0 && want[0].retval == XDP_TX,
		"the flow's SYN");
	fl.tcp_flags = TH_ACK;
	build(&ff[0], &fl, 0, 20, 0, 0, 1);
	REQUIRE(run_prog(fl_xdp_prog_fd(&x), &ff[0], &want[0]) == 0 && want[0].retval == XDP_TX,
		"the flow's ACK");
	model_backend(&E->m, extra, V4_IPIP, 4, 100 + extra);
	REQUIRE(publish(E) == 0 &&
		fl_xdp_publish(&x, fl_writer_active(&E->shm), err, sizeof(err)) == 0, "publish");
	REQUIRE(run_prog(fl_xdp_prog_fd(&x), &ff[0], &got) == 0 && same_bytes(&got, &want[0]),
		"the flow left its record's backend when the ring changed");
	flow_to(&g, V4_IPIP, 0xd000, 50000, TH_SYN);
	build(&gf[0], &g, 0, 20, 0, 0, 1);
	REQUIRE(run_prog(fl_xdp_prog_fd(&x), &gf[0], &got) == 0, "the other flow's SYN");
	g.tcp_flags = TH_FIN | TH_ACK;
	build(&gf[1], &g, 0, 20, 0, 0, 1);
	th[0] = (struct race_thread){ .f = ff, .want = want, .n = 1,
				      .prog_fd = fl_xdp_prog_fd(&x), .cpu = 0 };
	th[1] = (struct race_thread){ .f = gf, .n = 2, .prog_fd = fl_xdp_prog_fd(&x), .cpu = 1 };
	CHECK(race(th), "the threads did not run on CPUs 0 and 1");
	fl_xdp_counters(&x, &c);
	printf("ct_neighbour_writes: %llu packets of the flow, %llu not to its backend, against "
	       "%llu SYNs and FINs of the other, %llu of its records rewritten\n",
	       (unsigned long long)th[0].sent, (unsigned long long)th[0].wrong,
	       (unsigned long long)th[1].sent, (unsigned long long)c.ct_reselected);
	CHECK(th[0].wrong == 0, "%llu of the flow's packets left its backend",
	      (unsigned long long)th[0].wrong);
	CHECK(c.ct_reselected > 1000, "the other flow's record was rewritten %llu times: the "
	      "test tested nothing", (unsigned long long)c.ct_reselected);
	fl_xdp_close(&x);
}

/* ---- xdp.fib_lookup, in a network namespace of this test's own ---- */

static const __u8 FIB_GW_A[6] = { 2, 0, 0, 0, 0xfe, 1 }, FIB_GW_B[6] = { 2, 0, 0, 0, 0xfe, 2 };
static const __u8 FIB_FA[6] = { 2, 0, 0, 0, 0xfa, 1 }, FIB_GA[6] = { 2, 0, 0, 0, 0x6a, 1 };

/* Interfaces fa (10.0.0.1, fd00:0:0:a::1; routes to every backend via
 * gateways A, 10.0.0.254 and fd00:0:0:a::fe), ga (10.2.0.1, gateway B at
 * 10.2.0.254) and ha (10.3.0.1, gateway at 10.3.0.254; not an XDP
 * interface), veths with their peers up; forwarding on. */
static int fib_netns(void)
{
	return fl_test_sh("set -e; for i in f g h; do ip link add ${i}a type veth peer name ${i}b; "
		  "ip link set ${i}b up; done; "
		  "ip link set fa address 02:00:00:00:fa:01 up; "
		  "ip link set ga address 02:00:00:00:6a:01 up; ip link set ha up; "
		  "ip addr add 10.0.0.1/24 dev fa; ip addr add 10.2.0.1/24 dev ga; "
		  "ip addr add 10.3.0.1/24 dev ha; ip -6 addr add fd00:0:0:a::1/64 dev fa nodad; "
		  "ip neigh replace 10.0.0.254 lladdr 02:00:00:00:fe:01 dev fa nud permanent; "
		  "ip neigh replace 10.2.0.254 lladdr 02:00:00:00:fe:02 dev ga nud permanent; "
		  "ip neigh replace 10.3.0.254 lladdr 02:00:00:00:fe:03 dev ha nud permanent; "
		  "ip -6 neigh replace fd00:0:0:a::fe lladdr 02:00:00:00:fe:01 dev fa nud permanent; "
		  "ip route add 10.1.0.0/24 via 10.0.0.254; "
		  "ip -6 route add fd00:1::/32 via fd00:0:0:a::fe; "
		  "echo 1 > /proc/sys/net/ipv4/conf/all/forwarding; "
		  "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding");
}

/* One frame through the fib_lookup program as received on ifindex. */
static int run_fib(int prog_fd, int ifindex, const struct frame *f, struct out *o)
{
	struct xdp_md ctx = { .ingress_ifindex = (__u32)ifindex, .data_end = f->len };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f->b, .data_size_in = f->len,
		    .data_out = o->b, .data_size_out = sizeof(o->b), .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx), .repeat = 1);

	if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
		fprintf(stderr, "test_run: %s\n", strerror(errno));
		return -1;
	}
	o->retval = opts.retval;
	o->len = opts.data_size_out;
	return 0;
}

/* fl_encap's bytes of f with the MACs the FIB gives: equal to got? */
static int fib_bytes(const struct frame *f, const struct out *got, const __u8 dmac[6],
		     const __u8 smac[6])
{
	static struct out want;
	__u32 id;

	if (reference(f, &want, &id) != 0)
		return 0;
	memcpy(want.b, dmac, 6);
	memcpy(want.b + 6, smac, 6);
	if (!same_bytes(got, &want)) {
		dump("want", &want);
		dump("got", got);
		return 0;
	}
	return 1;
}

/* Both ends of the case: the program and the namespace it ran in. */
struct fib_case {
	struct fl_xdp x;
	int prog_fd, fa, home;
};

static void fib_cases(struct fib_case *c)
{
	static struct frame f;
	static struct out got;
	struct fl_xdp_unresolved hop[4];
	struct fl_worker_counters c0, c1;
	const struct fl_backend *be;
	__u32 drops[4], id;
	char addr[INET6_ADDRSTRLEN];
	struct flow fl;
	int n;

	/* XDP_TX toward gateway A: IPv4 (IPIP), IPv6 (IP6IP6, GUE), a VLAN tag */
	for (unsigned v = 0; v < NVIPS; v++) {
		if (vip_def[v].method == FL_METHOD_L2DSR)
			continue;
		flow_to(&fl, v, 0xf000 + v, 43000, TH_SYN);
		build(&f, &fl, (int)(v & 1), 60, 0, 0, 1);
		REQUIRE(run_fib(c->prog_fd, c->fa, &f, &got) == 0, "test_run");
		CHECK(got.retval == XDP_TX, "VIP %u: verdict %u, want XDP_TX", v, got.retval);
		CHECK(fib_bytes(&f, &got, FIB_GW_A, FIB_FA),
		      "VIP %u: not fl_encap's bytes with the FIB's MACs", v);
	}

	/* the route of the first flow's backend leaves by ga: redirected */
	flow_to(&fl, V4_IPIP, 0xf100, 43001, TH_SYN);
	build(&f, &fl, 0, 60, 0, 0, 1);
	REQUIRE(reference(&f, &got, &id) == 0, "reference");
	be = &E->m.be[id];
	inet_ntop(AF_INET, &be->key.addr.v4, addr, sizeof(addr));
	REQUIRE(fl_test_sh("ip route add %s/32 via 10.2.0.254", addr) == 0, "route via ga");
	REQUIRE(run_fib(c->prog_fd, c->fa, &f, &got) == 0, "test_run");
	CHECK(got.retval == XDP_REDIRECT, "route via ga: verdict %u, want XDP_REDIRECT",
	      got.retval);
	CHECK(fib_bytes(&f, &got, FIB_GW_B, FIB_GA), "route via ga: wrong bytes");

	/* by ha, which is not an XDP interface: dropped */
	fl_xdp_counters(&c->x, &c0);
	REQUIRE(fl_test_sh("ip route replace %s/32 via 10.3.0.254", addr) == 0, "route via ha");
	REQUIRE(run_fib(c->prog_fd, c->fa, &f, &got) == 0, "test_run");
	fl_xdp_counters(&c->x, &c1);
	CHECK(got.retval == XDP_DROP && c1.drops[FL_DROP_NO_NEXT_HOP] ==
	      c0.drops[FL_DROP_NO_NEXT_HOP] + 1, "route via a foreign interface: verdict %u",
	      got.retval);

	/* a gateway without a neighbour entry: dropped, and noted for fulcrum-cp */
	REQUIRE(fl_xdp_unresolved_take(&c->x, hop, drops, 4) >= 0, "unresolved");
	REQUIRE(fl_test_sh("ip route replace %s/32 via 10.0.0.253", addr) == 0, "route via .253");
	c0 = c1;
	REQUIRE(run_fib(c->prog_fd, c->fa, &f, &got) == 0 &&
		run_fib(c->prog_fd, c->fa, &f, &got) == 0, "test_run");
	fl_xdp_counters(&c->x, &c1);
	CHECK(got.retval == XDP_DROP && c1.drops[FL_DROP_NO_NEXT_HOP] ==
	      c0.drops[FL_DROP_NO_NEXT_HOP] + 2, "no neighbour: verdict %u", got.retval);
	n = fl_xdp_unresolved_take(&c->x, hop, drops, 4);
	CHECK(n == 1 && hop[0].family == FL_AF_INET && hop[0].addr.v4 == htonl(0x0a0000fd) &&
	      hop[0].ifindex == (__u32)c->fa && drops[0] == 2,
	      "unresolved: %d entries, want 10.0.0.253 on fa with 2 drops", n);
	CHECK(fl_xdp_unresolved_take(&c->x, hop, drops, 4) == 0, "taken entries stayed");

	/* no route, and a route whose MTU the packet exceeds */
	c0 = c1;
	REQUIRE(fl_test_sh("ip route replace unreachable %s/32", addr) == 0, "unreachable");
	REQUIRE(run_fib(c->prog_fd, c->fa, &f, &got) == 0, "test_run");
	fl_xdp_counters(&c->x, &c1);
	CHECK(got.retval == XDP_DROP && c1.drops[FL_DROP_NO_NEXT_HOP] ==
	      c0.drops[FL_DROP_NO_NEXT_HOP] + 1, "no route: verdict %u", got.retval);
	CHECK(fl_xdp_unresolved_take(&c->x, hop, drops, 4) == 0, "no route noted as unresolved");
	/* over the route's MTU: answered with what is left of it under the
	 * tunnel's 20 bytes, as fulcrum-dp would answer */
	REQUIRE(fl_test_sh("ip route replace %s/32 via 10.0.0.254 mtu lock 100", addr) == 0, "mtu");
	c0 = c1;
	REQUIRE(run_fib(c->prog_fd, c->fa, &f, &got) == 0, "test_run");
	fl_xdp_counters(&c->x, &c1);
	CHECK(got.retval == XDP_TX && c1.drops[FL_DROP_TOO_BIG] == c0.drops[FL_DROP_TOO_BIG] + 1 &&
	      c1.icmp_generated == c0.icmp_generated + 1,
	      "over the route's MTU: verdict %u, not answered", got.retval);
	{
		static struct out want;

		CHECK(dp_answer(&f, 80, &want) == 0 && same_bytes(&got, &want),
		      "over the route's MTU: not fulcrum-dp's answer reporting 80");
	}
}

/* xdp.fib_lookup: the outer packet's next hop from the kernel's routes and
 * neighbours (bpf_fib_lookup), checked against fl_encap's bytes with the
 * FIB's MACs; another egress interface is a devmap redirect; a foreign
 * egress, no route or no neighbour is a no_next_hop drop (the unresolved
 * gateway noted for fulcrum-cp); over the route's MTU is too_big. */
static void test_fib(void)
{
	struct fib_case c;
	struct fl_xdp_knobs k;
	char err[512];

	NEED_ENV();
	memset(&c, 0, sizeof(c));
	c.home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	REQUIRE(c.home >= 0, "open my network namespace: %s", strerror(errno));
	if (unshare(CLONE_NEWNET) != 0) {
		CHECK(0, "fib: no network namespace of its own: %s (needs root)", strerror(errno));
		close(c.home);
		return;
	}
	knobs_init(&k);
	k.fib_lookup = true;
	if (fib_netns() != 0 || fl_xdp_open_load(&c.x, &k, err, sizeof(err)) != 0) {
		CHECK(0, "fib setup: %s", err);
	} else {
		c.prog_fd = fl_xdp_prog_fd(&c.x);
		c.fa = (int)if_nametoindex("fa");
		CHECK(fl_xdp_publish(&c.x, fl_writer_active(&E->shm), err, sizeof(err)) == 0 &&
		      fl_xdp_add_port(&c.x, c.fa, err, sizeof(err)) == 0 &&
		      fl_xdp_add_port(&c.x, (int)if_nametoindex("ga"), err, sizeof(err)) == 0,
		      "publish, ports: %s", err);
		fib_cases(&c);
		fl_xdp_close(&c.x);
	}
	REQUIRE(setns(c.home, CLONE_NEWNET) == 0, "back to my network namespace: %s",
		strerror(errno));
	close(c.home);
	printf("fib: XDP_TX with the FIB's MACs (7 tunnel VIPs), XDP_REDIRECT to another XDP "
	       "interface, no_next_hop for a foreign egress, no route and no neighbour (noted), "
	       "too_big over the route's MTU\n");
}

/* 100,000 random flows, IPv4 and IPv6: the same bytes from both planes. */
static void test_parity(void)
{
	static struct frame f;
	static struct out got, dp;
	struct rng r = { 0x7a11ce5eedull };
	unsigned same = 0, v4 = 0, v6 = 0;

	NEED_ENV();

	for (unsigned i = 0; i < PARITY_FLOWS; i++) {
		__u64 x = rng_next(&r), y = rng_next(&r);
		unsigned v = (unsigned)(x % NVIPS);
		struct flow fl;

		flow_to(&fl, v, (__u32)y, (__u16)(x >> 16), (x >> 40) & 1 ? TH_SYN : TH_ACK);
		if (fl.family == 6) {
			__u64 z = rng_next(&r);

			memcpy(fl.src.bytes + 4, &z, 8);
			v6++;
		} else {
			v4++;
		}
		build(&f, &fl, (int)((x >> 48) % 3), (unsigned)((y >> 40) % 200), 0,
		      (__u8)(y >> 8), (int)((y >> 4) & 1));
		if (run_xdp(&f, &got) != 0)
			break;
		run_dp(&f, &dp);
		if (got.retval == XDP_TX && dp.retval == FL_VERDICT_TX && same_bytes(&got, &dp))
			same++;
		else if (same + 10 > i)
			fprintf(stderr, "flow %u (VIP %u): XDP %u, dp %u\n", i, v, got.retval,
				dp.retval);
	}
	printf("parity: %u of %u random flows (%u IPv4, %u IPv6) gave the same backend "
	       "and bytes\n", same, PARITY_FLOWS, v4, v6);
	CHECK(same == PARITY_FLOWS, "%u flows differ", PARITY_FLOWS - same);
}

static const struct fl_test_case cases[] = {
	{ "golden", test_golden },
	{ "host_and_malformed", test_host_and_malformed },
	{ "icmp", test_icmp },
	{ "conntrack", test_conntrack },
	{ "reopen", test_reopen },
	{ "other_cpu", test_other_cpu },
	{ "other_cpu_close", test_other_cpu_close },
	{ "next_hop", test_next_hop },
	{ "old_pins", test_old_pins },
	{ "fib", test_fib },
	{ "too_big", test_too_big },
	{ "new_flow_rate", test_new_flow_rate },
	{ "new_flow_rate_off", test_new_flow_rate_off },
	{ "ct_occupancy", test_ct_occupancy },
	{ "ct_full", test_ct_full },
	{ "ct_busy", test_ct_busy },
	{ "ct_reopen_busy", test_ct_reopen_busy },
	{ "ct_two_cpus", test_ct_two_cpus },
	{ "ct_neighbour_writes", test_ct_neighbour_writes },
	{ "parity", test_parity },
};

FL_TEST_MAIN(cases)
