/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The tables as fulcrum-cp publishes them, kept by a test that owns every
 * VIP, backend and ring: the tests predict backends from this copy, never
 * from what a data plane reads back. The including test defines M (ring
 * entries per VIP, a prime), NVIPS and NB (backend ids) first, and fills
 * the VIPs itself.
 */
#ifndef FL_TESTS_TABLES_MODEL_H
#define FL_TESTS_TABLES_MODEL_H

#if !defined(M) || !defined(NVIPS) || !defined(NB)
#error "define M, NVIPS and NB before including tables_model.h"
#endif

#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include "flow.h"
#include "maglev.h"
#include "shm.h"

struct model {
	__u64 seed;
	struct fl_vip vips[NVIPS];
	struct fl_backend be[NB];
	__u32 ring[NVIPS][M];
};

/* Backend id of VIP vip, up with weight 1 and epoch 1, at address n of its
 * family: 10.1.0.0 + n, or fd00:1::n. */
static inline void model_backend(struct model *m, __u32 id, __u32 vip, __u8 family, __u32 n)
{
	struct fl_backend *b = &m->be[id];

	memset(b, 0, sizeof(*b));
	if (family == FL_AF_INET) {
		b->key.addr.v4 = htonl(0x0a010000u + n);
	} else {
		b->key.addr.bytes[0] = 0xfd;
		b->key.addr.bytes[3] = 1;
		b->key.addr.bytes[14] = (__u8)(n >> 8);
		b->key.addr.bytes[15] = (__u8)n;
	}
	b->key.family = family;
	b->epoch = 1;
	b->vip_id = vip;
	b->weight = 1;
	b->state = FL_BACKEND_UP;
	memcpy(b->mac, (const __u8[6]){ 2, 0, 0, 0, 0x0b, (__u8)id }, 6);
}

/* Rings from the backends that are up, as the control plane builds them. */
static inline int model_rings(struct model *m)
{
	char err[256];

	for (__u32 v = 0; v < NVIPS; v++) {
		struct fl_maglev_backend in[NB];
		size_t n = 0;

		for (__u32 id = 0; id < NB; id++)
			if (m->be[id].epoch && m->be[id].vip_id == v && m->be[id].state == FL_BACKEND_UP)
				in[n++] = (struct fl_maglev_backend){ m->be[id].key, id, m->be[id].weight };
		if (fl_maglev_build(in, n, M, m->ring[v], err, sizeof(err)) != 0) {
			fprintf(stderr, "maglev: %s\n", err);
			return -1;
		}
	}
	return 0;
}

/* Writes the model, rings as they are, into slot t of a mapping made with
 * params p. */
static inline void model_write(struct fl_tables *t, const struct fl_shm_params *p,
			       const struct model *m)
{
	t->hdr->hash_seed = m->seed;
	t->hdr->vip_count = NVIPS;
	t->hdr->backend_count = NB;
	t->hdr->ring_used = NVIPS * M;
	memset(t->vips, 0, p->max_vips * sizeof(*t->vips));
	memcpy(t->vips, m->vips, sizeof(m->vips));
	memset(t->backends, 0, p->max_backends * sizeof(*t->backends));
	memcpy(t->backends, m->be, sizeof(m->be));
	memcpy(t->ring, m->ring, sizeof(m->ring));
	fl_tables_index_vips(t);
}

/* Builds the rings and publishes the model as the next generation of shm
 * (made with params p); next_hop_mac, when not NULL, goes into the slot
 * header. */
static inline int model_publish(struct fl_shm *shm, const struct fl_shm_params *p,
				struct model *m, const __u8 *next_hop_mac)
{
	char err[256];
	struct fl_tables *t;

	if (model_rings(m))
		return -1;
	if (fl_writer_acquire(shm, 2000, 1000, &t, err, sizeof(err)) != 0) {
		fprintf(stderr, "acquire: %s\n", err);
		return -1;
	}
	model_write(t, p, m);
	if (next_hop_mac)
		memcpy(t->hdr->next_hop_mac, next_hop_mac, 6);
	return fl_writer_publish(shm);
}

#endif /* FL_TESTS_TABLES_MODEL_H */
