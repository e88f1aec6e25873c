/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker pipeline: parse, classify, conntrack, select, encapsulate, a
 * burst at a time on one snapshot of the tables (dp/pipeline.h).
 *
 * Passes over a burst, so that each packet's memory is fetched while the
 * others are worked on: pass 1 parses every frame and settles what is not a
 * VIP's (kernel, drop); pass 2 hashes the rest and prefetches their buckets'
 * metadata lines; pass 3 reads those lines and prefetches the record a hit
 * will read, or the ring entry and the record a miss will write; pass 4
 * looks up, selects and encapsulates, mostly from cache.
 *
 * Nothing read from shared memory is trusted as an index: a backend id, a
 * ring range or a VIP id out of bounds counts as no backend, never as an
 * access outside the mapping.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"
#include "pipeline.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* What pass 1 leaves for the later passes, per frame. */
enum todo { TODO_DONE, TODO_FLOW, TODO_ICMP };

struct burst {
	const struct fl_tables *t;
	__u32 backend_limit;		/* ids below it are in range */
	const struct fl_vip *last_vip;	/* the VIP of the previous packet */
	__u32 last_vip_id;
	const struct fl_vip *vip[FL_BURST_MAX];
	__u32 vip_id[FL_BURST_MAX];
	struct fl_ct_bucket *bucket[FL_BURST_MAX];	/* from the hash pass on */
	__u8 todo[FL_BURST_MAX];
};

static inline void verdict_drop(struct fl_worker *w, struct fl_buf *b, enum fl_drop_reason r)
{
	b->verdict = FL_VERDICT_DROP;
	b->drop_reason = (__u8)r;
	w->ctr->drops[r]++;
}

static inline void verdict_kernel(struct fl_worker *w, struct fl_buf *b)
{
	b->verdict = FL_VERDICT_KERNEL;
	w->ctr->exception_packets++;
}

static inline const struct fl_backend *backend_at(const struct burst *s, __u32 id)
{
	return likely(id < s->backend_limit) ? &s->t->backends[id] : NULL;
}

/* Maglev: the VIP's ring entry for hash, or FL_BACKEND_NONE (an empty ring,
 * or a ring or id out of the slot's bounds). */
static inline __u32 maglev_pick(const struct burst *s, const struct fl_vip *v, __u32 hash)
{
	__u32 id = fl_tables_pick(s->t, v, hash);

	return likely(id < s->backend_limit) ? id : FL_BACKEND_NONE;
}

/*
 * Fragments carry no ports past the first, so they cannot be matched to a
 * flow, and the pipeline does not reassemble. Those addressed to a VIP are
 * dropped and counted (ip_fragment): the kernel has no listener there and
 * would only hold them in its reassembly queue. The rest are the host's.
 * A linear scan: fragments are rare and must not cost the hash index a
 * wildcard entry. Returns the VIP id, or FL_BACKEND_NONE-like ~0u.
 */
static __u32 fragment_vip(const struct fl_worker *w, const struct fl_tables *t,
			  const struct fl_flow_key *k)
{
	__u32 n = t->hdr->vip_count;

	if (n > w->max_vips)
		n = w->max_vips;
	for (__u32 i = 0; i < n; i++) {
		const struct fl_vip *v = &t->vips[i];

		if ((v->flags & FL_VIP_IN_USE) && v->family == k->family &&
		    memcmp(&v->addr, &k->dst, sizeof(v->addr)) == 0)
			return i;
	}
	return ~0u;
}

static inline int same_addr(const union fl_addr *a, const union fl_addr *b)
{
	__u64 a0, a1, b0, b1;

	memcpy(&a0, a->bytes, 8);
	memcpy(&a1, a->bytes + 8, 8);
	memcpy(&b0, b->bytes, 8);
	memcpy(&b1, b->bytes + 8, 8);
	return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

static inline void count_vip(struct fl_worker *w, __u32 vip_id, __u32 len)
{
	w->vip_ctr[vip_id].packets++;
	w->vip_ctr[vip_id].bytes += len;
}

/* Pass 1 for one frame: returns what pass 2 must do with it. */
static inline enum todo classify(struct fl_worker *w, struct burst *s, unsigned i,
				 struct fl_buf *b)
{
	enum fl_drop_reason reason;
	struct fl_pkt *p = &b->pkt;
	const struct fl_vip *v;
	__u32 vip_id;

	switch (fl_parse(b->data, b->len, p, &reason)) {
	case FL_PARSE_FLOW:
		break;
	case FL_PARSE_HOST:
		verdict_kernel(w, b);
		return TODO_DONE;
	default:
		verdict_drop(w, b, reason);
		return TODO_DONE;
	}
	if (unlikely(p->flags & FL_PKT_FRAGMENT)) {
		vip_id = fragment_vip(w, s->t, &p->key);
		if (vip_id == ~0u) {
			verdict_kernel(w, b);
		} else {
			count_vip(w, vip_id, b->len);
			verdict_drop(w, b, FL_DROP_IP_FRAGMENT);
		}
		return TODO_DONE;
	}
	/* Bursts mostly hold a few VIPs' packets: a one-entry cache skips the
	 * index hash for a run of them. */
	v = s->last_vip;
	if (v && v->port == p->key.dport && v->proto == p->key.proto &&
	    v->family == p->key.family && same_addr(&v->addr, &p->key.dst)) {
		vip_id = s->last_vip_id;
	} else {
		v = fl_vip_find(s->t, &p->key.dst, p->key.family, p->key.dport, p->key.proto,
				&vip_id);
		if (!v) {
			/* Not a VIP: the host's own traffic (SSH, BGP, its services). */
			verdict_kernel(w, b);
			return TODO_DONE;
		}
		if (unlikely(vip_id >= w->max_vips)) {
			verdict_drop(w, b, FL_DROP_NO_BACKEND);
			return TODO_DONE;
		}
		s->last_vip = v;
		s->last_vip_id = vip_id;
	}
	count_vip(w, vip_id, b->len);
	s->vip[i] = v;
	s->vip_id[i] = vip_id;
	return unlikely(p->flags & FL_PKT_ICMP_ERROR) ? TODO_ICMP : TODO_FLOW;
}

/* One too-big answer allowed now? Tokens are kept in 1/FL_CT_HZ units so
 * the refill per tick is exact; the bucket holds one second's worth. */
static inline int too_big_token(struct fl_worker *w, __u32 now)
{
	__u64 max = (__u64)w->too_big_rate * FL_CT_HZ;
	__u64 tokens = w->too_big_tokens;

	if (now != w->too_big_last) {
		tokens += (__u64)fl_ct_since(w->too_big_last, now) * w->too_big_rate;
		if (tokens > max)
			tokens = max;
		w->too_big_last = now;
	}
	if (tokens < FL_CT_HZ) {
		w->too_big_tokens = (__u32)tokens;
		return 0;
	}
	w->too_big_tokens = (__u32)(tokens - FL_CT_HZ);
	return 1;
}

/* Encapsulate b toward backend `id` and set its verdict. */
static inline void forward(struct fl_worker *w, struct fl_buf *b, const struct fl_vip *v,
			   const struct fl_backend *be, __u32 id, __u32 now)
{
	enum fl_drop_reason reason;
	__u8 *data = b->data;
	__u32 len = b->len, rx_len = b->len;

	if (likely(fl_encap(&w->encap, (enum fl_method)v->method, be, &b->pkt, &data, &len,
			    b->headroom, &reason) == 0)) {
		b->headroom -= (__u32)(b->data - data);
		b->data = data;
		b->len = len;
		b->verdict = FL_VERDICT_TX;
		w->backend_ctr[id].packets++;
		w->backend_ctr[id].bytes += rx_len;
		return;
	}
	if (reason == FL_DROP_TOO_BIG && too_big_token(w, now)) {
		b->verdict = FL_VERDICT_TOO_BIG;
		b->drop_reason = FL_DROP_TOO_BIG;
		b->too_big_mtu = w->encap.mtu - fl_encap_overhead((enum fl_method)v->method,
								  be->key.family);
		w->ctr->drops[FL_DROP_TOO_BIG]++;
		return;
	}
	verdict_drop(w, b, reason);
}

/*
 * A TCP or UDP packet to a VIP: follow its record while the recorded
 * backend keeps flows (up or draining, same epoch, same VIP), else choose
 * by Maglev and record or rebind.
 */
static inline void flow_stage(struct fl_worker *w, const struct burst *s, struct fl_buf *b,
			      unsigned i, __u32 now)
{
	const struct fl_pkt *p = &b->pkt;
	const struct fl_vip *v = s->vip[i];
	const __u32 vip_id = s->vip_id[i];
	struct fl_ct_bucket *bucket = s->bucket[i];
	const int way = fl_ct_lookup_way(&w->ct, bucket, &p->key, p->hash, now);
	struct fl_ct_rec *rec = NULL;
	const struct fl_backend *be;
	__u8 *state = NULL;
	__u32 id;

	if (likely(way >= 0)) {
		rec = &bucket->way[way];
		state = &bucket->meta.state[way];
		be = backend_at(s, rec->backend_id);
		if (likely(be && be->vip_id == vip_id && fl_backend_keeps_flows(be, rec->epoch) &&
			   !fl_ct_reopens(*state, p->tcp_flags))) {
			fl_ct_track(state, p->tcp_flags);
			forward(w, b, v, be, rec->backend_id, now);
			return;
		}
	}
	id = maglev_pick(s, v, p->hash);
	if (unlikely(id == FL_BACKEND_NONE)) {
		verdict_drop(w, b, FL_DROP_NO_BACKEND);
		return;
	}
	be = &s->t->backends[id];
	if (rec) {
		/* Its backend is down, removed or reused, or the 5-tuple opens a
		 * new connection: choose again. */
		fl_ct_rebind(&w->ct, rec, id, be->epoch);
		fl_ct_track(state, p->tcp_flags);
	} else if (likely(fl_ct_admit(&w->ct, now))) {
		/* Past the new-flow rate the flow still goes where its hash
		 * says, unrecorded (fl_ct_admit counts it). */
		fl_ct_insert(&w->ct, &p->key, p->hash, vip_id, id, be->epoch,
			     fl_ct_initial_state(p->key.proto, p->tcp_flags), now);
		w->vip_ctr[vip_id].new_flows++;
	}
	forward(w, b, v, be, id, now);
}

/*
 * An ICMP error (fragmentation needed, packet too big) about a VIP flow:
 * to the backend that owns the flow, so its path MTU discovery works. The
 * record is only read: an error neither creates a flow nor keeps one alive,
 * and its ports are an attacker's choice as much as a SYN's.
 */
static inline void icmp_stage(struct fl_worker *w, const struct burst *s, struct fl_buf *b,
			      unsigned i, __u32 now)
{
	const struct fl_pkt *p = &b->pkt;
	const struct fl_ct_bucket *bucket = s->bucket[i];
	const int way = fl_ct_find(bucket, &p->key, p->hash);
	const struct fl_backend *be = NULL;
	__u32 id = FL_BACKEND_NONE;

	if (way >= 0 && !fl_ct_way_expired(&w->ct, &bucket->meta, (unsigned)way, now)) {
		const struct fl_ct_rec *rec = &bucket->way[way];

		be = backend_at(s, rec->backend_id);
		if (be && be->vip_id == s->vip_id[i] && fl_backend_keeps_flows(be, rec->epoch))
			id = rec->backend_id;
	}
	if (id == FL_BACKEND_NONE) {
		id = maglev_pick(s, s->vip[i], p->hash);
		if (id == FL_BACKEND_NONE) {
			verdict_drop(w, b, FL_DROP_NO_BACKEND);
			return;
		}
		be = &s->t->backends[id];
	}
	forward(w, b, s->vip[i], be, id, now);
	if (b->verdict == FL_VERDICT_TX)
		w->ctr->icmp_forwarded++;
}

/*
 * Second prefetch stage, once the bucket's metadata line is in: the records
 * whose tag matches (a likely hit); else, for the insert a miss leads to,
 * the ring entry Maglev will read and the record the insert will write.
 */
FL_PREFETCHER void prefetch_stage2(const struct fl_worker *w, const struct burst *s, unsigned i,
				  __u32 hash, __u32 now)
{
	const struct fl_ct_bucket *bucket = s->bucket[i];
	const struct fl_vip *v = s->vip[i];
	int expired;

	if (fl_ct_prefetch_ways(bucket, hash))
		return;
	if (v->ring_size && v->ring_offset <= s->t->ring_entries &&
	    v->ring_size <= s->t->ring_entries - v->ring_offset)
		__builtin_prefetch(&s->t->ring[v->ring_offset + hash % v->ring_size], 0, 3);
	fl_ct_prefetch_rec(&bucket->way[fl_ct_insert_way(&w->ct, &bucket->meta, now, &expired)], 1);
}

/* The next hop's MAC fulcrum-cp published (static or resolved), else the
 * config's: a slot of a writer that knows none holds zero. */
static inline void next_hop_of_burst(struct fl_worker *w, const __u8 *published)
{
	__u32 a;
	__u16 b;

	memcpy(&a, published, 4);
	memcpy(&b, published + 4, 2);
	memcpy(w->encap.next_hop_mac, (a | b) ? published : w->static_next_hop_mac, 6);
}

void fl_pipeline_run(struct fl_worker *w, struct fl_buf *bufs, unsigned n, __u32 now)
{
	struct burst s;
	__u64 seed, rx_bytes = 0;
	unsigned i;

	if (n > FL_BURST_MAX)
		n = FL_BURST_MAX;
	s.t = fl_reader_begin(&w->reader);
	seed = s.t->hdr->hash_seed;
	next_hop_of_burst(w, s.t->hdr->next_hop_mac);
	s.last_vip = NULL;
	s.last_vip_id = 0;
	s.backend_limit = s.t->hdr->backend_count;
	if (s.backend_limit > w->max_backends)
		s.backend_limit = w->max_backends;

	for (i = 0; i < n; i++) {
		if (i + 1 < n)
			__builtin_prefetch(bufs[i + 1].data);
		rx_bytes += bufs[i].len;
		s.todo[i] = (__u8)classify(w, &s, i, &bufs[i]);
	}
	/* Hashing apart from parsing: the hashes of a burst are independent
	 * multiply chains the core can overlap, where interleaved with the
	 * branchy parse each would wait out its own latency. */
	for (i = 0; i < n; i++) {
		if (s.todo[i] == TODO_DONE)
			continue;
		bufs[i].pkt.hash = fl_flow_hash(&bufs[i].pkt.key, seed);
		s.bucket[i] = fl_ct_bucket_for(&w->ct, bufs[i].pkt.hash);
		__builtin_prefetch(&s.bucket[i]->meta, 0, 3);
	}
	/* The second stage for the whole burst before any lookup: the record
	 * lines then have the most time to arrive. */
	for (i = 0; i < n; i++)
		if (s.todo[i] != TODO_DONE)
			prefetch_stage2(w, &s, i, bufs[i].pkt.hash, now);
	for (i = 0; i < n; i++) {
		if (likely(s.todo[i] == TODO_FLOW))
			flow_stage(w, &s, &bufs[i], i, now);
		else if (s.todo[i] == TODO_ICMP)
			icmp_stage(w, &s, &bufs[i], i, now);
	}
	w->ctr->rx_packets += n;
	w->ctr->rx_bytes += rx_bytes;
	fl_reader_end(&w->reader);
}

int fl_worker_init(struct fl_worker *w, struct fl_shm *shm, unsigned id,
		   void *ct_mem, size_t ct_len, __u32 ct_capacity,
		   const struct fl_ct_params *ct_params, const struct fl_encap_ctx *encap,
		   __u32 too_big_rate, char *err, size_t errlen)
{
	char why[FL_CT_ERR_LEN];
	int rc;

	if (!w || !shm || !shm->hdr || !encap) {
		if (err && errlen)
			snprintf(err, errlen, "worker: no worker, shared memory or port context");
		return -EINVAL;
	}
	memset(w, 0, sizeof(*w));
	rc = fl_reader_register(shm, id, &w->reader, err, errlen);
	if (rc)
		return rc;
	w->ctr = fl_shm_worker_counters(shm, id);
	w->vip_ctr = fl_shm_vip_counters(shm, id);
	w->backend_ctr = fl_shm_backend_counters(shm, id);
	w->max_vips = shm->hdr->max_vips;
	w->max_backends = shm->hdr->max_backends;
	w->encap = *encap;
	memcpy(w->static_next_hop_mac, encap->next_hop_mac, 6);

	/* A table an earlier process formatted keeps its flows, whatever
	 * ct_capacity says now; memory that holds no table of this layout
	 * (first start, other build) is formatted. */
	rc = fl_ct_attach(ct_mem, ct_len, ct_params, w->ctr, &w->ct, why, sizeof(why));
	if (rc == -EINVAL || rc == -EPROTO)
		rc = fl_ct_init(ct_mem, ct_len, ct_capacity, ct_params, w->ctr, &w->ct,
				why, sizeof(why));
	if (rc) {
		if (err && errlen)
			snprintf(err, errlen, "worker %u: %s", id, why);
		fl_reader_unregister(&w->reader);
		return rc;
	}

	/* Tokens are counted in 1/FL_CT_HZ units in 32 bits. */
	if (too_big_rate > UINT32_MAX / FL_CT_HZ)
		too_big_rate = UINT32_MAX / FL_CT_HZ;
	w->too_big_rate = too_big_rate;
	w->too_big_tokens = too_big_rate * FL_CT_HZ;
	w->too_big_last = fl_ct_now();
	return 0;
}

void fl_worker_fini(struct fl_worker *w)
{
	if (!w || !w->ctr)
		return;
	fl_reader_unregister(&w->reader);
	w->ctr = NULL;
	w->vip_ctr = NULL;
	w->backend_ctr = NULL;
}
