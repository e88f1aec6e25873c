// SPDX-License-Identifier: BSD-3-Clause
/*
 * Maglev table build time, against the NSDI'16 paper's figures (1.8 ms for
 * 1000 backends at M = 65537, 22.9 ms at M = 655373), then two weighted sets:
 * many turn classes, and one heavy backend among light ones.
 * Run: build/bench/maglev_bench [runs]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "maglev.h"

#define DEFAULT_RUNS 21

enum bench_weights {
	WEIGHTS_EQUAL,		/* as in the paper */
	WEIGHTS_DISTINCT,	/* 1..N: one turn class per backend */
	WEIGHTS_SKEWED,		/* one at the maximum, the rest at 1 */
};

struct bench_case {
	size_t n;
	__u32 m;
	enum bench_weights weights;
};

static const struct bench_case bench_cases[] = {
	{ 1000, 65537, WEIGHTS_EQUAL },
	{ 1000, 655373, WEIGHTS_EQUAL },
	{ 100, 65537, WEIGHTS_EQUAL },
	{ 1000, 65537, WEIGHTS_DISTINCT },
	{ 1000, 65537, WEIGHTS_SKEWED },
};

static const char *const weights_label[] = {
	[WEIGHTS_EQUAL] = "",
	[WEIGHTS_DISTINCT] = " weights 1..N",
	[WEIGHTS_SKEWED] = " weights 65535,1,1,...",
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Backends 10.0.0.1, 10.0.0.2, ... port 80. */
static void make_backends(struct fl_maglev_backend *b, size_t n, enum bench_weights weights)
{
	memset(b, 0, n * sizeof(*b));
	for (size_t i = 0; i < n; i++) {
		b[i].key.addr.v4 = htonl(0x0a000001u + (__u32)i);
		b[i].key.port = htons(80);
		b[i].key.family = FL_AF_INET;
		b[i].id = (__u32)i;
		b[i].weight = weights == WEIGHTS_DISTINCT ? (__u32)i + 1 : 1;
	}
	if (weights == WEIGHTS_SKEWED)
		b[0].weight = FL_MAGLEV_MAX_WEIGHT;
}

static int run_case(const struct bench_case *bc, int runs)
{
	struct fl_maglev_backend *b = calloc(bc->n, sizeof(*b));
	__u32 *table = calloc(bc->m, sizeof(*table));
	double *ms = calloc((size_t)runs, sizeof(*ms));
	char err[256];
	int ret = -ENOMEM;

	if (!b || !table || !ms)
		goto out;
	make_backends(b, bc->n, bc->weights);
	/* One untimed build faults the table's pages in. */
	ret = fl_maglev_build(b, bc->n, bc->m, table, err, sizeof(err));
	for (int r = 0; r < runs && ret == 0; r++) {
		double t0 = now_ms();

		ret = fl_maglev_build(b, bc->n, bc->m, table, err, sizeof(err));
		ms[r] = now_ms() - t0;
	}
	if (ret) {
		fprintf(stderr, "maglev build N=%zu M=%u: %s\n", bc->n, bc->m, err);
		goto out;
	}
	qsort(ms, (size_t)runs, sizeof(*ms), cmp_double);
	printf("maglev build N=%zu M=%u%s: median %.2f ms, min %.2f ms (%d runs)\n",
	       bc->n, bc->m, weights_label[bc->weights], ms[runs / 2], ms[0], runs);
out:
	free(ms);
	free(table);
	free(b);
	return ret;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : DEFAULT_RUNS;
	int status = 0;

	if (runs < 1) {
		fprintf(stderr, "usage: %s [runs >= 1]\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < sizeof(bench_cases) / sizeof(bench_cases[0]); i++)
		if (run_case(&bench_cases[i], runs))
			status = 1;
	return status;
}
