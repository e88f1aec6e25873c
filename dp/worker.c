/* SPDX-License-Identifier: BSD-3-Clause */
/* The worker lcore loop: RX burst, pipeline, TX burst, run to completion. */
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "dp.h"

/* Applies the pipeline's move of data and length to the mbuf (single
 * segment: RX scatter is never enabled). */
static void mbuf_take(struct rte_mbuf *m, const struct fl_buf *b)
{
	m->data_off = (uint16_t)(b->data - (__u8 *)m->buf_addr);
	m->data_len = (uint16_t)b->len;
	m->pkt_len = b->len;
}

/* Sends what the queue takes; the rest is dropped under on_full. The bytes
 * are summed before the device owns the mbufs. */
static unsigned send_burst(struct fl_lcore *lc, __u16 port, struct rte_mbuf **m, unsigned n,
			   enum fl_drop_reason on_full, bool count_tx)
{
	struct fl_worker_counters *c = lc->w.ctr;
	__u64 bytes = 0;
	unsigned sent;

	if (n == 0)
		return 0;
	for (unsigned i = 0; i < n; i++)
		bytes += m[i]->pkt_len;
	sent = rte_eth_tx_burst(port, lc->queue, m, (uint16_t)n);
	for (unsigned i = sent; i < n; i++) {
		bytes -= m[i]->pkt_len;
		c->drops[on_full]++;
		rte_pktmbuf_free(m[i]);
	}
	if (count_tx) {
		c->tx_packets += sent;
		c->tx_bytes += bytes;
	}
	return sent;
}

/* An ICMP too-big answer to the client, in a fresh mbuf. */
static struct rte_mbuf *too_big_answer(struct fl_lcore *lc, const struct fl_buf *b)
{
	struct rte_mbuf *r = rte_pktmbuf_alloc(lc->pool);
	__u32 len;

	if (!r)
		return NULL;
	len = fl_icmp_too_big(b->data, &b->pkt, &b->pkt.key.dst, (__u16)b->too_big_mtu,
			      rte_pktmbuf_mtod(r, __u8 *), rte_pktmbuf_tailroom(r));
	if (len == 0) {
		rte_pktmbuf_free(r);
		return NULL;
	}
	r->data_len = (uint16_t)len;
	r->pkt_len = len;
	lc->w.ctr->icmp_generated++;
	return r;
}

static void process(struct fl_lcore *lc, const struct fl_port *p, struct rte_mbuf **rx,
		    unsigned n, __u32 now)
{
	struct fl_buf bufs[FL_BURST_MAX];
	struct rte_mbuf *tx[2 * FL_BURST_MAX], *kern[FL_BURST_MAX];
	unsigned ntx = 0, nk = 0;

	for (unsigned i = 0; i < n; i++) {
		bufs[i].data = rte_pktmbuf_mtod(rx[i], __u8 *);
		bufs[i].len = rte_pktmbuf_data_len(rx[i]);
		bufs[i].headroom = rte_pktmbuf_headroom(rx[i]);
	}
	memcpy(lc->w.encap.src_mac, p->mac.addr_bytes, 6);
	fl_pipeline_run(&lc->w, bufs, n, now);
	for (unsigned i = 0; i < n; i++) {
		struct rte_mbuf *answer;

		switch (bufs[i].verdict) {
		case FL_VERDICT_TX:
			mbuf_take(rx[i], &bufs[i]);
			tx[ntx++] = rx[i];
			break;
		case FL_VERDICT_KERNEL:
			kern[nk++] = rx[i];
			break;
		case FL_VERDICT_TOO_BIG:
			answer = too_big_answer(lc, &bufs[i]);
			if (answer)
				tx[ntx++] = answer;
			rte_pktmbuf_free(rx[i]);
			break;
		default:
			rte_pktmbuf_free(rx[i]);
			break;
		}
	}
	send_burst(lc, p->id, tx, ntx, FL_DROP_TX_FULL, true);
	send_burst(lc, p->tap_id, kern, nk, FL_DROP_EXCEPTION_FULL, false);
}

/* What the kernel sends on the TAP leaves by the port, untouched. */
static unsigned from_kernel(struct fl_lcore *lc, const struct fl_port *p)
{
	struct rte_mbuf *m[FL_BURST_MAX];
	unsigned n = rte_eth_rx_burst(p->tap_id, lc->queue, m, FL_BURST_MAX);

	lc->w.ctr->exception_tx_packets += send_burst(lc, p->id, m, n, FL_DROP_TX_FULL, false);
	return n;
}

/* Busy loops between two polls of the TAPs: each poll is a read() system
 * call, too dear for every burst, and the kernel's traffic is light. */
#define FL_DP_KERNEL_POLL_EVERY 16

int fl_worker_main(void *arg)
{
	struct fl_lcore *lc = arg;
	struct rte_mbuf *rx[FL_BURST_MAX];
	const __u64 beat_every = rte_get_tsc_hz() / 1000;
	__u64 next_beat = 0;
	__u32 sleep_us = 0, loops = 0;

	while (!__atomic_load_n(&fl_dp_stop, __ATOMIC_RELAXED)) {
		unsigned got = 0;
		__u32 now = fl_ct_now();
		bool poll_kernel = sleep_us || ++loops % FL_DP_KERNEL_POLL_EVERY == 0;

		for (unsigned i = 0; i < lc->n_ports; i++) {
			const struct fl_port *p = &lc->ports[i];
			unsigned n = rte_eth_rx_burst(p->id, lc->queue, rx, FL_BURST_MAX);

			if (n)
				process(lc, p, rx, n, now);
			got += n + (poll_kernel ? from_kernel(lc, p) : 0);
		}
		if (rte_get_tsc_cycles() >= next_beat) {
			fl_reader_heartbeat(&lc->w.reader, fl_now_ns());
			next_beat = rte_get_tsc_cycles() + beat_every;
		}
		if (got) {
			sleep_us = 0;
			continue;
		}
		/* Idle: let the writer reuse the slot we last read, then back
		 * off so a small host keeps a core for everything else. */
		fl_reader_begin(&lc->w.reader);
		fl_reader_end(&lc->w.reader);
		if (lc->idle_backoff_us) {
			sleep_us = sleep_us ? sleep_us * 2 : 1;
			if (sleep_us > lc->idle_backoff_us)
				sleep_us = lc->idle_backoff_us;
			rte_delay_us_sleep(sleep_us);
		}
	}
	return 0;
}
