// SPDX-License-Identifier: BSD-3-Clause
/*
 * The XDP balancer's cost per packet through bpf_prog_test_run, the way the
 * XDP issue asks: repeat = 1 and a fresh copy of the packet on every call
 * (with repeat = N the program would see its own encapsulated output), many
 * calls, the median of several runs, and in the same run a two-instruction
 * XDP program as the harness floor; figures are net of it. Each run times
 * its calls in short blocks, each right after a floor block of the same
 * size, and takes the median block difference: on a shared machine most
 * blocks then run without being preempted or meeting a change of load,
 * which a long block would add to the figure. One CPU.
 * Cases: one hot established flow; flows drawn at random from 0.9M in
 * conntrack; new flows (a new 5-tuple SYN each); new flows into a full
 * conntrack (each evicting the oldest record of its bucket); non-VIP
 * traffic. For IPIP and GUE over IPv4,
 * and IP6IP6 and GUE over IPv6.
 * Run (root): build/bench/xdp_bench [runs] [calls]
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "maglev.h"
#include "pkt.h"
#include "xdp.h"
#include "bench.h"
#include "xdp_floor.skel.h"

#define NBACKENDS 16u
#define ESTABLISHED 900000u
#define FULL_CT 65536u
#define MAX_RUNS 15
#define BLOCK_CALLS 250u	/* calls per block: about 0.2 ms */
#define MAX_BLOCKS 1000u

enum { V_IPIP4, V_GUE4, V_IP6IP6, V_GUE6, NVIPS };
static const char *const vip_names[NVIPS] = {
	[V_IPIP4] = "IPIP, IPv4", [V_GUE4] = "GUE, IPv4",
	[V_IP6IP6] = "IP6IP6, IPv6", [V_GUE6] = "GUE, IPv6",
};
static const __u8 vip_family[NVIPS] = { 4, 4, 6, 6 };
static const __u8 vip_method[NVIPS] = { FL_METHOD_IPIP, FL_METHOD_GUE, FL_METHOD_IP6IP6, FL_METHOD_GUE };

struct frame {
	__u8 b[128];
	__u32 len;
	__u32 src_off;		/* where the source address starts */
	__u32 sport_off;
};

static void put16(__u8 *d, unsigned v)
{
	d[0] = (__u8)(v >> 8);
	d[1] = (__u8)v;
}

/* A TCP SYN from 198.51.100.1 / 2001:db8:c::1 to VIP v, port 80 (port 22
 * for the non-VIP case). */
static void frame_make(struct frame *f, unsigned v, unsigned dport)
{
	__u8 *d = f->b;
	unsigned l3 = 14, l4;

	memset(f, 0, sizeof(*f));
	memcpy(d, "\x02\0\0\0\0\x01\x02\0\0\0\0\x02", 12);
	if (vip_family[v] == 4) {
		put16(d + 12, 0x0800);
		d[l3] = 0x45;
		put16(d + l3 + 2, 40);
		d[l3 + 8] = 64;
		d[l3 + 9] = 6;
		inet_pton(AF_INET, "198.51.100.1", d + l3 + 12);
		inet_pton(AF_INET, "10.0.0.100", d + l3 + 16);
		d[l3 + 19] = (__u8)(100 + v);
		f->src_off = l3 + 12;
		l4 = l3 + 20;
	} else {
		put16(d + 12, 0x86dd);
		d[l3] = 0x60;
		put16(d + l3 + 4, 20);
		d[l3 + 6] = 6;
		d[l3 + 7] = 64;
		inet_pton(AF_INET6, "2001:db8:c::1", d + l3 + 8);
		inet_pton(AF_INET6, "2001:db8:100::1", d + l3 + 24);
		d[l3 + 39] = (__u8)v;
		f->src_off = l3 + 8;
		l4 = l3 + 40;
	}
	put16(d + l4, 40000);
	put16(d + l4 + 2, dport);
	d[l4 + 12] = 0x50;
	d[l4 + 13] = 0x02;	/* SYN */
	f->sport_off = l4;
	f->len = l4 + 20;
}

/* Established traffic is ACKs: a record made by an ACK is established
 * (tcp_timeout), where a SYN's lasts syn_timeout (5 s), which the later
 * runs outlast, so that their "0.9M random" would time expired records
 * being made anew. New flows are SYNs. */
static void frame_tcp_flags(struct frame *f, __u8 flags)
{
	f->b[f->sport_off + 13] = flags;
}

/* Flow number n: its source address and port. */
static void frame_flow(struct frame *f, __u32 n)
{
	__be32 a = htonl(0xc6000000u | (n >> 8));

	memcpy(f->b + f->src_off, &a, 4);
	put16(f->b + f->sport_off, 1024 + (n & 0xff) * 200 + 7);
}

static int run_once(int prog, const struct frame *f, __u32 *verdict)
{
	__u8 out[256];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f->b, .data_size_in = f->len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);
	int rc = bpf_prog_test_run_opts(prog, &o);

	*verdict = o.retval;
	return rc;
}

enum flow_pick { HOT, RANDOM_EST, NEW, NONE };

/* ns per call over `calls` calls; every call gets a fresh frame. */
static double measure(int prog, struct frame *f, enum flow_pick pick, __u32 calls, __u32 *fresh)
{
	__u32 verdict;
	double t0 = now_s();

	for (__u32 i = 0; i < calls; i++) {
		if (pick == RANDOM_EST)
			frame_flow(f, (__u32)(rng() % ESTABLISHED));
		else if (pick == NEW)
			frame_flow(f, (*fresh)++);
		if (run_once(prog, f, &verdict) < 0) {
			fprintf(stderr, "bpf_prog_test_run: %s\n", strerror(errno));
			exit(1);
		}
	}
	return (now_s() - t0) * 1e9 / calls;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* ns per call net of the floor over about `calls` calls, in blocks of
 * BLOCK_CALLS each after a floor block: the median difference; the floor's
 * median in *fl. */
static double measure_net(int prog, int floor_fd, struct frame *f, enum flow_pick pick,
			  __u32 calls, __u32 *fresh, double *fl)
{
	static double net[MAX_BLOCKS], flb[MAX_BLOCKS];
	__u32 blocks = calls / BLOCK_CALLS;

	if (blocks < 1)
		blocks = 1;
	if (blocks > MAX_BLOCKS)
		blocks = MAX_BLOCKS;
	for (__u32 b = 0; b < blocks; b++) {
		flb[b] = measure(floor_fd, f, HOT, BLOCK_CALLS, fresh);
		net[b] = measure(prog, f, pick, BLOCK_CALLS, fresh) - flb[b];
	}
	*fl = median(flb, (int)blocks);
	return median(net, (int)blocks);
}

/* Tables with one VIP per variant, 16 backends each. */
static void make_tables(struct fl_shm *shm, const char *path)
{
	const struct fl_shm_params params = { 16, 256, NVIPS * FL_MAGLEV_DEFAULT_M, 2 };
	struct fl_tables *t;
	char err[256];

	fl_shm_unlink(path);
	if (fl_shm_create(path, &params, shm, err, sizeof(err)) < 0 ||
	    fl_writer_acquire(shm, 100, 1000, &t, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	t->hdr->hash_seed = 0x1234567887654321ULL;
	for (unsigned v = 0; v < NVIPS; v++) {
		struct fl_maglev_backend mb[NBACKENDS];
		struct fl_vip *vip = &t->vips[v];

		vip->family = vip_family[v];
		if (vip->family == 4) {
			inet_pton(AF_INET, "10.0.0.100", &vip->addr.v4);
			vip->addr.bytes[3] = (__u8)(100 + v);
		} else {
			inet_pton(AF_INET6, "2001:db8:100::1", vip->addr.bytes);
			vip->addr.bytes[15] = (__u8)v;
		}
		vip->port = htons(80);
		vip->proto = 6;
		vip->method = vip_method[v];
		vip->flags = FL_VIP_IN_USE;
		vip->ring_offset = v * FL_MAGLEV_DEFAULT_M;
		vip->ring_size = FL_MAGLEV_DEFAULT_M;
		for (unsigned i = 0; i < NBACKENDS; i++) {
			__u32 id = v * NBACKENDS + i;
			struct fl_backend *b = &t->backends[id];

			memset(b, 0, sizeof(*b));
			b->key.family = vip->family;
			if (vip->family == 4)
				b->key.addr.v4 = htonl(0x0a010000u + id);
			else
				inet_pton(AF_INET6, "2001:db8:1::", b->key.addr.bytes),
					b->key.addr.bytes[15] = (__u8)id;
			b->epoch = 1;
			b->vip_id = v;
			b->weight = 100;
			b->state = FL_BACKEND_UP;
			memcpy(b->mac, "\x02\0\0\0\x01\x01", 6);
			mb[i] = (struct fl_maglev_backend){ .key = b->key, .id = id, .weight = 100 };
		}
		if (fl_maglev_build(mb, NBACKENDS, FL_MAGLEV_DEFAULT_M,
				    &t->ring[vip->ring_offset], err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			exit(1);
		}
	}
	t->hdr->vip_count = NVIPS;
	t->hdr->backend_count = NVIPS * NBACKENDS;
	t->hdr->ring_used = NVIPS * FL_MAGLEV_DEFAULT_M;
	fl_tables_index_vips(t);
	fl_writer_publish(shm);
}

static void load(struct fl_xdp *x, const struct fl_shm *shm, __u32 ct_capacity)
{
	struct fl_xdp_knobs k = { .gue_port = 6080, .mtu = 1500, .ct_capacity = ct_capacity,
				  .max_vips = 16, .max_backends = 256,
				  .ring_entries = NVIPS * FL_MAGLEV_DEFAULT_M };
	char err[256];

	memcpy(k.next_hop_mac, "\x02\0\0\0\0\xfe", 6);
	inet_pton(AF_INET, "192.0.2.1", &k.tunnel_src_v4.v4);
	inet_pton(AF_INET6, "2001:db8::1", k.tunnel_src_v6.bytes);
	if (fl_xdp_open_load(x, &k, err, sizeof(err)) < 0 ||
	    fl_xdp_publish(x, fl_writer_active(shm), err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 5;
	__u32 calls = argc > 2 ? (__u32)atoi(argv[2]) : 200000;
	char path[64];
	struct fl_shm shm;
	struct xdp_floor_bpf *floor_skel;
	cpu_set_t one;

	if (runs < 1 || runs > MAX_RUNS)
		runs = 5;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	sched_setaffinity(0, sizeof(one), &one);
	snprintf(path, sizeof(path), "/dev/shm/fulcrum-xdpbench-%d", (int)getpid());
	make_tables(&shm, path);
	floor_skel = xdp_floor_bpf__open_and_load();
	if (!floor_skel) {
		fprintf(stderr, "cannot load the floor program: %s\n", strerror(errno));
		return 1;
	}
	int floor_fd = bpf_program__fd(floor_skel->progs.xdp_floor);
	printf("ns/packet, net of the floor, median of %d runs of %u calls (repeat = 1, fresh packet)\n",
	       runs, calls);
	for (unsigned v = 0; v < NVIPS; v++) {
		struct fl_xdp big = { 0 }, small = { 0 };
		struct frame f, nonvip;
		double fl[MAX_RUNS], hot[MAX_RUNS], rnd[MAX_RUNS], fresh_ns[MAX_RUNS], full[MAX_RUNS],
			host[MAX_RUNS], ignored;
		__u32 fresh = ESTABLISHED, verdict;

		load(&big, &shm, 2 * ESTABLISHED);
		load(&small, &shm, FULL_CT);
		frame_make(&f, v, 80);
		frame_make(&nonvip, v, 22);
		frame_tcp_flags(&f, FL_TCP_ACK);
		for (__u32 n = 0; n < ESTABLISHED; n++) {	/* 0.9M flows in conntrack */
			frame_flow(&f, n);
			run_once(fl_xdp_prog_fd(&big), &f, &verdict);
		}
		for (__u32 n = 0; n < 2 * FULL_CT; n++) {	/* the small table full */
			frame_flow(&f, ESTABLISHED * 4 + n);
			run_once(fl_xdp_prog_fd(&small), &f, &verdict);
		}
		frame_flow(&f, 0);
		if (run_once(fl_xdp_prog_fd(&big), &f, &verdict) < 0 || verdict != XDP_TX) {
			fprintf(stderr, "%s: the balancer answered %u, not XDP_TX\n", vip_names[v], verdict);
			return 1;
		}
		for (int r = 0; r < runs; r++) {
			frame_flow(&f, 0);
			frame_tcp_flags(&f, FL_TCP_ACK);
			hot[r] = measure_net(fl_xdp_prog_fd(&big), floor_fd, &f, HOT, calls, &fresh,
					     &fl[r]);
			rnd[r] = measure_net(fl_xdp_prog_fd(&big), floor_fd, &f, RANDOM_EST, calls,
					     &fresh, &ignored);
			frame_tcp_flags(&f, FL_TCP_SYN);
			fresh_ns[r] = measure_net(fl_xdp_prog_fd(&big), floor_fd, &f, NEW, calls,
						  &fresh, &ignored);
			full[r] = measure_net(fl_xdp_prog_fd(&small), floor_fd, &f, NEW, calls,
					      &fresh, &ignored);
			host[r] = measure_net(fl_xdp_prog_fd(&big), floor_fd, &nonvip, HOT, calls,
					      &fresh, &ignored);
		}
		printf("%-13s floor %6.0f | hot %5.0f | 0.9M random %5.0f | new %5.0f | new, full %5.0f | non-VIP %5.0f\n",
		       vip_names[v], median(fl, runs), median(hot, runs), median(rnd, runs),
		       median(fresh_ns, runs), median(full, runs), median(host, runs));
		fl_xdp_close(&big);
		fl_xdp_close(&small);
	}
	xdp_floor_bpf__destroy(floor_skel);
	fl_shm_detach(&shm);
	fl_shm_unlink(path);
	return 0;
}
