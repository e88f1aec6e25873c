/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The conntrack table's slow path: sizing, formatting fresh memory and
 * adopting memory an earlier process formatted. The per-packet functions
 * are static inline in conntrack.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "conntrack.h"

/* Buckets for capacity records, 0 if none or more than 32 bits of records. */
static __u32 buckets_for(__u32 capacity)
{
	__u64 n = ((__u64)capacity + FL_CT_WAYS - 1) / FL_CT_WAYS;

	if (n == 0 || n * FL_CT_WAYS > UINT32_MAX)
		return 0;
	return (__u32)n;
}

static size_t size_for_buckets(__u32 nbuckets)
{
	return sizeof(struct fl_ct_header) + (size_t)nbuckets * sizeof(struct fl_ct_bucket);
}

/* The handle's view of the buckets after the header. */
static void set_buckets(struct fl_ct *t, struct fl_ct_header *h, __u32 nbuckets)
{
	t->buckets = (struct fl_ct_bucket *)(h + 1);
	t->nbuckets = nbuckets;
	t->capacity = nbuckets * FL_CT_WAYS;
}

size_t fl_ct_mem_size(__u32 capacity)
{
	__u32 n = buckets_for(capacity);

	return n ? size_for_buckets(n) : 0;
}

void fl_ct_params_default(struct fl_ct_params *p)
{
	/* The config's defaults (common/config.c). */
	*p = (struct fl_ct_params){
		.timeout_s = {
			[FL_CT_SYN] = 5,
			[FL_CT_ESTABLISHED] = 300,
			[FL_CT_CLOSING] = 10,
			[FL_CT_UDP] = 30,
		},
	};
}

/* Per-process half of a handle: timeouts and the token bucket. Timeouts are
 * capped at 2^31 - 1 ticks (4 years), the longest idle time fl_ct_since can
 * tell from a stale clock. */
static int set_params(struct fl_ct *t, const struct fl_ct_params *p, char *err, size_t errlen)
{
	__u64 burst;

	if (!p)
		return fl_err(err, errlen, -EINVAL, "conntrack: no parameters");
	for (unsigned s = FL_CT_SYN; s < FL_CT_STATE__MAX; s++) {
		__u64 ticks = (__u64)p->timeout_s[s] * FL_CT_HZ;

		if (p->timeout_s[s] == 0)
			return fl_err(err, errlen, -EINVAL, "conntrack: timeout of state %u is 0", s);
		t->timeout[s] = ticks > INT32_MAX ? INT32_MAX : (__u32)ticks;
	}
	t->timeout[FL_CT_NONE] = 0;
	burst = p->new_flow_burst ? p->new_flow_burst : p->new_flow_rate;
	t->rate = p->new_flow_rate;
	t->credit_max = burst * FL_CT_HZ;
	t->credit = 0;
	t->last_refill = 0;
	t->primed = 0;
	return 0;
}

int fl_ct_init(void *mem, size_t len, __u32 capacity, const struct fl_ct_params *p,
	       struct fl_worker_counters *ctr, struct fl_ct *t, char *err, size_t errlen)
{
	struct fl_ct_header *h = mem;
	__u32 nb = buckets_for(capacity);
	int rc;

	if (!mem || !ctr || !t)
		return fl_err(err, errlen, -EINVAL, "conntrack: no memory, counters or handle");
	if (nb == 0)
		return fl_err(err, errlen, -EINVAL, "conntrack: capacity %u out of range 1..%u",
			    capacity, UINT32_MAX - FL_CT_WAYS + 1);
	if ((uintptr_t)mem % 64)
		return fl_err(err, errlen, -EINVAL, "conntrack: memory not 64-byte aligned");
	if (len < size_for_buckets(nb))
		return fl_err(err, errlen, -ENOSPC, "conntrack: %zu bytes, %u records need %zu",
			    len, capacity, size_for_buckets(nb));
	memset(t, 0, sizeof(*t));
	rc = set_params(t, p, err, errlen);
	if (rc)
		return rc;

	/* Magic last, so memory a crash left half-formatted is refused by
	 * attach and formatted again. A crashed process leaves every store it
	 * executed in the shared pages, so only the compiler's order matters. */
	h->magic = 0;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	memset(h + 1, 0, size_for_buckets(nb) - sizeof(*h));
	*h = (struct fl_ct_header){
		.version = FL_CT_VERSION,
		.header_size = sizeof(*h),
		.mem_size = size_for_buckets(nb),
		.capacity = nb * FL_CT_WAYS,
		.nbuckets = nb,
		.rec_size = sizeof(struct fl_ct_rec),
		.ways = FL_CT_WAYS,
		.tick_hz = FL_CT_HZ,
		.meta_size = sizeof(struct fl_ct_meta),
	};
	__atomic_store_n(&h->magic, FL_CT_MAGIC, __ATOMIC_RELEASE);

	set_buckets(t, h, nb);
	t->ctr = ctr;
	ctr->ct_occupancy = 0;
	return 0;
}

/* Every field a build with another layout or unit would disagree on. */
static int check_header(const struct fl_ct_header *h, size_t len, char *err, size_t errlen)
{
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != FL_CT_MAGIC)
		return fl_err(err, errlen, -EINVAL, "conntrack: bad magic %#llx (not a table, or "
			    "formatting never finished)", (unsigned long long)h->magic);
	if (h->version != FL_CT_VERSION)
		return fl_err(err, errlen, -EPROTO, "conntrack: table version %u, this build reads %u",
			    h->version, FL_CT_VERSION);
	if (h->header_size != sizeof(*h) || h->rec_size != sizeof(struct fl_ct_rec) ||
	    h->meta_size != sizeof(struct fl_ct_meta) || h->ways != FL_CT_WAYS ||
	    h->tick_hz != FL_CT_HZ)
		return fl_err(err, errlen, -EPROTO, "conntrack: layout header %u rec %u meta %u "
			    "ways %u hz %u, this build has %zu %zu %zu %u %u", h->header_size,
			    h->rec_size, h->meta_size, h->ways, h->tick_hz, sizeof(*h),
			    sizeof(struct fl_ct_rec), sizeof(struct fl_ct_meta), FL_CT_WAYS, FL_CT_HZ);
	if (h->nbuckets == 0 || buckets_for(h->capacity) != h->nbuckets ||
	    h->capacity != h->nbuckets * FL_CT_WAYS ||
	    h->mem_size != size_for_buckets(h->nbuckets))
		return fl_err(err, errlen, -EINVAL, "conntrack: inconsistent sizes: capacity %u, "
			    "%u buckets, %llu bytes", h->capacity, h->nbuckets,
			    (unsigned long long)h->mem_size);
	if (len < h->mem_size)
		return fl_err(err, errlen, -EINVAL, "conntrack: memory is %zu bytes, the table %llu",
			    len, (unsigned long long)h->mem_size);
	return 0;
}

/* Count the used ways and free those no finished insert wrote: a used way
 * always has a valid state and family (fl_ct_insert writes the tag last). */
static __u32 recount(struct fl_ct *t)
{
	__u32 used = 0;

	for (__u32 n = 0; n < t->nbuckets; n++) {
		struct fl_ct_meta *m = fl_ct_meta_at(t, n);

		for (unsigned i = 0; i < FL_CT_WAYS; i++) {
			const struct fl_ct_rec *r = fl_ct_rec_at(t, n, i);

			if (!m->tags[i])
				continue;
			if (m->state[i] == FL_CT_NONE || m->state[i] >= FL_CT_STATE__MAX ||
			    (r->key.family != FL_AF_INET && r->key.family != FL_AF_INET6))
				m->tags[i] = 0;
			else
				used++;
		}
	}
	return used;
}

int fl_ct_attach(void *mem, size_t len, const struct fl_ct_params *p,
		 struct fl_worker_counters *ctr, struct fl_ct *t, char *err, size_t errlen)
{
	struct fl_ct_header *h = mem;
	int rc;

	if (!mem || !ctr || !t)
		return fl_err(err, errlen, -EINVAL, "conntrack: no memory, counters or handle");
	if ((uintptr_t)mem % 64)
		return fl_err(err, errlen, -EINVAL, "conntrack: memory not 64-byte aligned");
	if (len < sizeof(*h))
		return fl_err(err, errlen, -EINVAL, "conntrack: %zu bytes, smaller than a header", len);
	rc = check_header(h, len, err, errlen);
	if (rc)
		return rc;
	memset(t, 0, sizeof(*t));
	rc = set_params(t, p, err, errlen);
	if (rc)
		return rc;
	set_buckets(t, h, h->nbuckets);
	t->used = recount(t);
	t->ctr = ctr;
	ctr->ct_occupancy = t->used;
	return 0;
}
