/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The flow key and the flow hash: the one piece of arithmetic every part of
 * fulcrum must agree on. This header is compiled by gcc into fulcrum-dp and
 * fulcrum-cp and by clang -target bpf into the XDP program, so it uses only
 * fixed-width UAPI types and no library calls.
 */
#ifndef FL_FLOW_H
#define FL_FLOW_H

#include <linux/types.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* The hash reads network-order bytes as host words; every fulcrum target
 * (x86-64, arm64, BPF on either) is little-endian, and the fleet must agree. */
#error "fulcrum's flow hash is defined for little-endian hosts only"
#endif

#define FL_AF_INET  4
#define FL_AF_INET6 6

/* Addresses in network byte order. An IPv4 address fills v4 and leaves the
 * other twelve bytes zero, so a key hashes the same wherever it is built. */
union fl_addr {
	__be32 v4;
	__be32 v6[4];
	__u8 bytes[16];
};

/* Ports in network byte order; zero for protocols without ports. */
struct fl_flow_key {
	union fl_addr src;
	union fl_addr dst;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;	/* FL_AF_INET or FL_AF_INET6 */
	__u8 pad[2];	/* always zero */
};

_Static_assert(sizeof(union fl_addr) == 16, "fl_addr is 16 bytes");
_Static_assert(sizeof(struct fl_flow_key) == 40, "fl_flow_key is 40 bytes");
_Static_assert(__builtin_offsetof(struct fl_flow_key, sport) == 32, "ports follow addresses");
_Static_assert(__builtin_offsetof(struct fl_flow_key, proto) == 36, "proto at 36");

#define FL_HASH_MUL 0x9e3779b97f4a7c15ULL

/* One multiply-xorshift-multiply round: a bijection of h for a fixed word,
 * so no two states merge before the final mix. The second multiply spreads a
 * difference in the top bit, which the first one leaves alone: without it
 * the next word could cancel that difference and some IPv6 address pairs
 * collided under every seed. */
static inline __u64 fl_hash_round(__u64 h, __u64 word)
{
	h = (h ^ word) * FL_HASH_MUL;
	h ^= h >> 31;
	return h * 0xbf58476d1ce4e5b9ULL;
}

/* murmur3's 64-bit finaliser: full avalanche of the accumulated state. A
 * fixed function: Maglev's key hash uses it too. */
static inline __u64 fl_hash_finish(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static inline __u64 fl_words(__u32 lo, __u32 hi)
{
	return (__u64)lo | ((__u64)hi << 32);
}

/*
 * The flow hash: a seeded 32-bit value over the whole key. Promise: the same
 * key and seed give the same value in fulcrum-dp, fulcrum-cp and the XDP
 * program (tests/bpf proves it), so `ring[hash % M]` names the same backend
 * in all of them. For FL_AF_INET only the first word of each address counts
 * (the rest is zero by contract); any other family hashes all 16 bytes.
 */
static inline __u32 fl_flow_hash(const struct fl_flow_key *k, __u64 seed)
{
	__u64 tail = fl_words((__u32)k->sport | ((__u32)k->dport << 16),
			      (__u32)k->proto | ((__u32)k->family << 8));
	__u64 h = seed ^ FL_HASH_MUL;

	if (k->family == FL_AF_INET) {
		h = fl_hash_round(h, fl_words(k->src.v4, k->dst.v4));
	} else {
		h = fl_hash_round(h, fl_words(k->src.v6[0], k->src.v6[1]));
		h = fl_hash_round(h, fl_words(k->src.v6[2], k->src.v6[3]));
		h = fl_hash_round(h, fl_words(k->dst.v6[0], k->dst.v6[1]));
		h = fl_hash_round(h, fl_words(k->dst.v6[2], k->dst.v6[3]));
	}
	h = fl_hash_round(h, tail);
	return (__u32)fl_hash_finish(h);
}

/* The key of the reverse direction: what an ICMP error's inner header (the
 * backend's reply) turns into to find the flow that owns it. out may be in. */
static inline void fl_flow_key_reverse(struct fl_flow_key *out, const struct fl_flow_key *in)
{
	union fl_addr src = in->src;
	__be16 sport = in->sport;

	out->src = in->dst;
	out->dst = src;
	out->sport = in->dport;
	out->dport = sport;
	out->proto = in->proto;
	out->family = in->family;
	out->pad[0] = 0;
	out->pad[1] = 0;
}

#endif /* FL_FLOW_H */
