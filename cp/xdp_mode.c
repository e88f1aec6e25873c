/* SPDX-License-Identifier: BSD-3-Clause */
/* fulcrum-cp's XDP data plane: cp/xdp_mode.h. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/if_link.h>
#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "addr.h"
#include "err.h"
#include "daemon.h"
#include "neigh.h"
#include "xdp.h"
#include "xdp_mode.h"

#define PROG_NAME "balancer"	/* the program's name in bpf_prog_info */

/* xdp.fib_lookup: the next hops the program found unresolved are handed to
 * the kernel to resolve every FL_CP_NEIGH_REFRESH_MS (a second: what a
 * host's own first packet to a new neighbour waits for its ARP, roughly),
 * at most this many at a time, and as many are kept confirmed. */
#define HOPS_MAX 64u

struct fl_cp_xdp {
	struct fl_xdp x;
	__u32 flags;			/* XDP_FLAGS_DRV_MODE or _SKB_MODE */
	bool detach_on_exit;
	unsigned n_ifaces;
	int *ifindex;			/* 0 until attached (or kept) */
	char **ifname;
	char pin_dir[4096];
	/* xdp.fib_lookup: a netlink socket to have next hops resolved, and the
	 * next hops the program met without a neighbour entry */
	bool fib_lookup;
	struct fl_neigh neigh;
	struct fl_io neigh_io;
	struct fl_timer solicit_timer;
	struct fl_xdp_unresolved hops[HOPS_MAX];
	unsigned n_hops;
	/* conntrack occupancy (fl_cp_xdp_occupancy): a scan of the table run
	 * a step a turn of the loop, and the last complete one's count */
	struct fl_xdp_ct_scan scan;
	bool scanning;
	struct fl_timer scan_timer;
	bool counted;			/* a scan has completed */
	__u64 occupancy;		/* the last complete scan's count */
	uint64_t occupancy_ns;		/* when that scan ended */
};

/* What identifies a loaded program for the keep-or-replace choice. */
struct prog_id {
	__u8 tag[BPF_TAG_SIZE];
	char name[BPF_OBJ_NAME_LEN];
	__u32 n_maps;
	__u32 *map_ids;
};

static bool is_tunnel(enum fl_method m)
{
	return m != FL_METHOD_L2DSR;
}

/* A tunnel needs a next hop: next_hop.mac; next_hop.address, which
 * fulcrum-cp resolves through the neighbour table and publishes with the
 * tables (until then the program drops with no_next_hop); or
 * xdp.fib_lookup. */
static int check_next_hop(const struct fl_config *cfg, char *err, size_t errlen)
{
	const struct fl_dataplane_config *dp = &cfg->dataplane;

	if (dp->has_next_hop_mac || dp->has_next_hop_address || dp->xdp_fib_lookup)
		return 0;
	for (unsigned i = 0; i < cfg->n_vips; i++)
		if (is_tunnel(cfg->vips[i].method))
			return fl_err(err, errlen, -EINVAL, "%s:%u: VIP %s uses %s, but dataplane has no "
				    "next_hop: the XDP program would drop every packet "
				    "(drop_no_next_hop); set next_hop.mac to the router's MAC, "
				    "next_hop.address to its address, or xdp.fib_lookup = true",
				    cfg->source, cfg->vips[i].line,
				    cfg->vips[i].name[0] ? cfg->vips[i].name : "(unnamed)",
				    fl_method_name(cfg->vips[i].method));
	return 0;
}

static void knobs_of(const struct fl_config *cfg, struct fl_xdp_knobs *k)
{
	const struct fl_dataplane_config *dp = &cfg->dataplane;

	memset(k, 0, sizeof(*k));
	if (dp->has_next_hop_mac)
		memcpy(k->next_hop_mac, dp->next_hop_mac, 6);
	if (dp->has_tunnel_source_v4)
		k->tunnel_src_v4 = dp->tunnel_source_v4;
	if (dp->has_tunnel_source_v6)
		k->tunnel_src_v6 = dp->tunnel_source_v6;
	k->gue_port = dp->gue_port;
	k->mtu = dp->mtu;
	k->fib_lookup = dp->xdp_fib_lookup;
	k->max_vips = cfg->limits.max_vips;
	k->max_backends = cfg->limits.max_backends;
	k->ring_entries = cfg->limits.ring_entries;
	k->ct_capacity = dp->conntrack.capacity;
	k->new_flow_rate = dp->conntrack.new_flow_rate;
	k->ct_timeout_s[FL_CT_SYN] = dp->conntrack.syn_timeout_s;
	k->ct_timeout_s[FL_CT_ESTABLISHED] = dp->conntrack.tcp_timeout_s;
	k->ct_timeout_s[FL_CT_CLOSING] = dp->conntrack.tcp_closing_timeout_s;
	k->ct_timeout_s[FL_CT_UDP] = dp->conntrack.udp_timeout_s;
}

static int mkdir_ok(const char *path)
{
	return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -errno;
}

/* PIN_ROOT/fulcrum/<shm name>, on a bpffs (mounted here when missing). */
static int pin_dir_prepare(const struct fl_config *cfg, char *dir, size_t len, char *err,
			   size_t errlen)
{
	const char *root = getenv("FULCRUM_BPFFS");
	char name[FL_NAME_LEN];
	struct statfs sf;
	int rc;

	if (!root || !*root)
		root = "/sys/fs/bpf";
	if (statfs(root, &sf) != 0 || sf.f_type != BPF_FS_MAGIC) {
		if ((rc = mkdir_ok(root)) != 0 || mount("bpf", root, "bpf", 0, "mode=0700") != 0)
			return fl_err(err, errlen, rc ? rc : -errno, "%s is no bpffs and mounting one "
				    "there failed: %s", root, strerror(rc ? -rc : errno));
		fl_log(FL_LOG_WARN, "mounted a bpffs at %s (there was none) for the pinned maps; "
		       "it lasts as long as this mount namespace (under `ip netns exec`: this "
		       "process), a restart then adopts the attached program's maps instead; "
		       "FULCRUM_BPFFS names a bpffs that outlives it", root);
	}
	/* the shm name identifies the instance: one directory each */
	snprintf(name, sizeof(name), "%s", cfg->global.shm_name[0] == '/' ? cfg->global.shm_name + 1
									 : cfg->global.shm_name);
	for (char *p = name; *p; p++)
		if (*p == '/' || *p == '.')
			*p = '_';
	snprintf(dir, len, "%s/fulcrum", root);
	if ((rc = mkdir_ok(dir)) != 0)
		return fl_err(err, errlen, rc, "mkdir %s: %s", dir, strerror(-rc));
	snprintf(dir, len, "%s/fulcrum/%s", root, name);
	if ((rc = mkdir_ok(dir)) != 0)
		return fl_err(err, errlen, rc, "mkdir %s: %s", dir, strerror(-rc));
	return 0;
}

static void prog_id_free(struct prog_id *p)
{
	free(p->map_ids);
	p->map_ids = NULL;
}

static int prog_id_get(int fd, struct prog_id *p)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(p, 0, sizeof(*p));
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
		return -errno;
	memcpy(p->tag, info.tag, sizeof(p->tag));
	memcpy(p->name, info.name, sizeof(p->name));
	p->n_maps = info.nr_map_ids;
	p->map_ids = calloc(p->n_maps ? p->n_maps : 1, sizeof(__u32));
	if (!p->map_ids)
		return -ENOMEM;
	memset(&info, 0, sizeof(info));
	info.nr_map_ids = p->n_maps;
	info.map_ids = (__u64)(unsigned long)p->map_ids;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
		prog_id_free(p);
		return -errno;
	}
	p->n_maps = info.nr_map_ids < p->n_maps ? info.nr_map_ids : p->n_maps;
	return 0;
}

/* A map's name and, for the read-only knobs, its value (value_len bytes
 * into val, at most cap). */
static int map_describe(__u32 id, char *name, void *val, size_t cap, __u32 *value_len)
{
	struct bpf_map_info mi;
	__u32 len = sizeof(mi), zero = 0;
	int fd = bpf_map_get_fd_by_id(id), rc = 0;

	if (fd < 0)
		return -errno;
	memset(&mi, 0, sizeof(mi));
	if (bpf_obj_get_info_by_fd(fd, &mi, &len) != 0) {
		rc = -errno;
		goto out;
	}
	memcpy(name, mi.name, BPF_OBJ_NAME_LEN);
	*value_len = 0;
	if (strstr(mi.name, ".rodata") && mi.value_size <= cap) {
		if (bpf_map_lookup_elem(fd, &zero, val) != 0)
			rc = -errno;
		*value_len = mi.value_size;
	}
out:
	close(fd);
	return rc;
}

/* Same code (tag), same knobs (.rodata contents) and the same kept maps
 * (every map but .rodata and scratch the same id)? */
static bool same_program(const struct prog_id *a, const struct prog_id *b)
{
	char an[BPF_OBJ_NAME_LEN], bn[BPF_OBJ_NAME_LEN];
	__u8 av[512], bv[512];
	__u32 al, bl;
	unsigned kept_a = 0, kept_b = 0;

	if (memcmp(a->tag, b->tag, sizeof(a->tag)) || strcmp(a->name, b->name))
		return false;
	for (__u32 i = 0; i < a->n_maps; i++) {
		if (map_describe(a->map_ids[i], an, av, sizeof(av), &al) != 0)
			return false;
		if (al) {
			bool found = false;
			for (__u32 j = 0; j < b->n_maps && !found; j++)
				found = map_describe(b->map_ids[j], bn, bv, sizeof(bv), &bl) == 0 &&
					bl == al && memcmp(av, bv, al) == 0;
			if (!found)
				return false;
			continue;
		}
		if (strcmp(an, "scratch") == 0)
			continue;
		kept_a++;
		for (__u32 j = 0; j < b->n_maps; j++)
			if (b->map_ids[j] == a->map_ids[i]) {
				kept_b++;
				break;
			}
	}
	return kept_a > 0 && kept_a == kept_b;
}

/* The id of the program attached to ifindex in our mode; -EBUSY when one is
 * attached in the other mode. */
static int attached_id(const struct fl_cp_xdp *st, int ifindex, const char *ifname, __u32 *id,
		       char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	bool generic = st->flags & XDP_FLAGS_SKB_MODE;
	__u32 other;
	int rc = bpf_xdp_query(ifindex, 0, &q);

	if (rc)
		return fl_err(err, errlen, rc, "xdp: query %s: %s", ifname, strerror(-rc));
	*id = generic ? q.skb_prog_id : q.drv_prog_id;
	other = generic ? q.drv_prog_id : q.skb_prog_id;
	if (other)
		return fl_err(err, errlen, -EBUSY, "xdp: %s has XDP program id %u attached in %s mode, "
			    "the config wants %s: detach it first (ip link set dev %s xdp off)", ifname,
			    other, generic ? "native" : "generic", generic ? "generic" : "native", ifname);
	return 0;
}

/* A loaded balancer attached to the first interface that has one, to adopt
 * its maps; -1 if none. */
static int find_running(const struct fl_cp_xdp *st)
{
	char msg[256];

	for (unsigned i = 0; i < st->n_ifaces; i++) {
		int ifindex = (int)if_nametoindex(st->ifname[i]), fd;
		struct prog_id p;
		__u32 id = 0;

		if (!ifindex || attached_id(st, ifindex, st->ifname[i], &id, msg, sizeof(msg)) || !id)
			continue;
		fd = bpf_prog_get_fd_by_id(id);
		if (fd < 0)
			continue;
		if (prog_id_get(fd, &p) == 0 && strcmp(p.name, PROG_NAME) == 0) {
			prog_id_free(&p);
			fl_log(FL_LOG_INFO, "xdp: balancer id %u runs on %s: its maps are kept where "
			       "no pin exists", id, st->ifname[i]);
			return fd;
		}
		prog_id_free(&p);
		close(fd);
	}
	return -1;
}

/* Whether the sysctl file at path reads 0 (false when unreadable). */
static bool sysctl_off(const char *path)
{
	FILE *f = fopen(path, "r");
	int v = -1;

	if (!f)
		return false;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v == 0;
}

/* bpf_fib_lookup routes only what arrives on an interface that forwards
 * (BPF_FIB_LKUP_RET_FWD_DISABLED otherwise): said at start, not per drop. */
static void warn_forwarding(const struct fl_config *cfg)
{
	const struct fl_dataplane_config *dp = &cfg->dataplane;
	char path[128];

	for (unsigned i = 0; i < dp->n_xdp_interfaces; i++) {
		snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/forwarding",
			 dp->xdp_interfaces[i]);
		if (dp->has_tunnel_source_v4 && sysctl_off(path))
			fl_log(FL_LOG_WARN, "xdp.fib_lookup: IPv4 forwarding is off on %s "
			       "(net.ipv4.conf.%s.forwarding = 0): the kernel's FIB refuses to route "
			       "what arrives there, and IPv4 tunnels drop as no_next_hop",
			       dp->xdp_interfaces[i], dp->xdp_interfaces[i]);
	}
	if (dp->has_tunnel_source_v6 && sysctl_off("/proc/sys/net/ipv6/conf/all/forwarding"))
		fl_log(FL_LOG_WARN, "xdp.fib_lookup: IPv6 forwarding is off "
		       "(net.ipv6.conf.all.forwarding = 0): IPv6 tunnels drop as no_next_hop");
}

/* Asks the kernel to resolve hop, or to confirm its stale entry, as
 * fulcrum-cp does for next_hop.address (cp/daemon.c neigh_ask): the kernel
 * sees none of the program's traffic, so it would never do so itself, and
 * an unconfirmed entry would age out of its table. */
static void solicit(struct fl_cp_xdp *st, const struct fl_xdp_unresolved *hop)
{
	char a[FL_ADDR_STRLEN];
	int rc = fl_neigh_confirm(&st->neigh, (int)hop->ifindex, hop->family, &hop->addr);

	if (rc < 0)
		fl_log(FL_LOG_DEBUG, "xdp: next hop %s: cannot ask the kernel: %s",
		       fl_addr_format(&hop->addr, hop->family, a, sizeof(a)), strerror(-rc));
}

/* Takes the next hops the program found without a neighbour entry (kept
 * from then on, up to HOPS_MAX), and has every kept one resolved. */
static void on_solicit_timer(struct fl_loop *loop, struct fl_timer *t)
{
	struct fl_cp_xdp *st = t->arg;
	struct fl_xdp_unresolved met[HOPS_MAX];
	__u32 drops[HOPS_MAX];
	char a[FL_ADDR_STRLEN], ifname[IF_NAMESIZE];
	int n = fl_xdp_unresolved_take(&st->x, met, drops, HOPS_MAX);

	for (int i = 0; i < n; i++) {
		unsigned k = 0;

		fl_log(FL_LOG_INFO, "xdp: next hop %s on %s has no neighbour entry (%u packets "
		       "dropped as no_next_hop): asking the kernel to resolve it",
		       fl_addr_format(&met[i].addr, met[i].family, a, sizeof(a)),
		       if_indextoname(met[i].ifindex, ifname) ? ifname : "?", drops[i]);
		while (k < st->n_hops && memcmp(&st->hops[k], &met[i], sizeof(met[i])) != 0)
			k++;
		if (k < st->n_hops)
			continue;
		if (st->n_hops < HOPS_MAX)
			st->hops[st->n_hops++] = met[i];
		else
			solicit(st, &met[i]);	/* once: no room to keep it confirmed */
	}
	for (unsigned k = 0; k < st->n_hops; k++)
		solicit(st, &st->hops[k]);
	fl_timer_in(loop, t, FL_CP_NEIGH_REFRESH_MS);
}

/* Keeps the copy of the neighbour table that solicit reads up to date. */
static void on_solicit_socket(struct fl_loop *loop, struct fl_io *io, uint32_t events)
{
	struct fl_cp_xdp *st = io->arg;

	(void)loop;
	(void)events;
	fl_neigh_read(&st->neigh);
}

static int solicit_start(struct fl_cp *cp, struct fl_cp_xdp *st, char *err, size_t errlen)
{
	int rc = fl_neigh_open(&st->neigh, err, errlen);

	if (rc)
		return rc;
	rc = fl_io_add(&cp->loop, &st->neigh_io, st->neigh.fd, EPOLLIN, on_solicit_socket, st);
	if (rc) {
		fl_neigh_close(&st->neigh);
		return fl_err(err, errlen, rc, "xdp: neighbour socket: epoll: %s", strerror(-rc));
	}
	fl_timer_init(&st->solicit_timer, on_solicit_timer, st);
	fl_timer_in(&cp->loop, &st->solicit_timer, FL_CP_NEIGH_REFRESH_MS);
	st->fib_lookup = true;
	return 0;
}

static void scan_stop(struct fl_cp *cp, struct fl_cp_xdp *st)
{
	if (!st->scanning)
		return;
	fl_timer_cancel(&cp->loop, &st->scan_timer);
	st->scanning = false;
}

/* One step of the scan (FL_XDP_CT_SCAN_BUCKETS buckets, about a
 * millisecond here), then the rest of the loop's work; at the end, its
 * count becomes the one fl_cp_xdp_occupancy gives. */
static void on_scan_timer(struct fl_loop *loop, struct fl_timer *t)
{
	struct fl_cp_xdp *st = t->arg;

	if (!fl_xdp_ct_scan_step(&st->x, &st->scan)) {
		fl_timer_in(loop, t, 0);
		return;
	}
	st->occupancy = st->scan.live;
	st->occupancy_ns = fl_mono_ns();
	st->counted = true;
	st->scanning = false;
}

int fl_cp_xdp_occupancy(struct fl_cp *cp, __u64 *live, uint64_t *age_ms, char *err,
			size_t errlen)
{
	struct fl_cp_xdp *st = cp->xdp;
	const uint64_t now = fl_mono_ns();

	if (!st)
		return fl_err(err, errlen, -EINVAL, "not in xdp mode");
	if (!st->scanning &&
	    (!st->counted || now - st->occupancy_ns > FL_CP_CT_SCAN_FRESH_MS * 1000000ull)) {
		fl_xdp_ct_scan_begin(&st->scan);
		st->scanning = true;
		fl_timer_in(&cp->loop, &st->scan_timer, 0);
	}
	if (!st->counted)
		return -EAGAIN;
	*live = st->occupancy;
	*age_ms = (now - st->occupancy_ns) / 1000000ull;
	return 0;
}

static void solicit_stop(struct fl_cp *cp, struct fl_cp_xdp *st)
{
	if (!st->fib_lookup)
		return;
	fl_timer_cancel(&cp->loop, &st->solicit_timer);
	fl_io_del(&cp->loop, &st->neigh_io);
	fl_neigh_close(&st->neigh);
	st->fib_lookup = false;
}

int fl_cp_xdp_init(struct fl_cp *cp, const struct fl_config *cfg, char *err, size_t errlen)
{
	const struct fl_dataplane_config *dp = &cfg->dataplane;
	struct fl_xdp_knobs k;
	struct fl_xdp_keep keep;
	struct fl_cp_xdp *st;
	int rc;

	cp->xdp = NULL;
	if (dp->mode != FL_DP_XDP)
		return 0;
	if ((rc = check_next_hop(cfg, err, errlen)) != 0)
		return rc;
	st = calloc(1, sizeof(*st));
	if (!st)
		return fl_err(err, errlen, -ENOMEM, "out of memory");
	fl_timer_init(&st->scan_timer, on_scan_timer, st);
	st->flags = dp->xdp_generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	st->detach_on_exit = dp->xdp_detach_on_exit;
	st->n_ifaces = dp->n_xdp_interfaces;
	st->ifindex = calloc(st->n_ifaces, sizeof(*st->ifindex));
	st->ifname = calloc(st->n_ifaces, sizeof(*st->ifname));
	if (!st->ifindex || !st->ifname) {
		rc = fl_err(err, errlen, -ENOMEM, "out of memory");
		goto fail_st;
	}
	for (unsigned i = 0; i < st->n_ifaces; i++)
		if (!(st->ifname[i] = strdup(dp->xdp_interfaces[i]))) {
			rc = fl_err(err, errlen, -ENOMEM, "out of memory");
			goto fail_st;
		}
	rc = pin_dir_prepare(cfg, st->pin_dir, sizeof(st->pin_dir), err, errlen);
	if (rc)
		goto fail_st;
	knobs_of(cfg, &k);
	keep.pin_dir = st->pin_dir;
	keep.adopt_prog_fd = find_running(st);
	rc = fl_xdp_open_pinned(&st->x, &k, &keep, err, errlen);
	if (keep.adopt_prog_fd >= 0)
		close(keep.adopt_prog_fd);
	if (rc)
		goto fail_st;
	if (dp->xdp_fib_lookup) {
		warn_forwarding(cfg);
		if ((rc = solicit_start(cp, st, err, errlen)) != 0) {
			fl_xdp_close(&st->x);
			goto fail_st;
		}
	}
	if (st->x.ct_lost)
		fl_log(FL_LOG_WARN, "xdp: the conntrack pinned in %s has an older layout and was "
		       "made anew: established flows go where their hash says (their backend, "
		       "unless the backends changed)", st->pin_dir);
	fl_log(FL_LOG_INFO, "xdp: balancer loaded; maps in %s: %u reused from pins, %u adopted "
	       "from the running program, %u new; table generation %llu", st->pin_dir,
	       st->x.maps_pinned, st->x.maps_adopted, st->x.maps_created,
	       (unsigned long long)st->x.generation);
	cp->xdp = st;
	return 0;
fail_st:
	for (unsigned i = 0; st->ifname && i < st->n_ifaces; i++)
		free(st->ifname[i]);
	free(st->ifname);
	free(st->ifindex);
	free(st);
	return rc;
}

/* Attach, keep or replace on one interface. */
static int attach_one(struct fl_cp_xdp *st, unsigned i, char *err, size_t errlen)
{
	const char *ifname = st->ifname[i], *mode = st->flags & XDP_FLAGS_SKB_MODE ? "generic" : "native";
	int ifindex = (int)if_nametoindex(ifname), ours = fl_xdp_prog_fd(&st->x), old_fd, rc;
	struct prog_id mine, theirs;
	__u32 id;

	if (!ifindex)
		return fl_err(err, errlen, -ENODEV, "xdp: no interface %s", ifname);
	if ((rc = attached_id(st, ifindex, ifname, &id, err, errlen)) != 0)
		return rc;
	if (!id) {
		rc = bpf_xdp_attach(ifindex, ours, st->flags | XDP_FLAGS_UPDATE_IF_NOEXIST, NULL);
		if (rc)
			return fl_err(err, errlen, rc, "xdp: attach to %s (%s mode): %s", ifname, mode,
				    strerror(-rc));
		st->ifindex[i] = ifindex;
		fl_log(FL_LOG_INFO, "xdp: attached to %s (%s mode)", ifname, mode);
		return 0;
	}
	old_fd = bpf_prog_get_fd_by_id(id);
	if (old_fd < 0)
		return fl_err(err, errlen, -errno, "xdp: program id %u on %s: %s", id, ifname,
			    strerror(errno));
	rc = prog_id_get(old_fd, &theirs);
	if (rc == 0 && (rc = prog_id_get(ours, &mine)) != 0)
		prog_id_free(&theirs);
	if (rc) {
		close(old_fd);
		return fl_err(err, errlen, rc, "xdp: program info: %s", strerror(-rc));
	}
	if (strcmp(theirs.name, PROG_NAME) != 0) {
		rc = fl_err(err, errlen, -EBUSY, "xdp: %s runs another XDP program (\"%s\", id %u): "
			  "not replacing it", ifname, theirs.name, id);
	} else if (same_program(&mine, &theirs)) {
		fl_log(FL_LOG_INFO, "xdp: kept the balancer attached to %s (id %u: same tag, knobs "
		       "and maps)", ifname, id);
		st->ifindex[i] = ifindex;
	} else {
		LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = old_fd);

		rc = bpf_xdp_attach(ifindex, ours, st->flags | XDP_FLAGS_REPLACE, &o);
		if (rc)
			fl_err(err, errlen, rc, "xdp: replace id %u on %s: %s", id, ifname, strerror(-rc));
		else
			fl_log(FL_LOG_INFO, "xdp: replaced balancer id %u on %s (%s mode; code, knobs "
			       "or maps differ)", id, ifname, mode);
		if (!rc)
			st->ifindex[i] = ifindex;
	}
	prog_id_free(&mine);
	prog_id_free(&theirs);
	close(old_fd);
	return rc;
}

int fl_cp_xdp_attach(struct fl_cp *cp, char *err, size_t errlen)
{
	struct fl_cp_xdp *st = cp->xdp;
	int rc;

	if (!st)
		return 0;
	if (st->flags & XDP_FLAGS_SKB_MODE)
		fl_log(FL_LOG_WARN, "xdp: generic (skb) mode as dataplane.xdp.generic asks: every "
		       "packet gets an skb first, far slower than native");
	/* every interface a route may leave by is in the redirect map before
	 * the program runs on any */
	for (unsigned i = 0; i < st->n_ifaces; i++) {
		int ifindex = (int)if_nametoindex(st->ifname[i]);

		if (!ifindex)
			return fl_err(err, errlen, -ENODEV, "xdp: no interface %s", st->ifname[i]);
		if ((rc = fl_xdp_add_port(&st->x, ifindex, err, errlen)) != 0)
			return rc;
	}
	for (unsigned i = 0; i < st->n_ifaces; i++)
		if ((rc = attach_one(st, i, err, errlen)) != 0)
			return rc;
	return 0;
}

int fl_cp_xdp_publish(struct fl_cp *cp, char *err, size_t errlen)
{
	if (!cp->xdp)
		return 0;
	return fl_xdp_publish(&cp->xdp->x, fl_writer_active(&cp->shm), err, errlen);
}

const struct fl_xdp *fl_cp_xdp_program(const struct fl_cp *cp)
{
	return cp->xdp ? &cp->xdp->x : NULL;
}

void fl_cp_xdp_fini(struct fl_cp *cp)
{
	struct fl_cp_xdp *st = cp->xdp;

	if (!st)
		return;
	solicit_stop(cp, st);
	scan_stop(cp, st);
	for (unsigned i = 0; i < st->n_ifaces; i++) {
		if (st->ifindex[i] && st->detach_on_exit) {
			bpf_xdp_detach(st->ifindex[i], st->flags, NULL);
			fl_log(FL_LOG_INFO, "xdp: detached from %s (xdp.detach_on_exit)", st->ifname[i]);
		} else if (st->ifindex[i]) {
			fl_log(FL_LOG_INFO, "xdp: left attached to %s, forwarding on the last tables "
			       "(fail static)", st->ifname[i]);
		}
		free(st->ifname[i]);
	}
	st->x.ifindex = 0;	/* fl_xdp_close must not detach: we never used fl_xdp_attach */
	fl_xdp_close(&st->x);
	free(st->ifname);
	free(st->ifindex);
	free(st);
	cp->xdp = NULL;
}
