// SPDX-License-Identifier: BSD-3-Clause
/*
 * trafgen: a small DPDK traffic generator for local benchmarks of fulcrum-dp
 * (scripts/bench-e2e). One lcore, one port, one queue: it sends 64-byte TCP
 * frames to a VIP from many flows and counts what comes back on the same
 * port (the balancer's output), then prints TX and RX Mpps over a measured
 * window that follows a warm-up.
 *
 *   trafgen [EAL args] -- [--profile syn|est|mix] [--flows N] [--rate PPS]
 *           [--warmup S] [--duration S] [--vip A.B.C.D] [--vport P]
 *           [--dst-mac MAC] [--src-mac MAC] [--link-wait S]
 *
 * Profiles: syn sends a SYN from a new 5-tuple every packet; est cycles ACKs
 * over a fixed set of N flows; mix sends 9 est packets for every syn one.
 * --rate 0 (the default) is as fast as the port takes them.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#define TG_BURST 32
#define TG_MBUFS 8191
#define TG_DESC 1024
#define TG_FRAME 60			/* + 4 bytes of FCS = 64 on the wire */
/* Flow k's tuple is k * TG_MUL mod 2^39: 24 bits of source address under
 * 10.0.0.0/8 and 15 of source port. An odd multiplier makes it a bijection,
 * so tuples never repeat while k does not, and look random to the hash. */
#define TG_TUPLE_BITS 39
#define TG_MUL 0x9E3779B97F4A7C15ull
#define TG_SYN_BASE (1ull << 38)	/* syn flows never meet est flows */

enum tg_profile { TG_SYN, TG_EST, TG_MIX };

struct tg_opts {
	enum tg_profile profile;
	uint64_t flows;
	double rate, warmup, duration, link_wait;
	uint32_t vip;			/* host order */
	uint16_t vport;
	struct rte_ether_addr src_mac, dst_mac;
	uint16_t port;
};

struct tg_count {
	uint64_t tx, rx, rx_bytes, tx_refused;
};

struct tg_gen {
	uint64_t est_next, syn_next, seq;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: trafgen [EAL args] -- [--profile syn|est|mix] [--flows N]\n"
		"  [--rate PPS (0 = full)] [--warmup S] [--duration S] [--vip A.B.C.D]\n"
		"  [--vport P] [--dst-mac MAC] [--src-mac MAC] [--port N] [--link-wait S]\n");
	exit(2);
}

static uint32_t parse_ip4(const char *s)
{
	unsigned a, b, c, d;
	char extra;

	if (sscanf(s, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) != 4 || (a | b | c | d) > 255)
		usage();
	return a << 24 | b << 16 | c << 8 | d;
}

static void parse_opts(int argc, char **argv, struct tg_opts *o)
{
	static const struct option longs[] = {
		{ "profile", 1, NULL, 'p' }, { "flows", 1, NULL, 'n' }, { "rate", 1, NULL, 'r' },
		{ "warmup", 1, NULL, 'w' }, { "duration", 1, NULL, 'd' }, { "vip", 1, NULL, 'v' },
		{ "vport", 1, NULL, 'P' }, { "dst-mac", 1, NULL, 'D' }, { "src-mac", 1, NULL, 'S' },
		{ "port", 1, NULL, 'i' }, { "link-wait", 1, NULL, 'l' }, { NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (!strcmp(optarg, "syn"))
				o->profile = TG_SYN;
			else if (!strcmp(optarg, "est"))
				o->profile = TG_EST;
			else if (!strcmp(optarg, "mix"))
				o->profile = TG_MIX;
			else
				usage();
			break;
		case 'n': o->flows = strtoull(optarg, NULL, 0); break;
		case 'r': o->rate = strtod(optarg, NULL); break;
		case 'w': o->warmup = strtod(optarg, NULL); break;
		case 'd': o->duration = strtod(optarg, NULL); break;
		case 'v': o->vip = parse_ip4(optarg); break;
		case 'P': o->vport = (uint16_t)atoi(optarg); break;
		case 'D': if (rte_ether_unformat_addr(optarg, &o->dst_mac)) usage(); break;
		case 'S': if (rte_ether_unformat_addr(optarg, &o->src_mac)) usage(); break;
		case 'i': o->port = (uint16_t)atoi(optarg); break;
		case 'l': o->link_wait = strtod(optarg, NULL); break;
		default: usage();
		}
	}
	if (o->flows == 0 || o->flows >= TG_SYN_BASE || o->duration <= 0)
		usage();
}

/* The frame every packet starts from; only the source, flags and the IP
 * checksum change per packet. */
static void make_template(const struct tg_opts *o, uint8_t *f)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)f;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(ip + 1);

	memset(f, 0, TG_FRAME);
	eth->dst_addr = o->dst_mac;
	eth->src_addr = o->src_mac;
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16(TG_FRAME - sizeof(*eth));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	ip->dst_addr = rte_cpu_to_be_32(o->vip);
	tcp->dst_port = rte_cpu_to_be_16(o->vport);
	tcp->data_off = 5 << 4;
	tcp->rx_win = rte_cpu_to_be_16(65535);
}

static void fill(uint8_t *f, const uint8_t *tmpl, uint64_t k, uint8_t flags)
{
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(f + sizeof(struct rte_ether_hdr));
	struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(ip + 1);
	uint64_t t = (k * TG_MUL) & ((1ull << TG_TUPLE_BITS) - 1);

	memcpy(f, tmpl, TG_FRAME);
	ip->src_addr = rte_cpu_to_be_32(0x0a000000u | (uint32_t)(t & 0xffffff));
	tcp->src_port = rte_cpu_to_be_16((uint16_t)(1024 + (t >> 24)));
	tcp->tcp_flags = flags;
	tcp->sent_seq = rte_cpu_to_be_32((uint32_t)k);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
}

/* Which flow packet number seq belongs to, and with which TCP flags. */
static void next_flow(const struct tg_opts *o, struct tg_gen *g, uint64_t *k, uint8_t *flags)
{
	int syn = o->profile == TG_SYN || (o->profile == TG_MIX && g->seq % 10 == 9);

	g->seq++;
	if (syn) {
		*k = TG_SYN_BASE + g->syn_next++;
		*flags = RTE_TCP_SYN_FLAG;
		return;
	}
	*k = g->est_next;
	g->est_next = g->est_next + 1 == o->flows ? 0 : g->est_next + 1;
	*flags = RTE_TCP_ACK_FLAG;
}

static int port_setup(const struct tg_opts *o, struct rte_mempool *mp)
{
	struct rte_eth_conf conf = { 0 };
	int ret;

	if (!rte_eth_dev_is_valid_port(o->port))
		return -ENODEV;
	ret = rte_eth_dev_configure(o->port, 1, 1, &conf);
	if (ret == 0)
		ret = rte_eth_rx_queue_setup(o->port, 0, TG_DESC, rte_eth_dev_socket_id(o->port),
					     NULL, mp);
	if (ret == 0)
		ret = rte_eth_tx_queue_setup(o->port, 0, TG_DESC, rte_eth_dev_socket_id(o->port),
					     NULL);
	if (ret == 0)
		ret = rte_eth_dev_start(o->port);
	if (ret == 0)
		rte_eth_promiscuous_enable(o->port);	/* memif has none: ignore */
	return ret;
}

/* Bounded wait for the link: for memif in server mode, for the client. */
static int wait_link(const struct tg_opts *o)
{
	uint64_t end = rte_get_timer_cycles() + (uint64_t)(o->link_wait * rte_get_timer_hz());
	struct rte_eth_link link;

	while (!stop && rte_get_timer_cycles() < end) {
		if (rte_eth_link_get_nowait(o->port, &link) == 0 && link.link_status)
			return 0;
		rte_delay_ms(50);
	}
	return -ETIMEDOUT;
}

static void rx_all(uint16_t port, struct tg_count *c)
{
	struct rte_mbuf *m[TG_BURST];
	uint16_t n = rte_eth_rx_burst(port, 0, m, TG_BURST);

	c->rx += n;
	for (uint16_t i = 0; i < n; i++)
		c->rx_bytes += rte_pktmbuf_pkt_len(m[i]);
	if (n)
		rte_pktmbuf_free_bulk(m, n);
}

static void tx_burst(const struct tg_opts *o, struct tg_gen *g, const uint8_t *tmpl,
		     struct rte_mempool *mp, unsigned n, struct tg_count *c)
{
	struct rte_mbuf *m[TG_BURST];
	uint64_t k;
	uint8_t flags;
	uint16_t sent;

	if (n == 0 || rte_pktmbuf_alloc_bulk(mp, m, n) != 0)
		return;
	for (unsigned i = 0; i < n; i++) {
		next_flow(o, g, &k, &flags);
		fill(rte_pktmbuf_mtod(m[i], uint8_t *), tmpl, k, flags);
		m[i]->data_len = m[i]->pkt_len = TG_FRAME;
	}
	sent = rte_eth_tx_burst(o->port, 0, m, (uint16_t)n);
	c->tx += sent;
	if (sent < n) {
		/* Refused packets are dropped, not retried: the next burst
		 * continues the flow sequence, which every profile allows. */
		c->tx_refused += n - sent;
		rte_pktmbuf_free_bulk(m + sent, n - sent);
	}
}

static void run(const struct tg_opts *o, struct rte_mempool *mp, struct tg_count *win)
{
	uint8_t tmpl[TG_FRAME];
	struct tg_gen g = { 0 };
	struct tg_count c = { 0 }, at_start = { 0 };
	uint64_t hz = rte_get_timer_hz(), t0 = rte_get_timer_cycles();
	uint64_t t_measure = t0 + (uint64_t)(o->warmup * hz);
	uint64_t t_end = t_measure + (uint64_t)(o->duration * hz);
	uint64_t offered = 0, now;
	int measuring = 0;

	make_template(o, tmpl);
	while (!stop && (now = rte_get_timer_cycles()) < t_end) {
		unsigned n = TG_BURST;

		if (!measuring && now >= t_measure) {
			at_start = c;
			measuring = 1;
		}
		if (o->rate > 0) {
			double due = (double)(now - t0) / (double)hz * o->rate - (double)offered;

			n = due < 0 ? 0 : due > TG_BURST ? TG_BURST : (unsigned)due;
		}
		offered += n;
		tx_burst(o, &g, tmpl, mp, n, &c);
		rx_all(o->port, &c);
	}
	win->tx = c.tx - at_start.tx;
	win->rx = c.rx - at_start.rx;
	win->rx_bytes = c.rx_bytes - at_start.rx_bytes;
	win->tx_refused = c.tx_refused - at_start.tx_refused;
}

static const char *profile_name[] = { [TG_SYN] = "syn", [TG_EST] = "est", [TG_MIX] = "mix" };

int main(int argc, char **argv)
{
	struct tg_opts o = {
		.profile = TG_EST, .flows = 4096, .warmup = 1, .duration = 5, .link_wait = 10,
		.vip = 10u << 24 | 100, .vport = 80,
		.src_mac = {{ 0x02, 0, 0, 0, 0, 0xaa }}, .dst_mac = {{ 0x02, 0, 0, 0, 0, 0x01 }},
	};
	struct tg_count w;
	struct rte_mempool *mp;
	int n = rte_eal_init(argc, argv);

	if (n < 0) {
		fprintf(stderr, "trafgen: EAL init failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	parse_opts(argc - n, argv + n, &o);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	mp = rte_pktmbuf_pool_create("tg_pool", TG_MBUFS, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				     rte_socket_id());
	if (!mp || port_setup(&o, mp) != 0) {
		fprintf(stderr, "trafgen: port %u: setup failed\n", o.port);
		return 1;
	}
	if (wait_link(&o) != 0) {
		fprintf(stderr, "trafgen: port %u: link down after %.1f s\n", o.port, o.link_wait);
		return 1;
	}
	run(&o, mp, &w);
	printf("trafgen: profile %s, %" PRIu64 " flows, rate %s, %.1f s after %.1f s warm-up\n",
	       profile_name[o.profile], o.flows, o.rate > 0 ? "limited" : "full", o.duration,
	       o.warmup);
	printf("tx_packets %" PRIu64 "\nrx_packets %" PRIu64 "\ntx_refused %" PRIu64 "\n",
	       w.tx, w.rx, w.tx_refused);
	printf("tx_mpps %.3f\nrx_mpps %.3f\nrx_avg_bytes %.1f\n", w.tx / o.duration / 1e6,
	       w.rx / o.duration / 1e6, w.rx ? (double)w.rx_bytes / (double)w.rx : 0.0);
	rte_eth_dev_stop(o.port);
	rte_eth_dev_close(o.port);
	rte_eal_cleanup();
	return stop ? 3 : 0;
}
