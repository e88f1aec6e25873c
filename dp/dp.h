/* SPDX-License-Identifier: BSD-3-Clause */
/* fulcrum-dp's private parts: ports, workers, and what main shares with them. */
#ifndef FL_DP_DP_H
#define FL_DP_DP_H

#include <stdbool.h>
#include <rte_ether.h>
#include <rte_mempool.h>

#include "config.h"
#include "pipeline.h"

#define FL_DP_MAX_PORTS 8
#define FL_DP_RX_DESC 1024
#define FL_DP_TX_DESC 1024

/* One configured port and the TAP interface that carries its exception
 * traffic to the kernel (same MAC, so ARP/ND answers are the port's). */
struct fl_port {
	char name[FL_NAME_LEN];
	__u16 id;			/* DPDK port id */
	__u16 tap_id;			/* DPDK port id of its net_tap */
	int socket;			/* NUMA node of the device */
	struct rte_ether_addr mac;
	char tap_name[16];
};

/* One worker lcore: queue `queue` of every port. */
struct fl_lcore {
	struct fl_worker w;		/* first: cache-aligned, hot */
	unsigned lcore;
	__u16 queue;
	__u32 idle_backoff_us;
	struct rte_mempool *pool;	/* for too-big answers */
	const struct fl_port *ports;
	unsigned n_ports;
	struct fl_mapping ct;		/* this worker's conntrack file */
} __attribute__((aligned(64)));

extern volatile bool fl_dp_stop;

/* Probes the device named in cfg, configures `queues` queue pairs with RSS
 * where the device offers it, starts it and its TAP. 0 or -errno, message. */
int fl_port_setup(const struct fl_port_config *cfg, unsigned index, __u16 queues,
		  struct rte_mempool *const *pools, const unsigned *worker_lcores,
		  struct fl_port *port, char *err, size_t errlen);
void fl_port_close(struct fl_port *port);

/* The worker loop, for rte_eal_remote_launch. */
int fl_worker_main(void *arg);

#endif /* FL_DP_DP_H */
