/* SPDX-License-Identifier: BSD-3-Clause */
/* The packet flow_hash.bpf.c reads and writes: a key and a seed in, the
 * hash out. Included by both sides of the parity test. */
#ifndef FL_TESTS_FLOW_HASH_IO_H
#define FL_TESTS_FLOW_HASH_IO_H

#include <linux/types.h>
#include "flow.h"

struct flow_hash_io {
	struct fl_flow_key key;
	__u64 seed;
	__u32 hash;	/* out */
	__u32 pad;
};

_Static_assert(sizeof(struct flow_hash_io) == 56, "flow_hash_io is 56 bytes");
_Static_assert(__builtin_offsetof(struct flow_hash_io, seed) == 40, "seed follows the key");
_Static_assert(__builtin_offsetof(struct flow_hash_io, hash) == 48, "hash follows the seed");

#endif /* FL_TESTS_FLOW_HASH_IO_H */
