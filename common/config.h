/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The configuration model: one libconfig file describes the whole system.
 * fulcrum-cp reads all of it; fulcrum-dp reads `global` and `dataplane`.
 * Every value here is validated: a loaded fl_config is always usable.
 */
#ifndef FL_CONFIG_H
#define FL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "flow.h"
#include "tables.h"

#define FL_CONFIG_ERR_LEN 512
#define FL_NAME_LEN 64
#define FL_PATH_LEN 108		/* sun_path */
#define FL_TEXT_LEN 256
#define FL_MAX_EXPECT_STATUS 16

enum fl_log_level { FL_LOG_ERROR, FL_LOG_WARN, FL_LOG_INFO, FL_LOG_DEBUG };
enum fl_dp_mode { FL_DP_DPDK, FL_DP_XDP };
/* tcp-half-open: a SYN whose SYN-ACK says up, and no connection (raw
 * socket, CAP_NET_RAW; cp/check_tcp_half_open.c) */
enum fl_hc_type { FL_HC_NONE, FL_HC_TCP, FL_HC_HTTP, FL_HC_HTTPS, FL_HC_TCP_HALF_OPEN };

/* Health check of one backend. Defaults come from `healthcheck`, a VIP's
 * `healthcheck` overrides them, a backend's overrides the VIP's: each level
 * names only the keys it changes. A loaded backend holds the merged result. */
struct fl_hc_config {
	enum fl_hc_type type;		/* "none" keeps the backend up */
	__u32 interval_ms;
	__u32 timeout_ms;		/* < interval_ms */
	__u32 rise;			/* successes to go up */
	__u32 fall;			/* failures to go down */
	__u16 port;			/* 0 = the VIP's port */
	bool has_address;		/* check another address than the backend's */
	__u8 address_family;
	union fl_addr address;
	char http_path[FL_TEXT_LEN];	/* starts with '/' */
	char http_host[FL_TEXT_LEN];	/* empty = the checked address */
	__u16 expect_status[FL_MAX_EXPECT_STATUS];
	unsigned n_expect_status;	/* >= 1 */
	char expect_body[FL_TEXT_LEN];	/* substring; empty = any body */
	bool tls_verify;		/* https: verify the certificate */
};

struct fl_backend_config {
	struct fl_backend_key key;	/* address, port (0 = VIP's), family */
	__u16 weight;			/* 0..65535; 0 = draining */
	bool has_mac;			/* L2 DSR: static MAC, else neighbour table */
	__u8 mac[6];
	struct fl_hc_config hc;
	unsigned line;			/* where it was defined, 0 if not from a file */
};

struct fl_vip_config {
	char name[FL_NAME_LEN];		/* optional label; "" = none */
	union fl_addr addr;
	__u8 family;
	__u16 port;			/* host order; 1..65535 */
	__u8 proto;			/* IPPROTO_TCP or IPPROTO_UDP */
	enum fl_method method;
	__u32 table_size;		/* Maglev M, prime */
	struct fl_hc_config hc;		/* the VIP's defaults, merged */
	struct fl_backend_config *backends;
	unsigned n_backends;
	unsigned line;
};

struct fl_port_config {
	char name[FL_NAME_LEN];
	char device[FL_TEXT_LEN];	/* PCI address or vdev string */
	__u16 queues;			/* RX/TX queue pairs */
};

struct fl_conntrack_config {
	__u32 capacity;			/* records per worker */
	__u32 tcp_timeout_s;		/* established */
	__u32 tcp_closing_timeout_s;	/* after FIN or RST */
	__u32 syn_timeout_s;		/* only a SYN seen */
	__u32 udp_timeout_s;
	__u32 new_flow_rate;		/* per worker per second; 0 = no cap */
};

struct fl_dataplane_config {
	enum fl_dp_mode mode;
	/* dpdk */
	char **eal_args;
	unsigned n_eal_args;
	struct fl_port_config *ports;
	unsigned n_ports;
	unsigned *worker_cores;
	unsigned n_workers;
	__u32 idle_backoff_us;		/* max sleep when idle; 0 = busy poll */
	/* xdp */
	char **xdp_interfaces;
	unsigned n_xdp_interfaces;
	bool xdp_generic;		/* skb mode instead of native */
	bool xdp_detach_on_exit;
	bool xdp_fib_lookup;		/* tunnels' next hop from bpf_fib_lookup */
	/* next hop: a static MAC, or an address resolved through the kernel's
	 * neighbour table; exactly one */
	bool has_next_hop_mac;
	__u8 next_hop_mac[6];
	bool has_next_hop_address;
	__u8 next_hop_family;
	union fl_addr next_hop_address;
	/* where fulcrum-cp looks addresses up (next_hop.address, L2 DSR
	 * backends without a mac): the kernel's view of the port. "" = none
	 * needed; defaulted to "fl-<port>" (dpdk, one port) or the one xdp
	 * interface when it is needed and not given */
	char neighbour_interface[16];	/* IFNAMSIZ */
	/* outer headers */
	bool has_tunnel_source_v4;
	union fl_addr tunnel_source_v4;
	bool has_tunnel_source_v6;
	union fl_addr tunnel_source_v6;
	__u16 gue_port;			/* host order */
	__u16 mtu;			/* egress MTU for too-big answers */
	struct fl_conntrack_config conntrack;
};

struct fl_limits_config {
	__u32 max_vips;
	__u32 max_backends;		/* backend ids, over all VIPs */
	__u32 ring_entries;		/* Maglev entries over all VIPs */
	__u32 max_workers;
};

struct fl_global_config {
	char control_socket[FL_PATH_LEN];
	__u32 control_socket_mode;	/* e.g. 0660 */
	char shm_name[FL_NAME_LEN];
	__u64 hash_seed;
	enum fl_log_level log_level;
	char metrics_listen[FL_NAME_LEN];	/* "addr:port"; "" = off */
};

struct fl_config {
	char source[FL_PATH_LEN];	/* file name used in messages */
	struct fl_global_config global;
	struct fl_limits_config limits;
	struct fl_dataplane_config dataplane;
	struct fl_hc_config healthcheck;	/* defaults for every VIP */
	struct fl_vip_config *vips;
	unsigned n_vips;
};

/*
 * Loads and validates a file. On error returns -EINVAL (or -errno when the
 * file cannot be read), leaves *cfg empty, and writes one line to err:
 * "FILE:LINE: SETTING.PATH: what is wrong", e.g.
 * "fulcrum.conf:42: vips.[1].backends.[0].weight: must be 0..65535".
 */
int fl_config_load(const char *path, struct fl_config *cfg, char *err, size_t errlen);

/* The same from text; name stands for the file name in messages. */
int fl_config_parse(const char *text, const char *name, struct fl_config *cfg,
		    char *err, size_t errlen);

void fl_config_free(struct fl_config *cfg);

/* The checks a VIP (with its backends) must pass, for changes that do not
 * come from a file (the control socket). 0 or -EINVAL with a message. */
int fl_config_check_vip(const struct fl_vip_config *vip, char *err, size_t errlen);

/* Parses names as the file spells them: "ipip", "tcp", "http", "info", ... */
int fl_method_parse(const char *text, enum fl_method *out);
const char *fl_method_name(enum fl_method m);
int fl_proto_parse(const char *text, __u8 *out);
const char *fl_proto_name(__u8 proto);
int fl_hc_type_parse(const char *text, enum fl_hc_type *out);
const char *fl_hc_type_name(enum fl_hc_type t);
const char *fl_log_level_name(enum fl_log_level l);

#endif /* FL_CONFIG_H */
