/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Weighted Maglev lookup tables (Eisenbud et al., NSDI'16, section 3.4).
 * Built only by fulcrum-cp; the data planes only index them:
 * backend_id = table[flow_hash % m].
 */
#ifndef FL_MAGLEV_H
#define FL_MAGLEV_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "tables.h"

#define FL_MAGLEV_DEFAULT_M 65537u
/* Largest accepted table size: the largest prime below 2^24, which bounds a
 * ring at 64 MiB. */
#define FL_MAGLEV_MAX_M 16777213u
#define FL_MAGLEV_MAX_WEIGHT 65535u

struct fl_maglev_backend {
	struct fl_backend_key key;	/* identity: orders and permutes */
	__u32 id;			/* the value written into the table */
	__u32 weight;			/* 0 = not in the table */
};

/* Whether n is prime. */
bool fl_is_prime(__u32 n);

/*
 * Fills table[0..m-1] with backend ids. Promise: the result depends only on
 * the set of (key, id, weight) triples and m, not on their order in the
 * array, the process or the machine. Each backend with weight w gets close
 * to m * w / sum(w) entries. With no backend of non-zero weight every entry
 * is FL_BACKEND_NONE.
 * Returns 0, or -EINVAL (m not prime, m < 2 or > FL_MAGLEV_MAX_M, a weight
 * over FL_MAGLEV_MAX_WEIGHT, two backends with the same key, even of weight
 * 0, a key not in canonical form: family 4 or 6, zero padding and, for IPv4,
 * zero upper address bytes; the id FL_BACKEND_NONE) with a message in err,
 * or -ENOMEM. On error the table is left untouched.
 */
int fl_maglev_build(const struct fl_maglev_backend *backends, size_t n, __u32 m,
		    __u32 *table, char *err, size_t errlen);

#endif /* FL_MAGLEV_H */
