/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A conntrack bucket, and the rules for one record, as both balancers keep
 * them: fulcrum-dp's per-worker tables (dp/conntrack.h, which also says
 * why the layout is so) and the XDP balancer's table (bpf/balancer.bpf.c).
 * Eight records of 56 bytes behind one line of metadata (tags, states,
 * last-seen times): 64 bytes a flow. Only inline functions that compile
 * for BPF as well: no libc.
 */
#ifndef FL_CT_BUCKET_H
#define FL_CT_BUCKET_H

#include <linux/types.h>
#include "flow.h"
#include "pkt.h"

#define FL_CT_WAYS 8u

/* What a record has seen, which decides how long it may stay idle. */
enum fl_ct_state {
	FL_CT_NONE = 0,		/* never in a used record */
	FL_CT_SYN = 1,		/* created by a SYN, no ACK-only packet yet */
	FL_CT_ESTABLISHED = 2,	/* TCP with an ACK seen (or picked up mid-flow) */
	FL_CT_CLOSING = 3,	/* TCP after FIN or RST */
	FL_CT_UDP = 4,		/* any protocol without TCP's handshake */
	FL_CT_STATE__MAX
};

/*
 * A bucket's first line: what decides hits, expiry and the victim of an
 * insert, for all of its ways. Way i is used iff tags[i] != 0.
 */
struct fl_ct_meta {
	__u8 tags[FL_CT_WAYS];		/* the tag of each way, 0 = free */
	__u8 state[FL_CT_WAYS];		/* enum fl_ct_state */
	__u32 last_seen[FL_CT_WAYS];	/* the plane's ticks of CLOCK_MONOTONIC */
	/* Where several CPUs share the table (the XDP balancer, bpf/xdp.h):
	 * the bucket's writes, odd while one is under way (64 bits: BPF
	 * has 64-bit atomics everywhere), and each way's, odd while it is
	 * written. Zero in fulcrum-dp's. */
	__u64 seq;
	__u8 way_seq[FL_CT_WAYS];
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct fl_ct_meta) == 64, "bucket metadata is one cache line");
_Static_assert(__builtin_offsetof(struct fl_ct_meta, tags) == 0, "tags load as one word");

/*
 * One flow: the flow key and what the select stage needs on a hit (vip_id
 * and the (backend_id, epoch) pair). Only an insert or a rebind writes it;
 * a hit only reads it.
 */
struct fl_ct_rec {
	struct fl_flow_key key;	/* as parse built it; compared without its padding */
	__u32 vip_id;
	__u32 backend_id;
	__u32 epoch;
	__u8 pad[4];		/* zero */
} __attribute__((aligned(8)));

#define FL_CT_KEY_BYTES 38	/* compared bytes: addresses, ports, proto, family */

_Static_assert(sizeof(struct fl_ct_rec) == 56, "a record and its share of metadata: 64 bytes");
_Static_assert(__builtin_offsetof(struct fl_ct_rec, key) == 0, "record starts with its key");
_Static_assert(__builtin_offsetof(struct fl_flow_key, family) + 1 == FL_CT_KEY_BYTES,
	       "compared bytes end with the family");

struct fl_ct_bucket {
	struct fl_ct_meta meta;
	struct fl_ct_rec way[FL_CT_WAYS];
};

_Static_assert(sizeof(struct fl_ct_bucket) == 64 * FL_CT_WAYS, "a bucket is 64 bytes a flow");

static inline __u64 fl_ct_tag_of(__u32 hash)
{
	__u8 tag = (__u8)hash;

	return tag + (tag == 0);	/* 0 marks a free way */
}

static inline __u64 fl_ct_tags(const struct fl_ct_meta *m)
{
	__u64 tags;

	__builtin_memcpy(&tags, m->tags, sizeof(tags));
	return tags;
}

/* Bit 7 of byte i set iff byte i of tags equals tag (exact, no carries). */
static inline __u64 fl_ct_match(__u64 tags, __u64 tag)
{
	const __u64 low7 = 0x7f7f7f7f7f7f7f7fULL;
	__u64 x = tags ^ (tag * 0x0101010101010101ULL);

	return ~(((x & low7) + low7) | x | low7);
}

static inline __u64 fl_ct_word(const void *p, unsigned i)
{
	__u64 w;

	__builtin_memcpy(&w, (const __u8 *)p + 8 * i, 8);
	return w;
}

/* The first FL_CT_KEY_BYTES of the two keys, as five word compares (one
 * word at a time, so they stay in registers): the last word's top two
 * bytes are the key's padding. */
static inline int fl_ct_key_eq(const struct fl_ct_rec *r, const struct fl_flow_key *k)
{
	return ((fl_ct_word(r, 0) ^ fl_ct_word(k, 0)) | (fl_ct_word(r, 1) ^ fl_ct_word(k, 1)) |
		(fl_ct_word(r, 2) ^ fl_ct_word(k, 2)) | (fl_ct_word(r, 3) ^ fl_ct_word(k, 3)) |
		((fl_ct_word(r, 4) ^ fl_ct_word(k, 4)) & 0xffffffffffffULL)) == 0;
}

/* Ticks from then to now, with a `now` older than then counted as 0: a
 * stale `now` must not make a fresh record look expired. */
static inline __u32 fl_ct_since(__u32 then, __u32 now)
{
	__s32 d = (__s32)(now - then);

	return d > 0 ? (__u32)d : 0;
}

/* The state a new record starts in, from the packet that creates it. A TCP
 * packet other than a bare SYN means the flow began before we saw it (a
 * restart, an eviction, an ECMP change): treat it as established. */
static inline enum fl_ct_state fl_ct_initial_state(__u8 proto, __u8 tcp_flags)
{
	if (proto != 6 /* IPPROTO_TCP */)
		return FL_CT_UDP;
	if (tcp_flags & (FL_TCP_FIN | FL_TCP_RST))
		return FL_CT_CLOSING;
	if ((tcp_flags & (FL_TCP_SYN | FL_TCP_ACK)) == FL_TCP_SYN)
		return FL_CT_SYN;
	return FL_CT_ESTABLISHED;
}

/*
 * A bare SYN on a record that saw FIN or RST: the client reuses the 5-tuple
 * for a new connection. The caller chooses its backend anew, as for any new
 * connection, so that a stale record never puts one on a draining backend.
 */
static inline int fl_ct_reopens(__u8 state, __u8 tcp_flags)
{
	return state == FL_CT_CLOSING && (tcp_flags & (FL_TCP_SYN | FL_TCP_ACK)) == FL_TCP_SYN;
}

/*
 * Advance a found record's state (*state, from fl_ct_state_of) with the
 * packet's TCP flags: FIN or RST make it closing (short timeout), an ACK
 * without SYN makes a SYN record established, and a bare SYN on a closing
 * record (fl_ct_reopens) starts over as a SYN record.
 */
static inline void fl_ct_track(__u8 *state, __u8 tcp_flags)
{
	__u8 syn_ack = tcp_flags & (FL_TCP_SYN | FL_TCP_ACK);

	if (*state == FL_CT_UDP)
		return;
	if (tcp_flags & (FL_TCP_FIN | FL_TCP_RST))
		*state = FL_CT_CLOSING;
	else if (syn_ack == FL_TCP_ACK && *state == FL_CT_SYN)
		*state = FL_CT_ESTABLISHED;
	else if (syn_ack == FL_TCP_SYN && *state == FL_CT_CLOSING)
		*state = FL_CT_SYN;
}

#endif /* FL_CT_BUCKET_H */
