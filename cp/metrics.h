/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What fulcrum-cp reads back from the data plane, for the control socket's
 * stats and for the Prometheus exposition: counters summed over every worker
 * slot of the shared memory (each worker owns its block; a reader sums
 * relaxed loads, so a sum is a moment's view, never torn per counter), or in
 * xdp mode over every CPU's copy of the program's per-CPU counter maps.
 *
 * Metrics: when global.metrics_listen is set, an HTTP/1.0 endpoint answers
 * GET /metrics with the text exposition format (version 0.0.4); any other
 * path gets 404. Non-blocking like the rest of the loop; a request is
 * bounded (8 KiB of headers, FL_METRICS_IDLE_MS), one request a connection.
 */
#ifndef FL_METRICS_H
#define FL_METRICS_H

#include <stddef.h>
#include "counters.h"
#include "daemon.h"

#define FL_METRICS_IDLE_MS 10000u
#define FL_METRICS_MAX_CLIENTS 64u

struct fl_metrics;

/* Every worker's counters summed: scalars and drops; in xdp mode every
 * CPU's copy in the program's maps instead. */
void fl_stats_sum(const struct fl_cp *cp, struct fl_worker_counters *sum);
void fl_stats_sum_vip(const struct fl_cp *cp, __u32 vip_id, struct fl_vip_counters *sum);
void fl_stats_sum_backend(const struct fl_cp *cp, __u32 backend_id, struct fl_backend_counters *sum);

/* Whether the data plane keeps counter f: in xdp mode not ct_occupancy,
 * which no CPU can keep for a table they all share (fulcrumctl conntrack
 * scans the table for it); an absent figure, not a 0. */
bool fl_stats_kept(const struct fl_cp *cp, const struct fl_counter_field *f);

/* The vip id a configured VIP has in the published tables, or FL_BACKEND_NONE. */
__u32 fl_stats_vip_id(const struct fl_cp *cp, const struct fl_vip_config *v);

/* The backend of a configured VIP (NULL when the daemon has none). */
struct fl_cp_backend *fl_stats_backend(struct fl_cp *cp, const struct fl_vip_config *v,
				       const struct fl_backend_config *bc);

/* "up", "draining" or "down": what the next publish gives the backend. */
const char *fl_stats_state(struct fl_cp *cp, const struct fl_vip_config *v,
			   const struct fl_backend_config *bc);

/* The health: "up" or "down", "unchecked" without a check. */
const char *fl_stats_health(const struct fl_cp_backend *b);

/* The whole exposition text, malloc'd (NULL when out of memory). */
char *fl_metrics_render(struct fl_cp *cp, size_t *len);

/* Listens on "addr:port" / "[v6]:port" and serves on cp's loop. 0 or -errno. */
int fl_metrics_open(struct fl_cp *cp, const char *listen, struct fl_metrics **out,
		    char *err, size_t errlen);
void fl_metrics_close(struct fl_metrics *m);

#endif /* FL_METRICS_H */
