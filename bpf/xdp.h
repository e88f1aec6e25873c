/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The XDP balancer (balancer.bpf.c): its map layouts, shared by the program
 * and its loader, and the loader's API (xdp.c), used by fulcrum-cp in xdp
 * mode and by the tests. The program parses, hashes and selects exactly as
 * fulcrum-dp does, so a fleet may mix both (DESIGN.md "Flow hash").
 *
 * Tables. Every table holds two slots, as the shared memory does: vips
 * (hash: VIP and slot -> record), vips_by_id (array: the same records by
 * VIP id, slot 1's max_vips after slot 0's; a conntrack record names its
 * VIP by id, which spares the hash lookup), vip_addrs (hash: address and
 * slot -> first VIP id, for fragments), backends (array: slot 1's
 * max_backends ids after slot 0's) and rings (array of FL_XDP_RING_CHUNK
 * ids: slot 1's chunks after slot 0's), plus slot_meta[slot] (seed,
 * counts). One map per table, not one per slot: the program then names
 * every map by a constant, which the verifier needs to inline the array
 * lookups and to call the hash lookups directly. The one-entry array `ctl`
 * holds the active slot; the program reads it once per packet and then
 * reads only that slot. fl_xdp_publish writes the inactive slot, flips
 * `ctl`, then waits for an RCU grace period (membarrier GLOBAL, which is
 * synchronize_rcu()): every XDP run happens inside an RCU read section, so
 * after the wait no packet still reads the old slot, and the next publish
 * may overwrite it. No packet can see half a table.
 */
#ifndef FL_BPF_XDP_H
#define FL_BPF_XDP_H

#include <linux/types.h>
#include "flow.h"
#include "tables.h"
#include "counters.h"
#include "ct_bucket.h"

#define FL_XDP_RING_CHUNK 16u	/* ring ids per array element */

/* Key of vips: what fl_vip_find compares, in one slot. */
struct fl_xdp_vip_key {
	union fl_addr addr;
	__be16 port;
	__u8 proto;
	__u8 family;
	__u8 slot;
	__u8 pad[3];
};

struct fl_xdp_vip_val {
	struct fl_vip vip;
	__u32 vip_id;
	__u32 pad;
};

/* Key of vip_addrs: a VIP address whatever its port, for fragments. */
struct fl_xdp_addr_key {
	union fl_addr addr;
	__u8 family;
	__u8 slot;
	__u8 pad[2];
};

struct fl_xdp_ring_chunk {
	__u32 id[FL_XDP_RING_CHUNK];
};

/* slot_meta[slot]: the slot's own header. next_hop_mac is the shared-memory
 * slot header's (fulcrum-cp's resolution of dataplane.next_hop.address):
 * it switches with the tables, so a packet never sees half a MAC. */
struct fl_xdp_slot_meta {
	__u64 generation;
	__u64 hash_seed;
	__u32 backend_count;	/* ids below it are in use (clamped to the map) */
	__u32 ring_entries;	/* ring ids held by rings_N */
	__u32 vip_count;
	__u8 next_hop_mac[6];	/* router toward the backends; zero = the knob's */
	__u8 pad[6];
};

/* ctl[0]: which slot packets read. Written by one aligned 4-byte store. */
struct fl_xdp_ctl {
	__u32 slot;
	__u32 pad;
	__u64 generation;
};

/* tx_ports: the XDP interfaces (key and value: ifindex), for a redirect
 * when bpf_fib_lookup routes a packet out of another one than it came in
 * (knob fib_lookup). The loader adds every interface it attaches to. */
#define FL_XDP_MAX_PORTS 64u

/* Key of unresolved (an LRU hash, value: packets dropped): a next hop
 * bpf_fib_lookup named but the kernel has no neighbour entry for
 * (BPF_FIB_LKUP_RET_NO_NEIGH). The kernel sees none of the program's
 * traffic and would never resolve it: fulcrum-cp takes these entries and
 * asks the kernel to (fl_xdp_unresolved_take). */
struct fl_xdp_unresolved {
	union fl_addr addr;
	__u32 ifindex;		/* the interface the route leaves by */
	__u8 family;		/* FL_AF_INET or FL_AF_INET6 */
	__u8 pad[3];
};

#define FL_XDP_UNRESOLVED_MAX 256u

/*
 * Conntrack: one table that every CPU shares, an array map of fulcrum-dp's
 * buckets (common/ct_bucket.h); a flow's bucket and tag come from its flow
 * hash as in fulcrum-dp, so a lookup is one inlined array access and one
 * metadata line, and a flow that moves to another CPU (RSS, RPS, an IRQ
 * moved) keeps its record. Times are ticks of 2^FL_XDP_CT_TICK_SHIFT ns
 * (67 ms) of bpf_ktime_get_coarse_ns (CLOCK_MONOTONIC_COARSE); timeouts
 * are in the same ticks, by state.
 *
 * Several CPUs write one bucket without a lock: a packet changes only the
 * last-seen time and state of its own way (bytes and words: never torn).
 * What names a flow's backend (a way's tag and record) is written only by
 * a CPU that moved the bucket's seq from an even value to the next odd one
 * (a compare-and-swap: one writer at a time), and back to even after;
 * within that, the way's own way_seq goes odd, then even. An insert takes
 * the bucket only from the seq its lookup read, so the bucket is as the
 * lookup saw it (the key in no way, or in the way it found); a rebind (a
 * live record's backend) from any seq, if its way's way_seq is still the
 * one its lookup read and too few writes happened since for it to have
 * wrapped. A reader keeps what it read of a way when the bucket's seq did
 * not move across the read, or when the way's way_seq did not and was
 * even, and too few writes of the bucket overlapped the read for way_seq
 * (8 bits) to have wrapped: writes to the other ways of the bucket leave
 * its record alone. A way being written, or one whose read cannot be
 * trusted, is as if absent, and its packet goes by its hash, unrecorded.
 * On x86 (stores and loads each in program order) no reader can take a
 * record half written; a hit whose way is taken over right after its read
 * may stamp the new record's time or state, never its backend.
 */
#define FL_XDP_CT_TICK_SHIFT 26

/* Timeouts by state, as many as a state byte masked with 7 indexes: the
 * states past FL_CT_STATE__MAX have 0. */
#define FL_XDP_CT_TIMEOUTS 8u
_Static_assert(FL_CT_STATE__MAX <= FL_XDP_CT_TIMEOUTS, "every state has a timeout");

static inline __attribute__((always_inline)) __u32 fl_xdp_ct_ticks(__u64 ns)
{
	return (__u32)(ns >> FL_XDP_CT_TICK_SHIFT);
}

/* Way i of m holds a live record: used, and idle no longer than its
 * state's timeout (timeout: ticks by state). The program takes a way that
 * is not live as free; fulcrum-cp's occupancy scan does not count it. */
static inline __attribute__((always_inline)) int
fl_xdp_ct_way_live(const struct fl_ct_meta *m, __u32 i, __u32 now, const volatile __u32 *timeout)
{
	__u32 st;

	i &= FL_CT_WAYS - 1;
	st = m->state[i];
	if (!m->tags[i] || st >= FL_CT_STATE__MAX)
		return 0;
	return fl_ct_since(m->last_seen[i], now) <= timeout[st];
}

_Static_assert(sizeof(struct fl_xdp_vip_key) == 24, "vip key layout");
_Static_assert(sizeof(struct fl_xdp_vip_val) == 40, "vip value layout");
_Static_assert(sizeof(struct fl_xdp_addr_key) == 20, "addr key layout");
_Static_assert(sizeof(struct fl_xdp_ring_chunk) == 64, "ring chunk layout");
_Static_assert(sizeof(struct fl_xdp_slot_meta) == 40, "slot meta layout");
_Static_assert(__builtin_offsetof(struct fl_xdp_slot_meta, next_hop_mac) == 28,
	       "slot meta next_hop_mac: 2-byte aligned, read as three words");
_Static_assert(sizeof(struct fl_xdp_ctl) == 16, "ctl layout");
_Static_assert(sizeof(struct fl_xdp_unresolved) == 24, "unresolved key layout");

#ifndef __bpf__
#include <stdbool.h>
#include <stddef.h>
#include "shm.h"

#define FL_XDP_DEFAULT_MAX_VIPS 64u
#define FL_XDP_DEFAULT_MAX_BACKENDS 1024u
#define FL_XDP_DEFAULT_RING_ENTRIES (16u * 65537u)
#define FL_XDP_DEFAULT_CT_CAPACITY 65536u
#define FL_XDP_TOO_BIG_RATE 1000u	/* fulcrum-dp's per worker (dp/main.c) */

/* Load-time settings, fixed for the program's life (rodata and map sizes). */
struct fl_xdp_knobs {
	__u8 src_mac[6];		/* outgoing source MAC; zero = the received
					 * destination MAC (the interface's own) */
	__u8 next_hop_mac[6];		/* router toward the backends (tunnels), when
					 * the published tables name none */
	bool fib_lookup;		/* the next hop of tunnels from bpf_fib_lookup
					 * instead of a MAC (both MACs ignored) */
	union fl_addr tunnel_src_v4;	/* outer source toward IPv4 backends */
	union fl_addr tunnel_src_v6;	/* outer source toward IPv6 backends */
	__u16 gue_port;			/* GUE UDP destination port, host order */
	__u16 mtu;			/* egress IP MTU */
	__u32 too_big_rate;		/* ICMP too-big answers per second per CPU;
					 * 0 = fulcrum-dp's FL_XDP_TOO_BIG_RATE */
	__u32 new_flow_rate;		/* new flows recorded per second per CPU;
					 * past it they are forwarded by hash,
					 * unrecorded; 0 = no cap */
	__u32 max_vips;			/* map sizes; 0 = the defaults above */
	__u32 max_backends;
	__u32 ring_entries;
	__u32 ct_capacity;		/* conntrack records, all CPUs' (rounded
					 * up to whole buckets) */
	__u32 ct_timeout_s[FL_CT_STATE__MAX];	/* idle timeouts; 0 = fulcrum-dp's defaults */
};

struct balancer_bpf;

struct fl_xdp {
	struct balancer_bpf *skel;
	struct fl_xdp_ring_chunk *rings;	/* rings, mmapped: both slots */
	size_t rings_len;
	struct fl_backend *backends;	/* backends, mmapped: both slots */
	size_t backends_len;
	struct fl_xdp_vip_val *vips_by_id;	/* vips_by_id, mmapped: both slots */
	size_t vips_by_id_len;
	struct fl_xdp_ctl *ctl;		/* ctl, mmapped */
	size_t ctl_len;
	struct fl_ct_bucket *ct;	/* conntrack, mmapped (read by the scan) */
	size_t ct_len;
	__u32 ct_buckets;
	__u32 max_vips;
	__u32 max_backends;
	__u32 ring_entries;		/* ring ids a slot holds */
	__u64 generation;		/* of the last publish */
	int ifindex;			/* attached to; 0 = none */
	__u32 attach_flags;
	/* how fl_xdp_open_pinned found the kept maps (conntrack, tables,
	 * counters): reused from pins, adopted from a running program, or new */
	__u32 maps_pinned;
	__u32 maps_adopted;
	__u32 maps_created;
	bool ct_lost;			/* the kept conntrack had an older layout
					 * and was made anew (records lost) */
};

/* Where fl_xdp_open_pinned finds the maps a restart must keep. */
struct fl_xdp_keep {
	const char *pin_dir;		/* an existing directory on a bpffs; the
					 * kept maps are pinned there by name and
					 * reused from there; NULL = no pinning */
	int adopt_prog_fd;		/* a loaded balancer (e.g. the one attached
					 * to the interface) whose maps are taken
					 * where no pin exists; -1 = none */
};

/*
 * Opens the skeleton, sets the knobs and map sizes, loads and verifies the
 * program and maps the tables. Packets see empty tables (everything is
 * XDP_PASS) until the first fl_xdp_publish. 0, or -errno with a message;
 * on error *x is left closed.
 */
int fl_xdp_open_load(struct fl_xdp *x, const struct fl_xdp_knobs *knobs, char *err, size_t errlen);

/*
 * fl_xdp_open_load, keeping the state of an earlier instance: every map but
 * the read-only knobs and the scratch space (conntrack, both table slots,
 * ctl, counters) is taken from its pin in keep->pin_dir when there, else
 * from keep->adopt_prog_fd's map of the same name, else created; then it is
 * pinned there. The maps must have the same sizes (knobs max_* and
 * ct_capacity): a mismatch fails with -EINVAL naming the map. Counts in
 * x->maps_*. x->generation continues from the kept ctl.
 */
int fl_xdp_open_pinned(struct fl_xdp *x, const struct fl_xdp_knobs *knobs,
		       const struct fl_xdp_keep *keep, char *err, size_t errlen);

/*
 * Copies the tables of one published shared-memory slot (VIPs in use,
 * backends, rings, hash seed, next-hop MAC) into the inactive map slot, switches packets
 * to it and waits until no packet reads the old one. On return every packet
 * uses t. -E2BIG when t does not fit the map sizes (nothing is switched).
 */
int fl_xdp_publish(struct fl_xdp *x, const struct fl_tables *t, char *err, size_t errlen);

/* Adds ifindex to tx_ports: packets bpf_fib_lookup routes out of it are
 * redirected there (fib_lookup). 0, or -errno with a message. */
int fl_xdp_add_port(struct fl_xdp *x, int ifindex, char *err, size_t errlen);

/* Takes (reads and deletes) up to max entries of unresolved: next hops the
 * program could not reach for want of a neighbour entry; their dropped
 * packet counts in drops[] (may be NULL). Returns how many, or -errno. */
int fl_xdp_unresolved_take(struct fl_xdp *x, struct fl_xdp_unresolved *out, __u32 *drops,
			   __u32 max);

/* Attaches to ifindex, natively or in generic (skb) mode. */
int fl_xdp_attach(struct fl_xdp *x, int ifindex, bool generic, char *err, size_t errlen);

/* Detaches from the interface fl_xdp_attach named, if any. */
void fl_xdp_detach(struct fl_xdp *x);

/* The program's fd, for bpf_prog_test_run. */
int fl_xdp_prog_fd(const struct fl_xdp *x);

/* The program's per-CPU counter maps, by the data plane's layouts. */
enum fl_xdp_counter_set {
	FL_XDP_COUNTERS_WORKER,		/* struct fl_worker_counters, id 0 */
	FL_XDP_COUNTERS_VIP,		/* struct fl_vip_counters, by vip id */
	FL_XDP_COUNTERS_BACKEND,	/* struct fl_backend_counters, by backend id */
};

/* Element id of a counter map, every CPU's copy summed into out (size
 * bytes, the set's struct). 0, or -errno (-ENOENT past the map's end,
 * -EINVAL when size is not the set's). */
int fl_xdp_counters_sum(const struct fl_xdp *x, enum fl_xdp_counter_set set, __u32 id,
			void *out, size_t size);

/* The worker counters (FL_XDP_COUNTERS_WORKER) summed into *out. */
int fl_xdp_counters(const struct fl_xdp *x, struct fl_worker_counters *out);

/*
 * A count of the live conntrack records (fl_xdp_ct_way_live). Every CPU
 * writes the table and none may pay for a shared count, so it is counted
 * by reading the table's metadata lines (mmapped): FL_XDP_CT_SCAN_BUCKETS
 * buckets a step, so that a loop with other work can spread a large table
 * over its turns. Records that change during the scan may be counted as
 * they were or as they are.
 */
#define FL_XDP_CT_SCAN_BUCKETS 8192u

struct fl_xdp_ct_scan {
	__u64 live;			/* counted so far; final when done */
	__u32 next;			/* the bucket the next step starts at */
	__u32 now;			/* fl_xdp_ct_ticks at the start */
};

void fl_xdp_ct_scan_begin(struct fl_xdp_ct_scan *s);
/* Counts one step's buckets: 1 when the scan is complete (s->live is the
 * count), 0 when more is left. */
int fl_xdp_ct_scan_step(const struct fl_xdp *x, struct fl_xdp_ct_scan *s);

/* Detaches, unmaps and destroys; safe on a closed or zeroed *x. */
void fl_xdp_close(struct fl_xdp *x);
#endif /* !__bpf__ */

#endif /* FL_BPF_XDP_H */
