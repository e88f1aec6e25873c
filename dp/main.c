/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fulcrum-dp: the DPDK data plane. Reads the config's global and dataplane
 * sections, attaches to the tables fulcrum-cp publishes, and runs one worker
 * lcore per RX queue until SIGINT or SIGTERM. SIGUSR1 prints the counters.
 */
#include <errno.h>
#include <getopt.h>
#include <numa.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "dp.h"

#define FL_DP_POOL_MBUFS 8191
#define FL_DP_POOL_CACHE 256
#define FL_DP_TOO_BIG_RATE 1000	/* answers per second per worker */

volatile bool fl_dp_stop;
static volatile bool print_requested;

struct fl_dp {
	struct fl_config cfg;
	struct fl_shm shm;
	struct rte_mempool *pools[RTE_MAX_NUMA_NODES];
	struct fl_port ports[FL_DP_MAX_PORTS];
	unsigned n_ports;
	struct fl_lcore *lcores[RTE_MAX_LCORE];
	unsigned n_workers;
};

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		print_requested = true;
	else
		fl_dp_stop = true;
}

static void print_counters(const struct fl_dp *dp)
{
	struct fl_worker_counters sum = { 0 };

	for (unsigned w = 0; w < dp->n_workers; w++) {
		const __u64 *c = (const __u64 *)fl_shm_worker_counters(&dp->shm, w);
		__u64 *s = (__u64 *)&sum;

		for (size_t i = 0; i < sizeof(sum) / sizeof(__u64); i++)
			s[i] += c[i];
	}
	for (size_t i = 0; i < sizeof(fl_counter_fields) / sizeof(fl_counter_fields[0]); i++)
		printf("%s %llu\n", fl_counter_fields[i].name,
		       *(unsigned long long *)((char *)&sum + fl_counter_fields[i].offset));
	for (int r = 0; r < FL_DROP__MAX; r++)
		if (sum.drops[r])
			printf("drop_%s %llu\n", fl_drop_names[r], (unsigned long long)sum.drops[r]);
	printf("\n");	/* one block per request, for scripts */
	fflush(stdout);
}

/* argv for rte_eal_init: the program name, the config's eal_args, then the
 * command line's own EAL arguments (after "--"). */
static char **eal_argv(const struct fl_config *cfg, int extra_argc, char **extra, int *argc)
{
	char **v = calloc((size_t)cfg->dataplane.n_eal_args + (size_t)extra_argc + 2, sizeof(*v));

	if (!v)
		return NULL;
	*argc = 0;
	v[(*argc)++] = (char *)"fulcrum-dp";
	for (unsigned i = 0; i < cfg->dataplane.n_eal_args; i++)
		v[(*argc)++] = cfg->dataplane.eal_args[i];
	for (int i = 0; i < extra_argc; i++)
		v[(*argc)++] = extra[i];
	return v;
}

static int check_workers(const struct fl_dp *dp, char *err, size_t errlen)
{
	const struct fl_dataplane_config *d = &dp->cfg.dataplane;

	if (d->n_workers > dp->shm.hdr->max_workers) {
		snprintf(err, errlen, "%u workers, the shared memory has room for %u",
			 d->n_workers, dp->shm.hdr->max_workers);
		return -EINVAL;
	}
	for (unsigned i = 0; i < d->n_workers; i++) {
		unsigned l = d->worker_cores[i];

		if (l >= RTE_MAX_LCORE || !rte_lcore_is_enabled(l)) {
			snprintf(err, errlen, "worker lcore %u is not enabled: add it to the EAL's -l/--lcores", l);
			return -EINVAL;
		}
		if (l == rte_get_main_lcore()) {
			snprintf(err, errlen, "worker lcore %u is the EAL main lcore: give workers lcores of their own", l);
			return -EINVAL;
		}
	}
	return 0;
}

static int create_pools(struct fl_dp *dp, char *err, size_t errlen)
{
	for (unsigned i = 0; i < dp->cfg.dataplane.n_workers; i++) {
		unsigned socket = rte_lcore_to_socket_id(dp->cfg.dataplane.worker_cores[i]);
		char name[32];

		if (dp->pools[socket])
			continue;
		snprintf(name, sizeof(name), "fl_mbufs_%u", socket);
		dp->pools[socket] = rte_pktmbuf_pool_create(name, FL_DP_POOL_MBUFS, FL_DP_POOL_CACHE,
							    0, RTE_MBUF_DEFAULT_BUF_SIZE, (int)socket);
		if (!dp->pools[socket]) {
			snprintf(err, errlen, "mbuf pool on NUMA node %u: %s", socket, rte_strerror(rte_errno));
			return -ENOMEM;
		}
	}
	return 0;
}

/* The worker's conntrack lives in its own file beside the tables, so a
 * restarted fulcrum-dp finds every flow again; on hugetlbfs when mounted,
 * since lookups land on random pages. */
static int map_conntrack(const struct fl_dp *dp, unsigned id, struct fl_lcore *lc,
			 char *err, size_t errlen)
{
	char name[FL_NAME_LEN + 16];
	size_t want = fl_ct_mem_size(dp->cfg.dataplane.conntrack.capacity);
	int rc;

	snprintf(name, sizeof(name), "%s-ct%u", dp->cfg.global.shm_name, id);
	rc = fl_mapping_open(name, &lc->ct, err, errlen);
	if (rc == 0 && lc->ct.size < want) {
		/* made for a smaller capacity: its records cannot be kept */
		fprintf(stderr, "fulcrum-dp: %s is smaller than conntrack.capacity needs: "
			"starting an empty table\n", lc->ct.path);
		unlink(lc->ct.path);
		fl_mapping_close(&lc->ct);
		rc = -ENOENT;
	}
	if (rc == -ENOENT)
		rc = fl_mapping_create(name, want, &lc->ct, err, errlen);
	if (rc < 0)
		return rc;
	if (numa_available() >= 0)
		numa_tonode_memory(lc->ct.addr, lc->ct.size, (int)rte_lcore_to_socket_id(lc->lcore));
	return 0;
}

static void encap_ctx(const struct fl_dataplane_config *d, struct fl_encap_ctx *e)
{
	memset(e, 0, sizeof(*e));
	/* next_hop.address: fulcrum-cp resolves it and publishes the MAC in
	 * the tables, which win over this one (zero when not static) */
	memcpy(e->next_hop_mac, d->next_hop_mac, 6);
	e->tunnel_src_v4 = d->tunnel_source_v4;
	e->tunnel_src_v6 = d->tunnel_source_v6;
	e->gue_dport = htons(d->gue_port);
	e->mtu = d->mtu;
}

static int setup_worker(struct fl_dp *dp, unsigned id, char *err, size_t errlen)
{
	const struct fl_dataplane_config *d = &dp->cfg.dataplane;
	unsigned lcore = d->worker_cores[id];
	unsigned socket = rte_lcore_to_socket_id(lcore);
	struct fl_ct_params ctp;
	struct fl_encap_ctx encap;
	struct fl_lcore *lc = rte_zmalloc_socket("fl_lcore", sizeof(*lc), 64, (int)socket);
	int rc;

	if (!lc) {
		snprintf(err, errlen, "worker %u: no memory on NUMA node %u", id, socket);
		return -ENOMEM;
	}
	dp->lcores[id] = lc;
	lc->ct.fd = -1;
	lc->lcore = lcore;
	lc->queue = (__u16)id;
	lc->idle_backoff_us = d->idle_backoff_us;
	lc->pool = dp->pools[socket];
	lc->ports = dp->ports;
	lc->n_ports = dp->n_ports;
	rc = map_conntrack(dp, id, lc, err, errlen);
	if (rc < 0)
		return rc;
	fl_ct_params_default(&ctp);
	ctp.timeout_s[FL_CT_SYN] = d->conntrack.syn_timeout_s;
	ctp.timeout_s[FL_CT_ESTABLISHED] = d->conntrack.tcp_timeout_s;
	ctp.timeout_s[FL_CT_CLOSING] = d->conntrack.tcp_closing_timeout_s;
	ctp.timeout_s[FL_CT_UDP] = d->conntrack.udp_timeout_s;
	ctp.new_flow_rate = d->conntrack.new_flow_rate;
	encap_ctx(d, &encap);
	return fl_worker_init(&lc->w, &dp->shm, id, lc->ct.addr, lc->ct.size, d->conntrack.capacity,
			      &ctp, &encap, FL_DP_TOO_BIG_RATE, err, errlen);
}

static int setup(struct fl_dp *dp, char *err, size_t errlen)
{
	const struct fl_dataplane_config *d = &dp->cfg.dataplane;
	int rc;

	if (d->mode != FL_DP_DPDK) {
		snprintf(err, errlen, "dataplane.mode is \"xdp\": fulcrum-dp runs the \"dpdk\" mode");
		return -EINVAL;
	}
	if (d->n_ports > FL_DP_MAX_PORTS) {
		snprintf(err, errlen, "%u ports, fulcrum-dp drives at most %u", d->n_ports, FL_DP_MAX_PORTS);
		return -EINVAL;
	}
	rc = fl_shm_attach(dp->cfg.global.shm_name, &dp->shm, err, errlen);
	if (rc < 0)
		return rc;
	rc = check_workers(dp, err, errlen);
	if (rc == 0)
		rc = create_pools(dp, err, errlen);
	for (unsigned i = 0; rc == 0 && i < d->n_ports; i++, dp->n_ports++)
		rc = fl_port_setup(&d->ports[i], i, (__u16)d->n_workers, dp->pools, d->worker_cores,
				   &dp->ports[i], err, errlen);
	for (unsigned i = 0; rc == 0 && i < d->n_workers; i++, dp->n_workers++)
		rc = setup_worker(dp, i, err, errlen);
	return rc;
}

static void teardown(struct fl_dp *dp)
{
	for (unsigned i = 0; i < RTE_MAX_LCORE; i++) {
		struct fl_lcore *lc = dp->lcores[i];

		if (!lc)
			continue;
		if (lc->w.ctr)
			fl_worker_fini(&lc->w);
		fl_mapping_close(&lc->ct);
		rte_free(lc);
	}
	for (unsigned i = 0; i < dp->n_ports; i++)
		fl_port_close(&dp->ports[i]);
	for (unsigned i = 0; i < RTE_MAX_NUMA_NODES; i++)
		rte_mempool_free(dp->pools[i]);
	if (dp->shm.hdr)
		fl_shm_detach(&dp->shm);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: fulcrum-dp -c CONFIG [-- EAL-ARGS...]\n"
		   "  -c, --config FILE   the fulcrum config (global and dataplane sections)\n"
		   "  -h, --help          this text\n"
		   "EAL arguments come from dataplane.dpdk.eal_args, then those after \"--\".\n"
		   "Signals: SIGUSR1 prints the counters; SIGINT/SIGTERM stop.\n");
}

static int run(struct fl_dp *dp)
{
	const struct fl_dataplane_config *d = &dp->cfg.dataplane;

	for (unsigned i = 0; i < dp->n_workers; i++)
		rte_eal_remote_launch(fl_worker_main, dp->lcores[i], d->worker_cores[i]);
	fprintf(stderr, "fulcrum-dp: %u workers on %u ports, tables from %s\n",
		dp->n_workers, dp->n_ports, dp->shm.map.path);
	while (!fl_dp_stop) {
		usleep(100000);
		if (print_requested) {
			print_requested = false;
			print_counters(dp);
		}
	}
	rte_eal_mp_wait_lcore();
	print_counters(dp);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct fl_dp dp;
	const char *config = NULL;
	char err[FL_CONFIG_ERR_LEN], **eargv;
	int opt, eargc, rc;

	/* before anything slow (EAL, ports, conntrack): a SIGUSR1 sent during
	 * start-up must not kill the process, and a stop asked then is a
	 * clean exit once start-up is done */
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGUSR1, on_signal);
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		if (opt == 'c') {
			config = optarg;
		} else {
			usage(opt == 'h' ? stdout : stderr);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (!config) {
		usage(stderr);
		return 2;
	}
	if (fl_config_load(config, &dp.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "fulcrum-dp: %s\n", err);
		return 2;
	}
	eargv = eal_argv(&dp.cfg, argc - optind, argv + optind, &eargc);
	if (!eargv || rte_eal_init(eargc, eargv) < 0) {
		fprintf(stderr, "fulcrum-dp: EAL: %s (no hugepages? reserve some, or add --no-huge)\n",
			rte_strerror(rte_errno));
		fl_config_free(&dp.cfg);
		free(eargv);
		return 1;
	}
	rc = setup(&dp, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "fulcrum-dp: %s\n", err);
	else
		rc = run(&dp);
	fl_dp_stop = true;
	rte_eal_mp_wait_lcore();
	teardown(&dp);
	rte_eal_cleanup();
	fl_config_free(&dp.cfg);
	free(eargv);
	return rc < 0 ? 1 : 0;
}
