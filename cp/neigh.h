/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fulcrum-cp's copy of the kernel's neighbour table (ARP and ND), for the
 * MACs the config leaves to resolve: the next hop given by address, and L2
 * DSR backends without a mac. One NETLINK_ROUTE socket, non-blocking, for
 * the loop: an RTM_GETNEIGH dump at open, then the RTM_NEWNEIGH/DELNEIGH
 * notifications of the neighbour groups. Only entries whose MAC can be used
 * are taken: NUD_REACHABLE, STALE, DELAY, PROBE, PERMANENT (and NOARP with a
 * MAC). An entry that goes INCOMPLETE, FAILED or away is dropped, unless it
 * was looked up (a MAC the tables use): then its last MAC stays, with the
 * new state (NUD_NONE when deleted), until the kernel names another. The
 * kernel deletes unused entries on its own (the data plane's traffic is
 * invisible to it) and a re-resolution passes through INCOMPLETE: the
 * tables keep forwarding meanwhile instead of dropping as no next hop. A
 * host that is really gone is the health checks' business.
 *
 * Resolving an address the kernel does not know: fl_neigh_solicit sends an
 * RTM_NEWNEIGH with NTF_USE (iproute2's `ip neigh replace ADDR dev IF use`),
 * which makes the kernel create the entry if needed and run its own
 * resolution on it (neigh_event_send: ARP request or neighbour
 * solicitation, then the usual retries and probes). No packet of ours, no
 * route needed. The same call on a STALE entry starts a probe, so a MAC the
 * data plane uses (the kernel sees none of that traffic) is confirmed now
 * and then instead of aging out.
 */
#ifndef FL_CP_NEIGH_H
#define FL_CP_NEIGH_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "flow.h"

struct fl_neigh_entry {
	union fl_addr addr;
	int ifindex;
	__u16 state;			/* NUD_* */
	__u8 family;			/* FL_AF_INET or FL_AF_INET6 */
	__u8 mac[6];
	__u32 mark;			/* dump generation that last saw it */
	bool wanted;			/* looked up: kept when no longer usable */
};

struct fl_neigh {
	int fd;				/* -1 when closed */
	__u32 seq;
	__u32 dump_seq;			/* of the dump under way; 0 = none */
	__u32 dump_mark;
	bool resync;			/* the socket overran: dump again */
	struct fl_neigh_entry *v;
	size_t n;
	size_t cap;
	/* statistics */
	__u64 messages;
	__u64 overruns;
	__u64 solicits;
};

/* Opens the socket (non-blocking, the neighbour groups joined) and asks for
 * a dump; the answers come through fl_neigh_read. 0, or -errno with a
 * message. */
int fl_neigh_open(struct fl_neigh *nb, char *err, size_t errlen);

void fl_neigh_close(struct fl_neigh *nb);

/* Reads everything the socket holds, without blocking. Returns how many
 * usable MACs appeared, changed or went away (>= 0), or -errno. An overrun
 * (ENOBUFS) is handled by dumping again. */
int fl_neigh_read(struct fl_neigh *nb);

/* Applies one buffer of netlink messages (what a recv returns) to the map;
 * fl_neigh_read's parser, apart for tests. Returns the changes as above. */
int fl_neigh_parse(struct fl_neigh *nb, const void *buf, size_t len);

/* The MAC of (ifindex, address), usable now or last known (see state,
 * which may be NULL): 0, or -ENOENT. Marks the entry wanted. */
int fl_neigh_lookup(struct fl_neigh *nb, int ifindex, __u8 family,
		    const union fl_addr *addr, __u8 mac[6], __u16 *state);

/* Asks the kernel to resolve (or re-confirm) address on ifindex; the result
 * arrives as a notification. 0, or -errno (-ENODEV: no such interface). */
int fl_neigh_solicit(struct fl_neigh *nb, int ifindex, __u8 family, const union fl_addr *addr);

/* fl_neigh_solicit unless the entry is confirmed now (reachable,
 * permanent or noarp): what keeps a MAC the data plane uses, and which the
 * kernel never sees used, from aging out. 0, or -errno as solicit. */
int fl_neigh_confirm(struct fl_neigh *nb, int ifindex, __u8 family, const union fl_addr *addr);

#endif /* FL_CP_NEIGH_H */
