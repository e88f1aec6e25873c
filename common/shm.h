/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The shared memory between fulcrum-cp (the one writer) and fulcrum-dp (the
 * readers, one per worker): a file mapping with a header, two table slots,
 * per-worker state and per-worker counters (DESIGN.md "Shared memory").
 *
 * Protocol. The header's `published` word holds (generation << 1 | slot).
 * A worker loads it once per burst (acquire), reads only that slot, and at
 * the end of the burst stores the generation it used (release). The writer
 * fills the inactive slot only after every live worker has stored a
 * generation >= the published one, i.e. has finished every burst that could
 * have started on the inactive slot; then it publishes with a release store.
 * A worker whose heartbeat is older than the dead threshold is not waited
 * for, and every wait ends at its timeout.
 */
#ifndef FL_SHM_H
#define FL_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "flow.h"
#include "tables.h"
#include "counters.h"

#define FL_SHM_MAGIC 0x4d5552434c55461fULL
#define FL_SHM_ABI_VERSION 1u
#define FL_SHM_PATH_LEN 256
#define FL_SHM_DEFAULT_DEAD_AFTER_MS 1000u

struct fl_shm_params {
	__u32 max_vips;
	__u32 max_backends;
	__u32 ring_entries;	/* per slot, over all VIPs */
	__u32 max_workers;
};

/* The first bytes of the mapping. Everything but the second cache line is
 * written once at creation; `magic` last, so an attacher never sees a
 * half-made header. */
struct fl_shm_header {
	__u64 magic;
	__u32 abi_version;
	__u32 header_size;
	__u64 total_size;
	__u32 max_vips;
	__u32 max_backends;
	__u32 ring_entries;
	__u32 max_workers;
	__u32 vip_index_size;		/* a power of two >= 2 * max_vips */
	__u16 vip_size;			/* sizeof(struct fl_vip), and so on: */
	__u16 backend_size;		/* a build with other layouts is refused */
	__u16 worker_counters_size;
	__u16 vip_counters_size;
	__u16 backend_counters_size;
	__u16 pad0;
	__u64 slot_offset[2];
	__u64 workers_offset;
	__u64 counters_offset;
	__u64 counters_stride;		/* bytes of one worker's counters */
	__u8 pad1[32];
	/* second line: written by the writer at every publish */
	__u64 published;		/* generation << 1 | active slot */
	__u64 writer_pid;
	__u8 pad2[48];
};

/* A slot's own header; the writer sets generation before publishing.
 * next_hop_mac came out of padding that every writer zeroed: zero means
 * "not known" (not resolved yet, or a writer that predates it), and the
 * data plane then falls back to the config's next_hop.mac. Readers of
 * either age read the other's slots right, so the ABI version stays. */
struct fl_slot_header {
	__u64 generation;
	__u64 hash_seed;
	__u32 vip_count;		/* vip ids in use are below it */
	__u32 backend_count;		/* backend ids in use are below it */
	__u32 ring_used;		/* ring entries handed out */
	__u8 next_hop_mac[6];		/* router toward the backends; zero = unknown */
	__u8 pad[30];
};

/* One cache line per worker, written only by that worker. */
struct fl_worker_state {
	__u64 seen_generation;		/* generation of its last finished burst */
	__u64 heartbeat_ns;		/* CLOCK_MONOTONIC */
	__u32 active;
	__u32 pid;
	__u8 pad[40];
};

_Static_assert(sizeof(struct fl_shm_header) == 192, "shm header layout");
_Static_assert(__builtin_offsetof(struct fl_shm_header, published) == 128,
	       "published on its own cache line");
_Static_assert(sizeof(struct fl_slot_header) == 64, "slot header layout");
_Static_assert(__builtin_offsetof(struct fl_slot_header, next_hop_mac) == 28,
	       "slot header next_hop_mac");
_Static_assert(sizeof(struct fl_worker_state) == 64, "worker state is one line");

/* This process's view of one slot: pointers into the mapping. */
struct fl_tables {
	struct fl_slot_header *hdr;
	struct fl_vip *vips;		/* by vip id, [max_vips] */
	struct fl_backend *backends;	/* by backend id, [max_backends] */
	__u32 *vip_index;		/* vip id + 1 by VIP hash; 0 = empty */
	__u32 *ring;			/* [ring_entries] */
	__u32 vip_index_mask;
	__u32 max_vips;
	__u32 max_backends;
	__u32 ring_entries;
};

/* A file mapping named as fl_shm_path() says. */
struct fl_mapping {
	void *addr;
	size_t size;
	int fd;
	char path[FL_SHM_PATH_LEN];
};

struct fl_shm {
	struct fl_shm_header *hdr;	/* map.addr */
	struct fl_mapping map;
	bool writer;			/* holds the writer lock */
	int pending_slot;		/* acquired for writing; -1 = none */
	struct fl_tables slots[2];
	struct fl_worker_state *workers;
};

/*
 * Where a mapping named `name` lives: `name` itself when it holds a '/',
 * else "fulcrum-NAME" on a mounted hugetlbfs when there is one, else in
 * /dev/shm. fl_shm_attach looks in both places.
 */
int fl_shm_path(const char *name, bool huge, char *buf, size_t len);

/* Maps the existing file for `name`, on hugetlbfs or in /dev/shm. -ENOENT
 * (with the paths tried in err) when there is none. */
int fl_mapping_open(const char *name, struct fl_mapping *m, char *err, size_t errlen);

/* Creates and maps a zeroed file of at least size bytes for `name`: on a
 * mounted hugetlbfs when it has the pages (fewer TLB misses for tables the
 * data plane reads at random), else in /dev/shm. */
int fl_mapping_create(const char *name, size_t size, struct fl_mapping *m, char *err, size_t errlen);

void fl_mapping_close(struct fl_mapping *m);

/*
 * For fulcrum-cp: takes the writer lock on the mapping `name` (one writer at
 * a time) and attaches to it when it exists with this ABI and these sizes,
 * keeping its tables (a restarted writer reads back its ids); else creates it
 * with empty tables published as generation 1. A mapping of another ABI
 * version or other sizes is an error, not silently replaced.
 * 0, or -errno with a one-line message.
 */
int fl_shm_create(const char *name, const struct fl_shm_params *params,
		  struct fl_shm *shm, char *err, size_t errlen);

/* For fulcrum-dp: attaches to an existing mapping after checking magic, ABI
 * version and sizes. 0, or -errno with a one-line message. */
int fl_shm_attach(const char *name, struct fl_shm *shm, char *err, size_t errlen);

void fl_shm_detach(struct fl_shm *shm);

/* Removes the mapping's file (the mapping lives on while attached). */
int fl_shm_unlink(const char *name);

static inline struct fl_worker_counters *fl_shm_worker_counters(const struct fl_shm *shm, unsigned w)
{
	return (struct fl_worker_counters *)((char *)shm->hdr + shm->hdr->counters_offset +
					     (size_t)w * shm->hdr->counters_stride);
}

static inline struct fl_vip_counters *fl_shm_vip_counters(const struct fl_shm *shm, unsigned w)
{
	return (struct fl_vip_counters *)(fl_shm_worker_counters(shm, w) + 1);
}

static inline struct fl_backend_counters *fl_shm_backend_counters(const struct fl_shm *shm, unsigned w)
{
	return (struct fl_backend_counters *)(fl_shm_vip_counters(shm, w) + shm->hdr->max_vips);
}

__u64 fl_now_ns(void);

/* ---- VIP lookup (readers and writer) ---- */

static inline __u32 fl_vip_hash(const union fl_addr *addr, __be16 port, __u8 proto)
{
	__u64 h = fl_hash_round(FL_HASH_MUL, fl_words(addr->v6[0] ^ addr->v6[2],
						      addr->v6[1] ^ addr->v6[3]));
	return (__u32)(fl_hash_round(h, (__u64)port << 8 | proto) >> 32);
}

/* The VIP for (address, port, protocol) in this slot, or NULL. */
static inline const struct fl_vip *fl_vip_find(const struct fl_tables *t, const union fl_addr *addr,
					       __u8 family, __be16 port, __u8 proto, __u32 *vip_id)
{
	__u32 i = fl_vip_hash(addr, port, proto) & t->vip_index_mask;

	for (__u32 n = 0; n <= t->vip_index_mask; n++, i = (i + 1) & t->vip_index_mask) {
		__u32 e = t->vip_index[i];
		if (e == 0 || e > t->max_vips)
			return NULL;
		const struct fl_vip *v = &t->vips[e - 1];
		if (v->port == port && v->proto == proto && v->family == family &&
		    v->addr.v6[0] == addr->v6[0] && v->addr.v6[1] == addr->v6[1] &&
		    v->addr.v6[2] == addr->v6[2] && v->addr.v6[3] == addr->v6[3]) {
			*vip_id = e - 1;
			return v;
		}
	}
	return NULL;
}

/* The backend id the Maglev ring of vip gives a flow of this hash
 * (FL_BACKEND_NONE for an empty ring, or a ring outside the slot; the id
 * itself is the caller's to bound): the one selection rule of DESIGN.md,
 * used by the data plane and by lookups alike. */
static inline __u32 fl_tables_pick(const struct fl_tables *t, const struct fl_vip *vip, __u32 hash)
{
	__u32 off = vip->ring_offset, size = vip->ring_size;

	/* what shared memory says is never trusted as an index */
	if (size == 0 || off > t->ring_entries || size > t->ring_entries - off)
		return FL_BACKEND_NONE;
	return t->ring[off + hash % size];
}

/* ---- reader side (fulcrum-dp workers) ---- */

struct fl_reader {
	const struct fl_tables *slots;
	const __u64 *published;
	struct fl_worker_state *state;
	__u64 generation;
};

/* Claims worker slot `worker` for this thread. -EBUSY when another live
 * process holds it, -ERANGE past max_workers. */
int fl_reader_register(struct fl_shm *shm, unsigned worker, struct fl_reader *r,
		       char *err, size_t errlen);
void fl_reader_unregister(struct fl_reader *r);

/* Once per burst: the tables to use for the whole burst. */
static inline const struct fl_tables *fl_reader_begin(struct fl_reader *r)
{
	/* acquire: the slot's contents, written before the writer's release
	 * store of `published`, are visible from here on */
	__u64 p = __atomic_load_n(r->published, __ATOMIC_ACQUIRE);
	r->generation = p >> 1;
	return &r->slots[p & 1];
}

/* After the burst: nothing from the tables is read after this. */
static inline void fl_reader_end(struct fl_reader *r)
{
	/* release: every read of the slot happens before the writer, which
	 * acquires this value, may overwrite it */
	__atomic_store_n(&r->state->seen_generation, r->generation, __ATOMIC_RELEASE);
}

/* At least every few milliseconds, busy or idle. */
static inline void fl_reader_heartbeat(struct fl_reader *r, __u64 now_ns)
{
	__atomic_store_n(&r->state->heartbeat_ns, now_ns, __ATOMIC_RELAXED);
}

/* ---- writer side (fulcrum-cp) ---- */

/* The tables now published (to copy from, or to read back at restart). */
const struct fl_tables *fl_writer_active(const struct fl_shm *shm);

/*
 * Waits, at most timeout_ms, until no live worker can be reading the
 * inactive slot, and returns it for writing. A worker counts as dead when
 * its heartbeat is older than dead_after_ms. -ETIMEDOUT names the worker
 * that held it; nothing is changed then.
 */
int fl_writer_acquire(struct fl_shm *shm, __u32 timeout_ms, __u32 dead_after_ms,
		      struct fl_tables **slot, char *err, size_t errlen);

/* Rebuilds the slot's VIP index from its vips[] marked FL_VIP_IN_USE. */
void fl_tables_index_vips(struct fl_tables *t);

/* Copies every table of src into dst (slots of the same mapping). */
void fl_tables_copy(struct fl_tables *dst, const struct fl_tables *src);

/* Gives up the slot fl_writer_acquire returned, unpublished (after a failed
 * write: a half-written slot must never be published). */
void fl_writer_abort(struct fl_shm *shm);

/* Publishes the slot fl_writer_acquire returned as the next generation;
 * -EINVAL when none was acquired. */
int fl_writer_publish(struct fl_shm *shm);

#endif /* FL_SHM_H */
