/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fulcrum-decap: loads bpf/decap.bpf.c on tc ingress of a backend's
 * interface, reads its counters, takes it away again.
 *
 * Nothing is pinned: the tc filter holds the program and the program holds
 * its maps, so detach and stats find everything from the interface alone
 * (our filter sits at a fixed handle and priority; its maps are named by
 * the program). That works the same inside `ip netns exec`, which mounts a
 * fresh /sys without bpffs, and two network namespaces with an interface of
 * the same name cannot collide in a shared pin directory.
 */
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "decap.skel.h"
#include "flow.h"

#define PROG "fulcrum-decap"
#define EXIT_USAGE 2

/* Where our filter sits on the clsact ingress hook; `tc filter show dev
 * IFACE ingress` shows "pref 1 ... handle 0xdeca fl_decap". */
#define DECAP_HANDLE 0xdeca
#define DECAP_PRIO 1
#define DECAP_GUE_PORT 6080	/* fulcrum's gue_port default */

/* The value of the decap_meta map; must match struct decap_meta of
 * decap.bpf.c (checked against the map's value size). */
struct decap_meta {
	__u32 ifindex;
	__u8 created_clsact;
	__u8 pad[3];
};

/* The maps of a program attached by us, found from the interface. */
struct attached {
	int prog_fd, stats_fd, meta_fd, rodata_fd;
	__u32 prog_id;
};

static int verbose;
static int loading;	/* libbpf's warnings matter while loading (verifier log) */

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || (!verbose && !(loading && level == LIBBPF_WARN)))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAILURE;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " PROG " attach IFACE [--gue-port N] [--any-dst]\n"
		"       " PROG " detach IFACE\n"
		"       " PROG " stats IFACE\n"
		"       " PROG " --help\n"
		"\n"
		"Decapsulates fulcrum's tunnels (IPIP, IPv6 in IPv6 and across, GUE variant 1)\n"
		"on tc ingress of IFACE, for backends whose kernel has no tunnel driver.\n"
		"\n"
		"  attach     load the program, fill its map with this host's addresses\n"
		"             (every interface of the network namespace), create the\n"
		"             clsact qdisc if missing and attach (pref %d, handle 0x%x).\n"
		"             Attaching again replaces the program: the address map is\n"
		"             refilled, the counters start over.\n"
		"  detach     remove the filter, and the clsact qdisc if attach made it\n"
		"  stats      print the counters summed over CPUs, one \"name value\" a line\n"
		"\n"
		"  --gue-port N  UDP port of GUE, 1..65535, 0 for none (default %d)\n"
		"  --any-dst     decapsulate tunnels to any destination, not only ours\n"
		"  -v, --verbose libbpf's messages\n"
		"\n"
		"Exit status: 0 done, 1 failed, 2 bad usage.\n",
		DECAP_PRIO, DECAP_HANDLE, DECAP_GUE_PORT);
}

/* ---- attach ---- */

/* Every address of this network namespace goes into the map: the kernel's
 * own tunnel devices accept any local destination too. */
static int fill_local(struct decap_bpf *skel, unsigned *count)
{
	struct ifaddrs *ifa, *i;
	const __u8 one = 1;
	int err = 0;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	*count = 0;
	for (i = ifa; i && !err; i = i->ifa_next) {
		union fl_addr k;

		if (!i->ifa_addr)
			continue;
		memset(&k, 0, sizeof(k));
		if (i->ifa_addr->sa_family == AF_INET) {
			k.bytes[10] = k.bytes[11] = 0xff;	/* IPv4-mapped */
			memcpy(k.bytes + 12, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			memcpy(k.bytes, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
		} else {
			continue;
		}
		err = bpf_map__update_elem(skel->maps.decap_local, &k, sizeof(k), &one,
					   sizeof(one), BPF_ANY);
		if (!err)
			(*count)++;
	}
	freeifaddrs(ifa);
	return err;
}

static void close_attached(struct attached *a)
{
	int *fds[] = { &a->prog_fd, &a->stats_fd, &a->meta_fd, &a->rodata_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
}

/* Finds our program on IFACE's ingress and its maps: 0, -ENOENT when none
 * is there, -EEXIST when another program holds our handle and priority. */
static int find_attached(int ifindex, struct attached *a)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, q, .handle = DECAP_HANDLE, .priority = DECAP_PRIO);
	struct bpf_prog_info info;
	__u32 len = sizeof(info), map_ids[16];
	int err;

	*a = (struct attached){ -1, -1, -1, -1, 0 };
	err = bpf_tc_query(&hook, &q);
	if (err)
		return err == -EINVAL ? -ENOENT : err;	/* no clsact: nothing there */
	a->prog_id = q.prog_id;
	a->prog_fd = bpf_prog_get_fd_by_id(q.prog_id);
	if (a->prog_fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	info.nr_map_ids = sizeof(map_ids) / sizeof(map_ids[0]);
	info.map_ids = (__u64)(unsigned long)map_ids;
	err = bpf_obj_get_info_by_fd(a->prog_fd, &info, &len);
	if (err)
		goto out;
	if (strcmp(info.name, "fl_decap") != 0) {
		err = -EEXIST;
		goto out;
	}
	for (__u32 i = 0; i < info.nr_map_ids && i < sizeof(map_ids) / sizeof(map_ids[0]); i++) {
		struct bpf_map_info mi;
		__u32 mlen = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(map_ids[i]);
		int *slot = NULL;

		if (fd < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		if (!bpf_obj_get_info_by_fd(fd, &mi, &mlen)) {
			if (strcmp(mi.name, "decap_stats") == 0)
				slot = &a->stats_fd;
			else if (strcmp(mi.name, "decap_meta") == 0 &&
				 mi.value_size == sizeof(struct decap_meta))
				slot = &a->meta_fd;
			else if (strstr(mi.name, ".rodata") &&
				 mi.value_size <= sizeof(struct decap_bpf__rodata))
				slot = &a->rodata_fd;
		}
		if (slot && *slot < 0)
			*slot = fd;
		else
			close(fd);
	}
	/* named fl_decap but without our maps: not ours */
	err = a->stats_fd < 0 || a->meta_fd < 0 || a->rodata_fd < 0 ? -EEXIST : 0;
out:
	if (err)
		close_attached(a);
	return err;
}

static int read_meta(const struct attached *a, struct decap_meta *m)
{
	__u32 key = 0;

	memset(m, 0, sizeof(*m));
	return bpf_map_lookup_elem(a->meta_fd, &key, m) ? -errno : 0;
}

static int cmd_attach(const char *iface, int ifindex, int gue_port, int any_dst)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = DECAP_HANDLE, .priority = DECAP_PRIO);
	struct decap_meta meta = { .ifindex = (__u32)ifindex };
	struct decap_bpf *skel = NULL;
	struct attached old;
	unsigned naddr = 0;
	__u32 key = 0;
	int err, rc = EXIT_FAILURE;

	err = find_attached(ifindex, &old);
	if (err == -EEXIST)
		return fail("%s: another program holds ingress pref %d handle 0x%x", iface,
			    DECAP_PRIO, DECAP_HANDLE);
	if (!err) {
		struct decap_meta m;

		/* Replacing: whoever made the qdisc still owns it. */
		if (!read_meta(&old, &m))
			meta.created_clsact = m.created_clsact;
		close_attached(&old);
		opts.flags = BPF_TC_F_REPLACE;
	}

	skel = decap_bpf__open();
	if (!skel)
		return fail("cannot open the BPF object: %s", strerror(errno));
	skel->rodata->gue_port = htons((__u16)gue_port);
	skel->rodata->any_dst = (__u8)any_dst;
	loading = 1;
	err = decap_bpf__load(skel);
	loading = 0;
	if (err) {
		fail("cannot load the BPF program: %s", strerror(-err));
		goto cleanup;
	}
	err = fill_local(skel, &naddr);
	if (err) {
		fail("cannot fill the local address map: %s", strerror(-err));
		goto cleanup;
	}

	if (opts.flags == 0) {
		err = bpf_tc_hook_create(&hook);
		if (err && err != -EEXIST) {
			fail("%s: cannot create the clsact qdisc: %s", iface, strerror(-err));
			goto cleanup;
		}
		meta.created_clsact = err == 0;
	}
	err = bpf_map__update_elem(skel->maps.decap_meta, &key, sizeof(key), &meta, sizeof(meta),
				   BPF_ANY);
	if (err) {
		fail("cannot write the meta map: %s", strerror(-err));
		goto undo_hook;
	}
	opts.prog_fd = bpf_program__fd(skel->progs.fl_decap);
	/* The program never reads the meta map: bind it, so that it lives as
	 * long as the program and shows among its maps. */
	err = bpf_prog_bind_map(opts.prog_fd, bpf_map__fd(skel->maps.decap_meta), NULL);
	if (err) {
		fail("cannot bind the meta map: %s", strerror(-err));
		goto undo_hook;
	}
	err = bpf_tc_attach(&hook, &opts);
	if (err) {
		fail("%s: cannot attach on tc ingress: %s", iface, strerror(-err));
		goto undo_hook;
	}
	printf("%s: decap %s on %s ingress (pref %d handle 0x%x), %u local addresses%s, ",
	       PROG, opts.flags ? "replaced" : "attached", iface, DECAP_PRIO, DECAP_HANDLE, naddr,
	       any_dst ? " (any destination accepted)" : "");
	if (gue_port)
		printf("GUE port %d\n", gue_port);
	else
		printf("GUE off\n");
	rc = EXIT_SUCCESS;
	goto cleanup;

undo_hook:
	if (meta.created_clsact && opts.flags == 0) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&hook);
	}
cleanup:
	/* The tc filter keeps the program, and the program its maps. */
	decap_bpf__destroy(skel);
	return rc;
}

/* ---- detach, stats ---- */

static int find_or_fail(const char *iface, int ifindex, struct attached *a)
{
	int err = find_attached(ifindex, a);

	if (err == -ENOENT)
		return fail("%s: no decap program attached", iface);
	if (err == -EEXIST)
		return fail("%s: the program at ingress pref %d handle 0x%x is not fulcrum-decap's",
			    iface, DECAP_PRIO, DECAP_HANDLE);
	if (err)
		return fail("%s: cannot query tc ingress: %s", iface, strerror(-err));
	return 0;
}

static int cmd_detach(const char *iface, int ifindex)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = DECAP_HANDLE, .priority = DECAP_PRIO);
	struct decap_meta meta;
	struct attached a;
	int err;

	if (find_or_fail(iface, ifindex, &a))
		return EXIT_FAILURE;
	err = read_meta(&a, &meta);
	close_attached(&a);
	if (err)
		meta.created_clsact = 0;	/* when unsure, leave the qdisc */
	err = bpf_tc_detach(&hook, &opts);
	if (err)
		return fail("%s: cannot detach: %s", iface, strerror(-err));
	if (meta.created_clsact) {
		/* Both directions: destroying clsact is all or nothing. */
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		err = bpf_tc_hook_destroy(&hook);
		if (err && err != -ENOENT)
			return fail("%s: detached, but cannot remove the clsact qdisc: %s", iface,
				    strerror(-err));
	}
	printf("%s: decap detached from %s%s\n", PROG, iface,
	       meta.created_clsact ? ", clsact qdisc removed" : "");
	return EXIT_SUCCESS;
}

/* Prints every field of the counters struct, its name from the map's BTF:
 * the program's struct is the one names table. */
static int print_counters(const struct attached *a)
{
	struct bpf_map_info mi;
	__u32 len = sizeof(mi), key = 0;
	struct btf *btf = NULL;
	const struct btf_type *t;
	int ncpu = libbpf_num_possible_cpus(), rc = -EINVAL;
	__u8 *vals = NULL;
	size_t stride;

	memset(&mi, 0, sizeof(mi));
	if (ncpu <= 0 || bpf_obj_get_info_by_fd(a->stats_fd, &mi, &len) || !mi.btf_id)
		return -ENOENT;
	btf = btf__load_from_kernel_by_id(mi.btf_id);
	if (!btf)
		return -errno;
	t = btf__type_by_id(btf, mi.btf_value_type_id);
	if (!t || !btf_is_struct(t) || t->size != mi.value_size)
		goto out;
	stride = (mi.value_size + 7) & ~7u;
	vals = calloc((size_t)ncpu, stride);
	if (!vals) {
		rc = -ENOMEM;
		goto out;
	}
	if (bpf_map_lookup_elem(a->stats_fd, &key, vals)) {
		rc = -errno;
		goto out;
	}
	for (int i = 0; i < btf_vlen(t); i++) {
		const struct btf_member *m = btf_members(t) + i;
		unsigned long long sum = 0;
		__u64 v;

		if (m->offset % 64 || m->offset / 8 + 8 > mi.value_size)
			continue;	/* only whole __u64 fields are counters */
		for (int cpu = 0; cpu < ncpu; cpu++) {
			memcpy(&v, vals + (size_t)cpu * stride + m->offset / 8, 8);
			sum += v;
		}
		printf("%s %llu\n", btf__name_by_offset(btf, m->name_off), sum);
	}
	rc = 0;
out:
	free(vals);
	btf__free(btf);
	return rc;
}

static int cmd_stats(const char *iface, int ifindex)
{
	struct decap_bpf__rodata ro;
	struct decap_meta meta;
	struct attached a;
	__u32 key = 0;
	int err;

	if (find_or_fail(iface, ifindex, &a))
		return EXIT_FAILURE;
	if (bpf_map_lookup_elem(a.rodata_fd, &key, &ro) == 0 && read_meta(&a, &meta) == 0)
		printf("# %s ifindex %u prog %u gue_port %u any_dst %u\n", iface, meta.ifindex,
		       a.prog_id, ntohs(ro.gue_port), ro.any_dst);
	err = print_counters(&a);
	close_attached(&a);
	if (err)
		return fail("%s: cannot read the counters: %s", iface, strerror(-err));
	return EXIT_SUCCESS;
}

/* ---- command line ---- */

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "gue-port", required_argument, NULL, 'g' },
		{ "any-dst", no_argument, NULL, 'a' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int gue_port = DECAP_GUE_PORT, any_dst = 0, have_gue = 0, opt, ifindex;
	const char *cmd, *iface;
	char *end;
	long v;

	while ((opt = getopt_long(argc, argv, "+hv", longopts, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			return EXIT_SUCCESS;
		}
		if (opt != 'v') {
			usage(stderr);
			return EXIT_USAGE;
		}
		verbose = 1;
	}
	if (argc - optind < 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind++];
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return EXIT_SUCCESS;
	}
	if (strcmp(cmd, "attach") != 0 && strcmp(cmd, "detach") != 0 &&
	    strcmp(cmd, "stats") != 0) {
		fprintf(stderr, PROG ": unknown command '%s' (attach, detach, stats)\n", cmd);
		return EXIT_USAGE;
	}
	/* Options may come after the command, around the interface: parse
	 * what follows the command as its own argument vector. */
	argc -= optind - 1;
	argv += optind - 1;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
		switch (opt) {
		case 'g':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 0 || v > 65535) {
				fprintf(stderr, PROG ": --gue-port: '%s' is not 0..65535\n",
					optarg);
				return EXIT_USAGE;
			}
			gue_port = (int)v;
			have_gue = 1;
			break;
		case 'a':
			any_dst = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, PROG ": %s takes one interface name\n", cmd);
		return EXIT_USAGE;
	}
	if ((have_gue || any_dst) && strcmp(cmd, "attach") != 0) {
		fprintf(stderr, PROG ": --gue-port and --any-dst are for attach\n");
		return EXIT_USAGE;
	}
	iface = argv[optind];
	libbpf_set_print(libbpf_print);
	ifindex = (int)if_nametoindex(iface);
	if (ifindex == 0)
		return fail("%s: no such interface", iface);

	if (strcmp(cmd, "attach") == 0)
		return cmd_attach(iface, ifindex, gue_port, any_dst);
	if (strcmp(cmd, "detach") == 0)
		return cmd_detach(iface, ifindex);
	return cmd_stats(iface, ifindex);
}
