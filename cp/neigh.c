/* SPDX-License-Identifier: BSD-3-Clause */
/* fulcrum-cp's copy of the kernel's neighbour table: cp/neigh.h. */
#include "neigh.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/if_ether.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#define NUD_USABLE (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP)
#define NEIGH_RCVBUF (1 << 20)

static int send_dump(struct fl_neigh *nb)
{
	struct {
		struct nlmsghdr nh;
		struct ndmsg nd;
	} req;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.nd));
	req.nh.nlmsg_type = RTM_GETNEIGH;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nh.nlmsg_seq = ++nb->seq;
	req.nd.ndm_family = AF_UNSPEC;
	if (sendto(nb->fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	nb->dump_seq = req.nh.nlmsg_seq;
	nb->dump_mark++;
	nb->resync = false;
	return 0;
}

int fl_neigh_open(struct fl_neigh *nb, char *err, size_t errlen)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK,
				  .nl_groups = RTMGRP_NEIGH };
	int buf = NEIGH_RCVBUF, rc;

	memset(nb, 0, sizeof(*nb));
	nb->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nb->fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "neighbour table: netlink socket: %s", strerror(-rc));
		return rc;
	}
	/* room for a burst of notifications; an overrun costs a dump */
	setsockopt(nb->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if (bind(nb->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || send_dump(nb) < 0) {
		rc = -errno;
		snprintf(err, errlen, "neighbour table: netlink: %s", strerror(-rc));
		fl_neigh_close(nb);
		return rc;
	}
	return 0;
}

void fl_neigh_close(struct fl_neigh *nb)
{
	if (nb->fd >= 0)
		close(nb->fd);
	free(nb->v);
	memset(nb, 0, sizeof(*nb));
	nb->fd = -1;
}

static struct fl_neigh_entry *find(const struct fl_neigh *nb, int ifindex, __u8 family,
				   const union fl_addr *addr)
{
	for (size_t i = 0; i < nb->n; i++) {
		struct fl_neigh_entry *e = &nb->v[i];
		if (e->ifindex == ifindex && e->family == family &&
		    memcmp(&e->addr, addr, sizeof(*addr)) == 0)
			return e;
	}
	return NULL;
}

static void remove_at(struct fl_neigh *nb, size_t i)
{
	nb->v[i] = nb->v[--nb->n];
}

/* One RTM_NEWNEIGH or RTM_DELNEIGH: 1 when a usable MAC changed. */
static int apply(struct fl_neigh *nb, const struct nlmsghdr *nh)
{
	const struct ndmsg *nd = NLMSG_DATA(nh);
	int len = (int)nh->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*nd));
	const __u8 *dst = NULL, *lladdr = NULL;
	size_t dst_len = 0, ll_len = 0;
	union fl_addr addr;
	__u8 family;
	struct fl_neigh_entry *e;
	bool usable;

	if (len < 0)
		return 0;
	if (nd->ndm_family == AF_INET)
		family = FL_AF_INET;
	else if (nd->ndm_family == AF_INET6)
		family = FL_AF_INET6;
	else
		return 0;	/* bridge FDB and the like */
	for (const struct rtattr *a = (const struct rtattr *)((const char *)nd + NLMSG_ALIGN(sizeof(*nd)));
	     RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == NDA_DST) {
			dst = RTA_DATA(a);
			dst_len = RTA_PAYLOAD(a);
		} else if (a->rta_type == NDA_LLADDR) {
			lladdr = RTA_DATA(a);
			ll_len = RTA_PAYLOAD(a);
		}
	}
	if (!dst || dst_len != (family == FL_AF_INET ? 4u : 16u))
		return 0;
	memset(&addr, 0, sizeof(addr));
	memcpy(&addr, dst, dst_len);
	usable = nh->nlmsg_type == RTM_NEWNEIGH && (nd->ndm_state & NUD_USABLE) &&
		 lladdr && ll_len == ETH_ALEN;
	e = find(nb, nd->ndm_ifindex, family, &addr);
	if (!usable) {
		if (!e)
			return 0;
		if (e->wanted) {
			/* the MAC stays in use while the kernel resolves again */
			e->state = nh->nlmsg_type == RTM_DELNEIGH ? NUD_NONE : nd->ndm_state;
			e->mark = nb->dump_mark;
			return 0;
		}
		remove_at(nb, (size_t)(e - nb->v));
		return 1;
	}
	if (!e) {
		if (nb->n == nb->cap) {
			size_t cap = nb->cap ? nb->cap * 2 : 64;
			struct fl_neigh_entry *v = realloc(nb->v, cap * sizeof(*v));
			if (!v)
				return -ENOMEM;
			nb->v = v;
			nb->cap = cap;
		}
		e = &nb->v[nb->n++];
		memset(e, 0, sizeof(*e));
		e->ifindex = nd->ndm_ifindex;
		e->family = family;
		e->addr = addr;
	} else if (memcmp(e->mac, lladdr, ETH_ALEN) == 0) {
		e->state = nd->ndm_state;
		e->mark = nb->dump_mark;
		return 0;
	}
	memcpy(e->mac, lladdr, ETH_ALEN);
	e->state = nd->ndm_state;
	/* notifications during a dump are as new as the dump */
	e->mark = nb->dump_mark;
	return 1;
}

/* End of a dump: what it did not name is gone (missed during an overrun),
 * but a wanted MAC stays, as after an RTM_DELNEIGH. */
static int sweep(struct fl_neigh *nb)
{
	int changes = 0;

	for (size_t i = 0; i < nb->n;) {
		struct fl_neigh_entry *e = &nb->v[i];

		if (e->mark == nb->dump_mark) {
			i++;
		} else if (e->wanted) {
			e->state = NUD_NONE;
			e->mark = nb->dump_mark;
			i++;
		} else {
			remove_at(nb, i);
			changes++;
		}
	}
	return changes;
}

int fl_neigh_parse(struct fl_neigh *nb, const void *buf, size_t len)
{
	int changes = 0, rc;
	int left = (int)len;

	for (const struct nlmsghdr *nh = buf; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
		bool dump = nb->dump_seq && nh->nlmsg_seq == nb->dump_seq;

		nb->messages++;
		switch (nh->nlmsg_type) {
		case RTM_NEWNEIGH:
		case RTM_DELNEIGH:
			rc = apply(nb, nh);
			if (rc < 0)
				return rc;
			changes += rc;
			break;
		case NLMSG_DONE:
			if (dump) {
				changes += sweep(nb);
				nb->dump_seq = 0;
			}
			break;
		case NLMSG_ERROR:
			/* a failed dump is asked for again on the next read */
			if (dump) {
				nb->dump_seq = 0;
				nb->resync = true;
			}
			break;
		default:
			break;
		}
	}
	return changes;
}

int fl_neigh_read(struct fl_neigh *nb)
{
	/* 32 KiB: the kernel fills a dump message buffer up to a page or so */
	static __u8 buf[32768] __attribute__((aligned(4)));
	int changes = 0, rc;

	for (;;) {
		ssize_t n = recv(nb->fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == ENOBUFS) {
				/* notifications were lost: the map may be wrong */
				nb->overruns++;
				nb->resync = true;
				nb->dump_seq = 0;	/* its end may be lost too */
				continue;
			}
			return -errno;
		}
		if (n == 0)
			break;
		rc = fl_neigh_parse(nb, buf, (size_t)n);
		if (rc < 0)
			return rc;
		changes += rc;
	}
	/* one dump at a time: the kernel refuses a second meanwhile */
	if (nb->resync && !nb->dump_seq) {
		rc = send_dump(nb);
		if (rc < 0)
			return rc;
	}
	return changes;
}

int fl_neigh_lookup(struct fl_neigh *nb, int ifindex, __u8 family,
		    const union fl_addr *addr, __u8 mac[6], __u16 *state)
{
	struct fl_neigh_entry *e = find(nb, ifindex, family, addr);

	if (!e)
		return -ENOENT;
	e->wanted = true;
	memcpy(mac, e->mac, 6);
	if (state)
		*state = e->state;
	return 0;
}

int fl_neigh_confirm(struct fl_neigh *nb, int ifindex, __u8 family, const union fl_addr *addr)
{
	__u16 state = 0;
	__u8 mac[6];

	if (fl_neigh_lookup(nb, ifindex, family, addr, mac, &state) == 0 &&
	    (state & (NUD_REACHABLE | NUD_PERMANENT | NUD_NOARP)))
		return 0;
	return fl_neigh_solicit(nb, ifindex, family, addr);
}

int fl_neigh_solicit(struct fl_neigh *nb, int ifindex, __u8 family, const union fl_addr *addr)
{
	struct {
		struct nlmsghdr nh;
		struct ndmsg nd;
		__u8 attrs[RTA_SPACE(16)];
	} req;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	size_t alen = family == FL_AF_INET ? 4 : 16;
	struct rtattr *a;

	if (ifindex <= 0)
		return -ENODEV;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.nd));
	req.nh.nlmsg_type = RTM_NEWNEIGH;
	/* no NLM_F_ACK: the outcome is the notification that follows */
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE;
	req.nh.nlmsg_seq = ++nb->seq;
	req.nd.ndm_family = family == FL_AF_INET ? AF_INET : AF_INET6;
	req.nd.ndm_ifindex = ifindex;
	req.nd.ndm_state = NUD_NONE;
	/* NTF_USE: neigh_event_send(), the kernel's own resolution, and no
	 * state written by us */
	req.nd.ndm_flags = NTF_USE;
	a = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
	a->rta_type = NDA_DST;
	a->rta_len = (unsigned short)RTA_LENGTH(alen);
	memcpy(RTA_DATA(a), addr, alen);
	req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(a->rta_len);
	if (sendto(nb->fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	nb->solicits++;
	return 0;
}
