/* SPDX-License-Identifier: BSD-3-Clause */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define FL_SHM_MAX_VIPS (1u << 16)
#define FL_SHM_MAX_BACKENDS (1u << 24)
#define FL_SHM_MAX_RING_ENTRIES (1u << 28)
#define FL_SHM_MAX_WORKERS 1024u
#define FL_SHM_DEV_SHM "/dev/shm"

/* Offsets of everything in the mapping, derived from the parameters alone,
 * so a creator and an attacher compute the same ones. */
struct fl_shm_layout {
	__u32 vip_index_size;
	size_t vips_off, backends_off, index_off, ring_off;	/* within a slot */
	size_t slot_size;
	size_t slot_off[2];
	size_t workers_off;
	size_t counters_off;
	size_t counters_stride;
	size_t total;
};

static size_t align64(size_t x)
{
	return (x + 63) & ~(size_t)63;
}

static void fl_shm_layout(const struct fl_shm_params *p, struct fl_shm_layout *l)
{
	l->vip_index_size = 1;
	while (l->vip_index_size < 2 * p->max_vips)
		l->vip_index_size <<= 1;
	l->vips_off = sizeof(struct fl_slot_header);
	l->backends_off = align64(l->vips_off + (size_t)p->max_vips * sizeof(struct fl_vip));
	l->index_off = align64(l->backends_off + (size_t)p->max_backends * sizeof(struct fl_backend));
	l->ring_off = align64(l->index_off + (size_t)l->vip_index_size * sizeof(__u32));
	l->slot_size = align64(l->ring_off + (size_t)p->ring_entries * sizeof(__u32));
	l->slot_off[0] = align64(sizeof(struct fl_shm_header));
	l->slot_off[1] = l->slot_off[0] + l->slot_size;
	l->workers_off = l->slot_off[1] + l->slot_size;
	l->counters_off = align64(l->workers_off + (size_t)p->max_workers * sizeof(struct fl_worker_state));
	l->counters_stride = align64(sizeof(struct fl_worker_counters) +
				     (size_t)p->max_vips * sizeof(struct fl_vip_counters) +
				     (size_t)p->max_backends * sizeof(struct fl_backend_counters));
	l->total = l->counters_off + (size_t)p->max_workers * l->counters_stride;
}

static int fl_shm_check_params(const struct fl_shm_params *p, char *err, size_t errlen)
{
	if (p->max_vips < 1 || p->max_vips > FL_SHM_MAX_VIPS ||
	    p->max_backends < 1 || p->max_backends > FL_SHM_MAX_BACKENDS ||
	    p->ring_entries < 2 || p->ring_entries > FL_SHM_MAX_RING_ENTRIES ||
	    p->max_workers < 1 || p->max_workers > FL_SHM_MAX_WORKERS) {
		snprintf(err, errlen, "shared memory limits out of range: max_vips %u (1..%u), "
			 "max_backends %u (1..%u), ring_entries %u (2..%u), max_workers %u (1..%u)",
			 p->max_vips, FL_SHM_MAX_VIPS, p->max_backends, FL_SHM_MAX_BACKENDS,
			 p->ring_entries, FL_SHM_MAX_RING_ENTRIES, p->max_workers, FL_SHM_MAX_WORKERS);
		return -EINVAL;
	}
	return 0;
}

/* The first mounted hugetlbfs, or "" when there is none. */
static void fl_hugetlbfs_mount(char *buf, size_t len)
{
	FILE *f = setmntent("/proc/mounts", "r");
	struct mntent *m;

	buf[0] = '\0';
	if (!f)
		return;
	while ((m = getmntent(f)) != NULL) {
		if (strcmp(m->mnt_type, "hugetlbfs") == 0) {
			snprintf(buf, len, "%s", m->mnt_dir);
			break;
		}
	}
	endmntent(f);
}

int fl_shm_path(const char *name, bool huge, char *buf, size_t len)
{
	char dir[FL_SHM_PATH_LEN];
	int n;

	if (name[0] == '\0')
		return -EINVAL;
	if (strchr(name, '/'))
		n = snprintf(buf, len, "%s", name);
	else {
		if (huge) {
			fl_hugetlbfs_mount(dir, sizeof(dir));
			if (dir[0] == '\0')
				return -ENOENT;
		} else {
			snprintf(dir, sizeof(dir), "%s", FL_SHM_DEV_SHM);
		}
		n = snprintf(buf, len, "%s/fulcrum-%s", dir, name);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void fl_shm_views(struct fl_shm *shm, const struct fl_shm_layout *l)
{
	const struct fl_shm_header *h = shm->hdr;

	for (int s = 0; s < 2; s++) {
		char *base = (char *)shm->hdr + l->slot_off[s];
		struct fl_tables *t = &shm->slots[s];

		t->hdr = (struct fl_slot_header *)base;
		t->vips = (struct fl_vip *)(base + l->vips_off);
		t->backends = (struct fl_backend *)(base + l->backends_off);
		t->vip_index = (__u32 *)(base + l->index_off);
		t->ring = (__u32 *)(base + l->ring_off);
		t->vip_index_mask = l->vip_index_size - 1;
		t->max_vips = h->max_vips;
		t->max_backends = h->max_backends;
		t->ring_entries = h->ring_entries;
	}
	shm->workers = (struct fl_worker_state *)((char *)shm->hdr + l->workers_off);
}

/* Checks an existing header against this build; fills the layout. */
static int fl_shm_check_header(const struct fl_shm *shm, struct fl_shm_layout *l,
			       char *err, size_t errlen)
{
	const struct fl_shm_header *h = shm->hdr;
	struct fl_shm_params p;

	if (shm->map.size < sizeof(*h) ||
	    __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != FL_SHM_MAGIC) {
		snprintf(err, errlen, "%s: not a fulcrum shared-memory file, or still being created",
			 shm->map.path);
		return -EPROTO;
	}
	if (h->abi_version != FL_SHM_ABI_VERSION) {
		snprintf(err, errlen, "%s: ABI version %u, this build speaks %u: stop its users and remove it",
			 shm->map.path, h->abi_version, FL_SHM_ABI_VERSION);
		return -EPROTO;
	}
	if (h->header_size != sizeof(*h) || h->vip_size != sizeof(struct fl_vip) ||
	    h->backend_size != sizeof(struct fl_backend) ||
	    h->worker_counters_size != sizeof(struct fl_worker_counters) ||
	    h->vip_counters_size != sizeof(struct fl_vip_counters) ||
	    h->backend_counters_size != sizeof(struct fl_backend_counters)) {
		snprintf(err, errlen, "%s: record sizes differ from this build's (same ABI version, other layout)",
			 shm->map.path);
		return -EPROTO;
	}
	p = (struct fl_shm_params){ h->max_vips, h->max_backends, h->ring_entries, h->max_workers };
	if (fl_shm_check_params(&p, err, errlen) < 0)
		return -EPROTO;
	fl_shm_layout(&p, l);
	if (h->total_size != l->total || h->total_size > shm->map.size ||
	    h->slot_offset[0] != l->slot_off[0] || h->slot_offset[1] != l->slot_off[1] ||
	    h->workers_offset != l->workers_off || h->counters_offset != l->counters_off ||
	    h->counters_stride != l->counters_stride || h->vip_index_size != l->vip_index_size) {
		snprintf(err, errlen, "%s: layout in the header does not match its limits (file %zu bytes)",
			 shm->map.path, shm->map.size);
		return -EPROTO;
	}
	return 0;
}

static void fl_shm_init_header(struct fl_shm *shm, const struct fl_shm_params *p,
			       const struct fl_shm_layout *l)
{
	struct fl_shm_header *h = shm->hdr;

	memset(h, 0, sizeof(*h));
	h->abi_version = FL_SHM_ABI_VERSION;
	h->header_size = sizeof(*h);
	h->total_size = l->total;
	h->max_vips = p->max_vips;
	h->max_backends = p->max_backends;
	h->ring_entries = p->ring_entries;
	h->max_workers = p->max_workers;
	h->vip_index_size = l->vip_index_size;
	h->vip_size = sizeof(struct fl_vip);
	h->backend_size = sizeof(struct fl_backend);
	h->worker_counters_size = sizeof(struct fl_worker_counters);
	h->vip_counters_size = sizeof(struct fl_vip_counters);
	h->backend_counters_size = sizeof(struct fl_backend_counters);
	h->slot_offset[0] = l->slot_off[0];
	h->slot_offset[1] = l->slot_off[1];
	h->workers_offset = l->workers_off;
	h->counters_offset = l->counters_off;
	h->counters_stride = l->counters_stride;
	fl_shm_views(shm, l);
	/* Empty tables in slot 0 as generation 1: readers always find a
	 * published, whole slot. */
	memset(shm->slots[0].hdr, 0, sizeof(struct fl_slot_header));
	memset(shm->slots[1].hdr, 0, sizeof(struct fl_slot_header));
	shm->slots[0].hdr->generation = 1;
	h->published = 1u << 1;
	/* release: every field above is visible before the magic is */
	__atomic_store_n(&h->magic, FL_SHM_MAGIC, __ATOMIC_RELEASE);
}

static int mapping_map(struct fl_mapping *m, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(m->fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", m->path, strerror(errno));
		return -errno;
	}
	m->size = (size_t)st.st_size;
	if (m->size == 0) {
		snprintf(err, errlen, "%s: empty file", m->path);
		return -EPROTO;
	}
	m->addr = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	if (m->addr == MAP_FAILED) {
		int e = errno;
		m->addr = NULL;
		snprintf(err, errlen, "%s: mmap: %s", m->path, strerror(e));
		return -e;
	}
	return 0;
}

void fl_mapping_close(struct fl_mapping *m)
{
	if (m->addr)
		munmap(m->addr, m->size);
	if (m->fd >= 0)
		close(m->fd);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

int fl_mapping_open(const char *name, struct fl_mapping *m, char *err, size_t errlen)
{
	char tried[2 * FL_SHM_PATH_LEN + 8] = "";
	int rc;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	for (int huge = 1; huge >= 0; huge--) {
		if (fl_shm_path(name, huge, m->path, sizeof(m->path)) < 0)
			continue;
		m->fd = open(m->path, O_RDWR | O_CLOEXEC);
		if (m->fd >= 0) {
			rc = mapping_map(m, err, errlen);
			if (rc < 0)
				fl_mapping_close(m);
			return rc;
		}
		if (errno != ENOENT) {
			int e = errno;
			snprintf(err, errlen, "%s: %s", m->path, strerror(e));
			return -e;
		}
		size_t used = strlen(tried);
		snprintf(tried + used, sizeof(tried) - used, "%s%s", used ? " or " : "", m->path);
		if (strchr(name, '/'))
			break;
	}
	snprintf(err, errlen, "no shared memory '%s' (no %s)", name, tried);
	return -ENOENT;
}

int fl_mapping_create(const char *name, size_t size, struct fl_mapping *m, char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	for (int huge = 1; huge >= 0; huge--) {
		size_t rounded = size;
		struct statfs sfs;

		if (fl_shm_path(name, huge, m->path, sizeof(m->path)) < 0)
			continue;
		m->fd = open(m->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0660);
		if (m->fd < 0) {
			int e = errno;
			snprintf(err, errlen, "%s: %s", m->path, strerror(e));
			return -e;
		}
		if (fstatfs(m->fd, &sfs) == 0 && sfs.f_bsize > 0)
			rounded = (size + (size_t)sfs.f_bsize - 1) / (size_t)sfs.f_bsize * (size_t)sfs.f_bsize;
		if (ftruncate(m->fd, (off_t)rounded) < 0)
			snprintf(err, errlen, "%s: cannot size %zu bytes: %s", m->path, rounded,
				 strerror(errno));
		else if (mapping_map(m, err, errlen) == 0)
			return 0;
		/* hugetlbfs without free pages refuses the mapping: fall back */
		unlink(m->path);
		fl_mapping_close(m);
		if (strchr(name, '/'))
			break;
	}
	return -ENOMEM;
}

static void fl_shm_reset(struct fl_shm *shm)
{
	memset(shm, 0, sizeof(*shm));
	shm->map.fd = -1;
	shm->pending_slot = -1;
}

int fl_shm_attach(const char *name, struct fl_shm *shm, char *err, size_t errlen)
{
	struct fl_shm_layout l;
	int rc;

	fl_shm_reset(shm);
	rc = fl_mapping_open(name, &shm->map, err, errlen);
	if (rc == -ENOENT) {
		size_t used = strlen(err);
		snprintf(err + used, errlen - used, ": is fulcrum-cp running?");
	}
	if (rc < 0)
		goto fail;
	shm->hdr = shm->map.addr;
	rc = fl_shm_check_header(shm, &l, err, errlen);
	if (rc < 0)
		goto fail;
	fl_shm_views(shm, &l);
	return 0;
fail:
	fl_shm_detach(shm);
	return rc;
}

static int fl_shm_lock(struct fl_shm *shm, char *err, size_t errlen)
{
	if (flock(shm->map.fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	snprintf(err, errlen, "%s: another writer (fulcrum-cp) holds it", shm->map.path);
	return -EBUSY;
}

int fl_shm_create(const char *name, const struct fl_shm_params *params,
		  struct fl_shm *shm, char *err, size_t errlen)
{
	struct fl_shm_layout want, have;
	int rc;

	fl_shm_reset(shm);
	rc = fl_shm_check_params(params, err, errlen);
	if (rc < 0)
		return rc;
	fl_shm_layout(params, &want);
	rc = fl_mapping_open(name, &shm->map, err, errlen);
	if (rc == 0) {
		shm->hdr = shm->map.addr;
		rc = fl_shm_lock(shm, err, errlen);
		if (rc < 0)
			goto fail;
		/* A creator that died before writing the magic left a file that
		 * only its lock holder may finish. */
		if (shm->map.size >= want.total && __atomic_load_n(&shm->hdr->magic, __ATOMIC_ACQUIRE) == 0) {
			fl_shm_init_header(shm, params, &want);
			goto done;
		}
		rc = fl_shm_check_header(shm, &have, err, errlen);
		if (rc < 0)
			goto fail;
		if (shm->hdr->max_vips != params->max_vips ||
		    shm->hdr->max_backends != params->max_backends ||
		    shm->hdr->ring_entries != params->ring_entries ||
		    shm->hdr->max_workers != params->max_workers) {
			snprintf(err, errlen, "%s: made with other limits (max_vips %u, max_backends %u, "
				 "ring_entries %u, max_workers %u): stop its users and remove it to change them",
				 shm->map.path, shm->hdr->max_vips, shm->hdr->max_backends,
				 shm->hdr->ring_entries, shm->hdr->max_workers);
			rc = -EPROTO;
			goto fail;
		}
		fl_shm_views(shm, &have);
		goto done;
	}
	if (rc != -ENOENT)
		goto fail;
	rc = fl_mapping_create(name, want.total, &shm->map, err, errlen);
	if (rc < 0)
		goto fail;
	shm->hdr = shm->map.addr;
	rc = fl_shm_lock(shm, err, errlen);
	if (rc < 0)
		goto fail;
	fl_shm_init_header(shm, params, &want);
done:
	shm->writer = true;
	__atomic_store_n(&shm->hdr->writer_pid, (__u64)getpid(), __ATOMIC_RELAXED);
	return 0;
fail:
	fl_shm_detach(shm);
	return rc;
}

void fl_shm_detach(struct fl_shm *shm)
{
	fl_mapping_close(&shm->map);	/* closing the file drops the writer lock */
	fl_shm_reset(shm);
}

int fl_shm_unlink(const char *name)
{
	char path[FL_SHM_PATH_LEN];
	int found = 0;

	for (int huge = 1; huge >= 0; huge--)
		if (fl_shm_path(name, huge, path, sizeof(path)) == 0 && unlink(path) == 0)
			found = 1;
	return found ? 0 : -ENOENT;
}

__u64 fl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

static bool fl_pid_alive(__u32 pid)
{
	return pid != 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

int fl_reader_register(struct fl_shm *shm, unsigned worker, struct fl_reader *r,
		       char *err, size_t errlen)
{
	struct fl_worker_state *ws;
	__u64 now = fl_now_ns();

	if (worker >= shm->hdr->max_workers) {
		snprintf(err, errlen, "worker %u: the shared memory has room for %u workers",
			 worker, shm->hdr->max_workers);
		return -ERANGE;
	}
	ws = &shm->workers[worker];
	if (__atomic_load_n(&ws->active, __ATOMIC_ACQUIRE) && ws->pid != (__u32)getpid() &&
	    fl_pid_alive(ws->pid) &&
	    now - __atomic_load_n(&ws->heartbeat_ns, __ATOMIC_RELAXED) <
		    FL_SHM_DEFAULT_DEAD_AFTER_MS * 1000000ull) {
		snprintf(err, errlen, "worker %u is held by live process %u", worker, ws->pid);
		return -EBUSY;
	}
	ws->pid = (__u32)getpid();
	__atomic_store_n(&ws->heartbeat_ns, now, __ATOMIC_RELAXED);
	/* seq_cst store then seq_cst load, against the writer's seq_cst
	 * publish then seq_cst load of `active`: either the writer sees this
	 * worker active and waits for it, or this load sees the writer's latest
	 * publish and the worker never touches the slot being written. */
	__atomic_store_n(&ws->active, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&ws->seen_generation,
			 __atomic_load_n(&shm->hdr->published, __ATOMIC_SEQ_CST) >> 1,
			 __ATOMIC_RELEASE);
	r->slots = shm->slots;
	r->published = &shm->hdr->published;
	r->state = ws;
	r->generation = ws->seen_generation;
	return 0;
}

void fl_reader_unregister(struct fl_reader *r)
{
	/* release: the last burst's reads happen before the writer stops
	 * waiting for this worker */
	__atomic_store_n(&r->state->active, 0, __ATOMIC_RELEASE);
}

const struct fl_tables *fl_writer_active(const struct fl_shm *shm)
{
	return &shm->slots[__atomic_load_n(&shm->hdr->published, __ATOMIC_ACQUIRE) & 1];
}

/* Waits until worker w cannot be reading a slot older than gen. */
static int fl_writer_wait_worker(struct fl_shm *shm, unsigned w, __u64 gen, __u64 deadline,
				 __u64 dead_after_ns, char *err, size_t errlen)
{
	struct fl_worker_state *ws = &shm->workers[w];
	const struct timespec pause = { 0, 20000 };

	for (;;) {
		/* acquire on both: the worker's reads of the old slot happen
		 * before the writer overwrites it. seq_cst on `active`, with the
		 * seq_cst publish: see fl_reader_register. */
		if (!__atomic_load_n(&ws->active, __ATOMIC_SEQ_CST) ||
		    __atomic_load_n(&ws->seen_generation, __ATOMIC_ACQUIRE) >= gen)
			return 0;
		__u64 now = fl_now_ns();
		__u64 beat = __atomic_load_n(&ws->heartbeat_ns, __ATOMIC_RELAXED);
		if ((__s64)(now - beat) > (__s64)dead_after_ns)
			return 0;
		if (now >= deadline) {
			snprintf(err, errlen, "worker %u (pid %u) has not finished generation %llu "
				 "within the publish timeout", w, ws->pid,
				 (unsigned long long)gen - 1);
			return -ETIMEDOUT;
		}
		nanosleep(&pause, NULL);
	}
}

int fl_writer_acquire(struct fl_shm *shm, __u32 timeout_ms, __u32 dead_after_ms,
		      struct fl_tables **slot, char *err, size_t errlen)
{
	__u64 p = __atomic_load_n(&shm->hdr->published, __ATOMIC_RELAXED);
	__u64 deadline = fl_now_ns() + (__u64)timeout_ms * 1000000ull;
	int rc;

	for (unsigned w = 0; w < shm->hdr->max_workers; w++) {
		rc = fl_writer_wait_worker(shm, w, p >> 1, deadline,
					   (__u64)dead_after_ms * 1000000ull, err, errlen);
		if (rc < 0)
			return rc;
	}
	shm->pending_slot = (int)((p & 1) ^ 1);
	*slot = &shm->slots[shm->pending_slot];
	return 0;
}

void fl_tables_index_vips(struct fl_tables *t)
{
	memset(t->vip_index, 0, ((size_t)t->vip_index_mask + 1) * sizeof(__u32));
	for (__u32 id = 0; id < t->hdr->vip_count && id < t->max_vips; id++) {
		const struct fl_vip *v = &t->vips[id];
		if (!(v->flags & FL_VIP_IN_USE))
			continue;
		__u32 i = fl_vip_hash(&v->addr, v->port, v->proto) & t->vip_index_mask;
		while (t->vip_index[i] != 0)
			i = (i + 1) & t->vip_index_mask;
		t->vip_index[i] = id + 1;
	}
}

void fl_tables_copy(struct fl_tables *dst, const struct fl_tables *src)
{
	__u64 generation = dst->hdr->generation;

	memcpy(dst->hdr, src->hdr, sizeof(*dst->hdr));
	dst->hdr->generation = generation;
	memcpy(dst->vips, src->vips, (size_t)src->max_vips * sizeof(*src->vips));
	memcpy(dst->backends, src->backends, (size_t)src->max_backends * sizeof(*src->backends));
	memcpy(dst->vip_index, src->vip_index, ((size_t)src->vip_index_mask + 1) * sizeof(__u32));
	memcpy(dst->ring, src->ring, (size_t)src->hdr->ring_used * sizeof(__u32));
}

void fl_writer_abort(struct fl_shm *shm)
{
	shm->pending_slot = -1;
}

int fl_writer_publish(struct fl_shm *shm)
{
	__u64 p = __atomic_load_n(&shm->hdr->published, __ATOMIC_RELAXED);
	__u64 gen = (p >> 1) + 1;
	int slot = shm->pending_slot;

	if (slot < 0)
		return -EINVAL;
	shm->slots[slot].hdr->generation = gen;
	shm->pending_slot = -1;
	/* release: the whole slot is written before a reader can load this;
	 * seq_cst for the registration handshake of fl_reader_register */
	__atomic_store_n(&shm->hdr->published, gen << 1 | (__u64)slot, __ATOMIC_SEQ_CST);
	return 0;
}
