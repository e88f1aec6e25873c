/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The balancing pipeline of one worker, free of DPDK types: a burst of
 * frames in, a verdict per frame out. Stages, in order: parse, classify (VIP
 * lookup), conntrack, select (Maglev), encapsulate. The DPDK worker wraps
 * mbufs into fl_buf and acts on the verdicts (TX, the kernel's exception
 * interface, free, or a too-big answer); tests and the in-process benchmark
 * drive the same function with plain buffers.
 */
#ifndef FL_DP_PIPELINE_H
#define FL_DP_PIPELINE_H

#include <linux/types.h>
#include "pkt.h"
#include "shm.h"
#include "conntrack.h"
#include "encap.h"

#define FL_BURST_MAX 32

enum fl_verdict {
	FL_VERDICT_TX,		/* data/len now hold the frame to send */
	FL_VERDICT_KERNEL,	/* not a balanced flow: to the exception interface */
	FL_VERDICT_DROP,	/* counted under drop_reason */
	FL_VERDICT_TOO_BIG,	/* over the MTU, counted as drop too_big; within the
				 * answer rate: send fl_icmp_too_big() back */
};

/* One frame of a burst. The pipeline may move data back into the headroom
 * (encapsulation) and change len; the caller applies that to its mbuf. */
struct fl_buf {
	__u8 *data;
	__u32 len;
	__u32 headroom;
	__u8 verdict;		/* enum fl_verdict */
	__u8 drop_reason;	/* enum fl_drop_reason, for FL_VERDICT_DROP */
	__u8 pad[2];
	__u32 too_big_mtu;	/* for FL_VERDICT_TOO_BIG: the MTU to report */
	struct fl_pkt pkt;	/* what parse found; valid unless DROP by parse */
};

/* Everything one worker owns: no field is written by anyone else. */
struct fl_worker {
	struct fl_reader reader;		/* the tables, one snapshot a burst */
	struct fl_ct ct;			/* this worker's connection tracking */
	struct fl_worker_counters *ctr;		/* in shared memory */
	struct fl_vip_counters *vip_ctr;	/* [max_vips] */
	struct fl_backend_counters *backend_ctr;	/* [max_backends] */
	struct fl_encap_ctx encap;		/* next_hop_mac: the tables', per burst */
	__u8 static_next_hop_mac[6];		/* the config's, when the tables have none */
	__u32 max_vips;
	__u32 max_backends;
	/* too-big answers: a token bucket, per second */
	__u32 too_big_rate;
	__u32 too_big_tokens;
	__u32 too_big_last;			/* fl_ct_now() ticks */
} __attribute__((aligned(64)));

/*
 * Sets up worker `id`: registers it as a reader of shm's tables, points its
 * counters into shm, and attaches to the conntrack table in ct_mem when one
 * is there (a restarted fulcrum-dp keeps every flow), else formats it with
 * ct_capacity records. too_big_rate: ICMP too-big answers per second.
 * 0, or -errno with a message.
 */
int fl_worker_init(struct fl_worker *w, struct fl_shm *shm, unsigned id,
		   void *ct_mem, size_t ct_len, __u32 ct_capacity,
		   const struct fl_ct_params *ct_params, const struct fl_encap_ctx *encap,
		   __u32 too_big_rate, char *err, size_t errlen);

void fl_worker_fini(struct fl_worker *w);

/*
 * Runs bufs[0..n) (n <= FL_BURST_MAX) through the pipeline on one snapshot
 * of the tables, taken at the start and acknowledged at the end. `now` is
 * fl_ct_now(), read once per burst. Sets every verdict and counts every
 * packet: rx, drops by reason, kernel, per VIP and per backend, new flows.
 * TX counters are the caller's, after the device took the frames.
 */
void fl_pipeline_run(struct fl_worker *w, struct fl_buf *bufs, unsigned n, __u32 now);

#endif /* FL_DP_PIPELINE_H */
