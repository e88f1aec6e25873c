/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker pipeline end to end on plain buffers: tables published through
 * a real shared-memory mapping, Maglev rings from fl_maglev_build, frames
 * from the shared builder. Every expected backend is computed here, from the
 * test's own copy of the ring and fl_flow_hash, not read back from the
 * pipeline.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "check.h"
#include "frame.h"
#include "rng.h"
#include "maglev.h"
#include "pipeline.h"

#define M 1021u			/* ring size per VIP: a prime, small for speed */
#define NVIPS 6u
#define NB 32u			/* backend ids the model uses */
#define HEADROOM 128u
#define TCP 6
#define UDP 17
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_ACK 0x10

static const struct fl_shm_params params = { .max_vips = 16, .max_backends = 64,
					      .ring_entries = 8 * M, .max_workers = 2 };

/* VIP v: 192.0.2.(10 + v), port and method below; v 4 keeps an empty ring,
 * v 5 is UDP. */
enum { V_IPIP, V_GUE, V_L2DSR, V_IPIP2, V_EMPTY, V_UDP };
static const struct { __u16 port; __u8 proto, method; } vip_def[NVIPS] = {
	[V_IPIP] = { 80, TCP, FL_METHOD_IPIP },
	[V_GUE] = { 443, TCP, FL_METHOD_GUE },
	[V_L2DSR] = { 80, TCP, FL_METHOD_L2DSR },
	[V_IPIP2] = { 8080, TCP, FL_METHOD_IPIP },
	[V_EMPTY] = { 80, TCP, FL_METHOD_IPIP },
	[V_UDP] = { 53, UDP, FL_METHOD_IPIP },
};

#define VIP_ADDR(v) (0xc000020au + (v))	/* 192.0.2.10 + v, host order */
#define OTHER_ADDR 0xc0000263u		/* 192.0.2.99: the host's own */
#define CLIENT(i) (0xc6336400u + ((i) & 0xffu) + (((i) >> 8) << 16))	/* 198.51.x.y */
#define ROUTER 0xcb007101u		/* 203.0.113.1 */
#define GUE_PORT 6080

#include "tables_model.h"

/* ---- the tables, as fulcrum-cp would publish them ---------------------- */

/* VIPs 0..5; backends 0-3 for IPIP, 4-6 GUE, 7-8 L2DSR, 9-11 IPIP2, 12-13 UDP. */
static void model_init(struct model *m)
{
	static const __u32 first[NVIPS] = { 0, 4, 7, 9, 12, 12 }, count[NVIPS] = { 4, 3, 2, 3, 0, 2 };

	memset(m, 0, sizeof(*m));
	m->seed = 0x5eed1234abcdull;
	for (__u32 v = 0; v < NVIPS; v++) {
		struct fl_vip *x = &m->vips[v];

		x->addr.v4 = htonl(VIP_ADDR(v));
		x->port = htons(vip_def[v].port);
		x->proto = vip_def[v].proto;
		x->family = FL_AF_INET;
		x->method = vip_def[v].method;
		x->flags = FL_VIP_IN_USE;
		x->ring_offset = v * M;
		x->ring_size = M;
		for (__u32 i = 0; i < count[v]; i++)
			model_backend(m, first[v] + i, v, FL_AF_INET, first[v] + i + 1);
	}
}

/* Every mapping here is made with params. */
static int publish(struct fl_shm *shm, struct model *m)
{
	return model_publish(shm, &params, m, NULL);
}

/* The backend the ring of VIP v gives the flow client:cport -> v. */
static __u32 predict(const struct model *m, unsigned v, __u32 client, __u16 cport)
{
	struct fl_flow_key k;

	memset(&k, 0, sizeof(k));
	k.src.v4 = htonl(client);
	k.dst.v4 = htonl(VIP_ADDR(v));
	k.sport = htons(cport);
	k.dport = htons(vip_def[v].port);
	k.proto = vip_def[v].proto;
	k.family = FL_AF_INET;
	return m->ring[v][fl_flow_hash(&k, m->seed) % M];
}

/* ---- one worker on its own mapping ------------------------------------- */

struct env {
	char name[128];
	struct fl_shm shm;
	struct fl_worker w;
	void *ct_mem;
	size_t ct_len;
	struct fl_encap_ctx encap;
	struct model m;
	__u32 now;
};

static const struct fl_encap_ctx encap_ctx = {
	.src_mac = { 2, 0, 0, 0, 0, 1 },
	.next_hop_mac = { 2, 0, 0, 0, 0, 0x99 },
	.tunnel_src_v4 = { .v4 = 0x0100000a },	/* 10.0.0.1 */
	.gue_dport = 0xc017,			/* htons(6080) */
	.mtu = 1500,
};

static struct env *env_new(const char *tag, const struct fl_ct_params *ctp, __u32 capacity,
			   __u32 too_big_rate)
{
	char err[256];
	struct fl_ct_params defaults;
	struct env *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	snprintf(e->name, sizeof(e->name), "/dev/shm/fulcrum-test-%d-pipe-%s", (int)getpid(), tag);
	fl_shm_unlink(e->name);
	if (fl_shm_create(e->name, &params, &e->shm, err, sizeof(err)) != 0) {
		fprintf(stderr, "create: %s\n", err);
		free(e);
		return NULL;
	}
	fl_ct_params_default(&defaults);
	e->ct_len = fl_ct_mem_size(capacity);
	e->ct_mem = aligned_alloc(64, (e->ct_len + 63) & ~(size_t)63);
	e->encap = encap_ctx;
	model_init(&e->m);
	if (!e->ct_mem || publish(&e->shm, &e->m) != 0 ||
	    fl_worker_init(&e->w, &e->shm, 0, e->ct_mem, e->ct_len, capacity,
			   ctp ? ctp : &defaults, &e->encap, too_big_rate, err, sizeof(err)) != 0) {
		fprintf(stderr, "env %s: %s\n", tag, err);
		fl_shm_detach(&e->shm);
		fl_shm_unlink(e->name);
		free(e->ct_mem);
		free(e);
		return NULL;
	}
	e->now = fl_ct_now();
	return e;
}

static void env_free(struct env *e)
{
	fl_worker_fini(&e->w);
	fl_shm_detach(&e->shm);
	fl_shm_unlink(e->name);
	free(e->ct_mem);
	free(e);
}

/* ---- frames ------------------------------------------------------------ */

static void put_eth(struct frame *f, unsigned etype)
{
	static const __u8 macs[12] = { 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe };

	f->len = 0;
	putn(f, macs, sizeof(macs));
	put16(f, etype);
}

/* An IPv4 header, total length patched by ip4_done. */
static __u32 put_ip4(struct frame *f, unsigned proto, __u32 src, __u32 dst, unsigned frag)
{
	__u32 l3 = f->len;

	put8(f, 0x45);
	put8(f, 0);
	put16(f, 0);
	put16(f, 0x1234);
	put16(f, frag);
	put8(f, 64);
	put8(f, proto);
	put16(f, 0);
	put32(f, src);
	put32(f, dst);
	return l3;
}

static void ip4_done(struct frame *f, __u32 l3)
{
	__u32 tot = f->len - l3;

	f->b[l3 + 2] = (__u8)(tot >> 8);
	f->b[l3 + 3] = (__u8)tot;
}

static void put_tcp(struct frame *f, unsigned sport, unsigned dport, unsigned flags)
{
	put16(f, sport);
	put16(f, dport);
	put32(f, 1);
	put32(f, 0);
	put8(f, 5 << 4);
	put8(f, flags);
	put16(f, 0xffff);
	put32(f, 0);
}

/* TCP client:cport -> dst:dport with `payload` bytes of data, DF set. */
static void tcp4(struct frame *f, __u32 client, unsigned cport, __u32 dst, unsigned dport,
		 unsigned flags, unsigned payload)
{
	__u32 l3;

	put_eth(f, 0x0800);
	l3 = put_ip4(f, TCP, client, dst, 0x4000);
	put_tcp(f, cport, dport, flags);
	fill(f, payload, 'p');
	ip4_done(f, l3);
}

/* A flow to VIP v. */
static void to_vip(struct frame *f, unsigned v, __u32 client, unsigned cport, unsigned flags)
{
	tcp4(f, client, cport, VIP_ADDR(v), vip_def[v].port, flags, 10);
}

static void udp4(struct frame *f, __u32 client, unsigned cport, __u32 dst, unsigned dport)
{
	__u32 l3;

	put_eth(f, 0x0800);
	l3 = put_ip4(f, UDP, client, dst, 0);
	put16(f, cport);
	put16(f, dport);
	put16(f, 8 + 12);
	put16(f, 0);
	fill(f, 12, 'u');
	ip4_done(f, l3);
}

/* A first fragment (more fragments) of a UDP datagram to dst. */
static void frag4(struct frame *f, __u32 client, __u32 dst)
{
	__u32 l3;

	put_eth(f, 0x0800);
	l3 = put_ip4(f, UDP, client, dst, 0x2000);
	put16(f, 5000);
	put16(f, 53);
	put16(f, 400);
	put16(f, 0);
	fill(f, 40, 'f');
	ip4_done(f, l3);
}

/* A router's "fragmentation needed" to VIP v about the backend's reply
 * VIP:port -> client:cport. */
static void icmp_fn(struct frame *f, unsigned v, __u32 client, unsigned cport, unsigned mtu)
{
	__u32 l3, in;

	put_eth(f, 0x0800);
	l3 = put_ip4(f, 1, ROUTER, VIP_ADDR(v), 0);
	put8(f, 3);
	put8(f, 4);
	put16(f, 0);
	put32(f, mtu);
	in = put_ip4(f, vip_def[v].proto, VIP_ADDR(v), client, 0x4000);
	put_tcp(f, vip_def[v].port, cport, TH_ACK);
	f->b[in + 2] = 1500 >> 8;	/* the quoted packet was 1500 bytes */
	f->b[in + 3] = 1500 & 0xff;
	ip4_done(f, l3);
}

static void arp(struct frame *f)
{
	put_eth(f, 0x0806);
	put16(f, 1);
	put16(f, 0x0800);
	put8(f, 6);
	put8(f, 4);
	put16(f, 1);
	fill(f, 20, 0x11);
}

/* ---- running ----------------------------------------------------------- */

struct pbuf {
	__u8 mem[HEADROOM + FRAME_MAX];
};

static void load(struct fl_buf *b, struct pbuf *m, const struct frame *f)
{
	memset(b, 0, sizeof(*b));
	memcpy(m->mem + HEADROOM, f->b, f->len);
	b->data = m->mem + HEADROOM;
	b->len = f->len;
	b->headroom = HEADROOM;
	b->verdict = 0xff;
}

/* The backend id a TX frame is addressed to: by outer destination for the
 * tunnels, by destination MAC for L2 DSR; -1 when none matches. */
static int out_backend(const struct env *e, const struct fl_buf *b, unsigned v)
{
	for (int id = 0; id < (int)NB; id++) {
		const struct fl_backend *be = &e->m.be[id];

		if (!be->epoch || be->vip_id != v)
			continue;
		if (vip_def[v].method == FL_METHOD_L2DSR) {
			if (memcmp(b->data, be->mac, 6) == 0)
				return id;
		} else if (b->len >= 34 && memcmp(b->data + 14 + 16, &be->key.addr.v4, 4) == 0) {
			return id;
		}
	}
	return -1;
}

static __u8 run1(struct env *e, const struct frame *f, struct fl_buf *b)
{
	static struct pbuf mem;

	load(b, &mem, f);
	fl_pipeline_run(&e->w, b, 1, e->now);
	return b->verdict;
}

/* Sends client:cport -> v; returns the backend it went to, -1 if not TX. */
static int flow_to(struct env *e, unsigned v, __u32 client, unsigned cport, unsigned flags)
{
	struct frame f;
	struct fl_buf b;

	to_vip(&f, v, client, cport, flags);
	if (run1(e, &f, &b) != FL_VERDICT_TX)
		return -1;
	return out_backend(e, &b, v);
}

static __u64 drops_total(const struct fl_worker_counters *c)
{
	__u64 s = 0;

	for (unsigned r = 0; r < FL_DROP__MAX; r++)
		s += c->drops[r];
	return s;
}

/* ---- cases ------------------------------------------------------------- */

static void test_ipip_predicted(void)
{
	struct env *e = env_new("ipip", NULL, 4096, 10);
	struct frame f;
	struct fl_buf b;
	unsigned wrong = 0, seen[NB] = { 0 };

	REQUIRE(e, "environment");
	for (unsigned i = 0; i < 400; i++) {
		__u32 want = predict(&e->m, V_IPIP, CLIENT(i), (__u16)(30000 + i));
		__u8 *before;

		to_vip(&f, V_IPIP, CLIENT(i), 30000 + i, TH_SYN);
		if (run1(e, &f, &b) != FL_VERDICT_TX) {
			wrong++;
			continue;
		}
		before = b.data + (HEADROOM - b.headroom);
		wrong += out_backend(e, &b, V_IPIP) != (int)want;
		seen[want]++;
		if (i == 0) {
			CHECK(b.len == f.len + 20 && before - b.data == 20 && b.headroom == HEADROOM - 20,
			      "IPIP adds 20 bytes in front: len %u headroom %u", b.len, b.headroom);
			CHECK(b.data[14] == 0x45 && b.data[14 + 9] == 4, "outer IPv4, protocol 4");
			CHECK(memcmp(b.data + 14 + 12, &encap_ctx.tunnel_src_v4.v4, 4) == 0,
			      "outer source is the tunnel source");
			CHECK(memcmp(b.data, encap_ctx.next_hop_mac, 6) == 0, "to the next hop");
			CHECK(memcmp(b.data + 34, f.b + 14, f.len - 14) == 0, "inner packet unchanged");
		}
	}
	CHECK(wrong == 0, "%u of 400 flows not on the predicted backend", wrong);
	for (unsigned id = 0; id < 4; id++)
		CHECK(seen[id] > 50, "backend %u got %u of 400 flows", id, seen[id]);
	CHECK(e->w.ctr->new_flows == 400 && e->w.vip_ctr[V_IPIP].new_flows == 400,
	      "400 new flows recorded: %llu", (unsigned long long)e->w.ctr->new_flows);

	/* The same flows again: conntrack hits, same backends. */
	wrong = 0;
	for (unsigned i = 0; i < 400; i++)
		wrong += flow_to(e, V_IPIP, CLIENT(i), 30000 + i, TH_ACK) !=
			 (int)predict(&e->m, V_IPIP, CLIENT(i), (__u16)(30000 + i));
	CHECK(wrong == 0, "%u established flows moved", wrong);
	CHECK(e->w.ctr->ct_hits == 400, "400 hits: %llu", (unsigned long long)e->w.ctr->ct_hits);
	env_free(e);
}

static void test_gue_and_l2dsr(void)
{
	struct env *e = env_new("gue", NULL, 4096, 10);
	struct frame f;
	struct fl_buf b;
	unsigned wrong = 0;

	REQUIRE(e, "environment");
	for (unsigned i = 0; i < 100; i++) {
		to_vip(&f, V_GUE, CLIENT(i), 20000 + i, TH_SYN);
		if (run1(e, &f, &b) != FL_VERDICT_TX ||
		    out_backend(e, &b, V_GUE) != (int)predict(&e->m, V_GUE, CLIENT(i), (__u16)(20000 + i)) ||
		    b.len != f.len + 28 || b.data[14 + 9] != UDP ||
		    b.data[34 + 2] != GUE_PORT >> 8 || b.data[34 + 3] != (GUE_PORT & 0xff) ||
		    (b.data[34] & 0x80) == 0 || memcmp(b.data + 42, f.b + 14, f.len - 14) != 0)
			wrong++;
	}
	CHECK(wrong == 0, "%u of 100 GUE flows wrong", wrong);

	wrong = 0;
	for (unsigned i = 0; i < 100; i++) {
		to_vip(&f, V_L2DSR, CLIENT(i), 20000 + i, TH_SYN);
		if (run1(e, &f, &b) != FL_VERDICT_TX ||
		    out_backend(e, &b, V_L2DSR) !=
			    (int)predict(&e->m, V_L2DSR, CLIENT(i), (__u16)(20000 + i)) ||
		    b.len != f.len || memcmp(b.data + 6, encap_ctx.src_mac, 6) != 0 ||
		    memcmp(b.data + 12, f.b + 12, f.len - 12) != 0)
			wrong++;
	}
	CHECK(wrong == 0, "%u of 100 L2 DSR flows wrong", wrong);

	/* UDP VIP: recorded as a UDP flow. */
	udp4(&f, CLIENT(1), 5353, VIP_ADDR(V_UDP), 53);
	CHECK(run1(e, &f, &b) == FL_VERDICT_TX &&
	      out_backend(e, &b, V_UDP) == (int)predict(&e->m, V_UDP, CLIENT(1), 5353), "UDP VIP");
	env_free(e);
}

static void test_host_traffic(void)
{
	struct env *e = env_new("host", NULL, 1024, 10);
	struct frame f;
	struct fl_buf b;

	REQUIRE(e, "environment");
	tcp4(&f, CLIENT(1), 40000, OTHER_ADDR, 22, TH_SYN, 0);
	CHECK(run1(e, &f, &b) == FL_VERDICT_KERNEL, "SSH to the host: kernel");
	tcp4(&f, CLIENT(1), 40000, VIP_ADDR(V_IPIP), 179, TH_SYN, 0);
	CHECK(run1(e, &f, &b) == FL_VERDICT_KERNEL, "a VIP address on another port: kernel");
	udp4(&f, CLIENT(1), 40000, VIP_ADDR(V_IPIP), 80);
	CHECK(run1(e, &f, &b) == FL_VERDICT_KERNEL, "another protocol on a VIP's port: kernel");
	arp(&f);
	CHECK(run1(e, &f, &b) == FL_VERDICT_KERNEL, "ARP: kernel");
	icmp_fn(&f, V_IPIP, CLIENT(1), 40000, 1400);
	f.b[14 + 16 + 3] = 0x63;	/* to 192.0.2.99: not a VIP */
	f.b[14 + 28 + 12 + 3] = 0x63;	/* quoting 192.0.2.99 */
	CHECK(run1(e, &f, &b) == FL_VERDICT_KERNEL, "ICMP error about no VIP: kernel");
	CHECK(e->w.ctr->exception_packets == 5 && e->w.ctr->rx_packets == 5,
	      "5 to the kernel: %llu", (unsigned long long)e->w.ctr->exception_packets);
	CHECK(e->w.ctr->ct_misses == 0 && e->w.ctr->new_flows == 0, "no conntrack for the host");
	env_free(e);
}

static void test_malformed(void)
{
	struct env *e = env_new("bad", NULL, 1024, 10);
	struct frame f;
	struct fl_buf b;

	REQUIRE(e, "environment");
	to_vip(&f, V_IPIP, CLIENT(1), 1000, TH_SYN);
	f.len = 10;
	CHECK(run1(e, &f, &b) == FL_VERDICT_DROP && b.drop_reason == FL_DROP_ETH_TRUNCATED,
	      "short frame: %u", b.drop_reason);
	to_vip(&f, V_IPIP, CLIENT(1), 1000, TH_SYN);
	f.b[14] = 0x44;	/* IHL 4 */
	CHECK(run1(e, &f, &b) == FL_VERDICT_DROP && b.drop_reason == FL_DROP_IP_BAD_HEADER,
	      "IHL 4: %u", b.drop_reason);
	to_vip(&f, V_IPIP, CLIENT(1), 1000, TH_SYN);
	f.len = 14 + 20 + 10;
	CHECK(run1(e, &f, &b) == FL_VERDICT_DROP && b.drop_reason == FL_DROP_IP_BAD_HEADER,
	      "total length past the frame: %u", b.drop_reason);
	CHECK(e->w.ctr->drops[FL_DROP_ETH_TRUNCATED] == 1 && e->w.ctr->drops[FL_DROP_IP_BAD_HEADER] == 2,
	      "counted by reason");
	CHECK(drops_total(e->w.ctr) == 3 && e->w.ctr->rx_packets == 3, "3 drops of 3");
	env_free(e);
}

/* A worker (4096 records) with n flows established to VIP_IPIP, flow i
 * from CLIENT(i):10000 + i; fills where[] with their backends. */
static struct env *env_with_flows(const char *tag, unsigned n, int *where)
{
	struct env *e = env_new(tag, NULL, 4096, 10);

	for (unsigned i = 0; e && i < n; i++) {
		where[i] = flow_to(e, V_IPIP, CLIENT(i), 10000 + i, TH_SYN);
		flow_to(e, V_IPIP, CLIENT(i), 10000 + i, TH_ACK);
	}
	return e;
}

/* Sends the ACK of each of the n flows env_with_flows made again; counts
 * those not where they must be: a flow of backend gone (where[i] == gone)
 * on the ring's choice now, any other on its backend where[i]. */
static unsigned misplaced(struct env *e, unsigned n, const int *where, int gone)
{
	unsigned wrong = 0;

	for (unsigned i = 0; i < n; i++) {
		int id = flow_to(e, V_IPIP, CLIENT(i), 10000 + i, TH_ACK);
		int want = where[i] == gone ? (int)predict(&e->m, V_IPIP, CLIENT(i), (__u16)(10000 + i))
					    : where[i];

		wrong += id != want;
	}
	return wrong;
}

static void test_sticky_on_change(void)
{
	int where[300];
	struct env *e = env_with_flows("sticky", 300, where);
	unsigned moved = 0, stayed_wrong = 0, changed_by_ring = 0;

	REQUIRE(e, "environment");
	/* Backend 20 joins VIP_IPIP, and backend 3 leaves (its id freed). */
	model_backend(&e->m, 20, V_IPIP, FL_AF_INET, 0x99);
	memset(&e->m.be[3], 0, sizeof(e->m.be[3]));
	REQUIRE(publish(&e->shm, &e->m) == 0, "publish");
	for (unsigned i = 0; i < 300; i++) {
		int now = flow_to(e, V_IPIP, CLIENT(i), 10000 + i, TH_ACK);
		int ring = (int)predict(&e->m, V_IPIP, CLIENT(i), (__u16)(10000 + i));

		changed_by_ring += ring != where[i];
		if (where[i] == 3) {
			moved += now == ring;
		} else {
			stayed_wrong += now != where[i];
		}
	}
	CHECK(stayed_wrong == 0, "%u flows left a backend still there", stayed_wrong);
	CHECK(changed_by_ring > 0, "the new ring moves some flows' hash choice (%u)", changed_by_ring);
	unsigned on3 = 0;
	for (unsigned i = 0; i < 300; i++)
		on3 += where[i] == 3;
	CHECK(moved == on3 && on3 > 0, "%u of %u flows of the removed backend moved", moved, on3);
	CHECK(e->w.ctr->ct_reselected == on3, "reselected %llu", (unsigned long long)e->w.ctr->ct_reselected);
	/* New flows follow the new ring, backend 20 included. */
	unsigned bad = 0, on20 = 0;
	for (unsigned i = 0; i < 200; i++) {
		int id = flow_to(e, V_IPIP, CLIENT(1000 + i), 5000, TH_SYN);

		bad += id != (int)predict(&e->m, V_IPIP, CLIENT(1000 + i), 5000);
		on20 += id == 20;
	}
	CHECK(bad == 0 && on20 > 0, "new flows by the new ring: %u wrong, %u on the new backend", bad, on20);
	env_free(e);
}

static void test_drain_and_down(void)
{
	int where[300];
	struct env *e = env_with_flows("drain", 300, where);
	unsigned wrong = 0, on1 = 0;

	REQUIRE(e, "environment");
	e->m.be[1].state = FL_BACKEND_DRAINING;
	REQUIRE(publish(&e->shm, &e->m) == 0, "publish");
	for (unsigned i = 0; i < 300; i++) {
		on1 += where[i] == 1;
		wrong += flow_to(e, V_IPIP, CLIENT(i), 10000 + i, TH_ACK) != where[i];
	}
	CHECK(on1 > 0 && wrong == 0, "draining: %u of %u flows moved", wrong, 300);
	CHECK(e->w.ctr->ct_reselected == 0, "nothing reselected while draining");
	wrong = 0;
	for (unsigned i = 0; i < 200; i++)
		wrong += flow_to(e, V_IPIP, CLIENT(2000 + i), 7000, TH_SYN) == 1;
	CHECK(wrong == 0, "%u new flows went to the draining backend", wrong);

	/* A flow on the draining backend closes; the client reuses its ports
	 * for a new connection: that one must not land on the draining backend
	 * through the old record. */
	unsigned reused = 0, stale = 0;
	for (unsigned i = 0; i < 300; i++) {
		if (where[i] != 1)
			continue;
		flow_to(e, V_IPIP, CLIENT(i), 10000 + i, TH_FIN | TH_ACK);
		stale += flow_to(e, V_IPIP, CLIENT(i), 10000 + i, TH_SYN) == 1;
		reused++;
	}
	CHECK(reused > 0 && stale == 0, "%u of %u reused 5-tuples reopened on the draining backend",
	      stale, reused);
	for (unsigned i = 0; i < 300; i++)	/* back to the test's flows */
		where[i] = where[i] == 1 ? -1 : where[i];
	on1 = 0;

	/* Down: its flows go where the ring says now. */
	e->m.be[1].state = FL_BACKEND_DOWN;
	REQUIRE(publish(&e->shm, &e->m) == 0, "publish");
	wrong = misplaced(e, 300, where, -1);
	CHECK(wrong == 0, "down: %u flows wrong", wrong);
	env_free(e);
}

static void test_epoch_change(void)
{
	int where[300];
	struct env *e = env_with_flows("epoch", 300, where);
	unsigned wrong = 0, on2 = 0;

	REQUIRE(e, "environment");
	/* Id 2 given to another backend: new epoch, new address, still up. */
	model_backend(&e->m, 2, V_IPIP, FL_AF_INET, 0xaa);
	e->m.be[2].epoch = 2;
	REQUIRE(publish(&e->shm, &e->m) == 0, "publish");
	for (unsigned i = 0; i < 300; i++)
		on2 += where[i] == 2;
	wrong = misplaced(e, 300, where, 2);
	CHECK(on2 > 0 && wrong == 0, "epoch change: %u flows wrong", wrong);
	CHECK(e->w.ctr->ct_reselected == on2, "%llu reselected, %u had the old epoch",
	      (unsigned long long)e->w.ctr->ct_reselected, on2);
	/* Rebound: the next packets are plain hits. */
	__u64 before = e->w.ctr->ct_reselected;
	for (unsigned i = 0; i < 300; i++)
		flow_to(e, V_IPIP, CLIENT(i), 10000 + i, TH_ACK);
	CHECK(e->w.ctr->ct_reselected == before, "reselected once");
	env_free(e);
}

static void test_empty_ring(void)
{
	struct env *e = env_new("empty", NULL, 1024, 10);
	struct frame f;
	struct fl_buf b;

	REQUIRE(e, "environment");
	to_vip(&f, V_EMPTY, CLIENT(1), 1234, TH_SYN);
	CHECK(run1(e, &f, &b) == FL_VERDICT_DROP && b.drop_reason == FL_DROP_NO_BACKEND,
	      "no backend: verdict %u reason %u", b.verdict, b.drop_reason);
	CHECK(e->w.ctr->drops[FL_DROP_NO_BACKEND] == 1 && e->w.vip_ctr[V_EMPTY].packets == 1 &&
	      e->w.ctr->new_flows == 0, "counted, not recorded");
	/* Every backend of a VIP down: its flows are dropped, not sent to it. */
	struct frame u;
	udp4(&u, CLIENT(1), 5353, VIP_ADDR(V_UDP), 53);
	CHECK(run1(e, &u, &b) == FL_VERDICT_TX, "UDP flow recorded");
	e->m.be[12].state = FL_BACKEND_DOWN;
	e->m.be[13].state = FL_BACKEND_DOWN;
	REQUIRE(publish(&e->shm, &e->m) == 0, "publish");
	CHECK(run1(e, &u, &b) == FL_VERDICT_DROP && b.drop_reason == FL_DROP_NO_BACKEND,
	      "flow of a VIP with every backend down: dropped");
	env_free(e);
}

/* Corrupt tables: ids and ring ranges out of bounds never index memory. */
static void test_corrupt_tables(void)
{
	struct env *e = env_new("corrupt", NULL, 1024, 10);
	char err[256];
	struct fl_tables *t;
	struct frame f;
	struct fl_buf b;

	REQUIRE(e, "environment");
	REQUIRE(fl_writer_acquire(&e->shm, 1000, 1000, &t, err, sizeof(err)) == 0, "acquire: %s", err);
	fl_tables_copy(t, fl_writer_active(&e->shm));
	t->hdr->backend_count = 1000000;
	t->vips[V_IPIP].ring_offset = params.ring_entries - 10;		/* runs past the end */
	for (__u32 i = 0; i < M; i++)
		t->ring[V_GUE * M + i] = params.max_backends + i;	/* ids out of range */
	t->vips[V_L2DSR].ring_size = 0;
	REQUIRE(fl_writer_publish(&e->shm) == 0, "publish");
	static const unsigned vips[] = { V_IPIP, V_GUE, V_L2DSR };
	for (unsigned k = 0; k < 3; k++) {
		to_vip(&f, vips[k], CLIENT(1), 1234, TH_SYN);
		CHECK(run1(e, &f, &b) == FL_VERDICT_DROP && b.drop_reason == FL_DROP_NO_BACKEND,
		      "VIP %u with a corrupt ring: verdict %u reason %u", vips[k], b.verdict, b.drop_reason);
	}
	/* A record naming a backend id past max_backends is reselected. */
	REQUIRE(publish(&e->shm, &e->m) == 0, "publish");
	struct fl_flow_key k = { .src.v4 = htonl(CLIENT(7)), .dst.v4 = htonl(VIP_ADDR(V_IPIP)),
				 .sport = htons(777), .dport = htons(80), .proto = TCP,
				 .family = FL_AF_INET };
	__u32 h = fl_flow_hash(&k, e->m.seed);
	fl_ct_insert(&e->w.ct, &k, h, V_IPIP, 5000, 1, FL_CT_ESTABLISHED, e->now);
	CHECK(flow_to(e, V_IPIP, CLIENT(7), 777, TH_ACK) == (int)predict(&e->m, V_IPIP, CLIENT(7), 777),
	      "record with an id out of range: reselected");
	/* A record naming another VIP's backend is not followed either. */
	fl_ct_insert(&e->w.ct, &k, h, V_IPIP, 5, 1, FL_CT_ESTABLISHED, e->now);
	CHECK(flow_to(e, V_IPIP, CLIENT(7), 777, TH_ACK) == (int)predict(&e->m, V_IPIP, CLIENT(7), 777),
	      "record naming another VIP's backend: reselected");
	env_free(e);
}

static void test_rate_cap(void)
{
	struct fl_ct_params p;
	struct env *e;
	int where[60];
	unsigned wrong = 0;

	fl_ct_params_default(&p);
	p.new_flow_rate = 10;
	p.new_flow_burst = 10;
	e = env_new("cap", &p, 4096, 10);
	REQUIRE(e, "environment");
	for (unsigned i = 0; i < 60; i++) {
		where[i] = flow_to(e, V_IPIP, CLIENT(i), 3000, TH_SYN);
		wrong += where[i] != (int)predict(&e->m, V_IPIP, CLIENT(i), 3000);
	}
	CHECK(wrong == 0, "%u flows past the cap not forwarded by hash", wrong);
	CHECK(e->w.ctr->new_flows == 10 && e->w.ctr->ct_rate_capped == 50 &&
	      e->w.vip_ctr[V_IPIP].new_flows == 10 && e->w.ctr->ct_occupancy == 10,
	      "10 recorded, 50 capped: %llu %llu", (unsigned long long)e->w.ctr->new_flows,
	      (unsigned long long)e->w.ctr->ct_rate_capped);
	/* Backend 0 leaves, the ring changes: recorded flows on others stay,
	 * unrecorded ones follow the new ring. */
	memset(&e->m.be[0], 0, sizeof(e->m.be[0]));
	model_backend(&e->m, 21, V_IPIP, FL_AF_INET, 0xbb);
	REQUIRE(publish(&e->shm, &e->m) == 0, "publish");
	wrong = 0;
	for (unsigned i = 0; i < 60; i++) {
		int id = flow_to(e, V_IPIP, CLIENT(i), 3000, TH_ACK);
		int ring = (int)predict(&e->m, V_IPIP, CLIENT(i), 3000);

		wrong += i < 10 && where[i] != 0 ? id != where[i] : id != ring;
	}
	CHECK(wrong == 0, "%u flows wrong after the change", wrong);
	/* A second later the bucket has refilled. */
	e->now += FL_CT_HZ;
	__u64 before = e->w.ctr->new_flows;
	for (unsigned i = 0; i < 20; i++)
		flow_to(e, V_IPIP, CLIENT(500 + i), 3000, TH_SYN);
	CHECK(e->w.ctr->new_flows - before == 10, "10 more recorded after a second: %llu",
	      (unsigned long long)(e->w.ctr->new_flows - before));
	env_free(e);
}

static void test_icmp_error(void)
{
	struct frame f;
	struct fl_buf b;
	int where[100];
	struct env *e = env_with_flows("icmp", 100, where);
	unsigned moved = 0;

	REQUIRE(e, "environment");
	/* Backend 0 drains: out of the ring, its flows stay. Find a flow on
	 * it whose new ring choice differs. */
	e->m.be[0].state = FL_BACKEND_DRAINING;
	REQUIRE(publish(&e->shm, &e->m) == 0, "publish");
	__u64 occupancy = e->w.ctr->ct_occupancy, hits = e->w.ctr->ct_hits;
	for (unsigned i = 0; i < 100; i++) {
		if (where[i] != 0)
			continue;
		REQUIRE(predict(&e->m, V_IPIP, CLIENT(i), (__u16)(10000 + i)) != 0, "ring without 0");
		icmp_fn(&f, V_IPIP, CLIENT(i), 10000 + i, 1400);
		CHECK(run1(e, &f, &b) == FL_VERDICT_TX, "ICMP FN forwarded");
		CHECK(out_backend(e, &b, V_IPIP) == 0, "to the flow's conntrack backend, not the ring's");
		CHECK(b.len == f.len + 20 && memcmp(b.data + 34, f.b + 14, f.len - 14) == 0,
		      "the whole ICMP packet, encapsulated");
		moved++;
	}
	CHECK(moved > 0 && e->w.ctr->icmp_forwarded == moved, "%llu forwarded of %u",
	      (unsigned long long)e->w.ctr->icmp_forwarded, moved);
	/* About a flow we never saw: by the ring, and no record made. */
	icmp_fn(&f, V_IPIP, CLIENT(900), 999, 1400);
	CHECK(run1(e, &f, &b) == FL_VERDICT_TX &&
	      out_backend(e, &b, V_IPIP) == (int)predict(&e->m, V_IPIP, CLIENT(900), 999),
	      "unknown flow: by the ring");
	CHECK(e->w.ctr->ct_occupancy == occupancy && e->w.ctr->ct_hits == hits,
	      "ICMP errors neither insert nor refresh records");
	/* Down: the ICMP error follows the ring. */
	e->m.be[0].state = FL_BACKEND_DOWN;
	REQUIRE(publish(&e->shm, &e->m) == 0, "publish");
	for (unsigned i = 0; i < 100; i++) {
		if (where[i] != 0)
			continue;
		icmp_fn(&f, V_IPIP, CLIENT(i), 10000 + i, 1400);
		CHECK(run1(e, &f, &b) == FL_VERDICT_TX &&
		      out_backend(e, &b, V_IPIP) == (int)predict(&e->m, V_IPIP, CLIENT(i), (__u16)(10000 + i)),
		      "backend down: the ring's choice");
		break;
	}
	/* The empty-ring VIP: no backend. */
	icmp_fn(&f, V_EMPTY, CLIENT(1), 1, 1400);
	CHECK(run1(e, &f, &b) == FL_VERDICT_DROP && b.drop_reason == FL_DROP_NO_BACKEND,
	      "ICMP error for a VIP without backends");
	env_free(e);
}

static void test_fragments(void)
{
	struct env *e = env_new("frag", NULL, 1024, 10);
	struct frame f;
	struct fl_buf b;

	REQUIRE(e, "environment");
	frag4(&f, CLIENT(1), VIP_ADDR(V_UDP));
	CHECK(run1(e, &f, &b) == FL_VERDICT_DROP && b.drop_reason == FL_DROP_IP_FRAGMENT,
	      "fragment to a VIP: dropped, verdict %u reason %u", b.verdict, b.drop_reason);
	frag4(&f, CLIENT(1), VIP_ADDR(V_IPIP));
	CHECK(run1(e, &f, &b) == FL_VERDICT_DROP && b.drop_reason == FL_DROP_IP_FRAGMENT,
	      "fragment to a VIP address of another protocol: dropped");
	frag4(&f, CLIENT(1), OTHER_ADDR);
	CHECK(run1(e, &f, &b) == FL_VERDICT_KERNEL, "fragment to the host: kernel");
	CHECK(e->w.ctr->drops[FL_DROP_IP_FRAGMENT] == 2 && e->w.ctr->exception_packets == 1,
	      "counted");
	CHECK(e->w.ctr->ct_misses == 0, "fragments never reach conntrack");
	env_free(e);
}

static void test_too_big(void)
{
	struct env *e = env_new("big", NULL, 1024, 2);
	struct frame f;
	struct fl_buf b;
	unsigned answers = 0, drops = 0;

	REQUIRE(e, "environment");
	for (unsigned i = 0; i < 5; i++) {
		tcp4(&f, CLIENT(i), 4000, VIP_ADDR(V_IPIP), 80, TH_ACK, 1490 - 40);
		switch (run1(e, &f, &b)) {
		case FL_VERDICT_TOO_BIG:
			answers++;
			CHECK(b.too_big_mtu == 1480, "MTU to report: %u", b.too_big_mtu);
			CHECK(b.headroom == HEADROOM && b.len == f.len, "frame untouched");
			break;
		case FL_VERDICT_DROP:
			drops += b.drop_reason == FL_DROP_TOO_BIG;
			break;
		default:
			break;
		}
	}
	CHECK(answers == 2 && drops == 3, "2 answers then drops: %u %u", answers, drops);
	CHECK(e->w.ctr->drops[FL_DROP_TOO_BIG] == 5, "all 5 counted too_big");
	/* Fits once the outer header is counted: 1480 inner bytes. */
	tcp4(&f, CLIENT(9), 4000, VIP_ADDR(V_IPIP), 80, TH_ACK, 1480 - 40);
	CHECK(run1(e, &f, &b) == FL_VERDICT_TX && b.len == 14 + 1500, "1480 bytes fit");
	/* L2 DSR adds nothing: 1500 fits. */
	tcp4(&f, CLIENT(9), 4000, VIP_ADDR(V_L2DSR), 80, TH_ACK, 1500 - 40);
	CHECK(run1(e, &f, &b) == FL_VERDICT_TX, "L2 DSR: 1500 bytes fit");
	/* Half a second later: one more token. */
	e->now += FL_CT_HZ / 2;
	answers = 0;
	for (unsigned i = 0; i < 3; i++) {
		tcp4(&f, CLIENT(i), 4000, VIP_ADDR(V_IPIP), 80, TH_ACK, 1490 - 40);
		answers += run1(e, &f, &b) == FL_VERDICT_TOO_BIG;
	}
	CHECK(answers == 1, "one token after half a second at 2/s: %u", answers);
	env_free(e);
}

/* Mixed bursts; every counter adds up. */
static void test_counters(void)
{
	struct env *e = env_new("count", NULL, 4096, 1);
	static struct pbuf mem[FL_BURST_MAX];
	struct fl_buf b[FL_BURST_MAX];
	struct frame f;
	struct rng r = { 7 };
	unsigned tx = 0, kernel = 0, drop = 0, too_big = 0, rx = 0, tx_by_vip[NVIPS] = { 0 };
	unsigned to_vips = 0;
	__u64 bytes = 0, vip_bytes[NVIPS] = { 0 };

	REQUIRE(e, "environment");
	for (unsigned burst = 0; burst < 40; burst++) {
		unsigned n = 1 + (unsigned)(rng_next(&r) % FL_BURST_MAX);
		int vip_of[FL_BURST_MAX];

		for (unsigned i = 0; i < n; i++) {
			__u64 x = rng_next(&r);
			unsigned v = (unsigned)(x % NVIPS), client = (unsigned)(x >> 8) % 64;

			vip_of[i] = -1;
			switch ((x >> 20) % 8) {
			case 0:
				arp(&f);
				break;
			case 1:
				tcp4(&f, CLIENT(client), 22, OTHER_ADDR, 22, TH_ACK, 0);
				break;
			case 2:
				to_vip(&f, v, CLIENT(client), 100, TH_ACK);
				f.len = 20;
				break;
			case 3:
				tcp4(&f, CLIENT(client), 9, VIP_ADDR(V_IPIP), 80, TH_ACK, 1470);
				vip_of[i] = V_IPIP;
				break;
			case 4:
				icmp_fn(&f, V_IPIP, CLIENT(client), 100, 1400);
				vip_of[i] = V_IPIP;
				break;
			default:
				if (vip_def[v].proto == UDP)
					udp4(&f, CLIENT(client), 100, VIP_ADDR(v), vip_def[v].port);
				else
					to_vip(&f, v, CLIENT(client), 100 + (unsigned)(x >> 40) % 4,
					       (x >> 50) & 1 ? TH_SYN : TH_ACK);
				vip_of[i] = (int)v;
				break;
			}
			load(&b[i], &mem[i], &f);
			bytes += f.len;
			if (vip_of[i] >= 0) {
				vip_bytes[vip_of[i]] += f.len;
				to_vips++;
			}
		}
		e->now++;
		fl_pipeline_run(&e->w, b, n, e->now);
		rx += n;
		for (unsigned i = 0; i < n; i++) {
			switch (b[i].verdict) {
			case FL_VERDICT_TX:
				tx++;
				tx_by_vip[vip_of[i]]++;
				break;
			case FL_VERDICT_KERNEL:
				kernel++;
				break;
			case FL_VERDICT_DROP:
				drop++;
				break;
			case FL_VERDICT_TOO_BIG:
				too_big++;
				break;
			default:
				CHECK(0, "frame %u of burst %u has no verdict", i, burst);
			}
		}
	}
	const struct fl_worker_counters *c = e->w.ctr;
	CHECK(c->rx_packets == rx && c->rx_bytes == bytes, "rx %llu of %u, bytes %llu of %llu",
	      (unsigned long long)c->rx_packets, rx, (unsigned long long)c->rx_bytes,
	      (unsigned long long)bytes);
	CHECK(c->exception_packets == kernel, "kernel %llu %u", (unsigned long long)c->exception_packets, kernel);
	CHECK(drops_total(c) == drop + too_big, "drops %llu = %u + %u", (unsigned long long)drops_total(c),
	      drop, too_big);
	CHECK(rx == tx + kernel + drop + too_big && tx > 0 && kernel > 0 && drop > 0 && too_big > 0,
	      "rx %u = tx %u + kernel %u + drop %u + too big %u", rx, tx, kernel, drop, too_big);
	__u64 be_packets = 0, vip_packets = 0, vip_new = 0;
	for (unsigned id = 0; id < params.max_backends; id++)
		be_packets += e->w.backend_ctr[id].packets;
	for (unsigned v = 0; v < params.max_vips; v++) {
		vip_packets += e->w.vip_ctr[v].packets;
		vip_new += e->w.vip_ctr[v].new_flows;
		if (v < NVIPS)
			CHECK(e->w.vip_ctr[v].bytes == vip_bytes[v], "VIP %u bytes %llu of %llu", v,
			      (unsigned long long)e->w.vip_ctr[v].bytes, (unsigned long long)vip_bytes[v]);
	}
	__u64 by_vip = 0;
	for (unsigned v = 0; v < NVIPS; v++)
		by_vip += tx_by_vip[v];
	CHECK(be_packets == tx, "per-backend packets %llu, tx %u", (unsigned long long)be_packets, tx);
	CHECK(vip_packets == to_vips, "per-VIP packets %llu of %u", (unsigned long long)vip_packets,
	      to_vips);
	CHECK(vip_new == c->new_flows && by_vip == tx, "per-VIP new flows %llu of %llu",
	      (unsigned long long)vip_new, (unsigned long long)c->new_flows);
	CHECK(c->ct_hits + c->ct_misses + c->icmp_forwarded >= tx, "every TX looked up");
	env_free(e);
}

/* A restarted worker attaches to its conntrack memory and keeps every flow;
 * memory with no table in it is formatted. */
static void test_restart_keeps_flows(void)
{
	char err[256];
	int where[100];
	struct env *e = env_with_flows("restart", 100, where);
	struct fl_ct_params p;
	unsigned wrong = 0;

	REQUIRE(e, "environment");
	/* The ring changes while the worker is away. */
	memset(&e->m.be[0], 0, sizeof(e->m.be[0]));
	memset(&e->m.be[1], 0, sizeof(e->m.be[1]));
	model_backend(&e->m, 22, V_IPIP, FL_AF_INET, 0xcc);
	REQUIRE(publish(&e->shm, &e->m) == 0, "publish");
	fl_worker_fini(&e->w);
	fl_ct_params_default(&p);
	REQUIRE(fl_worker_init(&e->w, &e->shm, 0, e->ct_mem, e->ct_len, 8192, &p, &e->encap, 10,
			       err, sizeof(err)) == 0, "re-init: %s", err);
	CHECK(e->w.ct.capacity == 4096 && e->w.ctr->ct_occupancy == 100,
	      "attached: capacity %u, %llu records", e->w.ct.capacity,
	      (unsigned long long)e->w.ctr->ct_occupancy);
	for (unsigned i = 0; i < 100; i++)
		if (where[i] >= 2)
			wrong += flow_to(e, V_IPIP, CLIENT(i), 10000 + i, TH_ACK) != where[i];
	CHECK(wrong == 0, "%u flows moved across a restart", wrong);
	fl_worker_fini(&e->w);

	/* Garbage memory: formatted with the capacity asked for. */
	memset(e->ct_mem, 0xa5, e->ct_len);
	REQUIRE(fl_worker_init(&e->w, &e->shm, 0, e->ct_mem, e->ct_len, 2048, &p, &e->encap, 10,
			       err, sizeof(err)) == 0, "init over garbage: %s", err);
	CHECK(e->w.ct.capacity == 2048 && e->w.ct.used == 0, "formatted");
	fl_worker_fini(&e->w);
	/* Bad arguments are reported, not formatted over. */
	CHECK(fl_worker_init(&e->w, &e->shm, 0, (char *)e->ct_mem + 8, e->ct_len - 64, 16, &p,
			     &e->encap, 10, err, sizeof(err)) == -EINVAL, "misaligned memory refused");
	CHECK(strstr(err, "aligned") != NULL, "message: %s", err);
	CHECK(fl_worker_init(&e->w, &e->shm, params.max_workers, e->ct_mem, e->ct_len, 16, &p,
			     &e->encap, 10, err, sizeof(err)) == -ERANGE, "worker id out of range");
	REQUIRE(fl_worker_init(&e->w, &e->shm, 0, e->ct_mem, e->ct_len, 2048, &p, &e->encap, 10,
			       err, sizeof(err)) == 0, "init: %s", err);
	env_free(e);
}

/* ---- tables swapped under traffic -------------------------------------- */

#define SWAP_MS 1000

struct swap {
	struct env *e;
	struct model set[2];	/* generation parity -> tables */
	int stop;
	__u64 publishes, failures;
};

/* Set k: backends 16k..16k+3 of VIP_IPIP with their own seed; the other
 * set's ids are free. */
static void swap_model(struct model *m, unsigned k)
{
	model_init(m);
	for (unsigned id = 0; id < 4; id++)
		memset(&m->be[id], 0, sizeof(m->be[id]));
	for (unsigned id = 0; id < 4; id++)
		model_backend(m, 16 * k + id, V_IPIP, FL_AF_INET, 0x10001u + 16 * k + id);
	m->seed = 0x1111 * (k + 1);
	model_rings(m);
}

/* Publishes the set of the next generation's parity. */
static int swap_publish(struct swap *s)
{
	char err[256];
	struct fl_tables *t;

	if (fl_writer_acquire(&s->e->shm, 2000, 1000, &t, err, sizeof(err)) != 0)
		return -1;
	/* The generation this slot will be published as: one writer. */
	__u64 gen = (__atomic_load_n(&s->e->shm.hdr->published, __ATOMIC_RELAXED) >> 1) + 1;

	model_write(t, &params, &s->set[gen & 1]);
	return fl_writer_publish(&s->e->shm);
}

static void *swap_writer(void *arg)
{
	struct swap *s = arg;

	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		if (swap_publish(s) != 0)
			s->failures++;
		else
			s->publishes++;
	}
	return NULL;
}

static void test_tables_swapped_under_traffic(void)
{
	struct swap *s = calloc(1, sizeof(*s));
	static struct pbuf mem[FL_BURST_MAX];
	struct fl_buf b[FL_BURST_MAX];
	struct frame f;
	pthread_t th;
	__u64 bursts = 0, checked = 0, wrong = 0, not_tx = 0, gens_seen = 0, last_gen = 0;
	__u32 port = 0;

	REQUIRE(s, "memory");
	s->e = env_new("swap", NULL, 1 << 14, 10);
	REQUIRE(s->e, "environment");
	swap_model(&s->set[0], 0);
	swap_model(&s->set[1], 1);
	REQUIRE(swap_publish(s) == 0, "first publish");	/* from here every generation is a set's */
	REQUIRE(pthread_create(&th, NULL, swap_writer, s) == 0, "writer thread");
	__u64 end = fl_now_ns() + SWAP_MS * 1000000ull;
	while (fl_now_ns() < end) {
		__u32 client[FL_BURST_MAX], cport[FL_BURST_MAX];

		for (unsigned i = 0; i < FL_BURST_MAX; i++) {
			client[i] = CLIENT(port & 0xffff);
			cport[i] = 1024 + (port >> 16);
			port++;
			to_vip(&f, V_IPIP, client[i], cport[i], TH_SYN);
			load(&b[i], &mem[i], &f);
		}
		fl_pipeline_run(&s->e->w, b, FL_BURST_MAX, fl_ct_now());
		fl_reader_heartbeat(&s->e->w.reader, fl_now_ns());
		__u64 gen = s->e->w.reader.generation;
		gens_seen += gen != last_gen;
		last_gen = gen;
		const struct model *m = &s->set[gen & 1];
		for (unsigned i = 0; i < FL_BURST_MAX; i++) {
			if (b[i].verdict != FL_VERDICT_TX) {
				not_tx++;
				continue;
			}
			__u32 want = predict(m, V_IPIP, client[i], (__u16)cport[i]);
			wrong += memcmp(b[i].data + 30, &m->be[want].key.addr.v4, 4) != 0;
			checked++;
		}
		bursts++;
	}
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	printf("swap: %llu bursts, %llu frames checked, %llu generations seen, %llu published\n",
	       (unsigned long long)bursts, (unsigned long long)checked,
	       (unsigned long long)gens_seen, (unsigned long long)s->publishes);
	CHECK(wrong == 0 && not_tx == 0, "%llu frames to a backend of another generation, %llu not sent",
	      (unsigned long long)wrong, (unsigned long long)not_tx);
	CHECK(gens_seen > 10 && s->failures == 0, "the tables changed under the worker: %llu, %llu timeouts",
	      (unsigned long long)gens_seen, (unsigned long long)s->failures);
	env_free(s->e);
	free(s);
}

static const struct fl_test_case cases[] = {
	{ "ipip_predicted", test_ipip_predicted },
	{ "gue_and_l2dsr", test_gue_and_l2dsr },
	{ "host_traffic", test_host_traffic },
	{ "malformed", test_malformed },
	{ "sticky_on_change", test_sticky_on_change },
	{ "drain_and_down", test_drain_and_down },
	{ "epoch_change", test_epoch_change },
	{ "empty_ring", test_empty_ring },
	{ "corrupt_tables", test_corrupt_tables },
	{ "rate_cap", test_rate_cap },
	{ "icmp_error", test_icmp_error },
	{ "fragments", test_fragments },
	{ "too_big", test_too_big },
	{ "counters", test_counters },
	{ "restart_keeps_flows", test_restart_keeps_flows },
	{ "tables_swapped_under_traffic", test_tables_swapped_under_traffic },
};

FL_TEST_MAIN(cases)
