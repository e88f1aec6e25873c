/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The records fulcrum-cp publishes and the data planes read: VIPs, backends
 * and the values they carry. Shared by fulcrum-cp, fulcrum-dp (through the
 * shared-memory slots of shm.h) and the XDP program (as BPF map values), so
 * every layout is fixed here, with explicit padding that is always zero.
 */
#ifndef FL_TABLES_H
#define FL_TABLES_H

#include <linux/types.h>
#include "flow.h"

enum fl_method {
	FL_METHOD_NONE = 0,
	FL_METHOD_IPIP = 1,	/* IPv4 in IPv4 */
	FL_METHOD_IP6IP6 = 2,	/* IPv6 in IPv6 */
	FL_METHOD_GUE = 3,	/* IP in UDP, RFC 8086 "GUE variant 1" */
	FL_METHOD_L2DSR = 4,	/* destination MAC rewritten to the backend's */
	FL_METHOD__MAX
};

/* DESIGN.md "Backend identity": up serves new and old flows, draining only
 * the flows it has, down or free none (their flows are chosen anew). */
enum fl_backend_state {
	FL_BACKEND_FREE = 0,
	FL_BACKEND_UP = 1,
	FL_BACKEND_DRAINING = 2,
	FL_BACKEND_DOWN = 3,
	FL_BACKEND_STATE__MAX
};

/* The ring value for "no backend": a VIP whose ring holds it drops new flows. */
#define FL_BACKEND_NONE 0xffffffffu

#define FL_VIP_IN_USE 0x01

/* What makes a backend itself: its address and port (0 = the VIP's port).
 * Maglev orders and permutes backends by this key, never by an id or an
 * insertion index, so every instance builds the same table. */
struct fl_backend_key {
	union fl_addr addr;
	__be16 port;
	__u8 family;
	__u8 pad;
};

struct fl_vip {
	union fl_addr addr;
	__be16 port;
	__u8 proto;		/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;		/* FL_AF_INET or FL_AF_INET6 */
	__u8 method;		/* enum fl_method */
	__u8 flags;		/* FL_VIP_* */
	__u16 pad;
	__u32 ring_offset;	/* first entry of this VIP's ring in the slot */
	__u32 ring_size;	/* M, a prime */
};

/*
 * A backend id names one backend of one VIP. While the id exists its epoch
 * is fixed; giving the id to another backend increments the epoch, so a
 * conntrack record of (id, epoch) can tell that its backend is gone. A FREE
 * record keeps its last epoch, and the slot's backend_count covers freed ids
 * too: a restarted fulcrum-cp continues every epoch from there.
 */
struct fl_backend {
	struct fl_backend_key key;
	__u32 epoch;		/* >= 1 while in use; 0 never matches */
	__u32 vip_id;
	__u16 weight;
	__u8 state;		/* enum fl_backend_state */
	__u8 pad0;
	__u8 mac[6];		/* L2 DSR: the backend's MAC; zero = resolve */
	__u8 pad1[2];
};

_Static_assert(sizeof(struct fl_backend_key) == 20, "fl_backend_key layout");
_Static_assert(sizeof(struct fl_vip) == 32, "fl_vip layout");
_Static_assert(__builtin_offsetof(struct fl_vip, ring_offset) == 24, "fl_vip ring_offset");
_Static_assert(sizeof(struct fl_backend) == 40, "fl_backend layout");
_Static_assert(__builtin_offsetof(struct fl_backend, epoch) == 20, "fl_backend epoch");
_Static_assert(__builtin_offsetof(struct fl_backend, mac) == 32, "fl_backend mac");

/* Whether a flow recorded on this backend may stay on it. */
static inline int fl_backend_keeps_flows(const struct fl_backend *b, __u32 epoch)
{
	return b->epoch == epoch &&
	       (b->state == FL_BACKEND_UP || b->state == FL_BACKEND_DRAINING);
}

#endif /* FL_TABLES_H */
