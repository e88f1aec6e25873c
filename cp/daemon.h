/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fulcrum-cp's state: the loaded config, the table publisher, the health
 * checks (one per target and settings, shared by the backends that name
 * them) and the operator's drains; a config is applied by difference
 * (keepalived's compare/migrate).
 *
 * Initial health. A backend has the state of its check. A check already
 * running keeps its state: a backend added next to one is as healthy as its
 * target is known to be. A new check starts up if any of its backends is up
 * now: one whose check settings changed keeps its state (up, if it had no
 * check), the others have the state the published tables give them (a
 * restarted fulcrum-cp reads them back; up or draining counts as up), so a
 * restart moves no flow. So a backend the tables do not hold yet (first
 * start on a fresh mapping, or added by a reload) whose target nobody checks
 * starts down and goes up after `rise` successes: no new flow is sent to a
 * server that never answered. A backend without a check (type "none") is
 * always up.
 *
 * Neighbours. MACs the config leaves to resolve (next_hop.address, L2 DSR
 * backends without a mac) are looked up in fulcrum-cp's copy of the kernel's
 * neighbour table on dataplane.neighbour_interface at every publish; a
 * change of one of them marks the tables dirty. Every FL_CP_NEIGH_REFRESH_MS
 * the unknown and the unconfirmed ones are asked for again (fl_neigh_solicit).
 *
 * Publishing. A state change, a drain or a reload marks the tables dirty;
 * they are published once at the end of the loop iteration (all changes of
 * that iteration in one generation), at most every FL_CP_PUBLISH_GAP_MS
 * (changes meanwhile wait for the next one). A failed publish is logged and
 * retried every FL_CP_RETRY_MS until one succeeds.
 */
#ifndef FL_DAEMON_H
#define FL_DAEMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include "addr.h"
#include "config.h"
#include "health.h"
#include "loop.h"
#include "neigh.h"
#include "publish.h"
#include "shm.h"

#define FL_CP_PUBLISH_GAP_MS 50u
#define FL_CP_RETRY_MS 1000u
#define FL_CP_PUBLISH_TIMEOUT_MS 200u	/* longest wait for the data plane */
#define FL_CP_NEIGH_REFRESH_MS 1000u	/* unresolved or stale neighbours asked again */

struct fl_cp_backend;

/* The address and port a check probes. */
struct fl_cp_target {
	union fl_addr addr;
	__u16 port;			/* host order */
	__u8 family;
	__u8 pad;			/* zero: targets compare as bytes */
};

/*
 * One health check: a checker of one target with one set of settings,
 * shared by every backend that would probe that target the same way. VIPs
 * in front of the same nodes (an ingress fleet behind many VIPs) probe each
 * node once an interval, not once per VIP, and the node's health is one
 * state for all of them.
 */
struct fl_cp_check {
	struct fl_checker chk;		/* chk.hc: the settings */
	struct fl_cp *cp;
	struct fl_cp_target target;
	struct fl_cp_backend *users;	/* list through fl_cp_backend.next_user */
};

/* One backend of one VIP, reading the health of its check. */
struct fl_cp_backend {
	/* identity: the VIP (address, port, protocol) and the backend key
	 * with its port made explicit */
	union fl_addr vip_addr;
	__u8 vip_family;
	__u8 vip_proto;
	__u16 vip_port;
	struct fl_backend_key key;	/* as in the config: port 0 = the VIP's */
	__be16 eff_port;		/* the port it serves */
	struct fl_hc_config hc;
	bool checked;			/* hc.type != none */
	bool drain;			/* operator drain */
	struct fl_cp_check *check;	/* check->chk.up is the health when checked */
	struct fl_cp_backend *next_user;	/* of the same check */
	char name[FL_ADDR_STRLEN * 2 + 32];	/* "10.1.0.2:80 of 10.0.0.100:80/tcp" */
};

struct fl_cp_xdp;

struct fl_cp {
	char config_path[4096];
	struct fl_config cfg;
	bool have_cfg;
	struct fl_loop loop;
	struct fl_shm shm;
	bool have_shm;
	struct fl_publisher pub;
	bool have_pub;
	struct fl_cp_xdp *xdp;			/* xdp mode (cp/xdp_mode.h), else NULL */
	struct fl_cp_backend **backends;	/* sorted by identity */
	size_t n_backends;
	struct fl_cp_check **checks;		/* sorted by target */
	size_t n_checks;
	/* publishing */
	bool dirty;
	uint64_t last_publish_ns;
	struct fl_timer publish_timer;
	__u64 generation;
	uint64_t n_publishes;
	uint64_t n_publish_errors;
	/* neighbours (cp/neigh.h), when dataplane.neighbour_interface is set */
	struct fl_neigh neigh;
	bool have_neigh;
	struct fl_io neigh_io;
	struct fl_timer neigh_timer;
	/* signals */
	struct fl_io sig_io;
	bool reload_requested;
};

/* Logging, one line each to stderr: "<N>level: message" under systemd
 * (JOURNAL_STREAM set: the journal takes <N> as the priority), else
 * "fulcrum-cp: level: message". Lines above the level set are dropped. */
void fl_log_set_level(enum fl_log_level level);
void fl_log(enum fl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Loads config_path, creates or attaches the shared memory with its limits,
 * reads the ids back, starts the checks (staggered) and publishes the first
 * tables. On error everything is undone: 0, or -errno with a message.
 */
int fl_cp_init(struct fl_cp *cp, const char *config_path, char *err, size_t errlen);

/* Reloads the file: on error the old config stays (-errno, message);
 * else applies the new one by difference and publishes. */
int fl_cp_reload(struct fl_cp *cp, char *err, size_t errlen);

/* Applies a loaded config by difference; takes cfg over (success or not).
 * Unchanged backends (same VIP, key and merged check) keep their check,
 * state and counters. A backend whose target and settings another backend
 * already checks joins that check and its state. Otherwise a new check
 * starts: with the backend's current state when only its check changed,
 * else up if the published tables hold any of its backends up, else down
 * (see above). A check no backend names any more stops. */
int fl_cp_apply(struct fl_cp *cp, struct fl_config *cfg, char *err, size_t errlen);

/* Operator drain of every backend with this address (and port, 0 = any) of
 * the VIP. -ENOENT when none matched. Publishes at the end of the iteration. */
int fl_cp_set_drain(struct fl_cp *cp, const union fl_addr *vip_addr, __u8 vip_family,
		    __u16 vip_port, const union fl_addr *addr, __u8 family, __u16 port, bool drain);

/* Publishes now if anything changed (or force). 0 or -errno, logged. */
int fl_cp_publish(struct fl_cp *cp, bool force);

/* Runs until SIGTERM or SIGINT (SIGHUP reloads). Blocks those signals and
 * takes them through a signalfd. 0 or -errno. */
int fl_cp_run(struct fl_cp *cp);

/* Stops the checks and detaches; the tables stay published (fail static). */
void fl_cp_fini(struct fl_cp *cp);

/* The backend with this identity, or NULL (for tests and the control socket). */
struct fl_cp_backend *fl_cp_find(struct fl_cp *cp, const union fl_addr *vip_addr, __u8 vip_family,
				 __u16 vip_port, __u8 vip_proto, const struct fl_backend_key *key);

#endif /* FL_DAEMON_H */
