// SPDX-License-Identifier: BSD-3-Clause
/*
 * The worker pipeline's cost on one core (dp/pipeline.c), in process: bursts
 * of 32 prepared frames through fl_pipeline_run, no I/O. Before each burst
 * every frame is restored from a template (a 64-byte copy, then the flow's
 * source address, source port and TCP flags patched in from a tuple stream
 * read in order); the floor does the same restore, reads the frame's first
 * cache line and writes a byte, so "pipeline - floor" is the pipeline.
 * Times are the thread's CPU time: on this shared machine the benchmark is
 * descheduled often, and wall time then measures the other processes.
 *
 * Cases, for an IPIP and a GUE VIP (16 backends, M = 65537):
 *  hot          one established flow, every packet
 *  1M random    1M established flows (conntrack of 2M records, 50% load),
 *               all in the table (no bucket holds more than its ways), each
 *               burst 32 of them in a random order (one fixed permutation of
 *               the 1M, visited 4 times a run)
 *  new, filling a SYN of a new 5-tuple every packet: 1M of them into an
 *               empty 2M-record table (load 0 to 50%, few inserts evict)
 *  new, full    a SYN of a new 5-tuple every packet, in a 2M-record table
 *               kept full: every insert evicts its bucket's oldest record
 *  90/10 mix    90% packets of the 1M established flows, 10% new SYNs
 *  non-VIP      TCP to an address of the host: verdict KERNEL
 * Each line: median (and min) of REPEAT runs. Prints; asserts nothing.
 * Run: build/bench/pipeline_bench [repeat [case]]   (default 5 runs, every
 * case; `case` is a prefix of: hot, random, mix, new, kernel)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/mman.h>

#include "maglev.h"
#include "pipeline.h"
#include "bench.h"

#define BURST FL_BURST_MAX
#define HEADROOM 128u
#define M FL_MAGLEV_DEFAULT_M
#define NBACKENDS 16u
#define ESTABLISHED (1u << 20)
#define CT_CAPACITY (2u << 20)
#define STREAM (4u << 20)		/* packets per run, streams of new flows */
#define HOT_PACKETS (8u << 20)
#define TEMPLATE_LEN 64u		/* bytes restored per frame */
#define FRAME_LEN 54u			/* Ethernet + IPv4 + TCP, no payload */
#define SEED 0x5eedf00dull		/* the tables' flow hash seed */

enum { VIP_IPIP, VIP_GUE, NVIPS };
static const char *const vip_names[NVIPS] = { [VIP_IPIP] = "IPIP", [VIP_GUE] = "GUE" };

/* One packet of a stream: what restore patches into the template. */
struct tuple {
	__be32 saddr;
	__be16 sport;
	__u8 tcp_flags;
	__u8 pad;
};

struct bench {
	struct fl_shm shm;
	struct fl_worker w;
	struct fl_encap_ctx encap;
	struct fl_ct_params ctp;
	void *ct_mem;
	size_t ct_len;
	__u8 tmpl[NVIPS + 1][TEMPLATE_LEN] __attribute__((aligned(64)));	/* + non-VIP */
	__u8 mem[BURST][HEADROOM + 128] __attribute__((aligned(64)));
	struct fl_buf bufs[BURST];
	char name[128];
};

static void be16_put(__u8 *d, unsigned v)
{
	d[0] = (__u8)(v >> 8);
	d[1] = (__u8)v;
}

/* Ethernet + IPv4 (DF) + TCP to dst:dport; source and flags patched later. */
static void make_template(__u8 *t, __u32 dst, unsigned dport)
{
	static const __u8 eth[14] = { 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe, 0x08, 0x00 };
	__u8 *ip = t + 14, *tcp = t + 34;

	memset(t, 0, TEMPLATE_LEN);
	memcpy(t, eth, sizeof(eth));
	ip[0] = 0x45;
	be16_put(ip + 2, 40);
	be16_put(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = 6;
	be16_put(ip + 12, 0xc633);	/* 198.51.x.x; patched */
	be16_put(ip + 16, dst >> 16);
	be16_put(ip + 18, dst & 0xffff);
	be16_put(tcp + 2, dport);
	tcp[12] = 5 << 4;
	tcp[13] = 0x10;
	be16_put(tcp + 14, 0xffff);
}

static int publish(struct bench *b, char *err, size_t errlen)
{
	struct fl_tables *t;
	struct fl_maglev_backend in[NBACKENDS];
	int rc = fl_writer_acquire(&b->shm, 1000, 1000, &t, err, errlen);

	if (rc)
		return rc;
	t->hdr->hash_seed = SEED;
	t->hdr->vip_count = NVIPS;
	t->hdr->backend_count = NVIPS * NBACKENDS;
	for (__u32 v = 0; v < NVIPS; v++) {
		struct fl_vip *x = &t->vips[v];

		*x = (struct fl_vip){ .port = htons(80), .proto = 6, .family = FL_AF_INET,
				      .method = v == VIP_IPIP ? FL_METHOD_IPIP : FL_METHOD_GUE,
				      .flags = FL_VIP_IN_USE, .ring_offset = v * M, .ring_size = M };
		x->addr.v4 = htonl(0xc000020au + v);
		for (__u32 i = 0; i < NBACKENDS; i++) {
			__u32 id = v * NBACKENDS + i;
			struct fl_backend *be = &t->backends[id];

			*be = (struct fl_backend){ .epoch = 1, .vip_id = v, .weight = 1,
						   .state = FL_BACKEND_UP };
			be->key.addr.v4 = htonl(0x0a010001u + id);
			be->key.family = FL_AF_INET;
			in[i] = (struct fl_maglev_backend){ be->key, id, 1 };
		}
		rc = fl_maglev_build(in, NBACKENDS, M, t->ring + v * M, err, errlen);
		if (rc)
			return rc;
	}
	fl_tables_index_vips(t);
	return fl_writer_publish(&b->shm);
}

/* A fresh worker on an empty conntrack table. */
static int worker_fresh(struct bench *b, char *err, size_t errlen)
{
	if (b->w.ctr)
		fl_worker_fini(&b->w);
	memset(b->ct_mem, 0, 64);	/* no table: fl_worker_init formats */
	return fl_worker_init(&b->w, &b->shm, 0, b->ct_mem, b->ct_len, CT_CAPACITY, &b->ctp,
			      &b->encap, 1000, err, errlen);
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The established flows: random sources to both VIPs, none whose bucket
 * would be over-full in either VIP's table, so that all of them are in the
 * table and a lookup of any hits (at 50% load about 2% of random flows
 * would land in a bucket already holding FL_CT_WAYS).
 */
static int make_established(struct tuple *est, size_t n, const struct fl_ct *geometry,
			    __u64 seed)
{
	__u8 *fill[NVIPS];
	int ok = 1;

	for (unsigned v = 0; v < NVIPS; v++) {
		fill[v] = calloc(geometry->nbuckets, 1);
		ok &= fill[v] != NULL;
	}
	if (!ok) {
		for (unsigned v = 0; v < NVIPS; v++)
			free(fill[v]);
		return -1;
	}
	for (size_t i = 0; i < n;) {
		struct tuple u = { htonl(0xc6000000u + (__u32)(rng() >> 40)),
				   htons((__u16)(1024 + (rng() >> 50))), 0x10, 0 };
		__u32 bucket[NVIPS];
		unsigned v, room = 1;

		for (v = 0; v < NVIPS; v++) {
			struct fl_flow_key k = { .sport = u.sport, .dport = htons(80), .proto = 6,
						 .family = FL_AF_INET };

			k.src.v4 = u.saddr;
			k.dst.v4 = htonl(0xc000020au + v);
			bucket[v] = fl_ct_bucket_of(geometry, fl_flow_hash(&k, seed));
			room &= fill[v][bucket[v]] < FL_CT_WAYS;
		}
		if (!room)
			continue;
		for (v = 0; v < NVIPS; v++)
			fill[v][bucket[v]]++;
		est[i++] = u;
	}
	for (unsigned v = 0; v < NVIPS; v++)
		free(fill[v]);
	return 0;
}

static inline void restore(struct bench *b, unsigned i, const __u8 *tmpl, const struct tuple *u,
			   __u16 salt)
{
	__u8 *d = b->mem[i] + HEADROOM;
	__be16 sport = htons((__u16)(ntohs(u->sport) + salt));

	memcpy(d, tmpl, TEMPLATE_LEN);
	memcpy(d + 26, &u->saddr, 4);
	memcpy(d + 34, &sport, 2);
	d[47] = u->tcp_flags;
	b->bufs[i].data = d;
	b->bufs[i].len = FRAME_LEN;
	b->bufs[i].headroom = HEADROOM;
}

/* Runs `packets` packets of the stream (cycled) through the pipeline or the
 * floor; returns ns per packet. */
static double run(struct bench *b, const __u8 *tmpl, const struct tuple *s, size_t slen,
		  size_t packets, __u16 salt, int floor, __u64 *sink)
{
	size_t pos = 0;
	__u64 acc = 0;
	double t0 = cpu_s();

	for (size_t done = 0; done < packets; done += BURST) {
		for (unsigned i = 0; i < BURST; i++) {
			restore(b, i, tmpl, &s[pos], salt);
			if (++pos == slen)
				pos = 0;
		}
		if (floor) {
			for (unsigned i = 0; i < BURST; i++) {
				const __u64 *line = (const __u64 *)(const void *)b->bufs[i].data;

				for (unsigned k = 0; k < 8; k++)
					acc += line[k];
				b->bufs[i].data[0] ^= 1;
				b->bufs[i].verdict = FL_VERDICT_TX;
			}
		} else {
			fl_pipeline_run(&b->w, b->bufs, BURST, fl_ct_now());
			acc += b->bufs[0].verdict;
		}
	}
	*sink += acc;
	return (cpu_s() - t0) * 1e9 / (double)(packets / BURST * BURST);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct result {
	double median, min;
};

static struct result summarize(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return (struct result){ n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[0] };
}

static int repeat = 5;
static const char *only;

static int wanted(const char *name)
{
	return !only || strncmp(name, only, strlen(only)) == 0;
}

static void print_line(const char *what, struct result r, double floor_ns, const struct fl_worker *w,
		       __u64 hits0, __u64 miss0)
{
	__u64 hits = w->ctr->ct_hits - hits0, miss = w->ctr->ct_misses - miss0;

	printf("  %-34s %6.1f ns/pkt (min %6.1f)  %6.2f Mpps", what, r.median, r.min,
	       1e3 / r.median);
	if (floor_ns > 0)
		printf("  %4.2fx floor", r.median / floor_ns);
	if (hits + miss)
		printf("  ct hits %5.1f%%", 100.0 * (double)hits / (double)(hits + miss));
	printf("\n");
}

/* Measures one stream: `repeat` runs; salted streams get a new salt per run
 * so every run's new flows are new. */
static struct result measure(struct bench *b, const __u8 *tmpl, const struct tuple *s, size_t slen,
			     size_t packets, int salted, int floor, __u16 *salt, __u64 *sink)
{
	double v[64];

	for (int r = 0; r < repeat; r++)
		v[r] = run(b, tmpl, s, slen, packets, salted ? ++*salt : 0, floor, sink);
	return summarize(v, repeat);
}

static struct tuple *stream_alloc(size_t n)
{
	return big_alloc(n * sizeof(struct tuple));
}

int main(int argc, char **argv)
{
	static struct bench bench;
	struct bench *b = &bench;
	const struct fl_shm_params sp = { .max_vips = 16, .max_backends = 256,
					  .ring_entries = NVIPS * M, .max_workers = 1 };
	char err[256];
	__u64 sink = 0;
	__u16 salt = 0;
	struct tuple hot = { htonl(0xc6336401u), htons(40000), 0x10, 0 };
	const struct fl_ct geometry = { .nbuckets = CT_CAPACITY / FL_CT_WAYS };

	if (argc > 1)
		repeat = atoi(argv[1]);
	if (argc > 2)
		only = argv[2];
	if (repeat < 1 || repeat > 64) {
		fprintf(stderr, "usage: pipeline_bench [repeat 1..64]\n");
		return 2;
	}
	snprintf(b->name, sizeof(b->name), "/dev/shm/fulcrum-bench-%d", (int)getpid());
	fl_shm_unlink(b->name);
	if (fl_shm_create(b->name, &sp, &b->shm, err, sizeof(err)) || publish(b, err, sizeof(err))) {
		fprintf(stderr, "pipeline_bench: %s\n", err);
		return 1;
	}
	b->encap = (struct fl_encap_ctx){ .src_mac = { 2, 0, 0, 0, 0, 1 },
					  .next_hop_mac = { 2, 0, 0, 0, 0, 0x99 },
					  .tunnel_src_v4 = { .v4 = htonl(0x0a000001u) },
					  .gue_dport = htons(6080), .mtu = 1500 };
	fl_ct_params_default(&b->ctp);
	b->ct_len = fl_ct_mem_size(CT_CAPACITY);
	b->ct_mem = big_alloc(b->ct_len);
	/* The streams: 1M established flows in a random order; new flows
	 * (unique sources, salted ports per run); the 90/10 mix of both. */
	struct tuple *est = stream_alloc(ESTABLISHED), *est_syn = stream_alloc(ESTABLISHED);
	struct tuple *fresh = stream_alloc(STREAM), *mix = stream_alloc(STREAM);

	if (!b->ct_mem || !est || !est_syn || !fresh || !mix) {
		fprintf(stderr, "pipeline_bench: out of memory\n");
		return 1;
	}
	if (make_established(est, ESTABLISHED, &geometry, SEED)) {
		fprintf(stderr, "pipeline_bench: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < ESTABLISHED; i++) {
		est_syn[i] = est[i];
		est_syn[i].tcp_flags = 0x02;
	}
	for (size_t i = ESTABLISHED - 1; i > 0; i--) {	/* the visiting order */
		size_t j = rng() % (i + 1);
		struct tuple x = est[i];

		est[i] = est[j];
		est[j] = x;
	}
	for (size_t i = 0; i < STREAM; i++) {
		fresh[i] = (struct tuple){ htonl(0x0b000000u + (__u32)i), htons(2000), 0x02, 0 };
		mix[i] = i % 10 == 9 ? fresh[i] : est[rng() % ESTABLISHED];
	}
	make_template(b->tmpl[NVIPS], 0xc0000263u, 22);	/* 192.0.2.99:22, the host's */

	printf("pipeline_bench: bursts of %u, %u-byte frames, %u backends per VIP, M = %u, "
	       "conntrack %u records (%zu MiB), median of %d runs\n", BURST, FRAME_LEN, NBACKENDS,
	       M, CT_CAPACITY, b->ct_len >> 20, repeat);
	struct result fl1 = measure(b, b->tmpl[NVIPS], &hot, 1, HOT_PACKETS, 0, 1, &salt, &sink);
	struct result fls = measure(b, b->tmpl[NVIPS], est, ESTABLISHED, STREAM, 0, 1, &salt, &sink);
	printf("  %-34s %6.1f ns/pkt (min %6.1f)\n", "floor, one tuple", fl1.median, fl1.min);
	printf("  %-34s %6.1f ns/pkt (min %6.1f)\n", "floor, 1M-tuple stream", fls.median, fls.min);

	for (unsigned v = 0; v < NVIPS; v++) {
		const __u8 *tmpl = b->tmpl[v];
		__u64 h0, m0;
		struct result r;
		char what[64];

		make_template(b->tmpl[v], 0xc000020au + v, 80);
		if (worker_fresh(b, err, sizeof(err))) {
			fprintf(stderr, "pipeline_bench: %s\n", err);
			return 1;
		}
		printf("%s VIP\n", vip_names[v]);
		struct tuple hot_syn = hot;
		hot_syn.tcp_flags = 0x02;
		run(b, tmpl, &hot_syn, 1, BURST, 0, 0, &sink);
		h0 = b->w.ctr->ct_hits, m0 = b->w.ctr->ct_misses;
		if (wanted("hot")) {
			r = measure(b, tmpl, &hot, 1, HOT_PACKETS, 0, 0, &salt, &sink);
			print_line("hot established flow", r, fl1.median, &b->w, h0, m0);
		}

		/* SYN then ACK: established records, 300 s timeout. */
		if (wanted("random") || wanted("mix")) {
			run(b, tmpl, est_syn, ESTABLISHED, ESTABLISHED, 0, 0, &sink);
			run(b, tmpl, est, ESTABLISHED, ESTABLISHED, 0, 0, &sink);
		}
		if (wanted("random")) {
			h0 = b->w.ctr->ct_hits, m0 = b->w.ctr->ct_misses;
			r = measure(b, tmpl, est, ESTABLISHED, STREAM, 0, 0, &salt, &sink);
			print_line("1M established, random order", r, fls.median, &b->w, h0, m0);
		}
		if (wanted("mix")) {
			h0 = b->w.ctr->ct_hits, m0 = b->w.ctr->ct_misses;
			r = measure(b, tmpl, mix, STREAM, STREAM, 1, 0, &salt, &sink);
			print_line("90/10 established/new", r, fls.median, &b->w, h0, m0);
		}
		if (!wanted("new"))
			goto kernel;

		/* New flows into an empty table, each run on a fresh one. */
		double v_new[64];

		h0 = b->w.ctr->ct_hits, m0 = b->w.ctr->ct_misses;
		for (int k = 0; k < repeat; k++) {
			if (worker_fresh(b, err, sizeof(err))) {
				fprintf(stderr, "pipeline_bench: %s\n", err);
				return 1;
			}
			v_new[k] = run(b, tmpl, fresh, STREAM, ESTABLISHED, ++salt, 0, &sink);
		}
		print_line("new flows (empty table, to 50%)", summarize(v_new, repeat), fls.median,
			   &b->w, h0, m0);

		/* Fill the table first: the measured inserts evict. */
		run(b, tmpl, fresh, STREAM, 2 * CT_CAPACITY, ++salt, 0, &sink);
		__u64 ev0 = b->w.ctr->ct_evictions, nf0 = b->w.ctr->new_flows;
		h0 = b->w.ctr->ct_hits, m0 = b->w.ctr->ct_misses;
		r = measure(b, tmpl, fresh, STREAM, STREAM, 1, 0, &salt, &sink);
		snprintf(what, sizeof(what), "new flows (full table, evicting)");
		print_line(what, r, fls.median, &b->w, h0, m0);
		printf("  %-34s %llu inserts, %.1f%% evicted a record\n", "",
		       (unsigned long long)(b->w.ctr->new_flows - nf0),
		       100.0 * (double)(b->w.ctr->ct_evictions - ev0) /
			       (double)(b->w.ctr->new_flows - nf0 + !(b->w.ctr->new_flows - nf0)));

kernel:
		if (!wanted("kernel"))
			continue;
		h0 = b->w.ctr->ct_hits, m0 = b->w.ctr->ct_misses;
		r = measure(b, b->tmpl[NVIPS], est, ESTABLISHED, STREAM, 0, 0, &salt, &sink);
		print_line("non-VIP (KERNEL)", r, fls.median, &b->w, h0, m0);
	}
	printf("(sink %llx)\n", (unsigned long long)sink);
	fl_worker_fini(&b->w);
	fl_shm_detach(&b->shm);
	fl_shm_unlink(b->name);
	return 0;
}
