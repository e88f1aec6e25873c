/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The table publisher. A publish runs in three steps so that a failure in
 * any of them leaves the ids and the tables as they were:
 *   plan    match the desired VIPs and backends (sorted by key) against the
 *           ids in use, list the ids to free and pick ids for the new ones,
 *           without touching the publisher;
 *   write   fill the inactive slot whole and publish it;
 *   commit  apply the plan to the publisher's id maps.
 * New ids are handed out in key order, so two publishers given the same
 * config in any order assign the same ids and write the same bytes.
 */
#include "publish.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "addr.h"
#include "maglev.h"

/* What makes a VIP itself; compared with memcmp, so no padding. */
struct vkey {
	union fl_addr addr;
	__be16 port;
	__u8 proto;
	__u8 family;
};

_Static_assert(sizeof(struct vkey) == 20, "vkey has no padding");

struct fl_pub_vip {
	struct vkey key;
	bool live;
};

struct fl_pub_backend {
	struct fl_backend_key key;
	__u32 epoch;		/* kept while free: the next owner gets epoch + 1 */
	__u32 vip_id;
	bool live;
};

struct fl_pub_want_vip {
	struct vkey key;
	__u8 method;
	__u32 table_size;
	__u32 first;		/* its backends: want_backends[first..first+n) */
	__u32 n;
};

struct fl_pub_want_backend {
	struct fl_backend_key key;	/* canonical: port 0 when it is the VIP's */
	__u16 weight;			/* from the config */
	__u8 state;
	__u8 mac[6];
};

/* A live id with its key, for sorting against the desired state. */
struct have_vip {
	struct vkey key;
	__u32 id;
};

struct have_backend {
	__u32 vip_id;
	struct fl_backend_key key;
	__u32 id;
};

/* Where new ids come from, without consuming anything until commit:
 * never-used ids, then the free FIFO, then ids freed by this very plan. */
struct id_source {
	__u32 hw;
	__u32 max;
	const struct fl_pub_idq *q;
	__u32 q_taken;
	const __u32 *freed;
	__u32 n_freed;
	__u32 freed_taken;
};

struct plan {
	__u32 *vip_id;			/* [n_want_vips] */
	__u32 *backend_id;		/* [n_want_backends] */
	__u32 *backend_epoch;		/* [n_want_backends] */
	bool *backend_new;		/* [n_want_backends] */
	bool *vip_new;			/* [n_want_vips] */
	__u32 *vip_freed;
	__u32 n_vip_freed;
	__u32 *backend_freed;
	__u32 n_backend_freed;
	struct id_source vsrc;
	struct id_source bsrc;
};

/* ---- small helpers ---- */

static int vkey_cmp(const struct vkey *a, const struct vkey *b)
{
	return memcmp(a, b, sizeof(*a));
}

static int bkey_cmp(const struct fl_backend_key *a, const struct fl_backend_key *b)
{
	return memcmp(a, b, sizeof(*a));
}

static struct vkey vkey_make(const union fl_addr *addr, __u8 family, __u16 port, __u8 proto)
{
	struct vkey k;

	memset(&k, 0, sizeof(k));
	k.addr = *addr;
	k.family = family;
	k.port = htons(port);
	k.proto = proto;
	return k;
}

/* The VIP's port written out is the same backend as port 0: one key for
 * both, as the config's duplicate rule has it, so every instance orders
 * and permutes it alike. */
static struct fl_backend_key bkey_canonical(const struct fl_backend_key *k, __be16 vip_port)
{
	struct fl_backend_key c;

	memset(&c, 0, sizeof(c));
	c.addr = k->addr;
	c.family = k->family;
	c.port = k->port == vip_port ? 0 : k->port;
	return c;
}

static const char *vkey_text(const struct vkey *k, char *buf, size_t len)
{
	char a[FL_ADDR_STRLEN];

	fl_addr_format(&k->addr, k->family, a, sizeof(a));
	snprintf(buf, len, k->family == FL_AF_INET6 ? "[%s]:%u/%s" : "%s:%u/%s", a,
		 ntohs(k->port), fl_proto_name(k->proto));
	return buf;
}

static const char *bkey_text(const struct fl_backend_key *k, char *buf, size_t len)
{
	if (k->port == 0)
		return fl_addr_format(&k->addr, k->family, buf, len);
	return fl_endpoint_format(&k->addr, k->family, ntohs(k->port), buf, len);
}

static __u32 next_epoch(__u32 epoch)
{
	/* 0 never matches a conntrack record: skip it on wrap */
	return epoch + 1 ? epoch + 1 : 1;
}

static int nomem(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "publisher: out of memory for %s", what);
	return -ENOMEM;
}

static void idq_push(struct fl_pub_idq *q, __u32 id)
{
	/* cap is the id space and an id is queued at most once: never full */
	q->ids[(q->head + q->len) % q->cap] = id;
	q->len++;
}

static void idq_pop(struct fl_pub_idq *q, __u32 n)
{
	q->head = (q->head + n) % q->cap;
	q->len -= n;
}

static __u32 id_take(struct id_source *s)
{
	if (s->hw < s->max)
		return s->hw++;
	if (s->q_taken < s->q->len)
		return s->q->ids[(s->q->head + s->q_taken++) % s->q->cap];
	if (s->freed_taken < s->n_freed)
		return s->freed[s->freed_taken++];
	return FL_BACKEND_NONE;
}

/* ---- init: read the ids back ---- */

static void read_back(struct fl_publisher *pub, const struct fl_tables *t)
{
	__u32 nv = t->hdr->vip_count < pub->max_vips ? t->hdr->vip_count : pub->max_vips;
	__u32 nb = t->hdr->backend_count < pub->max_backends ? t->hdr->backend_count
							      : pub->max_backends;

	for (__u32 id = 0; id < nv; id++) {
		const struct fl_vip *v = &t->vips[id];
		struct fl_pub_vip *pv = &pub->vips[id];

		if (v->flags & FL_VIP_IN_USE) {
			pv->key = vkey_make(&v->addr, v->family, ntohs(v->port), v->proto);
			pv->live = true;
		} else {
			idq_push(&pub->vip_free, id);
		}
	}
	pub->vip_hw = nv;
	for (__u32 id = 0; id < nb; id++) {
		const struct fl_backend *b = &t->backends[id];
		struct fl_pub_backend *pb = &pub->backends[id];

		/* a free id keeps its epoch, so its next owner's is new */
		pb->epoch = b->epoch;
		if (b->state != FL_BACKEND_FREE && b->state < FL_BACKEND_STATE__MAX &&
		    b->vip_id < nv && pub->vips[b->vip_id].live) {
			pb->key = b->key;
			pb->vip_id = b->vip_id;
			pb->live = true;
		} else {
			idq_push(&pub->backend_free, id);
		}
	}
	pub->backend_hw = nb;
}

int fl_publisher_init(struct fl_publisher *pub, struct fl_shm *shm, char *err, size_t errlen)
{
	memset(pub, 0, sizeof(*pub));
	if (!shm->writer) {
		snprintf(err, errlen, "%s: publishing needs the writer lock (fl_shm_create)", shm->map.path);
		return -EPERM;
	}
	pub->shm = shm;
	pub->max_vips = shm->hdr->max_vips;
	pub->max_backends = shm->hdr->max_backends;
	pub->dead_after_ms = FL_SHM_DEFAULT_DEAD_AFTER_MS;
	pub->vips = calloc(pub->max_vips, sizeof(*pub->vips));
	pub->backends = calloc(pub->max_backends, sizeof(*pub->backends));
	pub->vip_free.ids = calloc(pub->max_vips, sizeof(__u32));
	pub->backend_free.ids = calloc(pub->max_backends, sizeof(__u32));
	if (!pub->vips || !pub->backends || !pub->vip_free.ids || !pub->backend_free.ids) {
		fl_publisher_fini(pub);
		return nomem(err, errlen, "the id maps");
	}
	pub->vip_free.cap = pub->max_vips;
	pub->backend_free.cap = pub->max_backends;
	read_back(pub, fl_writer_active(shm));
	return 0;
}

void fl_publisher_fini(struct fl_publisher *pub)
{
	free(pub->vips);
	free(pub->backends);
	free(pub->vip_free.ids);
	free(pub->backend_free.ids);
	free(pub->want_vips);
	free(pub->want_backends);
	memset(pub, 0, sizeof(*pub));
}

/* ---- set: the desired state ---- */

struct want {
	struct fl_pub_want_vip *vips;
	struct fl_pub_want_backend *backends;
	__u32 n_vips;
	__u32 n_backends;
};

static int cmp_want_vip(const void *a, const void *b)
{
	return vkey_cmp(&((const struct fl_pub_want_vip *)a)->key,
			&((const struct fl_pub_want_vip *)b)->key);
}

static int cmp_want_backend(const void *a, const void *b)
{
	return bkey_cmp(&((const struct fl_pub_want_backend *)a)->key,
			&((const struct fl_pub_want_backend *)b)->key);
}

/* Whether the mapping has room for cfg. */
static int check_room(const struct fl_publisher *pub, const struct fl_config *cfg,
		      char *err, size_t errlen)
{
	unsigned long long backends = 0, entries = 0;
	__u32 ring_entries = pub->shm->hdr->ring_entries;

	for (unsigned i = 0; i < cfg->n_vips; i++) {
		backends += cfg->vips[i].n_backends;
		entries += cfg->vips[i].table_size;
	}
	if (cfg->n_vips > pub->max_vips) {
		snprintf(err, errlen, "%u VIPs, the shared memory has %u vip ids (limits.max_vips)",
			 cfg->n_vips, pub->max_vips);
		return -ENOSPC;
	}
	if (backends > pub->max_backends) {
		snprintf(err, errlen, "%llu backends, the shared memory has %u backend ids "
			 "(limits.max_backends)", backends, pub->max_backends);
		return -ENOSPC;
	}
	if (entries > ring_entries) {
		snprintf(err, errlen, "the VIPs' tables need %llu ring entries, the shared memory "
			 "has %u (limits.ring_entries)", entries, ring_entries);
		return -ENOSPC;
	}
	return 0;
}

/* The MAC to publish for an address the config gives no MAC for. */
static void resolve_mac(const struct fl_publisher *pub, __u8 family, const union fl_addr *addr,
			__u8 mac[6])
{
	if (!pub->resolve || pub->resolve(pub->resolve_arg, family, addr, mac) < 0)
		memset(mac, 0, 6);
}

/* Copies cfg's VIPs and backends, canonical and sorted. */
static int want_fill(const struct fl_publisher *pub, struct want *w, const struct fl_config *cfg,
		     char *err, size_t errlen)
{
	char vt[96], msg[FL_CONFIG_ERR_LEN];
	__u32 nb = 0;

	for (unsigned i = 0; i < cfg->n_vips; i++) {
		const struct fl_vip_config *vc = &cfg->vips[i];
		struct fl_pub_want_vip *wv = &w->vips[i];

		wv->key = vkey_make(&vc->addr, vc->family, vc->port, vc->proto);
		if (fl_config_check_vip(vc, msg, sizeof(msg)) < 0) {
			snprintf(err, errlen, "VIP %s: %s", vkey_text(&wv->key, vt, sizeof(vt)), msg);
			return -EINVAL;
		}
		wv->method = (__u8)vc->method;
		wv->table_size = vc->table_size;
		wv->first = nb;
		wv->n = vc->n_backends;
		for (unsigned j = 0; j < vc->n_backends; j++, nb++) {
			const struct fl_backend_config *bc = &vc->backends[j];
			struct fl_pub_want_backend *wb = &w->backends[nb];

			wb->key = bkey_canonical(&bc->key, wv->key.port);
			wb->weight = bc->weight;
			wb->state = bc->weight ? FL_BACKEND_UP : FL_BACKEND_DRAINING;
			if (bc->has_mac) {
				memcpy(wb->mac, bc->mac, sizeof(wb->mac));
			} else if (vc->method == FL_METHOD_L2DSR) {
				static const __u8 unknown[6];

				resolve_mac(pub, bc->key.family, &bc->key.addr, wb->mac);
				/* the data plane could only drop what it sent there
				 * (no_next_hop): down until the MAC is known */
				if (memcmp(wb->mac, unknown, sizeof(unknown)) == 0)
					wb->state = FL_BACKEND_DOWN;
			}
		}
		qsort(&w->backends[wv->first], wv->n, sizeof(*w->backends), cmp_want_backend);
		for (__u32 j = 1; j < wv->n; j++)
			if (bkey_cmp(&w->backends[wv->first + j - 1].key,
				     &w->backends[wv->first + j].key) == 0) {
				snprintf(err, errlen, "VIP %s: backend %s twice",
					 vkey_text(&wv->key, vt, sizeof(vt)),
					 bkey_text(&w->backends[wv->first + j].key, msg, sizeof(msg)));
				return -EINVAL;
			}
	}
	/* VIPs sorted with their backends' ranges: the backend array stays in
	 * config order of VIPs, which only the ranges refer to. */
	qsort(w->vips, w->n_vips, sizeof(*w->vips), cmp_want_vip);
	for (__u32 i = 1; i < w->n_vips; i++)
		if (vkey_cmp(&w->vips[i - 1].key, &w->vips[i].key) == 0) {
			snprintf(err, errlen, "VIP %s twice", vkey_text(&w->vips[i].key, vt, sizeof(vt)));
			return -EINVAL;
		}
	return 0;
}

static struct fl_pub_want_vip *want_find_vip(const struct want *w, const struct vkey *k)
{
	struct fl_pub_want_vip probe = { .key = *k };

	return bsearch(&probe, w->vips, w->n_vips, sizeof(*w->vips), cmp_want_vip);
}

static int want_apply_status(struct want *w, const struct fl_backend_status *st, size_t n,
			     char *err, size_t errlen)
{
	char vt[96], bt[64];

	for (size_t i = 0; i < n; i++) {
		struct vkey vk = vkey_make(&st[i].vip_addr, st[i].vip_family, st[i].vip_port,
					   st[i].vip_proto);
		const struct fl_pub_want_vip *wv = want_find_vip(w, &vk);
		struct fl_pub_want_backend probe = { .key = bkey_canonical(&st[i].key, vk.port) };
		struct fl_pub_want_backend *wb = NULL;

		if (wv)
			wb = bsearch(&probe, &w->backends[wv->first], wv->n, sizeof(*wb),
				     cmp_want_backend);
		if (!wb) {
			snprintf(err, errlen, "status for %s of VIP %s: no such backend in the config",
				 bkey_text(&probe.key, bt, sizeof(bt)), vkey_text(&vk, vt, sizeof(vt)));
			return -ENOENT;
		}
		if (st[i].down)
			wb->state = FL_BACKEND_DOWN;
		else if (st[i].drain && wb->state == FL_BACKEND_UP)
			wb->state = FL_BACKEND_DRAINING;
	}
	return 0;
}

int fl_publisher_set(struct fl_publisher *pub, const struct fl_config *cfg,
		     const struct fl_backend_status *status, size_t n, char *err, size_t errlen)
{
	struct want w = { 0 };
	__u32 nb = 0;
	int rc = check_room(pub, cfg, err, errlen);

	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < cfg->n_vips; i++)
		nb += cfg->vips[i].n_backends;
	w.n_vips = cfg->n_vips;
	w.n_backends = nb;
	/* +1: calloc(0) may return NULL */
	w.vips = calloc(w.n_vips + 1, sizeof(*w.vips));
	w.backends = calloc(w.n_backends + 1, sizeof(*w.backends));
	if (!w.vips || !w.backends) {
		rc = nomem(err, errlen, "the desired state");
		goto fail;
	}
	rc = want_fill(pub, &w, cfg, err, errlen);
	if (rc == 0 && status)
		rc = want_apply_status(&w, status, n, err, errlen);
	if (rc < 0)
		goto fail;
	free(pub->want_vips);
	free(pub->want_backends);
	pub->want_vips = w.vips;
	pub->want_backends = w.backends;
	pub->n_want_vips = w.n_vips;
	pub->n_want_backends = w.n_backends;
	pub->hash_seed = cfg->global.hash_seed;
	if (cfg->dataplane.has_next_hop_mac)
		memcpy(pub->next_hop_mac, cfg->dataplane.next_hop_mac, 6);
	else if (cfg->dataplane.has_next_hop_address)
		resolve_mac(pub, cfg->dataplane.next_hop_family, &cfg->dataplane.next_hop_address,
			    pub->next_hop_mac);
	else
		memset(pub->next_hop_mac, 0, 6);
	pub->have_want = true;
	return 0;
fail:
	free(w.vips);
	free(w.backends);
	return rc;
}

/* ---- plan ---- */

static int cmp_have_vip(const void *a, const void *b)
{
	return vkey_cmp(&((const struct have_vip *)a)->key, &((const struct have_vip *)b)->key);
}

static int cmp_have_backend(const void *pa, const void *pb)
{
	const struct have_backend *a = pa, *b = pb;

	if (a->vip_id != b->vip_id)
		return a->vip_id < b->vip_id ? -1 : 1;
	return bkey_cmp(&a->key, &b->key);
}

static void plan_free(struct plan *p)
{
	free(p->vip_id);
	free(p->backend_id);
	free(p->backend_epoch);
	free(p->backend_new);
	free(p->vip_new);
	free(p->vip_freed);
	free(p->backend_freed);
}

/* Existing VIPs keep their ids; the rest are freed, then new ones take ids. */
static int plan_vips(const struct fl_publisher *pub, struct plan *p)
{
	struct have_vip *have = calloc(pub->vip_hw + 1, sizeof(*have));
	__u32 nh = 0, i = 0, j = 0;

	if (!have)
		return -ENOMEM;
	for (__u32 id = 0; id < pub->vip_hw; id++)
		if (pub->vips[id].live)
			have[nh++] = (struct have_vip){ pub->vips[id].key, id };
	qsort(have, nh, sizeof(*have), cmp_have_vip);
	while (i < nh || j < pub->n_want_vips) {
		int c = i == nh ? 1 : j == pub->n_want_vips ? -1
				 : vkey_cmp(&have[i].key, &pub->want_vips[j].key);
		if (c < 0) {
			p->vip_freed[p->n_vip_freed++] = have[i++].id;
		} else if (c > 0) {
			p->vip_id[j++] = FL_BACKEND_NONE;
		} else {
			p->vip_id[j++] = have[i++].id;
		}
	}
	free(have);
	p->vsrc = (struct id_source){ .hw = pub->vip_hw, .max = pub->max_vips, .q = &pub->vip_free,
				      .freed = p->vip_freed, .n_freed = p->n_vip_freed };
	for (j = 0; j < pub->n_want_vips; j++) {
		if (p->vip_id[j] != FL_BACKEND_NONE)
			continue;
		p->vip_id[j] = id_take(&p->vsrc);
		p->vip_new[j] = true;
		if (p->vip_id[j] == FL_BACKEND_NONE)
			return -ENOSPC;
	}
	return 0;
}

/* The first entry of have[0..n) with vip_id >= v. */
static __u32 have_lower_bound(const struct have_backend *have, __u32 n, __u32 v)
{
	__u32 lo = 0, hi = n;

	while (lo < hi) {
		__u32 mid = lo + (hi - lo) / 2;
		if (have[mid].vip_id < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Matches the wanted backends of VIP j against those its id has. */
static void plan_match_backends(const struct fl_publisher *pub, struct plan *p, __u32 j,
				const struct have_backend *have, __u32 nh, bool *matched)
{
	const struct fl_pub_want_vip *wv = &pub->want_vips[j];
	__u32 v = p->vip_id[j];
	__u32 i = have_lower_bound(have, nh, v), k = 0;

	while (k < wv->n) {
		__u32 wi = wv->first + k;
		int c = i < nh && have[i].vip_id == v
				? bkey_cmp(&have[i].key, &pub->want_backends[wi].key) : 1;
		if (c < 0) {
			i++;
		} else if (c > 0) {
			k++;
		} else {
			matched[i] = true;
			p->backend_id[wi] = have[i].id;
			p->backend_epoch[wi] = pub->backends[have[i].id].epoch;
			i++;
			k++;
		}
	}
}

static int plan_backends(const struct fl_publisher *pub, struct plan *p)
{
	struct have_backend *have = calloc(pub->backend_hw + 1, sizeof(*have));
	bool *matched = calloc(pub->backend_hw + 1, sizeof(*matched));
	__u32 nh = 0;
	int rc = 0;

	if (!have || !matched) {
		rc = -ENOMEM;
		goto out;
	}
	for (__u32 id = 0; id < pub->backend_hw; id++) {
		const struct fl_pub_backend *b = &pub->backends[id];
		if (b->live)
			have[nh++] = (struct have_backend){ b->vip_id, b->key, id };
	}
	qsort(have, nh, sizeof(*have), cmp_have_backend);
	for (__u32 i = 0; i < pub->n_want_backends; i++)
		p->backend_id[i] = FL_BACKEND_NONE;
	for (__u32 j = 0; j < pub->n_want_vips; j++)
		if (!p->vip_new[j])
			plan_match_backends(pub, p, j, have, nh, matched);
	for (__u32 i = 0; i < nh; i++)
		if (!matched[i])
			p->backend_freed[p->n_backend_freed++] = have[i].id;
	p->bsrc = (struct id_source){ .hw = pub->backend_hw, .max = pub->max_backends,
				      .q = &pub->backend_free, .freed = p->backend_freed,
				      .n_freed = p->n_backend_freed };
	/* in VIP key order, then backend key order: the same ids in any process */
	for (__u32 j = 0; j < pub->n_want_vips && rc == 0; j++) {
		const struct fl_pub_want_vip *wv = &pub->want_vips[j];
		for (__u32 wi = wv->first; wi < wv->first + wv->n; wi++) {
			__u32 id;
			if (p->backend_id[wi] != FL_BACKEND_NONE)
				continue;
			id = id_take(&p->bsrc);
			if (id == FL_BACKEND_NONE) {
				rc = -ENOSPC;
				break;
			}
			p->backend_id[wi] = id;
			p->backend_new[wi] = true;
			p->backend_epoch[wi] = next_epoch(pub->backends[id].epoch);
		}
	}
out:
	free(have);
	free(matched);
	return rc;
}

static int plan_make(const struct fl_publisher *pub, struct plan *p, char *err, size_t errlen)
{
	size_t nv = pub->n_want_vips + 1, nb = pub->n_want_backends + 1;
	int rc;

	memset(p, 0, sizeof(*p));
	p->vip_id = calloc(nv, sizeof(*p->vip_id));
	p->vip_new = calloc(nv, sizeof(*p->vip_new));
	p->backend_id = calloc(nb, sizeof(*p->backend_id));
	p->backend_epoch = calloc(nb, sizeof(*p->backend_epoch));
	p->backend_new = calloc(nb, sizeof(*p->backend_new));
	p->vip_freed = calloc(pub->vip_hw + 1, sizeof(*p->vip_freed));
	p->backend_freed = calloc(pub->backend_hw + 1, sizeof(*p->backend_freed));
	if (!p->vip_id || !p->vip_new || !p->backend_id || !p->backend_epoch ||
	    !p->backend_new || !p->vip_freed || !p->backend_freed)
		return nomem(err, errlen, "the id plan");
	/* -ENOSPC cannot happen after fl_publisher_set's room check (every id
	 * below the high-water mark is live or queued); kept as a guard */
	rc = plan_vips(pub, p);
	if (rc == -ENOSPC)
		snprintf(err, errlen, "no free vip id (limits.max_vips %u)", pub->max_vips);
	if (rc == 0) {
		rc = plan_backends(pub, p);
		if (rc == -ENOSPC)
			snprintf(err, errlen, "no free backend id (limits.max_backends %u)",
				 pub->max_backends);
	}
	if (rc == -ENOMEM)
		return nomem(err, errlen, "the id plan");
	return rc;
}

/* ---- write the slot ---- */

/* Per live id of the new tables, the desired entry it stands for. */
struct slot_map {
	__u32 *vip_want;		/* [vip hw] want index or NONE */
	__u32 *backend_want;		/* [backend hw] want index or NONE */
	__u32 *backend_vip;		/* [backend hw] vip id of a live one */
	__u32 *old_up;			/* [active vip_count] UP backends per vip id */
	struct fl_maglev_backend *mb;	/* one VIP's ring input */
};

static void slot_map_free(struct slot_map *m)
{
	free(m->vip_want);
	free(m->backend_want);
	free(m->backend_vip);
	free(m->old_up);
	free(m->mb);
}

static int slot_map_make(const struct fl_publisher *pub, const struct plan *p,
			 const struct fl_tables *old, struct slot_map *m)
{
	__u32 max_n = 0;

	memset(m, 0, sizeof(*m));
	m->vip_want = malloc(((size_t)p->vsrc.hw + 1) * sizeof(__u32));
	m->backend_want = malloc(((size_t)p->bsrc.hw + 1) * sizeof(__u32));
	m->backend_vip = calloc((size_t)p->bsrc.hw + 1, sizeof(__u32));
	m->old_up = calloc((size_t)old->hdr->vip_count + 1, sizeof(__u32));
	for (__u32 j = 0; j < pub->n_want_vips; j++)
		if (pub->want_vips[j].n > max_n)
			max_n = pub->want_vips[j].n;
	m->mb = calloc((size_t)max_n + 1, sizeof(*m->mb));
	if (!m->vip_want || !m->backend_want || !m->backend_vip || !m->old_up || !m->mb)
		return -ENOMEM;
	memset(m->vip_want, 0xff, ((size_t)p->vsrc.hw + 1) * sizeof(__u32));
	memset(m->backend_want, 0xff, ((size_t)p->bsrc.hw + 1) * sizeof(__u32));
	for (__u32 j = 0; j < pub->n_want_vips; j++) {
		const struct fl_pub_want_vip *wv = &pub->want_vips[j];
		m->vip_want[p->vip_id[j]] = j;
		for (__u32 wi = wv->first; wi < wv->first + wv->n; wi++) {
			m->backend_want[p->backend_id[wi]] = wi;
			m->backend_vip[p->backend_id[wi]] = p->vip_id[j];
		}
	}
	for (__u32 id = 0; id < old->hdr->backend_count && id < old->max_backends; id++) {
		const struct fl_backend *b = &old->backends[id];
		if (b->state == FL_BACKEND_UP && b->vip_id < old->hdr->vip_count &&
		    b->vip_id < old->max_vips)
			m->old_up[b->vip_id]++;
	}
	return 0;
}

static void write_vip(struct fl_vip *v, const struct fl_pub_want_vip *wv, __u32 ring_offset)
{
	memset(v, 0, sizeof(*v));
	v->addr = wv->key.addr;
	v->port = wv->key.port;
	v->proto = wv->key.proto;
	v->family = wv->key.family;
	v->method = wv->method;
	v->flags = FL_VIP_IN_USE;
	v->ring_offset = ring_offset;
	v->ring_size = wv->table_size;
}

static void write_backends(const struct fl_publisher *pub, const struct plan *p,
			   const struct slot_map *m, struct fl_tables *t)
{
	for (__u32 id = 0; id < p->bsrc.hw; id++) {
		struct fl_backend *b = &t->backends[id];
		__u32 wi = m->backend_want[id];

		memset(b, 0, sizeof(*b));
		if (wi == FL_BACKEND_NONE) {
			/* free: the epoch stays so that the next owner's differs */
			b->epoch = pub->backends[id].epoch;
			b->state = FL_BACKEND_FREE;
			continue;
		}
		const struct fl_pub_want_backend *wb = &pub->want_backends[wi];
		b->key = wb->key;
		b->epoch = p->backend_epoch[wi];
		b->vip_id = m->backend_vip[id];
		b->weight = wb->weight;
		b->state = wb->state;
		memcpy(b->mac, wb->mac, sizeof(b->mac));
	}
}

/* Whether the active slot already holds this VIP's ring for the same input:
 * the same size and exactly the same UP backends (id, key, weight). */
static bool ring_unchanged(const struct fl_tables *old, const struct slot_map *m, __u32 vid,
			   const struct fl_vip *nv, const struct fl_backend *nb, __u32 n_up)
{
	const struct fl_vip *ov;

	if (vid >= old->hdr->vip_count || vid >= old->max_vips)
		return false;
	ov = &old->vips[vid];
	if (!(ov->flags & FL_VIP_IN_USE) || ov->ring_size != nv->ring_size ||
	    (__u64)ov->ring_offset + ov->ring_size > old->hdr->ring_used ||
	    old->hdr->ring_used > old->ring_entries ||
	    m->old_up[vid] != n_up || memcmp(&ov->addr, &nv->addr, sizeof(ov->addr)) != 0 ||
	    ov->port != nv->port || ov->proto != nv->proto || ov->family != nv->family)
		return false;
	for (__u32 i = 0; i < n_up; i++) {
		__u32 id = m->mb[i].id;
		const struct fl_backend *ob;

		if (id >= old->hdr->backend_count || id >= old->max_backends)
			return false;
		ob = &old->backends[id];
		if (ob->state != FL_BACKEND_UP ||
		    ob->vip_id != vid || ob->weight != nb[id].weight ||
		    bkey_cmp(&ob->key, &nb[id].key) != 0)
			return false;
	}
	return true;
}

static int write_ring(struct fl_publisher *pub, const struct plan *p, const struct slot_map *m,
		      const struct fl_tables *old, struct fl_tables *t, __u32 vid,
		      struct fl_publish_result *res, char *err, size_t errlen)
{
	const struct fl_pub_want_vip *wv = &pub->want_vips[m->vip_want[vid]];
	const struct fl_vip *v = &t->vips[vid];
	__u32 n_up = 0;
	char msg[256], vt[96];
	int rc;

	for (__u32 wi = wv->first; wi < wv->first + wv->n; wi++) {
		const struct fl_backend *b = &t->backends[p->backend_id[wi]];
		if (b->state != FL_BACKEND_UP)
			continue;
		m->mb[n_up++] = (struct fl_maglev_backend){ .key = b->key, .id = p->backend_id[wi],
							    .weight = b->weight };
	}
	res->backends_up += n_up;
	if (!pub->rebuild_all && ring_unchanged(old, m, vid, v, t->backends, n_up)) {
		memcpy(&t->ring[v->ring_offset], &old->ring[old->vips[vid].ring_offset],
		       (size_t)v->ring_size * sizeof(__u32));
		res->rings_copied++;
		return 0;
	}
	rc = fl_maglev_build(m->mb, n_up, v->ring_size, &t->ring[v->ring_offset], msg, sizeof(msg));
	if (rc < 0) {
		snprintf(err, errlen, "VIP %s: %s", vkey_text(&wv->key, vt, sizeof(vt)), msg);
		return rc;
	}
	res->rings_built++;
	return 0;
}

static int write_slot(struct fl_publisher *pub, const struct plan *p, const struct fl_tables *old,
		      struct fl_tables *t, struct fl_publish_result *res, char *err, size_t errlen)
{
	struct slot_map m;
	__u32 ring_used = 0;
	int rc = slot_map_make(pub, p, old, &m);

	if (rc < 0) {
		slot_map_free(&m);
		return nomem(err, errlen, "the slot map");
	}
	for (__u32 vid = 0; vid < p->vsrc.hw; vid++) {
		__u32 j = m.vip_want[vid];
		if (j == FL_BACKEND_NONE) {
			memset(&t->vips[vid], 0, sizeof(t->vips[vid]));
			continue;
		}
		write_vip(&t->vips[vid], &pub->want_vips[j], ring_used);
		ring_used += pub->want_vips[j].table_size;
	}
	write_backends(pub, p, &m, t);
	for (__u32 vid = 0; vid < p->vsrc.hw && rc == 0; vid++)
		if (m.vip_want[vid] != FL_BACKEND_NONE)
			rc = write_ring(pub, p, &m, old, t, vid, res, err, errlen);
	slot_map_free(&m);
	if (rc < 0)
		return rc;
	memset(t->hdr->pad, 0, sizeof(t->hdr->pad));
	memcpy(t->hdr->next_hop_mac, pub->next_hop_mac, sizeof(t->hdr->next_hop_mac));
	t->hdr->hash_seed = pub->hash_seed;
	t->hdr->vip_count = p->vsrc.hw;
	t->hdr->backend_count = p->bsrc.hw;
	t->hdr->ring_used = ring_used;
	fl_tables_index_vips(t);
	res->vips = pub->n_want_vips;
	res->backends = pub->n_want_backends;
	return 0;
}

/* ---- commit ---- */

static void commit(struct fl_publisher *pub, const struct plan *p)
{
	/* frees first: an id freed and retaken in this plan ends up live */
	for (__u32 i = 0; i < p->n_vip_freed; i++)
		pub->vips[p->vip_freed[i]].live = false;
	for (__u32 i = 0; i < p->n_backend_freed; i++)
		pub->backends[p->backend_freed[i]].live = false;
	idq_pop(&pub->vip_free, p->vsrc.q_taken);
	for (__u32 i = p->vsrc.freed_taken; i < p->n_vip_freed; i++)
		idq_push(&pub->vip_free, p->vip_freed[i]);
	idq_pop(&pub->backend_free, p->bsrc.q_taken);
	for (__u32 i = p->bsrc.freed_taken; i < p->n_backend_freed; i++)
		idq_push(&pub->backend_free, p->backend_freed[i]);
	pub->vip_hw = p->vsrc.hw;
	pub->backend_hw = p->bsrc.hw;
	for (__u32 j = 0; j < pub->n_want_vips; j++) {
		const struct fl_pub_want_vip *wv = &pub->want_vips[j];
		struct fl_pub_vip *v = &pub->vips[p->vip_id[j]];

		v->key = wv->key;
		v->live = true;
		for (__u32 wi = wv->first; wi < wv->first + wv->n; wi++) {
			struct fl_pub_backend *b = &pub->backends[p->backend_id[wi]];
			b->key = pub->want_backends[wi].key;
			b->epoch = p->backend_epoch[wi];
			b->vip_id = p->vip_id[j];
			b->live = true;
		}
	}
}

int fl_publisher_publish(struct fl_publisher *pub, __u32 timeout_ms,
			 struct fl_publish_result *result, char *err, size_t errlen)
{
	struct fl_publish_result res = { 0 };
	struct fl_tables *slot;
	struct plan p;
	int rc;

	if (!pub->have_want) {
		snprintf(err, errlen, "nothing to publish: no desired state set");
		return -ENODATA;
	}
	rc = plan_make(pub, &p, err, errlen);
	if (rc < 0)
		goto out;
	rc = fl_writer_acquire(pub->shm, timeout_ms, pub->dead_after_ms, &slot, err, errlen);
	if (rc < 0)
		goto out;
	/* the active slot stays as it is while we read it: we are its only writer */
	rc = write_slot(pub, &p, fl_writer_active(pub->shm), slot, &res, err, errlen);
	if (rc < 0) {
		/* the half-written slot is inactive; never let it be published */
		fl_writer_abort(pub->shm);
		goto out;
	}
	rc = fl_writer_publish(pub->shm);
	if (rc < 0) {
		snprintf(err, errlen, "publish: no slot acquired");
		goto out;
	}
	commit(pub, &p);
	res.generation = slot->hdr->generation;
	if (result)
		*result = res;
out:
	plan_free(&p);
	return rc;
}

__u32 fl_publisher_backend_id(const struct fl_publisher *pub, const union fl_addr *vip_addr,
			      __u8 vip_family, __u16 vip_port, __u8 vip_proto,
			      const struct fl_backend_key *key)
{
	struct vkey vk = vkey_make(vip_addr, vip_family, vip_port, vip_proto);
	struct fl_backend_key bk = bkey_canonical(key, vk.port);

	for (__u32 id = 0; id < pub->backend_hw; id++) {
		const struct fl_pub_backend *b = &pub->backends[id];
		if (b->live && bkey_cmp(&b->key, &bk) == 0 && pub->vips[b->vip_id].live &&
		    vkey_cmp(&pub->vips[b->vip_id].key, &vk) == 0)
			return id;
	}
	return FL_BACKEND_NONE;
}
