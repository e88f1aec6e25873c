/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The XDP balancer: fulcrum-dp's pipeline (dp/pipeline.c, dp/encap.c) for
 * one packet at a time, on BPF maps. The same parse (common/pkt.h), the
 * same flow hash (common/flow.h), same Maglev indexing (fl_tables_pick),
 * same backend id/epoch rule (fl_backend_keeps_flows), same outer bytes.
 * What is not a VIP's goes to the kernel with XDP_PASS. Map layouts and the
 * table switch: xdp.h. A tunnel's next hop is the MAC published with the
 * tables or the configured one, as in fulcrum-dp; or, with the fib_lookup
 * knob, the kernel's route (fib_hop), which may redirect to another XDP
 * interface. A packet over the MTU is answered as fulcrum-dp answers it
 * (too_big_answer), within a rate per CPU; new flows are recorded within
 * another (cfg_new_flow_rate).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "flow.h"
#include "tables.h"
#include "counters.h"
#include "pkt.h"
#include "xdp.h"

/* bpf_fib_lookup's families are the kernel's, not flow.h's */
#define AF_INET		2
#define AF_INET6	10

#define NSEC_PER_SEC	1000000000ull
#define CSUM_CHUNK	512	/* bpf_csum_diff's most per call */
#define CSUM_CHUNKS	8	/* inner packets up to 4 KiB: any XDP frame */
/* Inner packets up to this many bytes are summed in place: through
 * bpf_xdp_load_bytes and bpf_csum_diff, GUE over IPv6 new flows cost
 * 130-220 ns more than IP6IP6's here, in place about 30 (RESULTS.md). */
#define CSUM_DIRECT	128

/* forward's verdict for a packet over the MTU whose answer the rate allows */
enum { VERDICT_TOO_BIG = 16 };

/* ---- load-time knobs (xdp.c sets them before load) ---- */

/* MACs are read and written as three 16-bit words */
const volatile __u8 cfg_src_mac[6] __attribute__((aligned(2))) = {};
const volatile __u8 cfg_next_hop_mac[6] __attribute__((aligned(2))) = {};
const volatile __be32 cfg_tunnel_src_v4 = 0;
const volatile __be32 cfg_tunnel_src_v6[4] = {};
const volatile __be16 cfg_gue_port = 0;
const volatile __u32 cfg_mtu = 1500;
const volatile __u8 cfg_fib_lookup = 0;	/* tunnels' next hop from bpf_fib_lookup */
const volatile __u32 cfg_too_big_rate = 0;	/* too-big answers per second per CPU */
const volatile __u32 cfg_new_flow_rate = 0;	/* new flows recorded per second per CPU; 0 = no cap */
const volatile __u32 cfg_max_vips = 1;
const volatile __u32 cfg_max_backends = 1;	/* backends per slot */
const volatile __u32 cfg_ring_chunks = 1;	/* ring chunks per slot */
const volatile __u32 cfg_ct_buckets = 1;	/* conntrack's size */
const volatile __u32 cfg_timeout_ticks[FL_XDP_CT_TIMEOUTS] = {};

/* ---- maps ---- */

/* Both table slots in each map (xdp.h): the loader sets the sizes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2);
	__type(key, struct fl_xdp_vip_key);
	__type(value, struct fl_xdp_vip_val);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct fl_xdp_vip_val);
} vips_by_id SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2);
	__type(key, struct fl_xdp_addr_key);
	__type(value, __u32);
} vip_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct fl_backend);
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct fl_xdp_ring_chunk);
} rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct fl_xdp_slot_meta);
} slot_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fl_xdp_ctl);
} ctl SEC(".maps");

/* every CPU's flows (xdp.h); the loader sets the size, cfg_ct_buckets */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fl_ct_bucket);
} conntrack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fl_worker_counters);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fl_vip_counters);
} vip_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fl_backend_counters);
} backend_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, FL_XDP_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FL_XDP_UNRESOLVED_MAX);
	__type(key, struct fl_xdp_unresolved);
	__type(value, __u32);
} unresolved SEC(".maps");

/* A token bucket, one per CPU as fulcrum-dp has one per worker: tokens in
 * 1/NSEC_PER_SEC of one, holding a second's worth (take_token). */
struct token_bucket {
	__u64 tokens;
	__u64 last_ns;
};

/* the too-big answers' (cfg_too_big_rate) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct token_bucket);
} too_big_bucket SEC(".maps");

/* the new flows' records (cfg_new_flow_rate): a map of its own, not a
 * second entry of too_big_bucket, whose pinned layout a restart keeps */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct token_bucket);
} new_flow_bucket SEC(".maps");

/* Room for the GUE-over-IPv6 checksum: bpf_csum_diff reads a buffer.
 * Twice a chunk, so that a length masked with 2 * CSUM_CHUNK - 1 (which
 * the verifier follows through any code motion) always fits. */
struct csum_buf {
	__u8 b[2 * CSUM_CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct csum_buf);
} scratch SEC(".maps");

/* One packet's context: the tables it reads and its counters. */
struct run {
	struct fl_worker_counters *ctr;
	struct fl_vip_counters *vc;	/* the VIP's, once known; may be NULL */
	const struct fl_xdp_slot_meta *meta;
	__u32 slot;
	__u32 backend_limit;
	__u32 vip_id;
	__u32 rx_len;
	__u32 too_big_mtu;	/* with VERDICT_TOO_BIG: the MTU to report */
	__u64 now;
};

/* Where encap sends the packet; or, refused as too big, what MTU fits. */
struct tx {
	__u32 ifindex;		/* redirect there; 0 = XDP_TX */
	__u32 mtu;		/* FL_DROP_TOO_BIG: the IP MTU left to the client */
};

/* Stores of words in the frame, as fl_ld16/fl_ld32 (common/pkt.h) load them. */
static __always_inline void st16(void *p, __u16 v)
{
	*(__u16 *)p = v;
}

static __always_inline void st32(void *p, __u32 v)
{
	*(__u32 *)p = v;
}

/* ---- parse (common/pkt.h: fulcrum-dp's parse) ---- */

static __always_inline enum fl_parse_verdict parse(struct xdp_md *ctx, struct fl_pkt *p,
						   enum fl_drop_reason *reason)
{
	return fl_parse_frame((const __u8 *)(long)ctx->data, (const __u8 *)(long)ctx->data_end, p,
			      reason);
}

/* ---- encapsulation (dp/encap.c: the same bytes) ---- */

static __always_inline int mac_is_zero(const volatile __u8 *m)
{
	return (m[0] | m[1] | m[2] | m[3] | m[4] | m[5]) == 0;
}

static __always_inline __u32 fold(__u64 s)
{
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffu) + (s >> 16);
	s = (s & 0xffffu) + (s >> 16);
	return (__u32)s;
}

/* csum_inner for an inner packet of at most CSUM_DIRECT bytes starting
 * at most 255 bytes in: summed in place, word by word, and the last 1-3
 * bytes as a word padded with zeros. */
static __always_inline __s64 csum_direct(struct xdp_md *ctx, __u32 off, __u32 len)
{
	const __u8 *q = (const __u8 *)(long)ctx->data + (off & 255);
	const __u8 *end = (const __u8 *)(long)ctx->data_end;
	const __u32 words = len / 4, rest = len & 3;
	__u64 sum = 0;
	__u32 t;

	for (__u32 i = 0; i < CSUM_DIRECT / 4; i++) {
		if (i >= words)
			break;
		/* kept a pointer: clang would turn the bound into arithmetic
		 * on it, which the verifier refuses */
		__asm__ volatile("" : "+r"(q));
		if (q + 4 > end)
			return -1;
		sum += *(const __u32 *)q;
		q += 4;
	}
	if (!rest)
		return (__s64)fold(sum);
	if (q + 1 > end)
		return -1;
	t = q[0];
	if (rest > 1) {
		if (q + 2 > end)
			return -1;
		t |= (__u32)q[1] << 8;
	}
	if (rest > 2) {
		if (q + 3 > end)
			return -1;
		t |= (__u32)q[2] << 16;
	}
	return (__s64)fold(sum + t);
}

/* Native-order one's-complement sum of the inner packet [off, off + len):
 * in place up to CSUM_DIRECT bytes, else bpf_csum_diff over a zero-padded
 * copy, CSUM_CHUNK bytes at a time. Only the last chunk may be short, so
 * no word straddles a chunk. -1: too long. */
static __always_inline __s64 csum_inner(struct xdp_md *ctx, __u32 off, __u32 len)
{
	__u32 zero = 0, done = 0;
	struct csum_buf *buf;
	__u64 sum = 0;

	if (len <= CSUM_DIRECT && off <= 255)
		return csum_direct(ctx, off, len);
	buf = bpf_map_lookup_elem(&scratch, &zero);
	if (!buf)
		return -1;
	for (int i = 0; i < CSUM_CHUNKS; i++) {
		__u32 n, n4;
		__s64 s;

		if (done >= len)
			break;
		n = len - done;
		if (n > CSUM_CHUNK)
			n = CSUM_CHUNK;
		/* a no-op (n <= CSUM_CHUNK) the compiler must keep: the
		 * verifier loses the bound above across register moves */
		__asm__ volatile("" : "+r"(n));
		n &= 2 * CSUM_CHUNK - 1;
		n4 = ((n + 3) & ~3u) & (2 * CSUM_CHUNK - 4);
		if (n & 3)
			*(__u32 *)(buf->b + (n & (2 * CSUM_CHUNK - 4))) = 0;
		if (n == 0 || bpf_xdp_load_bytes(ctx, off + done, buf->b, n))
			return -1;
		s = bpf_csum_diff(0, 0, (__be32 *)buf->b, n4, 0);
		if (s < 0)
			return -1;
		sum += (__u32)s;
		done += n;
	}
	return done == len ? (__s64)fold(sum) : -1;
}

/* The outer IPv4 header: dp/encap.c put_ip4, with ip4_id's ID. */
static __always_inline void put_ip4(__u8 *o, __u8 tos, __u32 tot_len, __be16 id, int df,
				    __u8 proto, __be32 saddr, __be32 daddr)
{
	__u32 w0 = 0x45u | (__u32)tos << 8 | (__u32)bpf_htons((__u16)tot_len) << 16;
	__u32 w1 = id | (__u32)(df ? bpf_htons(FL_IPV4_DF) : 0) << 16;
	__u32 w2 = FL_OUTER_TTL | (__u32)proto << 8;

	w2 |= (__u32)(__u16)~fold((__u64)w0 + w1 + w2 + saddr + daddr) << 16;
	st32(o, w0);
	st32(o + 4, w1);
	st32(o + 8, w2);
	st32(o + 12, saddr);
	st32(o + 16, daddr);
}

static __always_inline void put_ip6(__u8 *o, __u8 tclass, __u32 flow, __u32 payload_len,
				    __u8 nexthdr, const __be32 *daddr)
{
	__u32 w0 = bpf_htonl(6u << 28 | (__u32)tclass << 20 | (flow & 0xfffffu));
	__u32 w1 = bpf_htons((__u16)payload_len) | (__u32)nexthdr << 16 |
		   (__u32)FL_OUTER_TTL << 24;

	st32(o, w0);
	st32(o + 4, w1);
	st32(o + 8, cfg_tunnel_src_v6[0]);
	st32(o + 12, cfg_tunnel_src_v6[1]);
	st32(o + 16, cfg_tunnel_src_v6[2]);
	st32(o + 20, cfg_tunnel_src_v6[3]);
	st32(o + 24, daddr[0]);
	st32(o + 28, daddr[1]);
	st32(o + 32, daddr[2]);
	st32(o + 36, daddr[3]);
}

static __always_inline void put_macs(__u8 *d, const __u16 dst[3], const __u16 src[3])
{
	st16(d, dst[0]);
	st16(d + 2, dst[1]);
	st16(d + 4, dst[2]);
	st16(d + 6, src[0]);
	st16(d + 8, src[1]);
	st16(d + 10, src[2]);
}

/* The received L2 header at rx rewritten at data (rx lies past data): MACs
 * dst and src, its VLAN tags kept, EtherType et. Returns where L3 starts.
 * The tags are read before anything is written; what else the caller needs
 * of rx it reads before the call. */
static __always_inline __u8 *put_l2(__u8 *data, const __u8 *rx, __u32 l3, const __u16 dst[3],
				    const __u16 src[3], __be16 et)
{
	__u32 tags[FL_MAX_VLANS] = {};
	__u8 *o;

	if (l3 > FL_ETH_HLEN)
		tags[0] = fl_ld32(rx + FL_ETH_HLEN - 2);
	if (l3 == FL_L2_MAX)
		tags[1] = fl_ld32(rx + FL_ETH_HLEN - 2 + FL_VLAN_HLEN);
	put_macs(data, dst, src);
	if (l3 == FL_ETH_HLEN) {
		o = data + FL_ETH_HLEN;
	} else if (l3 == FL_ETH_HLEN + FL_VLAN_HLEN) {
		st32(data + FL_ETH_HLEN - 2, tags[0]);
		o = data + FL_ETH_HLEN + FL_VLAN_HLEN;
	} else {
		st32(data + FL_ETH_HLEN - 2, tags[0]);
		st32(data + FL_ETH_HLEN - 2 + FL_VLAN_HLEN, tags[1]);
		o = data + FL_L2_MAX;
	}
	st16(o - 2, et);
	return o;
}

/* The IPv4 ID of the received packet at rx, each L2 length its own
 * constant offset, for the verifier. */
static __always_inline __be16 rx_ip4_id(const __u8 *rx, __u32 l3)
{
	return fl_ld16(l3 == FL_ETH_HLEN ? rx + FL_ETH_HLEN + 4 :
		       l3 == FL_ETH_HLEN + FL_VLAN_HLEN ? rx + FL_ETH_HLEN + FL_VLAN_HLEN + 4 :
							  rx + FL_L2_MAX + 4);
}

/* The source MAC where no FIB lookup gives one: cfg_src_mac unless that is
 * zero, then own (the received destination MAC: the interface's). */
static __always_inline void src_mac_of(__u16 own[3])
{
	const volatile __u16 *src = (const volatile __u16 *)cfg_src_mac;

	if (mac_is_zero(cfg_src_mac))
		return;
	own[0] = src[0];
	own[1] = src[1];
	own[2] = src[2];
}

/* The router toward the backends, as three words: the MAC published with
 * the tables (fulcrum-cp resolved dataplane.next_hop.address), else the
 * configured next_hop.mac, as fulcrum-dp chooses (dp/pipeline.c). 0: none
 * known yet. */
static __always_inline int next_hop_of(const struct fl_xdp_slot_meta *m, __u16 hop[3])
{
	const volatile __u16 *knob = (const volatile __u16 *)cfg_next_hop_mac;

	hop[0] = fl_ld16(m->next_hop_mac);
	hop[1] = fl_ld16(m->next_hop_mac + 2);
	hop[2] = fl_ld16(m->next_hop_mac + 4);
	if (hop[0] | hop[1] | hop[2])
		return 1;
	hop[0] = knob[0];
	hop[1] = knob[1];
	hop[2] = knob[2];
	return (hop[0] | hop[1] | hop[2]) != 0;
}

/* Notes a next hop the kernel has no neighbour for, with its drops, for
 * fulcrum-cp to have it resolved (xdp.h, unresolved). */
static __always_inline void note_unresolved(const struct bpf_fib_lookup *f, int v6)
{
	struct fl_xdp_unresolved k = { .ifindex = f->ifindex };
	__u32 one = 1, *drops;

	k.family = v6 ? FL_AF_INET6 : FL_AF_INET;
	if (v6) {
		k.addr.v6[0] = f->ipv6_dst[0];
		k.addr.v6[1] = f->ipv6_dst[1];
		k.addr.v6[2] = f->ipv6_dst[2];
		k.addr.v6[3] = f->ipv6_dst[3];
	} else {
		k.addr.v4 = f->ipv4_dst;
	}
	drops = bpf_map_lookup_elem(&unresolved, &k);
	if (drops)
		(*drops)++;	/* racy across CPUs: a hint for the log */
	else
		bpf_map_update_elem(&unresolved, &k, &one, BPF_NOEXIST);
}

/*
 * The next hop of the outer packet toward b, as the kernel would route it
 * arriving here (knob fib_lookup): destination and source MAC, and the
 * egress ifindex in *egress when it is not the ingress one. Without a
 * route (or forwarding off on the ingress interface), or with a route whose
 * next hop the kernel has not resolved yet, the packet is dropped as
 * no_next_hop: handed to the kernel instead, a packet to a VIP would be
 * routed by the host's own table (back to the router, or to a local
 * socket), not to its backend. The unresolved next hop is noted so that
 * fulcrum-cp has the kernel resolve it. Over the route's MTU: too_big.
 */
static __always_inline int fib_hop(struct xdp_md *ctx, const struct fl_pkt *p,
				   const struct fl_backend *b, const int outer_v6, __u8 proto,
				   __u32 hlen, __u16 hop[3], __u16 src[3], struct tx *tx,
				   __u32 *reason)
{
	struct bpf_fib_lookup f = {};
	long rc;

	f.family = outer_v6 ? AF_INET6 : AF_INET;
	f.l4_protocol = proto;
	f.tot_len = (__u16)(hlen + p->ip_len);
	f.ifindex = ctx->ingress_ifindex;
	if (outer_v6) {
		f.flowinfo = bpf_htonl((__u32)p->tos << 20 | (p->hash >> 12 & 0xfffffu));
		f.ipv6_src[0] = cfg_tunnel_src_v6[0];
		f.ipv6_src[1] = cfg_tunnel_src_v6[1];
		f.ipv6_src[2] = cfg_tunnel_src_v6[2];
		f.ipv6_src[3] = cfg_tunnel_src_v6[3];
		f.ipv6_dst[0] = b->key.addr.v6[0];
		f.ipv6_dst[1] = b->key.addr.v6[1];
		f.ipv6_dst[2] = b->key.addr.v6[2];
		f.ipv6_dst[3] = b->key.addr.v6[3];
	} else {
		f.tos = p->tos;
		f.ipv4_src = cfg_tunnel_src_v4;
		f.ipv4_dst = b->key.addr.v4;
	}
	rc = bpf_fib_lookup(ctx, &f, sizeof(f), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		hop[0] = fl_ld16(f.dmac);
		hop[1] = fl_ld16(f.dmac + 2);
		hop[2] = fl_ld16(f.dmac + 4);
		src[0] = fl_ld16(f.smac);
		src[1] = fl_ld16(f.smac + 2);
		src[2] = fl_ld16(f.smac + 4);
		tx->ifindex = f.ifindex != ctx->ingress_ifindex ? f.ifindex : 0;
		return 0;
	}
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		tx->mtu = f.mtu_result > hlen ? f.mtu_result - hlen : 0;
		*reason = FL_DROP_TOO_BIG;
		return -1;
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		note_unresolved(&f, outer_v6);
	*reason = FL_DROP_NO_NEXT_HOP;
	return -1;
}

/* Drops what follows the IP packet (Ethernet padding), as dp's *len does. */
static __always_inline int trim(struct xdp_md *ctx, __u32 want)
{
	__u32 len = (__u32)(ctx->data_end - ctx->data);

	if (len > want)
		return bpf_xdp_adjust_tail(ctx, -(int)(len - want));
	return 0;
}

/*
 * dp/encap.c encap_tunnel: outer IPv4 or IPv6, with or without UDP (GUE).
 * The received L2 header stays (VLAN tags included) with new MACs and the
 * outer family's EtherType; the inner packet is untouched. Written straight
 * into the frame: each packet helper call costs more than the stores.
 */
static __always_inline int encap_tunnel(struct xdp_md *ctx, const struct fl_xdp_slot_meta *meta,
					const struct fl_pkt *p, const struct fl_backend *b,
					struct tx *tx, __u32 *reason, const int outer_v6,
					const int gue)
{
	const __u32 ip_hlen = outer_v6 ? 40 : 20;
	const __u32 hlen = ip_hlen + (gue ? FL_UDP_HLEN : 0);
	const __u32 l3 = p->l3_off, ip_len = p->ip_len;
	const int inner_v6 = p->key.family == FL_AF_INET6;
	const int df = inner_v6 || (p->flags & FL_PKT_DF);
	const __u8 proto = gue ? FL_P_UDP : inner_v6 ? FL_P_IPV6 : FL_P_IPIP;
	__u8 *data, *rx, *o;
	__u16 own[3], hop[3], fib_src[3];
	__be16 inner_id = 0;
	__s64 inner_sum = 0;

	if (!cfg_fib_lookup && !next_hop_of(meta, hop)) {
		*reason = FL_DROP_NO_NEXT_HOP;
		return -1;
	}
	if (hlen + ip_len > cfg_mtu) {
		tx->mtu = cfg_mtu - hlen;
		*reason = FL_DROP_TOO_BIG;
		return -1;
	}
	if (cfg_fib_lookup && fib_hop(ctx, p, b, outer_v6, proto, hlen, hop, fib_src, tx, reason))
		return -1;
	if (l3 != FL_ETH_HLEN && l3 != FL_ETH_HLEN + FL_VLAN_HLEN && l3 != FL_L2_MAX) {
		*reason = FL_DROP_IP_BAD_HEADER;
		return -1;
	}
	if (trim(ctx, l3 + ip_len) || bpf_xdp_adjust_head(ctx, -(int)hlen)) {
		*reason = FL_DROP_NO_HEADROOM;
		return -1;
	}
	if (gue && outer_v6) {
		inner_sum = csum_inner(ctx, l3 + hlen, ip_len);
		if (inner_sum < 0) {
			*reason = FL_DROP_IP_BAD_HEADER;
			return -1;
		}
	}
	/* The received frame, now hlen bytes in: its L2 header and the inner
	 * IPv4 ID lie in its first FL_L2_MAX + 8 bytes, as the inner IP header
	 * is at least 20. All is read before the new headers overwrite it. */
	data = (void *)(long)ctx->data;
	rx = data + hlen;
	if ((void *)(rx + FL_L2_MAX + 8) > (void *)(long)ctx->data_end) {
		*reason = FL_DROP_IP_BAD_HEADER;
		return -1;
	}
	own[0] = fl_ld16(rx);
	own[1] = fl_ld16(rx + 2);
	own[2] = fl_ld16(rx + 4);
	if (!df)
		inner_id = rx_ip4_id(rx, l3);

	/* new MACs, the tags kept, the outer family's EtherType */
	if (cfg_fib_lookup) {
		own[0] = fib_src[0];
		own[1] = fib_src[1];
		own[2] = fib_src[2];
	} else {
		src_mac_of(own);
	}
	o = put_l2(data, rx, l3, hop, own, bpf_htons(outer_v6 ? FL_ETH_P_IPV6 : FL_ETH_P_IPV4));

	if (outer_v6) {
		put_ip6(o, p->tos, p->hash >> 12, hlen - ip_hlen + ip_len, proto,
			b->key.addr.v6);
	} else {
		__be16 id = (df || inner_v6) ? 0 : inner_id ^ bpf_htons((__u16)(p->hash >> 16));

		put_ip4(o, p->tos, hlen + ip_len, id, df, proto, cfg_tunnel_src_v4,
			b->key.addr.v4);
	}
	if (gue) {
		/* source port from the top bits of the hash (the ring uses
		 * hash % M), ephemeral range, for backend RSS */
		__u32 ports = bpf_htons((__u16)(0x8000u | p->hash >> 17)) |
			      (__u32)cfg_gue_port << 16;
		__u32 ulen = bpf_htons((__u16)(FL_UDP_HLEN + ip_len));
		__u16 check = 0;

		/* IPv4 omits the UDP checksum; IPv6 needs it (dp/encap.c) */
		if (outer_v6) {
			__u64 s = (__u64)bpf_htonl(FL_UDP_HLEN + ip_len) + bpf_htonl(FL_P_UDP);

			s += (__u64)cfg_tunnel_src_v6[0] + cfg_tunnel_src_v6[1] +
			     cfg_tunnel_src_v6[2] + cfg_tunnel_src_v6[3];
			s += (__u64)b->key.addr.v6[0] + b->key.addr.v6[1] + b->key.addr.v6[2] +
			     b->key.addr.v6[3];
			s += (__u64)ports + ulen + (__u64)inner_sum;
			check = (__u16)~fold(s);
			if (check == 0)
				check = 0xffff;
		}
		st32(o + ip_hlen, ports);
		st16(o + ip_hlen + 4, ulen);
		st16(o + ip_hlen + 6, check);
	}
	return 0;
}

static __always_inline int encap_l2dsr(struct xdp_md *ctx, const struct fl_pkt *p,
				       const struct fl_backend *b, struct tx *tx, __u32 *reason)
{
	__u16 own[3];
	__u8 *d;

	if ((b->mac[0] | b->mac[1] | b->mac[2] | b->mac[3] | b->mac[4] | b->mac[5]) == 0) {
		*reason = FL_DROP_NO_NEXT_HOP;
		return -1;
	}
	if (p->ip_len > cfg_mtu) {
		tx->mtu = cfg_mtu;
		*reason = FL_DROP_TOO_BIG;
		return -1;
	}
	if (trim(ctx, p->l3_off + p->ip_len)) {
		*reason = FL_DROP_IP_BAD_HEADER;
		return -1;
	}
	d = (void *)(long)ctx->data;
	if ((void *)(d + FL_ETH_HLEN) > (void *)(long)ctx->data_end) {
		*reason = FL_DROP_IP_BAD_HEADER;
		return -1;
	}
	own[0] = fl_ld16(d);
	own[1] = fl_ld16(d + 2);
	own[2] = fl_ld16(d + 4);
	src_mac_of(own);
	put_macs(d, (const __u16 *)b->mac, own);
	return 0;
}

/* Writes the packet toward b, and where it goes in *tx. 0, or -1 with
 * *reason. */
static __always_inline int encap(struct xdp_md *ctx, const struct fl_xdp_slot_meta *meta,
				 __u8 method, const struct fl_pkt *p, const struct fl_backend *b,
				 struct tx *tx, __u32 *reason)
{
	const int v6 = b->key.family == FL_AF_INET6;

	if (p->l3_off < FL_ETH_HLEN || p->l3_off > FL_L2_MAX || p->ip_len < FL_IPV4_HLEN) {
		*reason = FL_DROP_IP_BAD_HEADER;
		return -1;
	}
	switch (method) {
	case FL_METHOD_IPIP:
	case FL_METHOD_IP6IP6:
		return v6 ? encap_tunnel(ctx, meta, p, b, tx, reason, 1, 0)
			  : encap_tunnel(ctx, meta, p, b, tx, reason, 0, 0);
	case FL_METHOD_GUE:
		return v6 ? encap_tunnel(ctx, meta, p, b, tx, reason, 1, 1)
			  : encap_tunnel(ctx, meta, p, b, tx, reason, 0, 1);
	case FL_METHOD_L2DSR:
		return encap_l2dsr(ctx, p, b, tx, reason);
	default:
		*reason = FL_DROP_NO_BACKEND;
		return -1;
	}
}

/* ---- classify, conntrack, select (dp/pipeline.c) ---- */

static __always_inline void count_drop(struct run *r, __u32 why)
{
	if (why < FL_DROP__MAX)
		r->ctr->drops[why]++;
}

static __always_inline void count_vip(struct run *r)
{
	r->vc = bpf_map_lookup_elem(&vip_counters, &r->vip_id);
	if (r->vc) {
		r->vc->packets++;
		r->vc->bytes += r->rx_len;
	}
}

/* The VIP a conntrack record names, if it is the packet's: what the vips
 * lookup would find, without hashing the key (vips_by_id holds the ids the
 * vips map gives). NULL: not the packet's VIP, or no such VIP. */
static __always_inline const struct fl_xdp_vip_val *vip_of_record(const struct run *r,
								  const struct fl_flow_key *k,
								  __u32 vip_id)
{
	__u32 at = r->slot * cfg_max_vips + vip_id;
	const struct fl_xdp_vip_val *vv;

	if (vip_id >= cfg_max_vips)
		return 0;
	vv = bpf_map_lookup_elem(&vips_by_id, &at);
	if (!vv || !(vv->vip.flags & FL_VIP_IN_USE) || vv->vip.port != k->dport ||
	    vv->vip.proto != k->proto || vv->vip.family != k->family ||
	    vv->vip.addr.v6[0] != k->dst.v6[0] || vv->vip.addr.v6[1] != k->dst.v6[1] ||
	    vv->vip.addr.v6[2] != k->dst.v6[2] || vv->vip.addr.v6[3] != k->dst.v6[3])
		return 0;
	return vv;
}

static __always_inline const struct fl_backend *backend_at(const struct run *r, __u32 id)
{
	__u32 at = r->slot * cfg_max_backends + id;

	if (id >= r->backend_limit)
		return 0;
	return bpf_map_lookup_elem(&backends, &at);
}

/* fl_tables_pick: ring[offset + hash % size] of the packet's slot, or
 * FL_BACKEND_NONE (empty ring, ring or id out of bounds). */
static __always_inline __u32 maglev_pick(const struct run *r, const struct fl_vip *v, __u32 hash)
{
	__u32 off = v->ring_offset, size = v->ring_size, entries = r->meta->ring_entries;
	const struct fl_xdp_ring_chunk *c;
	__u32 idx, chunk, id;

	if (size == 0 || off > entries || size > entries - off)
		return FL_BACKEND_NONE;
	idx = off + hash % size;
	chunk = r->slot * cfg_ring_chunks + idx / FL_XDP_RING_CHUNK;
	c = bpf_map_lookup_elem(&rings, &chunk);
	if (!c)
		return FL_BACKEND_NONE;
	id = c->id[idx & (FL_XDP_RING_CHUNK - 1)];
	return id < r->backend_limit ? id : FL_BACKEND_NONE;
}

/* ---- conntrack (xdp.h): fulcrum-dp's buckets, shared by every CPU ---- */

/* What a lookup found: the flow's bucket and the seq it read there, and
 * the way holding the flow's key with a copy of what it says. */
struct ct_ref {
	struct fl_ct_bucket *b;	/* NULL: no table (never, once loaded) */
	__u64 seq;		/* the bucket's, before the lookup read it */
	int way;		/* -1: the key is in no way */
	int live;		/* way's record is live (fl_xdp_ct_way_live) */
	int busy;		/* the way was written during the read: left alone */
	__u32 vip_id;
	__u32 backend_id;
	__u32 epoch;
	__u8 state;
	__u8 way_seq;		/* the way's way_seq when read */
};

/* Keeps clang from turning arithmetic back into a select, which BPF can
 * only do with a branch: a branch per way doubles the paths the verifier
 * walks. */
#define opaque(x) __asm__ volatile("" : "+r"(x))

/* The way of b whose tag and key are the packet's, or -1. The ways whose
 * tag matches are compared whole (fl_ct_key_eq), lowest first: fulcrum-dp's
 * fl_ct_find, unrolled over the 8 ways, as the verifier bounds no loop
 * over a mask's set bits. */
static __always_inline int ct_find(const struct fl_ct_bucket *b, const struct fl_flow_key *k,
				   __u32 hash)
{
	__u64 m = fl_ct_match(fl_ct_tags(&b->meta), fl_ct_tag_of(hash));

	if (!m)
		return -1;
#pragma unroll
	for (int i = 0; i < (int)FL_CT_WAYS; i++)
		if ((m & (0x80ULL << (8 * i))) && fl_ct_key_eq(&b->way[i], k))
			return i;
	return -1;
}

static __always_inline __u64 ct_way_seqs(const struct fl_ct_bucket *b)
{
	return *(volatile const __u64 *)b->meta.way_seq;
}

/* The packet's record (p->hash set): *c says where and what, or way -1.
 * A way written during the read is busy: as if absent, and left alone
 * (xdp.h). */
static __always_inline void ct_lookup(struct ct_ref *c, const struct fl_pkt *p, __u32 now)
{
	__u32 idx = (__u32)(((__u64)p->hash * cfg_ct_buckets) >> 32);
	const struct fl_ct_rec *rec;
	struct fl_ct_bucket *b;
	__u64 ways, seq, bucket_moved, way_moved;
	__u32 w;
	__u8 before;

	c->way = -1;
	c->b = b = bpf_map_lookup_elem(&conntrack, &idx);
	if (!b)
		return;
	c->seq = *(volatile __u64 *)&b->meta.seq;
	ways = ct_way_seqs(b);
	barrier();
	c->way = ct_find(b, &p->key, p->hash);
	if (c->way < 0)
		return;
	w = (__u32)c->way & (FL_CT_WAYS - 1);
	rec = &b->way[w];
	c->vip_id = rec->vip_id;
	c->backend_id = rec->backend_id;
	c->epoch = rec->epoch;
	c->state = b->meta.state[w];
	c->live = fl_xdp_ct_way_live(&b->meta, w, now, cfg_timeout_ticks);
	barrier();
	before = (__u8)(ways >> (8 * w));
	ways = ct_way_seqs(b);
	seq = *(volatile __u64 *)&b->meta.seq;
	c->way_seq = before;
	/* kept when the bucket was not written during the read, or the way
	 * was not and its way_seq cannot have wrapped: the writes that
	 * overlap the read, two half-done ones at its ends included, move it
	 * by at most seq - c->seq + 2. Without branches, which would each
	 * double the paths the verifier walks. */
	bucket_moved = (seq ^ c->seq) | (seq & 1);
	way_moved = (__u8)(before ^ (__u8)(ways >> (8 * w))) | (before & 1) |
		    (seq - c->seq + 2) >> 8;
	opaque(bucket_moved);
	opaque(way_moved);
	if (((bucket_moved | -bucket_moved) & (way_moved | -way_moved)) >> 63) {
		c->busy = 1;
		c->way = -1;
		c->live = 0;
	}
}

/* Take bucket b to write it, from seq (xdp.h); 0 when another CPU writes
 * it, or wrote it since seq was read. */
static __always_inline int ct_take(struct fl_ct_bucket *b, __u64 seq)
{
	return !(seq & 1) && __sync_val_compare_and_swap(&b->meta.seq, seq, seq + 1) == seq;
}

static __always_inline void ct_give(struct fl_ct_bucket *b, __u64 seq)
{
	barrier();
	*(volatile __u64 *)&b->meta.seq = seq + 2;
}

/* A write of way w of bucket b, which the caller has taken (ct_take):
 * the way's way_seq is odd while it lasts, and the bucket is given back
 * (from seq) at its end (xdp.h). */
static __always_inline void ct_way_write_begin(struct fl_ct_bucket *b, __u32 w)
{
	b->meta.way_seq[w]++;
	barrier();
}

static __always_inline void ct_way_write_end(struct fl_ct_bucket *b, __u32 w, __u64 seq)
{
	barrier();
	b->meta.way_seq[w]++;
	ct_give(b, seq);
}

/* fl_ct_insert_way for the XDP table, branch-free (see opaque): the first
 * free way, else the least recently seen of those that are not live,
 * else of all. *taken: 0 free, 1 not live (expired), 2 live (evicted). */
static __always_inline __u32 ct_victim(const struct fl_ct_meta *m, __u32 now, int *taken)
{
	const __u32 last = FL_CT_WAYS - 1;
	__u64 free = fl_ct_match(fl_ct_tags(m), 0), best = 0;

	if (free) {
		/* the lowest free way: its match bit alone (byte i's bit 7)
		 * shifted to byte i's bit 0, times a constant whose byte
		 * 7 - i is i */
		__u64 low = free & (~free + 1);

		opaque(low);
		*taken = 0;
		return (__u32)(((low >> 7) * 0x0001020304050607ULL) >> 56);
	}
	/* fl_ct_oldest's sort key: not live above idle time above the way's
	 * rank from the end; the largest wins */
#pragma unroll
	for (__u32 i = 0; i < FL_CT_WAYS; i++) {
		__u8 st = m->state[i];
		__u64 idle = fl_ct_since(m->last_seen[i], now), dead, key, gt;

		dead = ((__u64)cfg_timeout_ticks[st & (FL_XDP_CT_TIMEOUTS - 1)] - idle) >> 63;
		opaque(dead);
		key = (dead << 31 | idle) << 3 | (last - i);
		gt = (best - key) >> 63;	/* key > best: both below 2^35 */
		opaque(gt);
		best ^= (best ^ key) & (~gt + 1);
	}
	*taken = 2 - (int)(best >> 34);
	return last - (__u32)(best & last);
}

/* What ct_insert records, and where. */
struct ct_new {
	__u64 seq;		/* the bucket's, as the lookup read it */
	__s32 way;		/* the key's way, whose record is not live; -1: none */
	__u32 tag;
	__u32 vip_id;
	__u32 backend_id;
	__u32 epoch;
	__u32 now;
	__u32 state;
	__u32 pad;
};

/* How ct_insert went: not at all (another CPU had moved the bucket on),
 * or into a free way, a record that was not live, or a live one. */
enum { CT_BUSY, CT_INTO_FREE, CT_INTO_EXPIRED, CT_EVICTED };

/* Records key in bucket b, as n says: the key's own way when it has one,
 * else ct_victim's; tag last, as fl_ct_insert. A global function, not a
 * static one: the verifier checks it once on its own and its caller sees
 * only the number it returns, where inlined its paths (taken or not, way
 * or victim, which victim) would each be walked through the rest of the
 * program, which tripled the instructions verified (80,776 -> 200,610). */
__noinline int ct_insert(struct fl_ct_bucket *b, const struct fl_flow_key *key,
			 const struct ct_new *n)
{
	struct fl_ct_rec *rec;
	int taken = 1;
	__u32 w;

	if (!b || !key || !n || !ct_take(b, n->seq))
		return CT_BUSY;
	w = n->way >= 0 ? (__u32)n->way : ct_victim(&b->meta, n->now, &taken);
	w &= FL_CT_WAYS - 1;
	rec = &b->way[w];
	ct_way_write_begin(b, w);
	b->meta.tags[w] = 0;
	barrier();
	__builtin_memcpy(&rec->key, key, sizeof(rec->key));
	rec->vip_id = n->vip_id;
	rec->backend_id = n->backend_id;
	rec->epoch = n->epoch;
	b->meta.state[w] = (__u8)n->state;
	b->meta.last_seen[w] = n->now;
	barrier();
	b->meta.tags[w] = (__u8)n->tag;
	ct_way_write_end(b, w, n->seq);
	return CT_INTO_FREE + taken;
}

/* What ct_rebind writes, and where. */
struct ct_rebind {
	__u64 seq;		/* the bucket's, as the lookup read it */
	__u32 way;
	__u32 way_seq;		/* the way's, as the lookup read it */
	__u32 backend_id;
	__u32 epoch;
	__u32 state;
	__u32 pad;
};

/* Points way rb->way of bucket b at another backend (and state): from
 * whatever seq the bucket has now, as long as that way was not written
 * since the lookup (its way_seq unmoved, and too few writes since for it
 * to have wrapped). 1 when done; 0 when another CPU writes the bucket (the
 * record still says what the lookup read); -1 when the way was written
 * (it may hold another flow's record now). Global, as ct_insert. */
__noinline int ct_rebind(struct fl_ct_bucket *b, const struct ct_rebind *rb)
{
	__u32 w;
	__u64 seq;

	if (!b || !rb)
		return 0;
	w = rb->way & (FL_CT_WAYS - 1);
	seq = *(volatile __u64 *)&b->meta.seq;
	if (!ct_take(b, seq))
		return 0;
	if ((seq - rb->seq + 2) >> 8 ||
	    *(volatile __u8 *)&b->meta.way_seq[w] != (__u8)rb->way_seq) {
		ct_give(b, seq);
		return -1;
	}
	ct_way_write_begin(b, w);
	b->way[w].backend_id = rb->backend_id;
	b->way[w].epoch = rb->epoch;
	b->meta.state[w] = (__u8)rb->state;
	ct_way_write_end(b, w, seq);
	return 1;
}

/* One token now from this CPU's bucket in map (too_big_bucket or
 * new_flow_bucket)? fulcrum-dp's too_big_token (dp/pipeline.c) and
 * fl_ct_admit (dp/conntrack.h): the bucket refills at rate a second and
 * holds one second's worth; it starts full. */
static __always_inline int take_token(void *map, __u32 rate, __u64 now)
{
	const __u64 full = (__u64)rate * NSEC_PER_SEC;
	struct token_bucket *b;
	__u32 zero = 0;
	__u64 tokens, dt;

	b = bpf_map_lookup_elem(map, &zero);
	if (!b)
		return 0;
	tokens = b->tokens;
	if (now != b->last_ns) {
		/* past a second the bucket is full anyway; the bound keeps
		 * the product from overflowing */
		dt = now > b->last_ns ? now - b->last_ns : 0;
		tokens += (dt < NSEC_PER_SEC ? dt : NSEC_PER_SEC) * rate;
		if (tokens > full)
			tokens = full;
		b->last_ns = now;
	}
	if (tokens < NSEC_PER_SEC) {
		b->tokens = tokens;
		return 0;
	}
	b->tokens = tokens - NSEC_PER_SEC;
	return 1;
}

/* May a new flow be recorded now? fulcrum-dp's fl_ct_admit: past
 * cfg_new_flow_rate the flow still goes where its hash says, unrecorded
 * (counted in ct_rate_capped), so a SYN flood fills at most the rate times
 * the SYN timeout of records and cannot push established flows out. The
 * knob is read-only: without a cap the verifier drops the bucket as dead
 * code. */
static __always_inline int new_flow_admitted(struct run *r)
{
	const __u32 rate = cfg_new_flow_rate;

	if (!rate || take_token(&new_flow_bucket, rate, r->now))
		return 1;
	r->ctr->ct_rate_capped++;
	return 0;
}

/*
 * fulcrum-dp's fl_icmp_too_big (dp/encap.c), the same bytes, built in the
 * frame: ICMP fragmentation needed (IPv4) or packet too big (IPv6) from
 * the VIP to the client, reporting mtu, behind the received L2 header with
 * the MACs swapped, quoting the packet's first FL_ICMP4_MAX_IP or FL_ICMP6_MAX_IP
 * bytes less the answer's headers. The quote is the packet itself, left in
 * place: the headers go in front of it and the rest is cut off. -1: no
 * answer may be sent (an ICMP error; a source that is not one host,
 * RFC 1812 4.3.2.7, RFC 4443 2.4(e)) or none could be built. Fragments
 * never get here (fragment()).
 */
static __always_inline int too_big_answer(struct xdp_md *ctx, const struct fl_pkt *p, __u32 mtu,
					  const int v6)
{
	const __u32 hlen = (v6 ? FL_IPV6_HLEN : FL_IPV4_HLEN) + FL_ICMP_HLEN;
	const __u32 max_quote = (v6 ? FL_ICMP6_MAX_IP : FL_ICMP4_MAX_IP) - hlen;
	const __u32 l3 = p->l3_off, q = p->ip_len < max_quote ? p->ip_len : max_quote;
	const __u8 first = ((const __u8 *)&p->key.src)[0];
	__u16 client[3], own[3];
	__be16 id = 0;
	__u8 *data, *rx, *o;
	__s64 quote_sum;
	__u64 s;

	if (p->flags & FL_PKT_ICMP_ERROR)
		return -1;
	if (v6 ? ((p->key.src.v6[0] | p->key.src.v6[1] | p->key.src.v6[2] | p->key.src.v6[3]) == 0 ||
		  first == 0xff)
	       : (first == 0 || first >= 224))
		return -1;
	if (l3 != FL_ETH_HLEN && l3 != FL_ETH_HLEN + FL_VLAN_HLEN && l3 != FL_L2_MAX)
		return -1;
	if (trim(ctx, l3 + q) || bpf_xdp_adjust_head(ctx, -(int)hlen))
		return -1;
	quote_sum = csum_inner(ctx, l3 + hlen, q);
	if (quote_sum < 0)
		return -1;
	/* the received frame, hlen bytes in: its L2 header and the IPv4 ID
	 * are in its first FL_L2_MAX + 8 bytes (the quote holds an IP header) */
	data = (void *)(long)ctx->data;
	rx = data + hlen;
	if ((void *)(rx + FL_L2_MAX + 8) > (void *)(long)ctx->data_end)
		return -1;
	own[0] = fl_ld16(rx);
	own[1] = fl_ld16(rx + 2);
	own[2] = fl_ld16(rx + 4);
	client[0] = fl_ld16(rx + 6);
	client[1] = fl_ld16(rx + 8);
	client[2] = fl_ld16(rx + 10);
	/* dp's ip4_id with df = 0: the offending packet's ID, mixed */
	if (!v6)
		id = rx_ip4_id(rx, l3) ^ bpf_htons((__u16)(p->hash >> 16));
	o = put_l2(data, rx, l3, client, own, bpf_htons(v6 ? FL_ETH_P_IPV6 : FL_ETH_P_IPV4));

	/* ICMP: type and code, checksum, then the MTU (IPv4: 2 bytes unused,
	 * 2 of MTU; ICMPv6: 4 of MTU); ICMPv6 sums a pseudo-header too */
	s = (__u64)(v6 ? 2 : (3 | 4 << 8)) + bpf_htonl(mtu) + (__u64)quote_sum;
	if (v6) {
		/* precedence 0, as dp; the VIP as the source, not the knob */
		put_ip6(o, 0, 0, FL_ICMP_HLEN + q, FL_P_ICMPV6, p->key.src.v6);
		st32(o + 8, p->key.dst.v6[0]);
		st32(o + 12, p->key.dst.v6[1]);
		st32(o + 16, p->key.dst.v6[2]);
		st32(o + 20, p->key.dst.v6[3]);
		s += (__u64)p->key.dst.v6[0] + p->key.dst.v6[1] + p->key.dst.v6[2] +
		     p->key.dst.v6[3] + p->key.src.v6[0] + p->key.src.v6[1] + p->key.src.v6[2] +
		     p->key.src.v6[3] + bpf_htonl(FL_ICMP_HLEN + q) + bpf_htonl(FL_P_ICMPV6);
	} else {
		/* precedence "internetwork control", as Linux marks its errors */
		put_ip4(o, 0xc0, hlen + q, id, 0, FL_P_ICMP, p->key.dst.v4, p->key.src.v4);
	}
	o += v6 ? FL_IPV6_HLEN : FL_IPV4_HLEN;
	st16(o, v6 ? 2 : (3 | 4 << 8));
	st16(o + 2, (__u16)~fold(s));
	st32(o + 4, bpf_htonl(mtu));
	return 0;
}

/* Encapsulate toward backend id and give the verdict. */
static __always_inline int forward(struct xdp_md *ctx, struct run *r, const struct fl_vip *v,
				   const struct fl_pkt *p, const struct fl_backend *be, __u32 id)
{
	struct fl_backend_counters *bc;
	struct tx tx = {};
	__u32 reason = FL_DROP_NO_BACKEND;
	int verdict = XDP_TX;

	if (encap(ctx, r->meta, v->method, p, be, &tx, &reason) != 0) {
		count_drop(r, reason);
		/* answered in the entry point, where it is inlined once */
		if (reason == FL_DROP_TOO_BIG &&
		    take_token(&too_big_bucket, cfg_too_big_rate, r->now)) {
			r->too_big_mtu = tx.mtu;
			return VERDICT_TOO_BIG;
		}
		return XDP_DROP;
	}
	if (tx.ifindex) {
		/* the route leaves by another interface: one of ours, or the
		 * packet cannot go (no_next_hop) */
		verdict = bpf_redirect_map(&tx_ports, tx.ifindex, XDP_DROP);
		if (verdict != XDP_REDIRECT) {
			count_drop(r, FL_DROP_NO_NEXT_HOP);
			return XDP_DROP;
		}
	}
	bc = bpf_map_lookup_elem(&backend_counters, &id);
	if (bc) {
		bc->packets++;
		bc->bytes += r->rx_len;
	}
	r->ctr->tx_packets++;
	r->ctr->tx_bytes += (__u64)(ctx->data_end - ctx->data);
	return verdict;
}

/* dp flow_stage: follow the record while its backend keeps flows (same
 * VIP, up or draining, same epoch), else choose by Maglev and record (within
 * the new-flow rate) or rebind. A record another CPU is writing right then
 * is left alone: the packet goes by its hash. */
static __always_inline int flow_stage(struct xdp_md *ctx, struct run *r, const struct fl_vip *v,
				      struct fl_pkt *p, const struct ct_ref *c)
{
	const __u32 now = fl_xdp_ct_ticks(r->now);
	__u32 w = (__u32)c->way & (FL_CT_WAYS - 1);
	const struct fl_backend *be, *kept = 0;
	__u8 state = c->state;
	__u32 id;

	if (c->live) {
		if (c->b->meta.last_seen[w] != now)
			c->b->meta.last_seen[w] = now;
		r->ctr->ct_hits++;
		be = backend_at(r, c->backend_id);
		if (be && be->vip_id == r->vip_id && fl_backend_keeps_flows(be, c->epoch))
			kept = be;
		/* a bare SYN on a closed flow's record is a new connection on a
		 * reused 5-tuple: chosen anew */
		if (kept && !fl_ct_reopens(state, p->tcp_flags)) {
			fl_ct_track(&state, p->tcp_flags);
			if (state != c->state)
				c->b->meta.state[w] = state;
			return forward(ctx, r, v, p, kept, c->backend_id);
		}
	} else {
		r->ctr->ct_misses++;
	}
	id = maglev_pick(r, v, p->hash);
	be = id == FL_BACKEND_NONE ? 0 : backend_at(r, id);
	if (!be) {
		count_drop(r, FL_DROP_NO_BACKEND);
		return XDP_DROP;
	}
	if (c->live) {
		/* its backend is down, removed or reused, or a new
		 * connection reuses the 5-tuple: choose again */
		struct ct_rebind rb = { .seq = c->seq, .way = w, .way_seq = c->way_seq,
					.backend_id = id, .epoch = be->epoch };
		int rebound;

		fl_ct_track(&state, p->tcp_flags);
		rb.state = state;
		rebound = ct_rebind(c->b, &rb);
		if (rebound > 0) {
			r->ctr->ct_reselected++;
		} else if (rebound == 0 && kept) {
			/* a reopen that cannot be recorded goes where the
			 * record, unchanged, sends the connection's next
			 * packets */
			be = kept;
			id = c->backend_id;
		}
	} else if (c->b && !c->busy && !(c->seq & 1) && new_flow_admitted(r)) {
		struct ct_new n = {
			.seq = c->seq, .way = c->way, .tag = (__u32)fl_ct_tag_of(p->hash),
			.vip_id = r->vip_id, .backend_id = id, .epoch = be->epoch, .now = now,
			.state = fl_ct_initial_state(p->key.proto, p->tcp_flags),
		};
		const int how = ct_insert(c->b, &p->key, &n);

		if (how != CT_BUSY) {
			r->ctr->ct_evictions += how == CT_EVICTED;
			r->ctr->ct_expired += how == CT_INTO_EXPIRED;
			r->ctr->new_flows++;
			if (r->vc)
				r->vc->new_flows++;
		}
	}
	return forward(ctx, r, v, p, be, id);
}

/* dp icmp_stage: an FN/PTB about a VIP flow goes to the flow's backend; the
 * record is only read. */
static __always_inline int icmp_stage(struct xdp_md *ctx, struct run *r, const struct fl_vip *v,
				      struct fl_pkt *p, const struct ct_ref *c)
{
	const struct fl_backend *be = 0;
	__u32 id = FL_BACKEND_NONE;
	int verdict;

	if (c->live) {
		be = backend_at(r, c->backend_id);
		if (be && be->vip_id == r->vip_id && fl_backend_keeps_flows(be, c->epoch))
			id = c->backend_id;
	}
	if (id == FL_BACKEND_NONE) {
		id = maglev_pick(r, v, p->hash);
		be = id == FL_BACKEND_NONE ? 0 : backend_at(r, id);
		if (!be) {
			count_drop(r, FL_DROP_NO_BACKEND);
			return XDP_DROP;
		}
	}
	if (!be)
		return XDP_DROP;
	verdict = forward(ctx, r, v, p, be, id);
	if (verdict == XDP_TX || verdict == XDP_REDIRECT)
		r->ctr->icmp_forwarded++;
	return verdict;
}

static __always_inline int to_kernel(struct run *r)
{
	r->ctr->exception_packets++;
	return XDP_PASS;
}

/* Fragments carry no ports past the first: those to a VIP address are
 * dropped and counted, the rest are the host's (dp fragment_vip). */
static __always_inline int fragment(struct run *r, const struct fl_pkt *p)
{
	struct fl_xdp_addr_key ak = { .family = p->key.family, .slot = (__u8)r->slot };
	__u32 *vip_id;

	ak.addr = p->key.dst;
	vip_id = bpf_map_lookup_elem(&vip_addrs, &ak);
	if (!vip_id)
		return to_kernel(r);
	r->vip_id = *vip_id;
	count_vip(r);
	count_drop(r, FL_DROP_IP_FRAGMENT);
	return XDP_DROP;
}

SEC("xdp")
int balancer(struct xdp_md *ctx)
{
	struct fl_pkt p;	/* parse writes all of it */
	struct fl_xdp_vip_key vk = {};
	const struct fl_xdp_vip_val *vv;
	const struct fl_xdp_ctl *c;
	struct ct_ref ct = {};
	struct run r = {};
	enum fl_drop_reason reason;	/* written on FL_PARSE_DROP */
	__u32 zero = 0;
	int verdict;

	r.ctr = bpf_map_lookup_elem(&counters, &zero);
	c = bpf_map_lookup_elem(&ctl, &zero);
	if (!r.ctr || !c)
		return XDP_PASS;
	r.rx_len = (__u32)(ctx->data_end - ctx->data);
	r.ctr->rx_packets++;
	r.ctr->rx_bytes += r.rx_len;

	verdict = parse(ctx, &p, &reason);
	if (verdict == FL_PARSE_HOST)
		return to_kernel(&r);
	if (verdict == FL_PARSE_DROP) {
		count_drop(&r, reason);
		return XDP_DROP;
	}

	/* The one read of the active slot for this packet (xdp.h). */
	r.slot = *(volatile const __u32 *)&c->slot & 1;
	r.meta = bpf_map_lookup_elem(&slot_meta, &r.slot);
	if (!r.meta)
		return to_kernel(&r);
	r.backend_limit = r.meta->backend_count < cfg_max_backends ? r.meta->backend_count
								    : cfg_max_backends;
	if (p.flags & FL_PKT_FRAGMENT)
		return fragment(&r, &p);

	/* The flow's record, found by its hash. A record names its VIP:
	 * checking that VIP against the packet costs less than the vips hash
	 * lookup, which only new flows and the host's own traffic then pay.
	 * A tick's resolution is enough for timeouts of seconds; reading the
	 * clock source cost about 40 ns a packet here. */
	r.now = bpf_ktime_get_coarse_ns();
	p.hash = fl_flow_hash(&p.key, r.meta->hash_seed);
	ct_lookup(&ct, &p, fl_xdp_ct_ticks(r.now));
	vv = ct.way >= 0 ? vip_of_record(&r, &p.key, ct.vip_id) : 0;
	if (!vv) {
		vk.addr = p.key.dst;
		vk.port = p.key.dport;
		vk.proto = p.key.proto;
		vk.family = p.key.family;
		vk.slot = (__u8)r.slot;
		vv = bpf_map_lookup_elem(&vips, &vk);
	}
	if (!vv)
		return to_kernel(&r);	/* not a VIP: the host's own traffic */
	r.vip_id = vv->vip_id;
	if (r.vip_id >= cfg_max_vips) {
		count_drop(&r, FL_DROP_NO_BACKEND);
		return XDP_DROP;
	}
	count_vip(&r);
	verdict = (p.flags & FL_PKT_ICMP_ERROR) ? icmp_stage(ctx, &r, &vv->vip, &p, &ct)
					      : flow_stage(ctx, &r, &vv->vip, &p, &ct);
	if (verdict != VERDICT_TOO_BIG)
		return verdict;
	if ((p.key.family == FL_AF_INET6 ? too_big_answer(ctx, &p, r.too_big_mtu, 1)
					  : too_big_answer(ctx, &p, r.too_big_mtu, 0)) != 0)
		return XDP_DROP;
	r.ctr->icmp_generated++;
	r.ctr->tx_packets++;
	r.ctr->tx_bytes += (__u64)(ctx->data_end - ctx->data);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
