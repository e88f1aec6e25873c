/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The conntrack stage: one table per worker, written only by that worker,
 * so no locks and no atomics on the fast path (DESIGN.md "Connection
 * tracking"). The table lives in memory the caller provides — a named
 * shared-memory file in fulcrum-dp — and holds no pointers, only positions,
 * so a restarted fulcrum-dp attaches to it and every flow keeps its backend.
 *
 * Layout: a 64-byte header, then buckets of eight lines (512 bytes, so a
 * lookup touches one 4 KiB page): a line of metadata and FL_CT_WAYS records
 * of 56 bytes side by side, 64 bytes a flow in all (issue 3's bound). Six of
 * the eight records straddle two lines; both are prefetched together
 * (fl_ct_prefetch_rec). The flow hash (the same fl_flow_hash value Maglev
 * indexes with) names the bucket and an 8-bit tag. The metadata line
 * holds, per way, the tag, the state and the time last seen: it alone tells
 * a miss, whether a way has expired and which way an insert takes (free,
 * else the oldest), so a lookup reads a record only for a matching tag, and
 * an insert into a full bucket reads one line and writes one record instead
 * of reading all eight records.
 *
 * Time is the caller's `now` in FL_CT_HZ ticks of CLOCK_MONOTONIC (see
 * fl_ct_now()), read once per burst. CLOCK_MONOTONIC keeps counting across a
 * process restart on the same boot, and the file does not survive a reboot,
 * so stored times stay meaningful for as long as the table exists.
 */
#ifndef FL_DP_CONNTRACK_H
#define FL_DP_CONNTRACK_H

#include <stddef.h>
#include <time.h>
#include <linux/types.h>
#include "flow.h"
#include "tables.h"
#include "counters.h"
#include "pkt.h"
#include "ct_bucket.h"

#define FL_CT_MAGIC 0x544346554c4654ULL	/* "TFLUFCT\0" in memory */
#define FL_CT_VERSION 3u	/* 2: a metadata line per bucket; 3: 56-byte records */
#define FL_CT_HZ 16u			/* ticks per second of last_seen */
#define FL_CT_ERR_LEN 256

/* The first line of the memory. Written once by fl_ct_init, magic last;
 * fl_ct_attach refuses memory whose header a build with another layout
 * wrote. */
struct fl_ct_header {
	__u64 magic;
	__u32 version;
	__u32 header_size;
	__u64 mem_size;		/* fl_ct_mem_size(capacity) */
	__u32 capacity;		/* records: nbuckets * FL_CT_WAYS */
	__u32 nbuckets;
	__u16 rec_size;
	__u16 ways;
	__u16 tick_hz;
	__u16 meta_size;
	__u8 pad1[24];
};

_Static_assert(sizeof(struct fl_ct_header) == 64, "conntrack header is one line");

/* Per-process settings: may change across a restart without touching the
 * table. Timeouts in seconds, indexed by enum fl_ct_state. */
struct fl_ct_params {
	__u32 timeout_s[FL_CT_STATE__MAX];
	__u32 new_flow_rate;	/* new flows recorded per second; 0 = no cap */
	__u32 new_flow_burst;	/* token bucket depth; 0 = one second's worth */
};

/* The worker's handle: process memory, pointing into the table. */
struct fl_ct {
	struct fl_ct_bucket *buckets;
	struct fl_worker_counters *ctr;
	__u32 nbuckets;
	__u32 capacity;
	__u32 used;			/* records in use */
	__u32 timeout[FL_CT_STATE__MAX];	/* ticks; FL_CT_NONE's is 0 */
	/* new-flow token bucket, in 1/FL_CT_HZ tokens so refill is exact */
	__u32 rate;
	__u32 last_refill;
	__u64 credit;
	__u64 credit_max;
	int primed;			/* last_refill has been set */
} __attribute__((aligned(64)));

/* Bytes of memory a table of `capacity` records needs (capacity rounded up
 * to whole buckets); 0 if capacity is 0 or too large. */
size_t fl_ct_mem_size(__u32 capacity);

/* Format [mem, mem + len) as an empty table of `capacity` records (rounded
 * up to a multiple of FL_CT_WAYS) and fill *t. mem must be 64-byte aligned
 * and len >= fl_ct_mem_size(capacity). 0 or -errno with a message. */
int fl_ct_init(void *mem, size_t len, __u32 capacity, const struct fl_ct_params *p,
	       struct fl_worker_counters *ctr, struct fl_ct *t, char *err, size_t errlen);

/* Adopt a table fl_ct_init formatted (maybe in an earlier process): checks
 * magic, version, layout and size, counts the records in use (dropping any
 * a crash left half-written) and fills *t. 0 or -errno with a message. */
int fl_ct_attach(void *mem, size_t len, const struct fl_ct_params *p,
		 struct fl_worker_counters *ctr, struct fl_ct *t, char *err, size_t errlen);

/* Default timeouts and no rate cap, as in the config's defaults. */
void fl_ct_params_default(struct fl_ct_params *p);

/* CLOCK_MONOTONIC in FL_CT_HZ ticks: call once per burst. Wraps after 8.5
 * years of uptime; every comparison is by difference, so wrapping is fine. */
static inline __u32 fl_ct_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u32)((__u64)ts.tv_sec * FL_CT_HZ +
		       (__u64)ts.tv_nsec / (1000000000u / FL_CT_HZ));
}

/* The bucket of a hash: multiply-shift uses its high bits, the tag its low
 * byte, so the two are close to independent. */
static inline __u32 fl_ct_bucket_of(const struct fl_ct *t, __u32 hash)
{
	return (__u32)(((__u64)hash * t->nbuckets) >> 32);
}

static inline struct fl_ct_bucket *fl_ct_bucket_for(const struct fl_ct *t, __u32 hash)
{
	return &t->buckets[fl_ct_bucket_of(t, hash)];
}

static inline struct fl_ct_meta *fl_ct_meta_at(const struct fl_ct *t, __u32 bucket)
{
	return &t->buckets[bucket].meta;
}

static inline struct fl_ct_rec *fl_ct_rec_at(const struct fl_ct *t, __u32 bucket, unsigned way)
{
	return &t->buckets[bucket].way[way];
}

/* The bucket, metadata line and way of a record (a pointer into the table). */
static inline struct fl_ct_bucket *fl_ct_bucket_holding(const struct fl_ct *t,
							 const struct fl_ct_rec *r)
{
	return &t->buckets[(size_t)((const char *)r - (const char *)t->buckets) /
			   sizeof(struct fl_ct_bucket)];
}

static inline struct fl_ct_meta *fl_ct_meta_of(const struct fl_ct *t, const struct fl_ct_rec *r)
{
	return &fl_ct_bucket_holding(t, r)->meta;
}

static inline unsigned fl_ct_way_of(const struct fl_ct *t, const struct fl_ct_rec *r)
{
	return (unsigned)(r - fl_ct_bucket_holding(t, r)->way);
}

/* A used record's state (enum fl_ct_state) and last-seen time, in its
 * bucket's metadata line. */
static inline __u8 *fl_ct_state_of(const struct fl_ct *t, const struct fl_ct_rec *r)
{
	return &fl_ct_meta_of(t, r)->state[fl_ct_way_of(t, r)];
}

static inline __u32 fl_ct_last_seen(const struct fl_ct *t, const struct fl_ct_rec *r)
{
	return fl_ct_meta_of(t, r)->last_seen[fl_ct_way_of(t, r)];
}


static inline int fl_ct_way_expired(const struct fl_ct *t, const struct fl_ct_meta *m, unsigned i,
				    __u32 now)
{
	return fl_ct_since(m->last_seen[i], now) > t->timeout[m->state[i]];
}

/*
 * A function that only prefetches must be inlined before gcc's IPA
 * pure-const pass sees it: that pass counts __builtin_prefetch as free of
 * side effects, finds such a function pure, and deletes every call to it
 * (gcc 12 did so to the pipeline's whole second prefetch stage).
 */
#define FL_PREFETCHER static inline __attribute__((always_inline))

/* Bring a bucket's metadata line into cache a few packets before its lookup. */
FL_PREFETCHER void fl_ct_prefetch(const struct fl_ct *t, __u32 hash)
{
	__builtin_prefetch(fl_ct_meta_at(t, fl_ct_bucket_of(t, hash)), 0, 3);
}

/* Both lines a record may straddle (its first and last byte). rw as
 * __builtin_prefetch's: 0 to read, 1 to write. */
#define fl_ct_prefetch_rec(r, rw)						\
	do {									\
		__builtin_prefetch((r), (rw), 3);				\
		__builtin_prefetch((const char *)(r) + sizeof(struct fl_ct_rec) - 1, (rw), 3); \
	} while (0)

/* Second stage, once bucket b's metadata line is in cache: prefetch the
 * records whose tag matches hash's, so the key compare does not wait
 * either. Returns whether any did (a likely hit). */
FL_PREFETCHER int fl_ct_prefetch_ways(const struct fl_ct_bucket *b, __u32 hash)
{
	__u64 m = fl_ct_match(fl_ct_tags(&b->meta), fl_ct_tag_of(hash));
	const int any = m != 0;

	for (; m; m &= m - 1)
		fl_ct_prefetch_rec(&b->way[__builtin_ctzll(m) >> 3], 0);
	return any;
}

/* Free way i of m. The tag goes first: a process killed halfway leaves a
 * free way with stale bytes, never a used way with a mixed record. */
static inline void fl_ct_release(struct fl_ct *t, struct fl_ct_meta *m, unsigned i)
{
	m->tags[i] = 0;
	t->used--;
	t->ctr->ct_occupancy = t->used;
}

/* The used way of bucket b holding key (whose flow hash is hash), or -1. */
static inline int fl_ct_find(const struct fl_ct_bucket *b, const struct fl_flow_key *key,
			     __u32 hash)
{
	__u64 m = fl_ct_match(fl_ct_tags(&b->meta), fl_ct_tag_of(hash));

	for (; m; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctzll(m) >> 3;

		if (fl_ct_key_eq(&b->way[i], key))
			return (int)i;
	}
	return -1;
}

/*
 * The way of bucket b (fl_ct_bucket_for(t, hash)) holding key, with its
 * last-seen time set to now, or -1. A record idle for longer than its
 * state's timeout is absent: it is freed here and counted in ct_expired
 * (and the lookup in ct_misses). The pipeline keeps the bucket from its
 * prefetch pass and reads the state and record at the way directly.
 */
static inline int fl_ct_lookup_way(struct fl_ct *t, struct fl_ct_bucket *b,
				   const struct fl_flow_key *key, __u32 hash, __u32 now)
{
	int i = fl_ct_find(b, key, hash);

	if (i < 0)
		goto miss;
	if (fl_ct_way_expired(t, &b->meta, (unsigned)i, now)) {
		fl_ct_release(t, &b->meta, (unsigned)i);
		t->ctr->ct_expired++;
		goto miss;
	}
	b->meta.last_seen[i] = now;
	t->ctr->ct_hits++;
	return i;
miss:
	t->ctr->ct_misses++;
	return -1;
}

/* fl_ct_lookup_way's record, or NULL: for callers that hold only the hash. */
static inline struct fl_ct_rec *fl_ct_lookup(struct fl_ct *t, const struct fl_flow_key *key,
					     __u32 hash, __u32 now)
{
	struct fl_ct_bucket *b = fl_ct_bucket_for(t, hash);
	int i = fl_ct_lookup_way(t, b, key, hash, now);

	return i < 0 ? NULL : &b->way[i];
}


/* Point a record whose backend no longer keeps flows (fl_backend_keeps_flows
 * failed) at the newly selected one. */
static inline void fl_ct_rebind(struct fl_ct *t, struct fl_ct_rec *r, __u32 backend_id, __u32 epoch)
{
	r->backend_id = backend_id;
	r->epoch = epoch;
	t->ctr->ct_reselected++;
}

/*
 * Whether a new flow may be recorded now: a token bucket of new_flow_rate
 * per second. Past it the caller forwards the flow by its hash without a
 * record (counted here in ct_rate_capped): a SYN flood then fills at most
 * rate * syn_timeout records and cannot push established flows out.
 */
static inline int fl_ct_admit(struct fl_ct *t, __u32 now)
{
	if (t->rate == 0)
		return 1;
	if (!t->primed) {
		t->primed = 1;
		t->last_refill = now;
		t->credit = t->credit_max;
	} else if (now != t->last_refill) {
		__u64 add = (__u64)fl_ct_since(t->last_refill, now) * t->rate;	/* < 2^63 */

		t->credit = add >= t->credit_max - t->credit ? t->credit_max : t->credit + add;
		t->last_refill = now;
	}
	if (t->credit >= FL_CT_HZ) {
		t->credit -= FL_CT_HZ;
		return 1;
	}
	t->ctr->ct_rate_capped++;
	return 0;
}

/*
 * The way of a full bucket a new record takes: the least recently seen of
 * the expired ones (*expired = 1), else the least recently seen of all
 * (*expired = 0); the lowest way on a tie. One pass over the metadata line,
 * without a branch (ages are random, so a branch per way mispredicts): each
 * way's sort key puts expiry above idle time above the way's rank from the
 * end, and the largest key wins.
 */
static inline unsigned fl_ct_oldest(const struct fl_ct *t, const struct fl_ct_meta *m, __u32 now,
				    int *expired)
{
	const unsigned last = FL_CT_WAYS - 1;
	__u64 best = 0;

	_Static_assert((FL_CT_WAYS & (FL_CT_WAYS - 1)) == 0, "the way fits in the key's low bits");
	for (unsigned i = 0; i < FL_CT_WAYS; i++) {
		__u32 idle = fl_ct_since(m->last_seen[i], now);	/* < 2^31 */
		__u64 key = ((__u64)(idle > t->timeout[m->state[i]]) << 31 | idle) << 3 | (last - i);

		best = key > best ? key : best;
	}
	*expired = (int)(best >> 34);
	return last - (unsigned)(best & last);
}

/* The way an insert into m would take now: the first free one, else
 * fl_ct_oldest's. Reads only the metadata line. */
static inline unsigned fl_ct_insert_way(const struct fl_ct *t, const struct fl_ct_meta *m,
					__u32 now, int *expired)
{
	__u64 free = fl_ct_match(fl_ct_tags(m), 0);

	*expired = 0;
	if (free)
		return (unsigned)__builtin_ctzll(free) >> 3;
	return fl_ct_oldest(t, m, now, expired);
}

/* Take the way of m a new record goes in, freeing (and counting, as
 * ct_expired or ct_evictions) the record it held. */
static inline unsigned fl_ct_victim(struct fl_ct *t, struct fl_ct_meta *m, __u32 now)
{
	int expired;
	unsigned i = fl_ct_insert_way(t, m, now, &expired);

	if (!m->tags[i])
		return i;
	if (expired)
		t->ctr->ct_expired++;
	else
		t->ctr->ct_evictions++;
	fl_ct_release(t, m, i);
	return i;
}

/*
 * Record a flow and return its record; never fails. An existing record of
 * the same key is overwritten. When the bucket is full the least recently
 * seen record of that bucket is evicted: eviction is per bucket, an
 * approximate global LRU, because finding the globally oldest record would
 * need a list threaded through the table (pointers or indices written on
 * every hit, two more lines per packet) or a scan; with 8 ways the victim
 * is the oldest of 8 random records: in expectation among the oldest ninth
 * of the table, and the metadata line that ranks them is one the insert
 * reads anyway.
 */
static inline struct fl_ct_rec *fl_ct_insert(struct fl_ct *t, const struct fl_flow_key *key,
					     __u32 hash, __u32 vip_id, __u32 backend_id,
					     __u32 epoch, enum fl_ct_state state, __u32 now)
{
	struct fl_ct_bucket *b = fl_ct_bucket_for(t, hash);
	struct fl_ct_meta *m = &b->meta;
	int found = fl_ct_find(b, key, hash);
	unsigned i = found >= 0 ? (unsigned)found : fl_ct_victim(t, m, now);
	struct fl_ct_rec *r = &b->way[i];

	if (found >= 0) {
		m->tags[i] = 0;	/* rewritten below; see fl_ct_release */
	} else {
		t->used++;
		t->ctr->ct_occupancy = t->used;
		t->ctr->new_flows++;
	}
	__asm__ volatile("" ::: "memory");	/* tag cleared before the body */
	*r = (struct fl_ct_rec){ .key = *key, .vip_id = vip_id, .backend_id = backend_id,
				 .epoch = epoch };
	m->state[i] = (__u8)state;
	m->last_seen[i] = now;
	__asm__ volatile("" ::: "memory");	/* body written before the tag */
	m->tags[i] = (__u8)fl_ct_tag_of(hash);
	return r;
}

#endif /* FL_DP_CONNTRACK_H */
