/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fulcrum-cp's XDP data plane (dataplane.mode = "xdp"): loads the balancer
 * of bpf/ with the config's knobs, attaches it to every
 * dataplane.xdp.interfaces (natively; generic only when xdp.generic says
 * so), and after every shared-memory publish copies the newly active slot
 * into its maps (fl_xdp_publish: two slots, atomic switch). In dpdk mode
 * every function here does nothing.
 *
 * Next hop. A tunnelled packet goes to the MAC published with the tables
 * (the slot header's next_hop_mac, which fulcrum-cp resolves from
 * dataplane.next_hop.address through the neighbour table of
 * dataplane.neighbour_interface, by default the only XDP interface), else to
 * dataplane.next_hop.mac; with neither it is dropped (drop_no_next_hop), as
 * it is while the address is not resolved yet. With xdp.fib_lookup the
 * program asks bpf_fib_lookup instead (bpf/balancer.bpf.c fib_hop): every
 * interface is in its redirect map, and the next hops it finds without a
 * neighbour entry are handed to the kernel to resolve and from then on kept
 * confirmed (as next_hop.address is), once a second, over a netlink socket
 * of this file's own. So xdp mode refuses to start with a
 * tunnel VIP (ipip, ip6ip6, gue) and none of next_hop and xdp.fib_lookup.
 * L2 DSR needs no next hop.
 *
 * Restart keeps state. Every map but the knobs (conntrack, both table
 * slots, ctl, counters) is pinned in PIN_ROOT/fulcrum/<shm name with '/'
 * as '_'>/, PIN_ROOT = $FULCRUM_BPFFS or /sys/fs/bpf. When PIN_ROOT is
 * not a bpffs, fulcrum-cp mounts one there and says so. A start reuses the
 * pins; where there is none it adopts the maps of the balancer already
 * attached to the first interface (the attached program holds its maps:
 * this works even when the pins are gone). Then, per interface: a balancer
 * attached with the same tag, the same knobs and the same maps is kept
 * as it is; another balancer is replaced atomically (XDP_FLAGS_REPLACE);
 * a foreign program is never replaced. So a restart moves no flow and
 * drops no packet.
 *
 * `ip netns exec` gives each command a private mount namespace with a
 * fresh /sys: a bpffs mounted there by fulcrum-cp dies with the process,
 * and only adoption carries the state over. To keep the pins too, mount a
 * bpffs in the host's mount namespace (mount -t bpf bpf DIR, DIR outside
 * /sys, which the namespace sees) and set FULCRUM_BPFFS=DIR.
 *
 * Exit: with xdp.detach_on_exit the program is detached; otherwise it stays
 * attached and forwards on the last tables (fail static). Pins stay either way.
 */
#ifndef FL_CP_XDP_MODE_H
#define FL_CP_XDP_MODE_H

#include <stddef.h>
#include "config.h"

struct fl_cp;
struct fl_xdp;

/* In xdp mode: checks the next hop, prepares the pin directory, loads the
 * program with cfg's knobs, keeping pinned or attached maps. Attaches
 * nothing yet. Sets cp->xdp. 0, or -errno with a message. */
int fl_cp_xdp_init(struct fl_cp *cp, const struct fl_config *cfg, char *err, size_t errlen);

/* After the first publish: attaches to (or keeps the program on) every
 * interface. 0, or -errno with a message. */
int fl_cp_xdp_attach(struct fl_cp *cp, char *err, size_t errlen);

/* After a successful shared-memory publish: the maps take the newly
 * active slot. 0, or -errno with a message (nothing switched). */
int fl_cp_xdp_publish(struct fl_cp *cp, char *err, size_t errlen);

/* The loaded program, for reading its counter maps; NULL in dpdk mode. */
const struct fl_xdp *fl_cp_xdp_program(const struct fl_cp *cp);

/* A scan older than this is done again when asked for. */
#define FL_CP_CT_SCAN_FRESH_MS 1000u

/*
 * The XDP program's conntrack occupancy (live records, all CPUs'), from
 * the last complete scan of its table (*age_ms old). A scan older than
 * FL_CP_CT_SCAN_FRESH_MS, or none, starts a new one, run a step a turn of
 * the loop (fl_xdp_ct_scan_step); -EAGAIN while the first is running.
 * -errno with a message otherwise.
 */
int fl_cp_xdp_occupancy(struct fl_cp *cp, __u64 *live, uint64_t *age_ms, char *err,
			size_t errlen);

/* Detaches only with xdp.detach_on_exit; frees cp->xdp. */
void fl_cp_xdp_fini(struct fl_cp *cp);

#endif /* FL_CP_XDP_MODE_H */
