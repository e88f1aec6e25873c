/* SPDX-License-Identifier: BSD-3-Clause */
/* Ports of fulcrum-dp: probe, configure with RSS, start; and each port's TAP
 * exception interface. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "addr.h"
#include "dp.h"

/* "net_pcap0,rx_pcap=x" → "net_pcap0"; a PCI address is its own name. */
static void device_name(const char *device, char *name, size_t len)
{
	size_t n = strcspn(device, ",");

	snprintf(name, len, "%.*s", (int)n, device);
}

static int probe(const char *device, __u16 *port_id, char *err, size_t errlen)
{
	char name[FL_TEXT_LEN];
	int rc;

	device_name(device, name, sizeof(name));
	/* PCI devices bound to a DPDK driver are probed by EAL already. */
	if (rte_eth_dev_get_port_by_name(name, port_id) == 0)
		return 0;
	rc = rte_dev_probe(device);
	if (rc < 0) {
		snprintf(err, errlen, "port %s: cannot probe device: %s", device, rte_strerror(-rc));
		return rc;
	}
	if (rte_eth_dev_get_port_by_name(name, port_id) != 0) {
		snprintf(err, errlen, "port %s: probed, but no ethdev is named %s", device, name);
		return -ENODEV;
	}
	return 0;
}

static int configure(__u16 id, const char *what, __u16 queues, bool rss,
		     struct rte_mempool *const *pools, const unsigned *worker_lcores,
		     char *err, size_t errlen)
{
	struct rte_eth_conf conf = { 0 };
	struct rte_eth_dev_info info;
	int rc;

	rc = rte_eth_dev_info_get(id, &info);
	if (rc < 0)
		goto fail;
	if (queues > info.max_rx_queues || queues > info.max_tx_queues) {
		snprintf(err, errlen, "%s: %u queues asked, the device has %u RX and %u TX",
			 what, queues, info.max_rx_queues, info.max_tx_queues);
		return -EINVAL;
	}
	if (rss && queues > 1 && info.flow_type_rss_offloads) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) &
						   info.flow_type_rss_offloads;
	}
	rc = rte_eth_dev_configure(id, queues, queues, &conf);
	if (rc < 0)
		goto fail;
	for (__u16 q = 0; q < queues; q++) {
		int socket = (int)rte_lcore_to_socket_id(worker_lcores[q]);

		rc = rte_eth_rx_queue_setup(id, q, FL_DP_RX_DESC, (unsigned)socket, NULL,
					    pools[socket]);
		if (rc < 0)
			goto fail;
		rc = rte_eth_tx_queue_setup(id, q, FL_DP_TX_DESC, (unsigned)socket, NULL);
		if (rc < 0)
			goto fail;
	}
	rc = rte_eth_dev_start(id);
	if (rc < 0)
		goto fail;
	rte_eth_promiscuous_enable(id);
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", what, rte_strerror(-rc));
	return rc;
}

/* The kernel's side of the port: a TAP with the port's MAC, so what the
 * kernel answers (ARP, ND, BGP, SSH) leaves with the port's address. */
static int tap_setup(struct fl_port *port, unsigned index, __u16 queues,
		     struct rte_mempool *const *pools, const unsigned *worker_lcores,
		     char *err, size_t errlen)
{
	char devargs[128], mac[FL_MAC_STRLEN], what[64];
	int rc;

	snprintf(port->tap_name, sizeof(port->tap_name), "fl-%.12s", port->name);
	fl_mac_format(port->mac.addr_bytes, mac, sizeof(mac));
	snprintf(devargs, sizeof(devargs), "net_tap_fl%u,iface=%s,mac=%s", index, port->tap_name, mac);
	rc = probe(devargs, &port->tap_id, err, errlen);
	if (rc < 0)
		return rc;
	snprintf(what, sizeof(what), "exception interface %s", port->tap_name);
	return configure(port->tap_id, what, queues, false, pools, worker_lcores, err, errlen);
}

int fl_port_setup(const struct fl_port_config *cfg, unsigned index, __u16 queues,
		  struct rte_mempool *const *pools, const unsigned *worker_lcores,
		  struct fl_port *port, char *err, size_t errlen)
{
	char what[FL_TEXT_LEN + 8];
	int rc;

	memset(port, 0, sizeof(*port));
	snprintf(port->name, sizeof(port->name), "%s", cfg->name);
	rc = probe(cfg->device, &port->id, err, errlen);
	if (rc < 0)
		return rc;
	port->socket = rte_eth_dev_socket_id(port->id);
	if (port->socket < 0)
		port->socket = 0;	/* virtual devices have no node */
	for (__u16 q = 0; q < queues; q++)
		if ((int)rte_lcore_to_socket_id(worker_lcores[q]) != port->socket)
			fprintf(stderr, "fulcrum-dp: warning: worker lcore %u is on NUMA node %u, "
				"port %s on node %d: every packet crosses the interconnect\n",
				worker_lcores[q], rte_lcore_to_socket_id(worker_lcores[q]),
				port->name, port->socket);
	rc = rte_eth_macaddr_get(port->id, &port->mac);
	if (rc < 0) {
		snprintf(err, errlen, "port %s: no MAC address: %s", port->name, rte_strerror(-rc));
		return rc;
	}
	snprintf(what, sizeof(what), "port %s", port->name);
	rc = configure(port->id, what, queues, true, pools, worker_lcores, err, errlen);
	if (rc < 0)
		return rc;
	return tap_setup(port, index, queues, pools, worker_lcores, err, errlen);
}

void fl_port_close(struct fl_port *port)
{
	rte_eth_dev_stop(port->tap_id);
	rte_eth_dev_close(port->tap_id);
	rte_eth_dev_stop(port->id);
	rte_eth_dev_close(port->id);
}
