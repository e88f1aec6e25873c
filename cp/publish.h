/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The table publisher of fulcrum-cp: desired state (the config, operator
 * drains, health) in, whole table slots out through the shared memory of
 * common/shm.h (DESIGN.md "Backend identity", "Shared memory").
 *
 * It owns the ids. A VIP (address, port, protocol) keeps its vip id and a
 * backend (VIP, address, port) its backend id and epoch as long as they are
 * in the desired state. A new one takes a never-used id first, else the id
 * freed longest ago; a backend id given to another backend gets the next
 * epoch, so conntrack records of the old backend stop matching. A freed
 * backend id keeps its epoch in the tables (state FREE) so that a restarted
 * publisher, which reads every id back from the active slot, continues the
 * epochs and moves no flow.
 *
 * A pure library: no logging, no globals; errors are -errno with a message.
 */
#ifndef FL_PUBLISH_H
#define FL_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "config.h"
#include "shm.h"

/*
 * What fulcrum-cp knows of one backend beyond its config. A backend with no
 * status is up and not drained. Several statuses for one backend combine.
 * State in the tables: down (health) wins, then draining (operator drain or
 * config weight 0), else up.
 */
struct fl_backend_status {
	union fl_addr vip_addr;
	__u8 vip_family;		/* FL_AF_INET or FL_AF_INET6 */
	__u8 vip_proto;			/* IPPROTO_TCP or IPPROTO_UDP */
	__u16 vip_port;			/* host order, as in fl_vip_config */
	struct fl_backend_key key;	/* as in fl_backend_config: port 0 = the VIP's */
	bool drain;			/* operator drain: out of the ring, flows stay */
	bool down;			/* health check failed: flows move */
};

/* What one publish did. */
struct fl_publish_result {
	__u64 generation;		/* the generation now published */
	__u32 vips;			/* VIPs in use */
	__u32 backends;			/* backends in use, any state but free */
	__u32 backends_up;
	__u32 rings_built;		/* Maglev tables computed */
	__u32 rings_copied;		/* unchanged tables copied from the active slot */
};

struct fl_pub_vip;
struct fl_pub_backend;
struct fl_pub_want_vip;
struct fl_pub_want_backend;

/* One FIFO of freed ids: the head was freed longest ago. */
struct fl_pub_idq {
	__u32 *ids;
	__u32 head;
	__u32 len;
	__u32 cap;
};

/* The MAC of an address on the neighbour interface, for what the config
 * leaves to resolve (dataplane.next_hop.address, L2 DSR backends without a
 * mac): 0 with mac set, or -ENOENT when not known (published as zero). */
typedef int (*fl_pub_resolve_fn)(void *arg, __u8 family, const union fl_addr *addr, __u8 mac[6]);

/* The fields are private to publish.c except the knobs marked so. */
struct fl_publisher {
	struct fl_shm *shm;
	__u32 max_vips;
	__u32 max_backends;
	/* ids as last published (or read back) */
	struct fl_pub_vip *vips;		/* [max_vips] */
	struct fl_pub_backend *backends;	/* [max_backends] */
	__u32 vip_hw;				/* ids at or above were never used */
	__u32 backend_hw;
	struct fl_pub_idq vip_free;
	struct fl_pub_idq backend_free;
	/* desired state from fl_publisher_set, sorted by key */
	struct fl_pub_want_vip *want_vips;
	struct fl_pub_want_backend *want_backends;
	__u32 n_want_vips;
	__u32 n_want_backends;
	__u64 hash_seed;
	__u8 next_hop_mac[6];			/* static or resolved; zero = unknown */
	bool have_want;
	/* knobs, set after init */
	__u32 dead_after_ms;		/* a worker silent this long is not waited for */
	bool rebuild_all;		/* never copy an unchanged ring from the active slot */
	fl_pub_resolve_fn resolve;	/* NULL: whatever needs resolving stays zero */
	void *resolve_arg;
};

/*
 * Binds a publisher to a mapping this process writes (fl_shm_create) and
 * reads the ids, epochs and freed ids back from its active slot. The
 * desired state starts empty: call fl_publisher_set before publishing.
 * 0, or -EPERM (not the writer), -ENOMEM, with a message.
 */
int fl_publisher_init(struct fl_publisher *pub, struct fl_shm *shm, char *err, size_t errlen);

void fl_publisher_fini(struct fl_publisher *pub);

/*
 * Sets the desired state: every VIP and backend of cfg, the hash seed of
 * cfg->global, the next hop's MAC (next_hop.mac, else next_hop.address
 * through pub->resolve; into every slot header), L2 DSR backend MACs
 * (their mac, else their address through pub->resolve; a backend whose MAC
 * is not known is down), and the statuses (n of them; NULL or 0 = all up,
 * none drained). Copies what it needs: cfg and status may be freed afterwards.
 * Checks what the mapping can hold (VIP and backend ids, ring entries) and
 * that each status names a backend of cfg. Changes nothing in the tables.
 * 0, or -EINVAL, -ENOSPC, -ENOENT, -ENOMEM with a message; on error the
 * previous desired state stays.
 */
int fl_publisher_set(struct fl_publisher *pub, const struct fl_config *cfg,
		     const struct fl_backend_status *status, size_t n, char *err, size_t errlen);

/*
 * Assigns ids to the desired state, writes it whole into the inactive slot
 * (waiting at most timeout_ms for the workers, fl_writer_acquire) and
 * publishes it as the next generation. result may be NULL.
 * 0, or -errno with a message (-ETIMEDOUT, -ENOMEM, -EINVAL from Maglev,
 * -ENODATA before any fl_publisher_set); on error nothing is published and
 * the ids stay as they were.
 */
int fl_publisher_publish(struct fl_publisher *pub, __u32 timeout_ms,
			 struct fl_publish_result *result, char *err, size_t errlen);

/* The published backend id of a backend (VIP address, port in host order,
 * protocol, key with port 0 = the VIP's), or FL_BACKEND_NONE. For tests and
 * the control socket. */
__u32 fl_publisher_backend_id(const struct fl_publisher *pub, const union fl_addr *vip_addr,
			      __u8 vip_family, __u16 vip_port, __u8 vip_proto,
			      const struct fl_backend_key *key);

#endif /* FL_PUBLISH_H */
