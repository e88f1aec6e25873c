/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Loader of the XDP balancer (xdp.h): open -> set rodata knobs and map
 * sizes -> load -> map the tables; publish copies a shared-memory slot into
 * the inactive map slot and switches to it (libbpf-bootstrap's shape).
 */
#include <errno.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/if_link.h>
#include <linux/membarrier.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "err.h"
#include "xdp.h"
#include "balancer.skel.h"

/* Fallback grace period where membarrier GLOBAL is refused (nohz_full):
 * one XDP run takes microseconds; this is thousands of times that. */
#define GRACE_FALLBACK_NS 50000000L

/* fulcrum-dp's default idle timeouts (dp/conntrack.c), in seconds. */
static const __u32 default_timeout_s[FL_CT_STATE__MAX] = {
	[FL_CT_SYN] = 5,
	[FL_CT_ESTABLISHED] = 300,
	[FL_CT_CLOSING] = 10,
	[FL_CT_UDP] = 30,
};

static size_t page_round(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (n + pg - 1) / pg * pg;
}

/* Maps an mmapable array map of the skeleton; NULL on error (errno). */
static void *map_mem(struct bpf_map *m, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(m), 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Tables hold both slots (xdp.h); counters are per CPU; conntrack is
 * ct_buckets buckets that every CPU shares. */
static void set_sizes(struct balancer_bpf *s, __u32 vips, __u32 backends, __u32 chunks,
		      __u32 ct_buckets)
{
	bpf_map__set_max_entries(s->maps.vips, 2 * vips);
	bpf_map__set_max_entries(s->maps.vips_by_id, 2 * vips);
	bpf_map__set_max_entries(s->maps.vip_addrs, 2 * vips);
	bpf_map__set_max_entries(s->maps.backends, 2 * backends);
	bpf_map__set_max_entries(s->maps.rings, 2 * chunks);
	bpf_map__set_max_entries(s->maps.vip_counters, vips);
	bpf_map__set_max_entries(s->maps.backend_counters, backends);
	bpf_map__set_max_entries(s->maps.conntrack, ct_buckets);
	s->rodata->cfg_ct_buckets = ct_buckets;
}

static void set_rodata(struct balancer_bpf *s, const struct fl_xdp_knobs *k)
{
	struct balancer_bpf__rodata *ro = s->rodata;

	memcpy((void *)ro->cfg_src_mac, k->src_mac, 6);
	memcpy((void *)ro->cfg_next_hop_mac, k->next_hop_mac, 6);
	ro->cfg_tunnel_src_v4 = k->tunnel_src_v4.v4;
	memcpy((void *)ro->cfg_tunnel_src_v6, k->tunnel_src_v6.v6, 16);
	ro->cfg_gue_port = htons(k->gue_port);
	ro->cfg_mtu = k->mtu;
	ro->cfg_fib_lookup = k->fib_lookup;
	ro->cfg_too_big_rate = k->too_big_rate ? k->too_big_rate : FL_XDP_TOO_BIG_RATE;
	ro->cfg_new_flow_rate = k->new_flow_rate;
	for (int i = FL_CT_SYN; i < FL_CT_STATE__MAX; i++) {
		__u64 t = k->ct_timeout_s[i] ? k->ct_timeout_s[i] : default_timeout_s[i];
		__u64 ticks = (t * 1000000000ull + (1ull << FL_XDP_CT_TICK_SHIFT) - 1) >>
			      FL_XDP_CT_TICK_SHIFT;

		/* fl_ct_since counts at most 2^31 - 1 ticks (4.5 years) */
		ro->cfg_timeout_ticks[i] = ticks < 0x7fffffffull ? (__u32)ticks : 0x7fffffffu;
	}
}

/* A map id list of a loaded program; free() it. NULL on error (errno). */
static __u32 *prog_map_ids(int prog_fd, __u32 *n)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info), *ids;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
		return NULL;
	*n = info.nr_map_ids;
	ids = calloc(*n ? *n : 1, sizeof(*ids));
	if (!ids || *n == 0)
		return ids;
	memset(&info, 0, sizeof(info));
	info.nr_map_ids = *n;
	info.map_ids = (__u64)(unsigned long)ids;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) {
		free(ids);
		return NULL;
	}
	*n = info.nr_map_ids < *n ? info.nr_map_ids : *n;
	return ids;
}

/* An fd of prog_fd's map called name, or -1. */
static int adopted_map_fd(int prog_fd, const char *name)
{
	__u32 n = 0, *ids = prog_map_ids(prog_fd, &n);
	int found = -1;

	for (__u32 i = 0; ids && i < n && found < 0; i++) {
		struct bpf_map_info mi;
		__u32 len = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(ids[i]);

		if (fd < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		/* the kernel keeps BPF_OBJ_NAME_LEN - 1 characters of a name */
		if (bpf_obj_get_info_by_fd(fd, &mi, &len) == 0 &&
		    strncmp(mi.name, name, BPF_OBJ_NAME_LEN - 1) == 0)
			found = fd;
		else
			close(fd);
	}
	free(ids);
	return found;
}

/* Whether a kept map (fd) has another type, or other key or value sizes,
 * than this build's m: an older fulcrum's layout. */
static bool other_layout(int fd, const struct bpf_map *m)
{
	struct bpf_map_info mi;
	__u32 len = sizeof(mi);

	memset(&mi, 0, sizeof(mi));
	return bpf_obj_get_info_by_fd(fd, &mi, &len) == 0 &&
	       (mi.type != bpf_map__type(m) || mi.key_size != bpf_map__key_size(m) ||
		mi.value_size != bpf_map__value_size(m));
}

/* slot_meta is written whole by the publish that precedes every attach, so
 * one of an older layout is made anew instead of failing the load: an
 * upgrade keeps conntrack and the tables. So is a conntrack of an older
 * layout (the per-CPU LRU map before 2026-11-28), which no build can read
 * (x->ct_lost): its flows then go where their hash says, which Maglev
 * keeps on their backend unless the backends changed. The older program,
 * still attached until then, keeps reading its own copies. */
static bool made_anew(struct fl_xdp *x, const struct bpf_map *m, int fd)
{
	const struct balancer_bpf *s = x->skel;

	if (m == s->maps.conntrack && other_layout(fd, m)) {
		x->ct_lost = true;
		return true;
	}
	return m == s->maps.slot_meta && other_layout(fd, m);
}

/* Before load: every map a restart keeps gets its pin path, and the fd of
 * the adopted program's map where no pin exists (see fl_xdp_open_pinned). */
static int keep_maps(struct fl_xdp *x, const struct fl_xdp_keep *keep, char *err, size_t errlen)
{
	struct balancer_bpf *s = x->skel;
	struct bpf_map *m;
	char path[4096];
	int fd, rc;

	bpf_object__for_each_map(m, s->obj) {
		__u32 want = bpf_map__max_entries(m);

		if (m == s->maps.rodata || m == s->maps.scratch)
			continue;
		if (keep->pin_dir) {
			snprintf(path, sizeof(path), "%s/%s", keep->pin_dir, bpf_map__name(m));
			rc = bpf_map__set_pin_path(m, path);
			if (rc)
				return fl_err(err, errlen, rc, "xdp: pin path %s: %s", path, strerror(-rc));
			fd = bpf_obj_get(path);
			if (fd >= 0 && made_anew(x, m, fd)) {
				close(fd);
				if (unlink(path) != 0)
					return fl_err(err, errlen, -errno, "xdp: unpin %s (an older "
						    "layout): %s", path, strerror(errno));
				x->maps_created++;
				continue;
			}
			if (fd >= 0 && bpf_map__type(m) == BPF_MAP_TYPE_DEVMAP_HASH) {
				/* libbpf 1.1 compares a pin's map_flags with the
				 * program's, and the kernel adds BPF_F_RDONLY_PROG
				 * to every devmap's: taken by fd, as adopted maps */
				rc = bpf_map__set_pin_path(m, NULL);
				if (rc == 0)
					rc = bpf_map__reuse_fd(m, fd);
				close(fd);
				if (rc)
					return fl_err(err, errlen, rc, "xdp: reuse pinned %s: %s", path,
						    strerror(-rc));
				x->maps_pinned++;
				continue;
			}
			if (fd >= 0 || access(path, F_OK) == 0) {
				if (fd >= 0)
					close(fd);
				x->maps_pinned++;
				continue;
			}
		}
		fd = keep->adopt_prog_fd >= 0 ? adopted_map_fd(keep->adopt_prog_fd, bpf_map__name(m)) : -1;
		if (fd >= 0 && made_anew(x, m, fd)) {
			close(fd);
			fd = -1;
		}
		if (fd < 0) {
			x->maps_created++;
			continue;
		}
		rc = bpf_map__reuse_fd(m, fd);	/* dups fd, takes the map's sizes */
		close(fd);
		if (rc)
			return fl_err(err, errlen, rc, "xdp: adopt map %s: %s", bpf_map__name(m),
				    strerror(-rc));
		if (bpf_map__max_entries(m) != want)
			return fl_err(err, errlen, -EINVAL, "xdp: the running program's map %s has %u "
				    "entries, the config wants %u: detach it to change sizes",
				    bpf_map__name(m), bpf_map__max_entries(m), want);
		x->maps_adopted++;
	}
	return 0;
}

static int open_load(struct fl_xdp *x, const struct fl_xdp_knobs *k, const struct fl_xdp_keep *keep,
		     char *err, size_t errlen)
{
	struct balancer_bpf *s;
	__u32 chunks;
	int rc;

	memset(x, 0, sizeof(*x));
	if (!k || k->mtu < 68)
		return fl_err(err, errlen, -EINVAL, "xdp: no knobs or mtu below 68");
	x->max_vips = k->max_vips ? k->max_vips : FL_XDP_DEFAULT_MAX_VIPS;
	x->max_backends = k->max_backends ? k->max_backends : FL_XDP_DEFAULT_MAX_BACKENDS;
	x->ring_entries = k->ring_entries ? k->ring_entries : FL_XDP_DEFAULT_RING_ENTRIES;
	chunks = (x->ring_entries + FL_XDP_RING_CHUNK - 1) / FL_XDP_RING_CHUNK;
	x->ring_entries = chunks * FL_XDP_RING_CHUNK;

	s = balancer_bpf__open();
	if (!s)
		return fl_err(err, errlen, -errno, "xdp: open balancer: %s", strerror(errno));
	x->skel = s;
	x->ct_buckets = (__u32)(((__u64)(k->ct_capacity ? k->ct_capacity : FL_XDP_DEFAULT_CT_CAPACITY) +
				 FL_CT_WAYS - 1) / FL_CT_WAYS);
	set_sizes(s, x->max_vips, x->max_backends, chunks, x->ct_buckets);
	set_rodata(s, k);
	s->rodata->cfg_max_vips = x->max_vips;
	s->rodata->cfg_max_backends = x->max_backends;
	s->rodata->cfg_ring_chunks = chunks;
	if (keep && (rc = keep_maps(x, keep, err, errlen)) != 0)
		goto cleanup;

	rc = balancer_bpf__load(s);
	if (rc) {
		rc = rc < 0 ? rc : -EINVAL;
		if (keep && keep->pin_dir && x->maps_pinned)
			fl_err(err, errlen, rc, "xdp: load balancer with the maps pinned in %s: %s "
			     "(sizes changed? libbpf's message above; removing the directory "
			     "starts afresh and loses conntrack)", keep->pin_dir, strerror(-rc));
		else
			fl_err(err, errlen, rc, "xdp: load balancer (verifier log above): %s",
			     strerror(-rc));
		goto cleanup;
	}

	x->rings_len = page_round(2 * (size_t)chunks * sizeof(struct fl_xdp_ring_chunk));
	x->backends_len = page_round(2 * (size_t)x->max_backends * sizeof(struct fl_backend));
	x->vips_by_id_len = page_round(2 * (size_t)x->max_vips * sizeof(struct fl_xdp_vip_val));
	x->ctl_len = page_round(sizeof(struct fl_xdp_ctl));
	x->ct_len = page_round((size_t)x->ct_buckets * sizeof(struct fl_ct_bucket));
	x->rings = map_mem(s->maps.rings, x->rings_len);
	x->backends = map_mem(s->maps.backends, x->backends_len);
	x->vips_by_id = map_mem(s->maps.vips_by_id, x->vips_by_id_len);
	x->ctl = map_mem(s->maps.ctl, x->ctl_len);
	x->ct = map_mem(s->maps.conntrack, x->ct_len);
	if (!x->rings || !x->backends || !x->vips_by_id || !x->ctl || !x->ct) {
		rc = fl_err(err, errlen, -errno, "xdp: mmap tables: %s", strerror(errno));
		goto cleanup;
	}
	/* kept tables: the next publish is the next generation */
	x->generation = __atomic_load_n(&x->ctl->generation, __ATOMIC_RELAXED);
	return 0;

cleanup:
	fl_xdp_close(x);
	return rc;
}

int fl_xdp_open_load(struct fl_xdp *x, const struct fl_xdp_knobs *k, char *err, size_t errlen)
{
	return open_load(x, k, NULL, err, errlen);
}

int fl_xdp_open_pinned(struct fl_xdp *x, const struct fl_xdp_knobs *k,
		       const struct fl_xdp_keep *keep, char *err, size_t errlen)
{
	return open_load(x, k, keep, err, errlen);
}

/* Waits until no XDP run that may have read the old `ctl` is still going:
 * membarrier GLOBAL is synchronize_rcu(), and every XDP run (driver,
 * generic or test_run) is one RCU read-side section. */
static void grace_period(void)
{
	if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0) {
		struct timespec ts = { 0, GRACE_FALLBACK_NS };

		nanosleep(&ts, NULL);
	}
}

/* Deletes one slot's keys (the byte at slot_off) from a table hash map of
 * at most max_keys keys: the inactive slot, which no packet reads. The keys
 * are gathered first, as a delete during the walk would restart it. */
static int slot_clear(int fd, __u32 key_size, size_t slot_off, __u32 slot, __u32 max_keys)
{
	__u8 key[64], *found;
	__u32 n = 0;
	int rc = 0;

	if (key_size > sizeof(key) || slot_off >= key_size)
		return -EINVAL;
	found = calloc(max_keys ? max_keys : 1, key_size);
	if (!found)
		return -ENOMEM;
	for (int more = bpf_map_get_next_key(fd, NULL, key) == 0; more;
	     more = bpf_map_get_next_key(fd, key, key) == 0) {
		if (key[slot_off] == slot && n < max_keys)
			memcpy(found + (size_t)n++ * key_size, key, key_size);
	}
	if (errno != ENOENT)
		rc = -errno;
	for (__u32 i = 0; i < n && rc == 0; i++)
		if (bpf_map_delete_elem(fd, found + (size_t)i * key_size) != 0)
			rc = -errno;
	free(found);
	return rc;
}

/* The ring entries in use: up to the end of the furthest VIP ring that
 * fl_tables_pick would accept. */
static __u32 ring_used(const struct fl_tables *t, __u32 nvips)
{
	__u32 used = 0;

	for (__u32 i = 0; i < nvips; i++) {
		const struct fl_vip *v = &t->vips[i];

		if (!(v->flags & FL_VIP_IN_USE) || v->ring_size == 0 ||
		    v->ring_offset > t->ring_entries || v->ring_size > t->ring_entries - v->ring_offset)
			continue;
		if (v->ring_offset + v->ring_size > used)
			used = v->ring_offset + v->ring_size;
	}
	return used;
}

static int fill_vips(struct fl_xdp *x, __u32 slot, const struct fl_tables *t, __u32 nvips,
		     char *err, size_t errlen)
{
	struct balancer_bpf *s = x->skel;
	int vfd = bpf_map__fd(s->maps.vips), afd = bpf_map__fd(s->maps.vip_addrs);
	struct fl_xdp_vip_val *by_id = x->vips_by_id + (size_t)slot * x->max_vips;
	int rc;

	memset(by_id, 0, (size_t)x->max_vips * sizeof(*by_id));

	if ((rc = slot_clear(vfd, sizeof(struct fl_xdp_vip_key),
			     offsetof(struct fl_xdp_vip_key, slot), slot, 2 * x->max_vips)) != 0 ||
	    (rc = slot_clear(afd, sizeof(struct fl_xdp_addr_key),
			     offsetof(struct fl_xdp_addr_key, slot), slot, 2 * x->max_vips)) != 0)
		return fl_err(err, errlen, rc, "xdp: clear VIPs of slot %u: %s", slot, strerror(-rc));
	for (__u32 i = 0; i < nvips; i++) {
		const struct fl_vip *v = &t->vips[i];
		struct fl_xdp_vip_key vk;
		struct fl_xdp_vip_val vv;
		struct fl_xdp_addr_key ak;

		if (!(v->flags & FL_VIP_IN_USE))
			continue;
		memset(&vk, 0, sizeof(vk));
		vk.addr = v->addr;
		vk.port = v->port;
		vk.proto = v->proto;
		vk.family = v->family;
		vk.slot = (__u8)slot;
		memset(&vv, 0, sizeof(vv));
		vv.vip = *v;
		vv.vip_id = i;
		memset(&ak, 0, sizeof(ak));
		ak.addr = v->addr;
		ak.family = v->family;
		ak.slot = (__u8)slot;
		/* the lowest id of an address wins, as dp's fragment scan;
		 * by_id holds the ids the vips map gives, so a duplicate
		 * VIP's id stays empty */
		if (bpf_map_update_elem(vfd, &vk, &vv, BPF_NOEXIST) == 0)
			by_id[i] = vv;
		else if (errno != EEXIST)
			return fl_err(err, errlen, -errno, "xdp: VIP %u: %s", i, strerror(errno));
		if (bpf_map_update_elem(afd, &ak, &i, BPF_NOEXIST) != 0 && errno != EEXIST)
			return fl_err(err, errlen, -errno, "xdp: VIP %u address: %s", i,
				    strerror(errno));
	}
	return 0;
}

int fl_xdp_publish(struct fl_xdp *x, const struct fl_tables *t, char *err, size_t errlen)
{
	struct fl_xdp_slot_meta meta;
	struct fl_backend *backends;
	__u32 slot, nvips, nb, nring;
	int rc;

	if (!x || !x->skel || !t || !t->hdr)
		return fl_err(err, errlen, -EINVAL, "xdp: not loaded or no tables");
	nvips = t->hdr->vip_count < t->max_vips ? t->hdr->vip_count : t->max_vips;
	nb = t->hdr->backend_count < t->max_backends ? t->hdr->backend_count : t->max_backends;
	nring = ring_used(t, nvips);
	if (nvips > x->max_vips || nb > x->max_backends || nring > x->ring_entries)
		return fl_err(err, errlen, -E2BIG,
			    "xdp: tables (%u VIPs, %u backends, %u ring entries) exceed the maps "
			    "(%u, %u, %u)", nvips, nb, nring, x->max_vips, x->max_backends,
			    x->ring_entries);

	/* The inactive slot: no packet reads it since the grace period at the
	 * end of the previous publish. */
	slot = (x->ctl->slot & 1) ^ 1;
	rc = fill_vips(x, slot, t, nvips, err, errlen);
	if (rc)
		return rc;
	backends = x->backends + (size_t)slot * x->max_backends;
	memcpy(backends, t->backends, (size_t)nb * sizeof(struct fl_backend));
	memset(backends + nb, 0, (size_t)(x->max_backends - nb) * sizeof(struct fl_backend));
	/* chunks hold FL_XDP_RING_CHUNK ids each, without padding */
	memcpy(x->rings + (size_t)slot * (x->ring_entries / FL_XDP_RING_CHUNK), t->ring,
	       (size_t)nring * sizeof(__u32));

	memset(&meta, 0, sizeof(meta));
	meta.generation = ++x->generation;
	meta.hash_seed = t->hdr->hash_seed;
	meta.backend_count = nb;
	meta.ring_entries = nring;
	meta.vip_count = nvips;
	memcpy(meta.next_hop_mac, t->hdr->next_hop_mac, sizeof(meta.next_hop_mac));
	if (bpf_map_update_elem(bpf_map__fd(x->skel->maps.slot_meta), &slot, &meta, BPF_ANY) != 0)
		return fl_err(err, errlen, -errno, "xdp: slot header: %s", strerror(errno));

	/* release: the slot's maps, written above (stores to the mmapped
	 * arrays, and syscalls), are complete before a packet can read the
	 * new slot number; the program's later loads of that slot follow its
	 * load of `ctl` (x86 TSO; the helper calls in between are full
	 * compiler barriers). */
	__atomic_store_n(&x->ctl->generation, x->generation, __ATOMIC_RELAXED);
	__atomic_store_n(&x->ctl->slot, slot, __ATOMIC_RELEASE);
	grace_period();
	return 0;
}

int fl_xdp_add_port(struct fl_xdp *x, int ifindex, char *err, size_t errlen)
{
	__u32 key = (__u32)ifindex;

	if (!x || !x->skel)
		return fl_err(err, errlen, -EINVAL, "xdp: not loaded");
	if (bpf_map_update_elem(bpf_map__fd(x->skel->maps.tx_ports), &key, &key, BPF_ANY) != 0)
		return fl_err(err, errlen, -errno, "xdp: ifindex %d into the redirect map: %s",
			    ifindex, strerror(errno));
	return 0;
}

int fl_xdp_unresolved_take(struct fl_xdp *x, struct fl_xdp_unresolved *out, __u32 *drops,
			   __u32 max)
{
	int fd, n = 0;

	if (!x || !x->skel)
		return -EINVAL;
	fd = bpf_map__fd(x->skel->maps.unresolved);
	/* gathered first: a delete during the walk would restart it */
	for (int more = max > 0 && bpf_map_get_next_key(fd, NULL, &out[0]) == 0; more;
	     more = (__u32)n < max && bpf_map_get_next_key(fd, &out[n - 1], &out[n]) == 0)
		n++;
	for (int i = 0; i < n; i++) {
		__u32 d = 0;

		bpf_map_lookup_elem(fd, &out[i], &d);
		if (drops)
			drops[i] = d;
		bpf_map_delete_elem(fd, &out[i]);
	}
	return n;
}

int fl_xdp_attach(struct fl_xdp *x, int ifindex, bool generic, char *err, size_t errlen)
{
	__u32 flags = generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	int rc;

	if (!x || !x->skel)
		return fl_err(err, errlen, -EINVAL, "xdp: not loaded");
	if (x->ifindex)
		return fl_err(err, errlen, -EBUSY, "xdp: already attached to ifindex %d", x->ifindex);
	rc = bpf_xdp_attach(ifindex, bpf_program__fd(x->skel->progs.balancer), flags, NULL);
	if (rc)
		return fl_err(err, errlen, rc, "xdp: attach to ifindex %d (%s mode): %s", ifindex,
			    generic ? "generic" : "native", strerror(-rc));
	x->ifindex = ifindex;
	x->attach_flags = flags;
	return 0;
}

void fl_xdp_detach(struct fl_xdp *x)
{
	if (!x || !x->ifindex)
		return;
	bpf_xdp_detach(x->ifindex, x->attach_flags, NULL);
	x->ifindex = 0;
}

int fl_xdp_prog_fd(const struct fl_xdp *x)
{
	return x && x->skel ? bpf_program__fd(x->skel->progs.balancer) : -EINVAL;
}

int fl_xdp_counters_sum(const struct fl_xdp *x, enum fl_xdp_counter_set set, __u32 id,
			void *out, size_t size)
{
	int ncpu = libbpf_num_possible_cpus();
	const struct bpf_map *map;
	__u64 *dst = out;
	__u64 *per;
	int rc = 0;

	if (!x || !x->skel || ncpu <= 0 || size % sizeof(__u64))
		return -EINVAL;
	map = set == FL_XDP_COUNTERS_VIP ? x->skel->maps.vip_counters :
	      set == FL_XDP_COUNTERS_BACKEND ? x->skel->maps.backend_counters :
	      x->skel->maps.counters;
	if (bpf_map__value_size(map) != size)
		return -EINVAL;
	/* a per-CPU lookup fills one value per possible CPU */
	per = calloc((size_t)ncpu, size);
	if (!per)
		return -ENOMEM;
	if (bpf_map_lookup_elem(bpf_map__fd(map), &id, per) != 0) {
		rc = -errno;
		goto cleanup;
	}
	memset(out, 0, size);
	for (int c = 0; c < ncpu; c++)
		for (size_t i = 0; i < size / sizeof(__u64); i++)
			dst[i] += per[(size_t)c * (size / sizeof(__u64)) + i];
cleanup:
	free(per);
	return rc;
}

int fl_xdp_counters(const struct fl_xdp *x, struct fl_worker_counters *out)
{
	return fl_xdp_counters_sum(x, FL_XDP_COUNTERS_WORKER, 0, out, sizeof(*out));
}

void fl_xdp_ct_scan_begin(struct fl_xdp_ct_scan *s)
{
	struct timespec ts;

	memset(s, 0, sizeof(*s));
	/* the clock of bpf_ktime_get_coarse_ns, which stamps the records */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	s->now = fl_xdp_ct_ticks((__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec);
}

int fl_xdp_ct_scan_step(const struct fl_xdp *x, struct fl_xdp_ct_scan *s)
{
	const __u32 end = x->ct_buckets - s->next > FL_XDP_CT_SCAN_BUCKETS
				  ? s->next + FL_XDP_CT_SCAN_BUCKETS
				  : x->ct_buckets;

	for (; s->next < end; s->next++)
		for (__u32 w = 0; w < FL_CT_WAYS; w++)
			s->live += (__u64)fl_xdp_ct_way_live(&x->ct[s->next].meta, w, s->now,
							     x->skel->rodata->cfg_timeout_ticks);
	return s->next == x->ct_buckets;
}

void fl_xdp_close(struct fl_xdp *x)
{
	if (!x)
		return;
	fl_xdp_detach(x);
	if (x->rings)
		munmap(x->rings, x->rings_len);
	if (x->backends)
		munmap(x->backends, x->backends_len);
	if (x->vips_by_id)
		munmap(x->vips_by_id, x->vips_by_id_len);
	x->rings = NULL;
	x->backends = NULL;
	x->vips_by_id = NULL;
	if (x->ctl)
		munmap(x->ctl, x->ctl_len);
	x->ctl = NULL;
	if (x->ct)
		munmap(x->ct, x->ct_len);
	x->ct = NULL;
	balancer_bpf__destroy(x->skel);
	x->skel = NULL;
}
