/* SPDX-License-Identifier: BSD-3-Clause */
/* What the benchmarks share: a fixed random stream, a clock, big tables. */
#ifndef FL_BENCH_H
#define FL_BENCH_H

#include <stddef.h>
#include <time.h>
#include <sys/mman.h>

#include "rng.h"

static struct rng bench_rng_state = { 42 };

static inline __u64 rng(void)
{
	return rng_next(&bench_rng_state);
}

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Anonymous memory on transparent huge pages where the kernel allows, as
 * the data plane's tables sit on hugetlbfs in production. */
static inline void *big_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, len, MADV_HUGEPAGE);
	return p;
}

#endif /* FL_BENCH_H */
