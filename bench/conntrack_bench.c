// SPDX-License-Identifier: BSD-3-Clause
/*
 * The conntrack table's cost on one core: bytes per flow, inserts, inserts
 * into a full table (the eviction path), and lookups of present flows in
 * random order at 1M and 10M flows, with and without prefetching, in
 * bursts of 32 as a worker sees them. The table is sized for 50% load by
 * default (at 8 ways, 0.8% of inserts then find their bucket full; 6.7% at
 * 80%) and placed on transparent huge pages where the kernel allows it, as
 * the data plane places it on hugetlbfs. Prints; asserts nothing.
 * Run: build/bench/conntrack_bench [-l load%] [flows...]
 *      (default -l 50, flows 1000000 10000000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include "conntrack.h"
#include "bench.h"

#define BURST 32
#define AHEAD 8
#define NOW 1000000u
#define REPEAT 3

struct query {
	struct fl_flow_key key;
	__u32 hash;
};

/* Random IPv4 clients (every fourth IPv6) to one VIP port. */
static void make_queries(struct query *q, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct fl_flow_key *k = &q[i].key;
		__u64 r = rng();

		memset(k, 0, sizeof(*k));
		k->proto = 6;
		k->sport = (__be16)r;
		k->dport = 0xbb01;
		if (i % 4 == 3) {
			__u64 a = rng(), b = rng();

			k->family = FL_AF_INET6;
			memcpy(&k->src.v6[0], &a, 8);
			memcpy(&k->src.v6[2], &b, 8);
			k->dst.v6[0] = 0xb80d0120;
			k->dst.v6[3] = 0x01000000;
		} else {
			k->family = FL_AF_INET;
			k->src.v4 = (__be32)(r >> 32);
			k->dst.v4 = 0x016433c6;
		}
		q[i].hash = fl_flow_hash(k, 0x5eed);
	}
}

static void shuffle(struct query *q, size_t n)
{
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rng() % (i + 1);
		struct query tmp = q[i];

		q[i] = q[j];
		q[j] = tmp;
	}
}

enum mode { PLAIN, PREFETCH, TWO_STAGE, MODE__MAX };

static const char *const mode_names[MODE__MAX] = {
	[PLAIN] = "no prefetch",
	[PREFETCH] = "prefetch tags 8 ahead",
	[TWO_STAGE] = "prefetch tags 8 ahead + ways 4 ahead",
};

/* One burst: lookups as the conntrack stage would run them. Returns hits. */
static unsigned burst(struct fl_ct *t, const struct query *q, unsigned m, enum mode mode,
		      __u64 *sum)
{
	unsigned hits = 0;

	if (mode != PLAIN)
		for (unsigned j = 0; j < AHEAD && j < m; j++)
			fl_ct_prefetch(t, q[j].hash);
	for (unsigned j = 0; j < m; j++) {
		struct fl_ct_rec *r;

		if (mode != PLAIN && j + AHEAD < m)
			fl_ct_prefetch(t, q[j + AHEAD].hash);
		if (mode == TWO_STAGE && j + AHEAD / 2 < m) {
			const struct query *next = &q[j + AHEAD / 2];

			fl_ct_prefetch_ways(fl_ct_bucket_for(t, next->hash), next->hash);
		}
		r = fl_ct_lookup(t, &q[j].key, q[j].hash, NOW);
		if (r) {
			hits++;
			*sum += r->backend_id;
		}
	}
	return hits;
}

static void bench_lookups(struct fl_ct *t, const struct query *q, size_t n)
{
	for (int mode = 0; mode < MODE__MAX; mode++) {
		__u64 sum = 0;
		size_t hits = 0;
		double dt = 1e30;

		/* The best of REPEAT passes: this machine has noisy neighbours. */
		for (int rep = 0; rep < REPEAT; rep++) {
			double t0 = now_s();

			hits = 0;
			for (size_t i = 0; i < n; i += BURST) {
				unsigned m = n - i < BURST ? (unsigned)(n - i) : BURST;

				hits += burst(t, q + i, m, (enum mode)mode, &sum);
			}
			if (now_s() - t0 < dt)
				dt = now_s() - t0;
		}
		printf("  lookup, %-38s %6.1f ns/op  %6.2f M/s  (hits %.4f%%, sum %llx)\n",
		       mode_names[mode], dt * 1e9 / (double)n, (double)n / dt / 1e6,
		       100.0 * (double)hits / (double)n, (unsigned long long)(sum & 0xffff));
	}
}

static int run(size_t flows, unsigned load_pct)
{
	__u64 want = (flows * 100 + load_pct - 1) / load_pct;
	__u32 cap = (__u32)((want + FL_CT_WAYS - 1) / FL_CT_WAYS * FL_CT_WAYS);
	size_t len = fl_ct_mem_size(cap), extra = flows / 4;
	struct query *q = big_alloc((flows + extra) * sizeof(*q));
	struct fl_worker_counters ctr;
	struct fl_ct_params p;
	char err[FL_CT_ERR_LEN];
	void *mem = big_alloc(len);
	struct fl_ct t;
	double t0, dt;
	int rc = 1;

	if (!q || !mem) {
		fprintf(stderr, "conntrack_bench: cannot map %zu bytes\n", len);
		goto out;
	}
	memset(&ctr, 0, sizeof(ctr));
	fl_ct_params_default(&p);
	if (fl_ct_init(mem, len, cap, &p, &ctr, &t, err, sizeof(err))) {
		fprintf(stderr, "conntrack_bench: %s\n", err);
		goto out;
	}
	make_queries(q, flows + extra);
	printf("%zu flows, capacity %u (%.0f%% load), %zu MiB table, %.1f bytes per record slot, "
	       "%.1f per flow at this load\n", flows, cap, 100.0 * (double)flows / cap, len >> 20,
	       (double)len / cap, (double)len / (double)flows);

	t0 = now_s();
	for (size_t i = 0; i < flows; i++)
		fl_ct_insert(&t, &q[i].key, q[i].hash, 1, (__u32)i, 1, FL_CT_ESTABLISHED, NOW);
	dt = now_s() - t0;
	printf("  insert into empty table                       %6.1f ns/op  %6.2f M/s  "
	       "(%llu evicted by bucket overflow at this load)\n", dt * 1e9 / (double)flows,
	       (double)flows / dt / 1e6, (unsigned long long)ctr.ct_evictions);

	shuffle(q, flows);
	bench_lookups(&t, q, flows);

	/* Fill the table with as many flows again, then measure new flows,
	 * nearly all of which evict. */
	for (size_t i = 0; i < flows; i++) {
		struct fl_flow_key k = q[i].key;

		k.sport ^= 0x5a5a;
		fl_ct_insert(&t, &k, fl_flow_hash(&k, 0x5eed), 1, 0, 1, FL_CT_ESTABLISHED, NOW);
	}
	ctr.ct_evictions = 0;
	t0 = now_s();
	for (size_t i = flows; i < flows + extra; i++)
		fl_ct_insert(&t, &q[i].key, q[i].hash, 1, (__u32)i, 1, FL_CT_ESTABLISHED, NOW + 1);
	dt = now_s() - t0;
	printf("  insert into full table                        %6.1f ns/op  %6.2f M/s  "
	       "(%.1f%% evicted; occupancy %.2f%%)\n", dt * 1e9 / (double)extra,
	       (double)extra / dt / 1e6, 100.0 * (double)ctr.ct_evictions / (double)extra,
	       100.0 * (double)ctr.ct_occupancy / cap);
	rc = 0;
out:
	if (q)
		munmap(q, (flows + extra) * sizeof(*q));
	if (mem)
		munmap(mem, len);
	return rc;
}

int main(int argc, char **argv)
{
	static const size_t def[] = { 1000000, 10000000 };
	unsigned load = 50;
	int rc = 0;

	if (argc > 2 && strcmp(argv[1], "-l") == 0) {
		load = (unsigned)strtoul(argv[2], NULL, 0);
		argc -= 2;
		argv += 2;
	}
	if (load < 1 || load > 100) {
		fprintf(stderr, "usage: conntrack_bench [-l load%%] [flows...]\n");
		return 2;
	}
	printf("record %zu bytes, bucket %u ways = %zu bytes of records and a %zu-byte "
	       "metadata line (tags, states, ages), header %zu bytes\n", sizeof(struct fl_ct_rec),
	       FL_CT_WAYS, FL_CT_WAYS * sizeof(struct fl_ct_rec), sizeof(struct fl_ct_meta),
	       sizeof(struct fl_ct_header));
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			rc |= run(strtoull(argv[i], NULL, 0), load);
	} else {
		for (size_t i = 0; i < sizeof(def) / sizeof(def[0]); i++)
			rc |= run(def[i], load);
	}
	return rc;
}
