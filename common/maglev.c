// SPDX-License-Identifier: BSD-3-Clause
/*
 * Weighted Maglev table builder (Eisenbud et al., NSDI'16, section 3.4).
 *
 * Each backend walks its own permutation of the slots, offset + j * skip
 * (mod m), and in its turn takes the first slot of that walk still free.
 * Weights set how often a backend takes a turn: every round each weight
 * class earns its weight in credit and takes a turn per wmax credit, so the
 * heaviest backends move every round and a backend of weight w moves in
 * about w / wmax of the rounds.
 *
 * Everything the table depends on is derived from the key bytes: the walks
 * (two fixed hashes of the key) and the turn order (weight, then key), so
 * every instance in a fleet builds the same table from the same set.
 *
 * Speed: probing costs about m / (free slots) per turn, so the last few
 * hundred slots would take a third of the build. Once fewer than about
 * sqrt(m) slots are free, a turn instead scans the free slots for the one
 * nearest along the walk: step k reaches slot f for k = (f - pos) / skip
 * (mod m). Both find the same slot; only the cost differs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "addr.h"
#include "maglev.h"

/* Seeds of the two key hashes. Changing either changes every table in the
 * fleet: tests/unit/test_maglev.c pins them with a golden table. */
#define MAGLEV_SEED_OFFSET 0x6d61676c65763031ULL	/* "maglev01" */
#define MAGLEV_SEED_SKIP 0x6d61676c65763032ULL		/* "maglev02" */

/* "[" IPv6 "]:" port, with room to spare. */
#define MAGLEV_KEY_TEXT 64

/* A backend's walk through the slots; pos is the next slot it will try. */
struct maglev_walk {
	__u32 pos;
	__u32 skip;
	__u32 inv_skip;		/* 1 / skip mod m; 0 until its first scan */
	__u32 pad;
};

/* Backends of one weight take their turns together, in key order. */
struct maglev_class {
	size_t start;
	size_t end;
	__u32 weight;
	__u32 credit;
};

struct maglev_build {
	const struct fl_maglev_backend **sorted;
	struct maglev_walk *walk;
	__u32 *ids;
	struct maglev_class *classes;
	__u64 *filled;		/* one bit a slot: probes stay in cache */
	__u32 *free_slots;	/* the last ones, in no order */
	size_t n_active;
	size_t n_classes;
	__u32 wmax;
	__u32 scan_below;	/* this many free slots or fewer: scan */
	__u32 n_free;
	__u64 barrett;		/* floor(2^64 / m) */
};

static __u64 mulmod(__u64 a, __u64 b, __u64 n)
{
	return (a * b) % n;
}

static __u64 powmod(__u64 a, __u64 e, __u64 n)
{
	__u64 r = 1;

	a %= n;
	while (e) {
		if (e & 1)
			r = mulmod(r, a, n);
		a = mulmod(a, a, n);
		e >>= 1;
	}
	return r;
}

bool fl_is_prime(__u32 n)
{
	/* Miller-Rabin with bases 2, 7 and 61 is exact below 4,759,123,141. */
	static const __u32 bases[] = { 2, 7, 61 };
	__u32 d = n - 1;
	unsigned s = 0;

	if (n < 2)
		return false;
	if (n < 4)
		return true;
	if (n % 2 == 0)
		return false;
	while (d % 2 == 0) {
		d /= 2;
		s++;
	}
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		__u64 x;
		unsigned r;

		if (bases[i] % n == 0)
			continue;
		x = powmod(bases[i], d, n);
		if (x == 1 || x == n - 1)
			continue;
		for (r = 1; r < s; r++) {
			x = mulmod(x, x, n);
			if (x == n - 1)
				break;
		}
		if (r == s)
			return false;
	}
	return true;
}

/* The key as three little-endian words, padding included (zero by
 * contract): the same on every host flow.h admits. */
static void key_words(const struct fl_backend_key *key, __u64 w[3])
{
	const __u8 *p = (const __u8 *)key;
	__u32 tail;

	_Static_assert(sizeof(*key) == 20, "key_words reads 20 bytes");
	memcpy(&w[0], p, 8);
	memcpy(&w[1], p + 8, 8);
	memcpy(&tail, p + 16, 4);
	w[2] = tail;
}

/* Only murmur3's finaliser from flow.h, a fixed function, not the flow
 * hash's rounds: retuning the flow hash must not move every ring entry.
 * The golden tables in tests/unit/test_maglev.c pin the result. */
static __u64 key_hash(const __u64 w[3], __u64 seed)
{
	__u64 h = seed;

	for (size_t i = 0; i < 3; i++)
		h = fl_hash_finish(h ^ w[i]);
	return h;
}

/* memcmp order of the keys, without a libc call per comparison. */
static int key_order(const struct fl_backend_key *x, const struct fl_backend_key *y)
{
	__u64 a[3], b[3];

	key_words(x, a);
	key_words(y, b);
	for (size_t i = 0; i < 3; i++) {
		/* Byte order decides: compare the words as big-endian. */
		__u64 u = __builtin_bswap64(a[i]), v = __builtin_bswap64(b[i]);

		if (u != v)
			return u < v ? -1 : 1;
	}
	return 0;
}

static int cmp_key(const void *a, const void *b)
{
	const struct fl_maglev_backend *x = *(const struct fl_maglev_backend *const *)a;
	const struct fl_maglev_backend *y = *(const struct fl_maglev_backend *const *)b;

	return key_order(&x->key, &y->key);
}

static int cmp_weight_key(const void *a, const void *b)
{
	const struct fl_maglev_backend *x = *(const struct fl_maglev_backend *const *)a;
	const struct fl_maglev_backend *y = *(const struct fl_maglev_backend *const *)b;

	if (x->weight != y->weight)
		return x->weight > y->weight ? -1 : 1;
	return key_order(&x->key, &y->key);
}

static void format_key(const struct fl_backend_key *key, char *buf, size_t len)
{
	fl_endpoint_format(&key->addr, key->family, ntohs(key->port), buf, len);
}

/* A key in canonical form: a known family, zero padding, and for IPv4 zero
 * upper address bytes. Anything else would build another table from what
 * looks like the same backend, and instances would disagree silently. */
static bool key_canonical(const struct fl_backend_key *key)
{
	if (key->pad != 0)
		return false;
	if (key->family == FL_AF_INET6)
		return true;
	return key->family == FL_AF_INET &&
	       (key->addr.v6[1] | key->addr.v6[2] | key->addr.v6[3]) == 0;
}

static int check_input(const struct fl_maglev_backend *backends, size_t n, __u32 m,
		       char *err, size_t errlen)
{
	if (m > FL_MAGLEV_MAX_M) {
		snprintf(err, errlen, "maglev: table size %u is over the maximum %u",
			 m, FL_MAGLEV_MAX_M);
		return -EINVAL;
	}
	if (!fl_is_prime(m)) {
		snprintf(err, errlen, "maglev: table size %u is not prime", m);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (backends[i].weight > FL_MAGLEV_MAX_WEIGHT) {
			snprintf(err, errlen, "maglev: backend %zu weight %u is over %u",
				 i, backends[i].weight, FL_MAGLEV_MAX_WEIGHT);
			return -EINVAL;
		}
		if (!key_canonical(&backends[i].key)) {
			snprintf(err, errlen, "maglev: backend %zu key is not canonical "
				 "(family 4 or 6, zero padding and unused address bytes)", i);
			return -EINVAL;
		}
		if (backends[i].id == FL_BACKEND_NONE) {
			snprintf(err, errlen, "maglev: backend %zu has the reserved id %#x",
				 i, FL_BACKEND_NONE);
			return -EINVAL;
		}
	}
	return 0;
}

/* Orders the backends, rejects duplicate keys and keeps those of non-zero
 * weight in b->sorted[0..n_active), heaviest class first. */
static int order_backends(struct maglev_build *b, const struct fl_maglev_backend *backends,
			  size_t n, char *err, size_t errlen)
{
	const struct fl_maglev_backend **s = b->sorted;
	bool uniform = true;
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		s[i] = &backends[i];
	qsort(s, n, sizeof(*s), cmp_key);
	for (size_t i = 1; i < n; i++) {
		ptrdiff_t x = s[i - 1] - backends, y = s[i] - backends;
		char key[MAGLEV_KEY_TEXT];

		if (cmp_key(&s[i - 1], &s[i]) != 0)
			continue;
		format_key(&s[i]->key, key, sizeof(key));
		snprintf(err, errlen, "maglev: duplicate backend %s (backends %td and %td)",
			 key, x < y ? x : y, x < y ? y : x);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i]->weight == 0)
			continue;
		if (k > 0 && s[i]->weight != s[k - 1]->weight)
			uniform = false;
		s[k++] = s[i];
	}
	/* Key order is already weight-then-key order when weights are equal. */
	if (!uniform)
		qsort(s, k, sizeof(*s), cmp_weight_key);
	b->n_active = k;
	return 0;
}

/* Derives each backend's walk from its key and groups the backends into
 * weight classes; b->sorted must be in cmp_weight_key order. */
static void prepare(struct maglev_build *b, __u32 m)
{
	struct maglev_class *c = NULL;

	b->wmax = b->sorted[0]->weight;
	for (size_t i = 0; i < b->n_active; i++) {
		const struct fl_maglev_backend *be = b->sorted[i];
		__u64 w[3];

		key_words(&be->key, w);
		b->walk[i].pos = (__u32)(key_hash(w, MAGLEV_SEED_OFFSET) % m);
		b->walk[i].skip = (__u32)(key_hash(w, MAGLEV_SEED_SKIP) % (m - 1)) + 1;
		b->ids[i] = be->id;
		if (!c || c->weight != be->weight) {
			c = &b->classes[b->n_classes++];
			c->start = i;
			c->weight = be->weight;
			/* Half a turn in hand centres each class's rounding
			 * error on zero instead of always rounding down. */
			c->credit = b->wmax / 2;
		}
		c->end = i + 1;
	}
}

static inline __u32 add_mod(__u32 a, __u32 b, __u32 m)
{
	return a >= m - b ? a - (m - b) : a + b;
}

/* x mod m for x < 2^48 without a division (Barrett): the estimated
 * quotient is at most one short. */
static inline __u32 mod_m(__u64 x, __u64 barrett, __u32 m)
{
	__u64 q = (__u64)(((unsigned __int128)x * barrett) >> 64);
	__u64 r = x - q * m;

	return (__u32)(r >= m ? r - m : r);
}

static __u32 mod_inverse(__u32 a, __u32 m)
{
	__s64 t = 0, next_t = 1, r = m, next_r = a;

	while (next_r) {
		__s64 q = r / next_r, tmp;

		tmp = t - q * next_t;
		t = next_t;
		next_t = tmp;
		tmp = r - q * next_r;
		r = next_r;
		next_r = tmp;
	}
	return (__u32)(t < 0 ? t + m : t);
}

/* The first free slot of a walk, which it takes; one exists while the table
 * is not full, as m is prime and 0 < skip < m make the walk visit every slot. */
static inline __u32 take_probe(__u64 *filled, struct maglev_walk *w, __u32 m)
{
	__u32 pos = w->pos;

	while (filled[pos >> 6] & (1ULL << (pos & 63)))
		pos = add_mod(pos, w->skip, m);
	filled[pos >> 6] |= 1ULL << (pos & 63);
	w->pos = add_mod(pos, w->skip, m);
	return pos;
}

/* The same slot take_probe would find, found among the few free ones. */
static __u32 take_scan(struct maglev_build *b, struct maglev_walk *w, __u32 m)
{
	__u32 best_step = UINT32_MAX, best = 0, slot;

	if (!w->inv_skip)
		w->inv_skip = mod_inverse(w->skip, m);
	for (__u32 j = 0; j < b->n_free; j++) {
		__u32 f = b->free_slots[j];
		__u32 dist = f >= w->pos ? f - w->pos : f + (m - w->pos);
		__u32 step = mod_m((__u64)dist * w->inv_skip, b->barrett, m);

		if (step < best_step) {
			best_step = step;
			best = j;
		}
	}
	slot = b->free_slots[best];
	b->free_slots[best] = b->free_slots[--b->n_free];
	w->pos = add_mod(slot, w->skip, m);
	return slot;
}

static void collect_free(struct maglev_build *b, __u32 m)
{
	b->n_free = 0;
	for (__u32 word = 0; word <= (m - 1) / 64; word++) {
		__u64 bits = ~b->filled[word];

		while (bits) {
			__u32 slot = word * 64 + (__u32)__builtin_ctzll(bits);

			if (slot >= m)
				break;
			b->free_slots[b->n_free++] = slot;
			bits &= bits - 1;
		}
	}
}

static void fill(struct maglev_build *b, __u32 m, __u32 *table)
{
	__u32 left = m;

	for (;;) {
		for (size_t k = 0; k < b->n_classes; k++) {
			struct maglev_class *c = &b->classes[k];

			c->credit += c->weight;
			if (c->credit < b->wmax)
				continue;
			c->credit -= b->wmax;
			for (size_t i = c->start; i < c->end; i++) {
				__u32 slot = left > b->scan_below ?
					     take_probe(b->filled, &b->walk[i], m) :
					     take_scan(b, &b->walk[i], m);

				table[slot] = b->ids[i];
				if (--left == 0)
					return;
				if (left == b->scan_below)
					collect_free(b, m);
			}
		}
	}
}

static void fill_none(__u32 *table, __u32 m)
{
	for (__u32 i = 0; i < m; i++)
		table[i] = FL_BACKEND_NONE;
}

static __u32 isqrt(__u32 x)
{
	__u32 r = x, y = x / 2 + (x & 1);

	while (y < r) {
		r = y;
		y = (r + x / r) / 2;
	}
	return r;
}

static int alloc_build(struct maglev_build *b, size_t n, __u32 m)
{
	/* Probing costs m / free per turn, scanning free: they cross near
	 * sqrt(m). Measured, sqrt(m) / 2 .. 2 sqrt(m) build alike and
	 * 8 sqrt(m) is 20% slower. Below m, so collect_free runs once. */
	b->scan_below = isqrt(m);
	b->barrett = UINT64_MAX / m;
	b->sorted = calloc(n, sizeof(*b->sorted));
	b->walk = calloc(n, sizeof(*b->walk));
	b->ids = calloc(n, sizeof(*b->ids));
	b->classes = calloc(n, sizeof(*b->classes));
	b->filled = calloc(m / 64 + 1, sizeof(*b->filled));
	b->free_slots = calloc(b->scan_below, sizeof(*b->free_slots));
	if (!b->sorted || !b->walk || !b->ids || !b->classes || !b->filled ||
	    !b->free_slots)
		return -ENOMEM;
	return 0;
}

static void free_build(struct maglev_build *b)
{
	free(b->free_slots);
	free(b->filled);
	free(b->classes);
	free(b->ids);
	free(b->walk);
	free(b->sorted);
}

int fl_maglev_build(const struct fl_maglev_backend *backends, size_t n, __u32 m,
		    __u32 *table, char *err, size_t errlen)
{
	struct maglev_build b = { 0 };
	int ret;

	if (!err)
		errlen = 0;
	if (errlen)
		err[0] = '\0';
	if (!table || (n && !backends)) {
		snprintf(err, errlen, "maglev: no %s", table ? "backends" : "table");
		return -EINVAL;
	}
	ret = check_input(backends, n, m, err, errlen);
	if (ret)
		return ret;
	if (n == 0) {
		fill_none(table, m);
		return 0;
	}
	ret = alloc_build(&b, n, m);
	if (ret) {
		snprintf(err, errlen, "maglev: out of memory for %zu backends, size %u", n, m);
		goto out;
	}
	ret = order_backends(&b, backends, n, err, errlen);
	if (ret)
		goto out;
	if (b.n_active == 0) {
		fill_none(table, m);
		goto out;
	}
	prepare(&b, m);
	fill(&b, m, table);
out:
	free_build(&b);
	return ret;
}
