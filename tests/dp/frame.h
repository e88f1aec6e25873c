/* SPDX-License-Identifier: BSD-3-Clause */
/* A frame built byte by byte in network order, for the stage tests. */
#ifndef FL_TESTS_FRAME_H
#define FL_TESTS_FRAME_H

#include <stdint.h>
#include <string.h>

#define FRAME_MAX 2048u

struct frame {
	uint8_t b[FRAME_MAX];
	uint32_t len;
};

static inline void put8(struct frame *f, unsigned v)
{
	f->b[f->len++] = (uint8_t)v;
}

static inline void put16(struct frame *f, unsigned v)
{
	put8(f, v >> 8);
	put8(f, v);
}

static inline void put32(struct frame *f, uint32_t v)
{
	put16(f, v >> 16);
	put16(f, v & 0xffff);
}

static inline void putn(struct frame *f, const uint8_t *src, uint32_t n)
{
	memcpy(f->b + f->len, src, n);
	f->len += n;
}

static inline void fill(struct frame *f, uint32_t n, unsigned v)
{
	while (n--)
		put8(f, v);
}

#endif /* FL_TESTS_FRAME_H */
