/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The tcp-half-open check (F5's "TCP half open"): a bare SYN from a raw
 * socket. A SYN-ACK says up, a RST "refused", silence "timeout": the
 * verdict a connect() gives, since connect() completes on the SYN-ACK. No
 * connection is made on either side: no socket of ours owns the 4-tuple,
 * so our kernel answers the SYN-ACK with a RST, which ends the backend's
 * half-open connection. Opt-in: IDS and firewalls may take SYN probes for
 * a scan. Needs CAP_NET_RAW.
 *
 * One prober per address family and loop: a raw TCP socket shared by the
 * type's checkers, with a socket filter that queues only SYN-ACKs and RSTs
 * to our source ports (a raw socket gets a copy of every TCP segment the
 * host receives). A source port is held by a TCP socket bound to port 0,
 * never listening nor connected: the kernel gives that port to no connect,
 * and no segment to that socket. Checkers of one target (a backend shared
 * by two VIPs) get different port indices: two SYNs of one 4-tuple in
 * flight would have the backend's listener reset the second, a false
 * "refused". A segment finds its checker by its source address and port
 * and its destination port, and must acknowledge exactly the probe's
 * ISN + 1; anything else is ignored.
 *
 * Checksums: IPv6 raw sockets fill and check them (IPV6_CHECKSUM); IPv4
 * ones do not, so the SYN's is computed over the pseudo-header with the
 * source the route picks, found once per checker (a UDP connect) and given
 * to the kernel with IP_PKTINFO so that it sends from exactly that address.
 * A failed probe finds it again: the route may have changed.
 *
 * Answers the kernel drops because the raw socket's receive queue is full
 * (a loop that stalled behind a burst) are counted (SO_MEMINFO): a probe
 * that times out with drops since its start says so in its reason, so a
 * false timeout is told from a silent backend.
 *
 * ICMP errors about a SYN (unreachable, time exceeded) reach the raw
 * socket's error queue (IP_RECVERR, IPV6_RECVERR) with the SYN's first
 * bytes and its destination: they fail the probe at once, with the error,
 * as they make a connect() fail, instead of leaving it to time out.
 *
 * Sending: a probe's start queues its SYN, and the SYNs queued in one
 * iteration of the loop (health.c starts the probes due in one step of its
 * grid together: 50 at 10,000 a second) go out in one sendmmsg, deferred
 * to the end of the iteration. A SYN the kernel refuses fails its own
 * probe, with the kernel's reason, and no other.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <linux/filter.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "health.h"

#define HOP_MAX_PORTS 64		/* checkers of one target */
#define HOP_WINDOW 64240
#define HOP_MSS_V4 1460
#define HOP_MSS_V6 1440
/* segments read per wakeup: beyond, the level-triggered socket wakes the
 * loop again after the timers had their turn */
#define HOP_DRAIN_MAX 4096
/* answers come in bursts (health.c starts the probes due in one step of its
 * grid together: 50 at 10,000 a second); room for far larger ones, capped
 * by net.core.rmem_max */
#define HOP_RCVBUF (1 << 20)
/* SYNs queued for one sendmmsg; a probe that finds the queue full sends
 * it at once (the refused among them are failed at the end of the
 * iteration all the same) */
#define HOP_BATCH 64

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* The SYN, and the same bytes as 16-bit words for the checksum. */
union hop_syn {
	struct {
		struct tcphdr th;
		/* kind 2, length 4, value: middleboxes drop SYNs without */
		__u8 mss[4];
	} s;
	__u16 w[12];
};

/* A queued SYN: what its message of the sendmmsg points to. */
struct hop_out {
	union hop_syn syn;
	union {
		struct sockaddr_in v4;
		struct sockaddr_in6 v6;
	} dst;
	struct iovec iov;
	union {
		char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];	/* IPv4: the source */
		struct cmsghdr align;
	} ctl;
};

struct hop_port {
	int fd;				/* holds the port; -1 when not taken */
	__be16 port;
	uint32_t users;
};

struct hop_prober {
	struct hop_prober *next;	/* in probers */
	struct fl_loop *loop;
	int family;
	struct fl_io io;		/* the raw socket */
	int route_fd;			/* IPv4: a UDP socket whose connect finds the source */
	uint32_t n_checks;		/* attached */
	bool dispatching;		/* in a callback that frees it if need be */
	struct hop_check **buckets;	/* by target */
	uint32_t n_buckets;		/* a power of 2 */
	struct hop_port ports[HOP_MAX_PORTS];
	/* SYNs waiting for the end of the iteration; an aborted probe
	 * leaves NULL in queued */
	struct fl_defer flush;
	uint32_t n_queued;
	struct hop_check *queued[HOP_BATCH];
	struct mmsghdr msgs[HOP_BATCH];
	struct hop_out out[HOP_BATCH];
	struct hop_check *refused;	/* whose SYN the kernel refused, to fail */
	uint32_t drops;			/* answers the full receive queue dropped, so far */
};

/* A checker's share: c->held. What every probe reads comes first: the
 * refused list is for the rare probe the kernel would not send. */
struct hop_check {
	struct hop_check *next;		/* in its bucket */
	struct fl_checker *c;
	struct hop_prober *p;
	uint32_t hash;			/* of the target */
	uint8_t idx;			/* source port index */
	bool in_flight;
	__be32 ack;			/* the probe's ISN + 1, what its answer acknowledges */
	uint32_t drops_at_start;	/* p->drops when the probe started */
	struct in_addr src;		/* IPv4: the route's source; 0 = find it */
	struct hop_check **cell;	/* in p->queued; NULL when not queued */
	/* in p->refused, with the kernel's reason; NULL pprev when not */
	struct hop_check *refused_next, **refused_pprev;
	int send_errno;
};

static struct hop_prober *probers;

static const void *target_addr(const struct fl_checker *c)
{
	if (c->target.ss_family == AF_INET)
		return &((const struct sockaddr_in *)&c->target)->sin_addr;
	return &((const struct sockaddr_in6 *)&c->target)->sin6_addr;
}

static __be16 target_port(const struct fl_checker *c)
{
	/* sin_port and sin6_port are at the same offset */
	return ((const struct sockaddr_in *)&c->target)->sin_port;
}

static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

static uint32_t target_hash(int family, const void *addr, __be16 port)
{
	uint64_t h = port;
	__u32 w[4];

	memcpy(w, addr, addr_len(family));
	for (size_t i = 0; i < addr_len(family) / 4; i++)
		h = (h ^ w[i]) * FL_HASH_MUL;
	return (uint32_t)(h >> 32);
}

static bool same_target(const struct fl_checker *c, int family, const void *addr, __be16 port)
{
	if (target_port(c) != port)
		return false;
	/* constant lengths: compared inline, not by a call to memcmp for
	 * each answer */
	if (family == AF_INET)
		return memcmp(target_addr(c), addr, 4) == 0;
	return memcmp(target_addr(c), addr, 16) == 0;
}

/* ---- the socket filter ---- */

#define STMT(code, k) ((struct sock_filter)BPF_STMT(code, k))
#define JUMP(code, k, jt, jf) ((struct sock_filter)BPF_JUMP(code, k, jt, jf))

/*
 * Keeps a segment whose flags among SYN, RST and ACK are SYN+ACK or RST+ACK
 * and whose destination port is one of ours. X holds the TCP header's
 * offset: IPv4 raw sockets receive the IP header (of any length; a
 * fragment past the first is dropped), IPv6 ones start at TCP's.
 */
static int prober_filter(struct hop_prober *p)
{
	struct sock_filter f[10 + HOP_MAX_PORTS];
	struct sock_fprog prog = { .filter = f };
	unsigned n = 0, drop, frag_jump = 0, flags_jump, port_jumps[HOP_MAX_PORTS], n_ports = 0;

	if (p->family == AF_INET) {
		f[n++] = STMT(BPF_LD | BPF_H | BPF_ABS, 6);	/* flags, fragment offset */
		frag_jump = n;
		f[n++] = JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 0, 0);
		f[n++] = STMT(BPF_LDX | BPF_B | BPF_MSH, 0);	/* 4 * IHL */
	} else {
		f[n++] = STMT(BPF_LDX | BPF_W | BPF_IMM, 0);
	}
	f[n++] = STMT(BPF_LD | BPF_B | BPF_IND, 13);
	f[n++] = STMT(BPF_ALU | BPF_AND | BPF_K, TCP_FLAG_SYN | TCP_FLAG_RST | TCP_FLAG_ACK);
	f[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, TCP_FLAG_SYN | TCP_FLAG_ACK, 1, 0);
	flags_jump = n;
	f[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, TCP_FLAG_RST | TCP_FLAG_ACK, 0, 0);
	f[n++] = STMT(BPF_LD | BPF_H | BPF_IND, 2);	/* destination port */
	for (unsigned i = 0; i < HOP_MAX_PORTS; i++) {
		if (p->ports[i].fd < 0)
			continue;
		port_jumps[n_ports++] = n;
		f[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohs(p->ports[i].port), 0, 0);
	}
	drop = n;
	f[n++] = STMT(BPF_RET | BPF_K, 0);
	/* accept the whole segment: trimming it would copy the clone */
	f[n++] = STMT(BPF_RET | BPF_K, UINT32_MAX);
	if (p->family == AF_INET)
		f[frag_jump].jt = (__u8)(drop - frag_jump - 1);
	f[flags_jump].jf = (__u8)(drop - flags_jump - 1);
	/* a matching port jumps to the accept after drop */
	for (unsigned i = 0; i < n_ports; i++)
		f[port_jumps[i]].jt = (__u8)(drop - port_jumps[i]);
	prog.len = (unsigned short)n;
	if (setsockopt(p->io.fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
		return -errno;
	return 0;
}

/* ---- source ports ---- */

static int port_hold(struct hop_prober *p, unsigned idx, char *err, size_t errlen)
{
	struct hop_port *hp = &p->ports[idx];
	struct sockaddr_storage ss = { .ss_family = (sa_family_t)p->family };
	struct sockaddr *sa = (struct sockaddr *)&ss;
	socklen_t len = p->family == AF_INET ? sizeof(struct sockaddr_in)
					     : sizeof(struct sockaddr_in6);
	int one = 1, fd, rc;

	if (hp->fd >= 0) {
		hp->users++;
		return 0;
	}
	fd = socket(p->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0 ||
	    (p->family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, sa, len) < 0 || getsockname(fd, sa, &len) < 0) {
		rc = -errno;
		snprintf(err, errlen, "tcp-half-open: cannot take a source port: %s",
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	hp->fd = fd;
	hp->port = ((struct sockaddr_in *)&ss)->sin_port;
	rc = prober_filter(p);
	if (rc < 0) {
		snprintf(err, errlen, "tcp-half-open: socket filter: %s", strerror(-rc));
		close(fd);
		hp->fd = -1;
		return rc;
	}
	hp->users = 1;
	return 0;
}

static void port_put(struct hop_prober *p, unsigned idx)
{
	struct hop_port *hp = &p->ports[idx];

	if (--hp->users)
		return;
	close(hp->fd);
	hp->fd = -1;
	/* should this fail, the old filter stays: it only keeps more */
	prober_filter(p);
}

/* ---- probers ---- */

static void prober_ready(struct fl_loop *loop, struct fl_io *io, uint32_t events);
static void prober_flush(struct fl_loop *loop, void *arg);

static void prober_free(struct hop_prober *p)
{
	struct hop_prober **pp;
	int fd = p->io.fd;

	for (pp = &probers; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	fl_io_del(p->loop, &p->io);
	fl_defer_cancel(p->loop, &p->flush);
	if (fd >= 0)
		close(fd);
	if (p->route_fd >= 0)
		close(p->route_fd);
	free(p->buckets);
	free(p);
}

/* Frees the prober once no checker is attached. */
static void prober_put(struct hop_prober *p)
{
	if (p->n_checks == 0 && !p->dispatching)
		prober_free(p);
}

static int prober_open(struct hop_prober *p, char *err, size_t errlen)
{
	int fd, rc, v;

	fd = socket(p->family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0) {
		rc = -errno;
		if (errno == EPERM || errno == EACCES)
			snprintf(err, errlen, "tcp-half-open checks need CAP_NET_RAW: %s", strerror(errno));
		else
			snprintf(err, errlen, "tcp-half-open: raw socket: %s", strerror(errno));
		return rc;
	}
	p->io.fd = fd;
	/* no port yet: the filter keeps nothing */
	rc = prober_filter(p);
	if (rc < 0) {
		snprintf(err, errlen, "tcp-half-open: socket filter: %s", strerror(-rc));
		return rc;
	}
	v = HOP_RCVBUF;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	v = offsetof(struct tcphdr, check);
	if (p->family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_CHECKSUM, &v, sizeof(v)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "tcp-half-open: IPV6_CHECKSUM: %s", strerror(errno));
		return rc;
	}
	v = 1;
	if (p->family == AF_INET ? setsockopt(fd, IPPROTO_IP, IP_RECVERR, &v, sizeof(v))
				 : setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &v, sizeof(v))) {
		rc = -errno;
		snprintf(err, errlen, "tcp-half-open: RECVERR: %s", strerror(errno));
		return rc;
	}
	if (p->family == AF_INET) {
		/* DF set and the path MTU not applied (a SYN is 44 bytes): the
		 * kernel then gives the packet ID 0 instead of drawing one
		 * from its shared generator, 5 % of the cost at 10,000 a second */
		v = IP_PMTUDISC_PROBE;
		setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof(v));
		p->route_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
		if (p->route_fd < 0) {
			rc = -errno;
			snprintf(err, errlen, "tcp-half-open: udp socket: %s", strerror(errno));
			return rc;
		}
	}
	/* level-triggered: a segment with a bad checksum makes an IPv6
	 * recv fail with EAGAIN before the queue is empty */
	rc = fl_io_add(p->loop, &p->io, fd, EPOLLIN, prober_ready, p);
	if (rc < 0) {
		snprintf(err, errlen, "tcp-half-open: epoll: %s", strerror(-rc));
		close(fd);
		p->io.fd = -1;
	}
	return rc;
}

/* The loop's prober of that family, opened on first use. 0 or -errno
 * with a message. */
static int prober_get(struct fl_loop *loop, int family, struct hop_prober **out,
		      char *err, size_t errlen)
{
	struct hop_prober *p;
	int rc;

	for (p = probers; p; p = p->next)
		if (p->loop == loop && p->family == family) {
			*out = p;
			return 0;
		}
	p = calloc(1, sizeof(*p));
	if (p)
		p->buckets = calloc(64, sizeof(*p->buckets));
	if (!p || !p->buckets) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->loop = loop;
	p->family = family;
	p->n_buckets = 64;
	p->io.fd = -1;
	p->route_fd = -1;
	fl_defer_init(&p->flush, prober_flush, p);
	for (unsigned i = 0; i < HOP_MAX_PORTS; i++)
		p->ports[i].fd = -1;
	p->next = probers;
	probers = p;
	rc = prober_open(p, err, errlen);
	if (rc < 0) {
		prober_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

/* Doubles the buckets at one check a bucket; a failed allocation only
 * makes the chains longer. */
static void prober_grow(struct hop_prober *p)
{
	uint32_t n = p->n_buckets * 2;
	struct hop_check **b, *h, *next;

	if (p->n_checks < p->n_buckets || !(b = calloc(n, sizeof(*b))))
		return;
	for (uint32_t i = 0; i < p->n_buckets; i++)
		for (h = p->buckets[i]; h; h = next) {
			next = h->next;
			h->next = b[h->hash & (n - 1)];
			b[h->hash & (n - 1)] = h;
		}
	free(p->buckets);
	p->buckets = b;
	p->n_buckets = n;
}

/* ---- checkers ---- */

static int hop_attach(struct fl_checker *c, char *err, size_t errlen)
{
	int family = c->target.ss_family;
	struct hop_prober *p;
	struct hop_check *h, **bucket;
	uint64_t used = 0;
	int rc;

	rc = prober_get(c->loop, family, &p, err, errlen);
	if (rc < 0)
		return rc;
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		prober_put(p);
		return -ENOMEM;
	}
	h->c = c;
	h->p = p;
	h->hash = target_hash(family, target_addr(c), target_port(c));
	bucket = &p->buckets[h->hash & (p->n_buckets - 1)];
	for (struct hop_check *o = *bucket; o; o = o->next)
		if (o->hash == h->hash && same_target(o->c, family, target_addr(c), target_port(c)))
			used |= 1ull << o->idx;
	if (used == UINT64_MAX) {
		snprintf(err, errlen, "more than %d tcp-half-open checks of %s", HOP_MAX_PORTS,
			 c->target_text);
		rc = -EBUSY;
		goto fail;
	}
	h->idx = (uint8_t)__builtin_ctzll(~used);
	rc = port_hold(p, h->idx, err, errlen);
	if (rc < 0)
		goto fail;
	h->next = *bucket;
	*bucket = h;
	p->n_checks++;
	prober_grow(p);
	c->held = h;
	return 0;
fail:
	free(h);
	prober_put(p);
	return rc;
}

static void hop_detach(struct fl_checker *c)
{
	struct hop_check *h = c->held, **pp;
	struct hop_prober *p;

	if (!h)
		return;
	p = h->p;
	for (pp = &p->buckets[h->hash & (p->n_buckets - 1)]; *pp != h; pp = &(*pp)->next)
		;
	*pp = h->next;
	port_put(p, h->idx);
	p->n_checks--;
	free(h);
	c->held = NULL;
	prober_put(p);
}

/* A probe without an answer (a timeout, an ICMP error, a refused send)
 * looks the source up again: the route may have changed. */
static void probe_failed(struct hop_check *h)
{
	h->in_flight = false;
	h->src.s_addr = 0;
}

static int find_source(struct hop_check *h)
{
	struct fl_checker *c = h->c;
	struct sockaddr_in sin;
	struct sockaddr unspec = { .sa_family = AF_UNSPEC };
	socklen_t len = sizeof(sin);
	int rc = 0;

	if (connect(h->p->route_fd, (struct sockaddr *)&c->target, c->target_len) < 0 ||
	    getsockname(h->p->route_fd, (struct sockaddr *)&sin, &len) < 0) {
		rc = -errno;
		snprintf(c->reason, sizeof(c->reason), "no route: %s", strerror(errno));
	} else {
		h->src = sin.sin_addr;
	}
	/* unbound again, or the next connect would keep this source */
	connect(h->p->route_fd, &unspec, sizeof(unspec));
	return rc;
}

static __u16 checksum_v4(struct in_addr src, struct in_addr dst, const union hop_syn *syn)
{
	uint32_t sum = (src.s_addr & 0xffff) + (src.s_addr >> 16) + (dst.s_addr & 0xffff) +
		       (dst.s_addr >> 16) + htons(IPPROTO_TCP) + htons(sizeof(syn->s));

	for (size_t i = 0; i < sizeof(syn->w) / sizeof(syn->w[0]); i++)
		sum += syn->w[i];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Fills the queued SYN's IPv4 message: to the target, from the route's
 * source, with the checksum over that pair. */
static void out_v4(struct hop_check *h, struct hop_out *o, struct msghdr *msg)
{
	struct in_pktinfo pi = { .ipi_spec_dst = h->src };
	struct cmsghdr *cm;

	o->dst.v4 = *(const struct sockaddr_in *)&h->c->target;
	/* a raw socket's port field is the protocol, or nothing */
	o->dst.v4.sin_port = 0;
	msg->msg_namelen = sizeof(o->dst.v4);
	msg->msg_control = o->ctl.buf;
	msg->msg_controllen = sizeof(o->ctl.buf);
	cm = CMSG_FIRSTHDR(msg);
	cm->cmsg_level = IPPROTO_IP;
	cm->cmsg_type = IP_PKTINFO;
	cm->cmsg_len = CMSG_LEN(sizeof(pi));
	memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
	o->syn.s.th.check = checksum_v4(h->src, o->dst.v4.sin_addr, &o->syn);
}

static void out_v6(struct hop_check *h, struct hop_out *o, struct msghdr *msg)
{
	o->dst.v6 = *(const struct sockaddr_in6 *)&h->c->target;
	o->dst.v6.sin6_port = 0;
	msg->msg_namelen = sizeof(o->dst.v6);
}

/* Queues the probe's SYN, with sequence number isn, for the end of the
 * iteration. The queue has room. */
static void syn_queue(struct hop_check *h, uint32_t isn)
{
	struct hop_prober *p = h->p;
	uint32_t i = p->n_queued++;
	struct hop_out *o = &p->out[i];
	struct msghdr *msg = &p->msgs[i].msg_hdr;
	__u16 mss = p->family == AF_INET ? HOP_MSS_V4 : HOP_MSS_V6;

	memset(&o->syn, 0, sizeof(o->syn));
	o->syn.s.th.source = p->ports[h->idx].port;
	o->syn.s.th.dest = target_port(h->c);
	o->syn.s.th.seq = htonl(isn);
	o->syn.s.th.doff = sizeof(o->syn.s) / 4;
	o->syn.s.th.syn = 1;
	o->syn.s.th.window = htons(HOP_WINDOW);
	o->syn.s.mss[0] = TCPOPT_MAXSEG;
	o->syn.s.mss[1] = TCPOLEN_MAXSEG;
	o->syn.s.mss[2] = (__u8)(mss >> 8);
	o->syn.s.mss[3] = (__u8)mss;
	o->iov = (struct iovec){ .iov_base = &o->syn, .iov_len = sizeof(o->syn.s) };
	*msg = (struct msghdr){ .msg_name = &o->dst, .msg_iov = &o->iov, .msg_iovlen = 1 };
	if (p->family == AF_INET)
		out_v4(h, o, msg);
	else
		out_v6(h, o, msg);
	p->queued[i] = h;
	h->cell = &p->queued[i];
}

static void refused_del(struct hop_check *h)
{
	*h->refused_pprev = h->refused_next;
	if (h->refused_next)
		h->refused_next->refused_pprev = h->refused_pprev;
	h->refused_pprev = NULL;
}

/* Sends the queued SYNs, in as few sendmmsg as the kernel allows: it stops
 * at the first message it refuses, whose probe goes to p->refused with the
 * reason, and the rest goes on from the next message. */
static void prober_send(struct hop_prober *p)
{
	uint32_t n = 0;

	/* close the holes of aborted probes: a message still points to its
	 * own out[] */
	for (uint32_t i = 0; i < p->n_queued; i++)
		if (p->queued[i]) {
			p->queued[n] = p->queued[i];
			p->msgs[n++] = p->msgs[i];
		}
	p->n_queued = 0;
	for (uint32_t j = 0, tries = 0; j < n;) {
		int sent = sendmmsg(p->io.fd, p->msgs + j, n - j, 0);
		struct hop_check *h;

		if (sent > 0) {
			for (uint32_t end = j + (uint32_t)sent; j < end; j++)
				p->queued[j]->cell = NULL;
			tries = 0;
			continue;
		}
		/* An ICMP error about an earlier SYN (IP_RECVERR) leaves its
		 * errno on the socket, and the next send returns it once: a
		 * message is sent up to three times, and fails only if every
		 * time (errors_in takes the ICMP error to its own probe). */
		if (++tries < 3)
			continue;
		tries = 0;
		h = p->queued[j++];
		h->cell = NULL;
		h->send_errno = errno;
		h->refused_next = p->refused;
		if (h->refused_next)
			h->refused_next->refused_pprev = &h->refused_next;
		p->refused = h;
		h->refused_pprev = &p->refused;
	}
}

/* End of the iteration: sends what is queued, then fails the probes whose
 * SYN was refused, one at a time off the list, as a callback may stop the
 * checker of another (its abort takes it off) or the last checker
 * (dispatching keeps the prober until the end). */
static void prober_flush(struct fl_loop *loop, void *arg)
{
	struct hop_prober *p = arg;
	struct hop_check *h;

	(void)loop;
	prober_send(p);
	p->dispatching = true;
	while ((h = p->refused) != NULL) {
		refused_del(h);
		snprintf(h->c->reason, sizeof(h->c->reason), "send: %s", strerror(h->send_errno));
		probe_failed(h);
		fl_checker_done(h->c, false);
	}
	p->dispatching = false;
	prober_put(p);
}

static int hop_start(struct fl_checker *c)
{
	struct hop_check *h = c->held;
	struct hop_prober *p = h->p;
	uint32_t isn = fl_check_random();
	int rc;

	if (p->family == AF_INET && h->src.s_addr == 0 && (rc = find_source(h)) < 0)
		return rc;
	if (p->n_queued == HOP_BATCH)
		prober_send(p);
	syn_queue(h, isn);
	fl_defer(p->loop, &p->flush);
	/* the answer comes after the SYN leaves, at the end of the iteration */
	h->ack = htonl(isn + 1);
	h->in_flight = true;
	h->drops_at_start = p->drops;
	return 0;
}

static void hop_abort(struct fl_checker *c)
{
	struct hop_check *h = c->held;

	if (!h)
		return;
	/* a SYN not sent yet stays unsent; a refused one is not reported */
	if (h->cell) {
		*h->cell = NULL;
		h->cell = NULL;
	}
	if (h->refused_pprev)
		refused_del(h);
	if (h->in_flight && h->p->drops != h->drops_at_start) {
		size_t len = strlen(c->reason);
		snprintf(c->reason + len, sizeof(c->reason) - len,
			 "; %u answers to tcp-half-open probes were dropped meanwhile, the receive "
			 "queue full", h->p->drops - h->drops_at_start);
	}
	/* a late answer now matches nothing */
	probe_failed(h);
}

/* ---- answers ---- */

/* The probe in flight from our port lport to addr:rport whose SYN's ISN + 1
 * is ack (network order), or NULL: what an answer or an ICMP error must
 * name to be taken. */
static struct hop_check *probe_find(struct hop_prober *p, const void *addr, __be16 rport,
				    __be16 lport, __be32 ack)
{
	uint32_t hash = target_hash(p->family, addr, rport);

	for (struct hop_check *h = p->buckets[hash & (p->n_buckets - 1)]; h; h = h->next)
		if (h->in_flight && h->hash == hash && h->ack == ack &&
		    p->ports[h->idx].port == lport && same_target(h->c, p->family, addr, rport))
			return h;
	return NULL;
}

static void segment_in(struct hop_prober *p, const __u8 *buf, size_t len,
		       const struct sockaddr_in6 *from)
{
	const void *addr;
	const struct tcphdr *th;
	struct hop_check *h;
	bool ok;

	if (p->family == AF_INET) {
		size_t ihl;
		if (len < 20 || buf[0] >> 4 != 4)
			return;
		ihl = (buf[0] & 0xfu) * 4;
		if (ihl < 20 || len < ihl + sizeof(*th))
			return;
		addr = buf + 12;	/* the IPv4 source */
		th = (const struct tcphdr *)(buf + ihl);
	} else {
		if (len < sizeof(*th))
			return;
		addr = &from->sin6_addr;
		th = (const struct tcphdr *)buf;
	}
	/* the filter keeps only SYN+ACK and RST+ACK; anything else is ignored
	 * here all the same */
	if (!th->ack || th->syn == th->rst)
		return;
	h = probe_find(p, addr, th->source, th->dest, th->ack_seq);
	if (!h)
		return;
	ok = th->syn;
	snprintf(h->c->reason, sizeof(h->c->reason), ok ? "SYN-ACK" : "refused");
	/* either answer came back by the route the source was found for, so
	 * a refusal keeps the source (probe_failed would look it up again,
	 * three system calls a probe of every refusing backend) */
	h->in_flight = false;
	fl_checker_done(h->c, ok);
}

/* The probe an ICMP error is about: the error queue gives the SYN's
 * destination and its first bytes (ports and sequence number, which the
 * probe's ISN + 1 must follow). */
static struct hop_check *probe_of_error(struct hop_prober *p, const struct sockaddr_in6 *dst,
					const __u8 *syn, size_t len)
{
	const void *addr = p->family == AF_INET ?
		(const void *)&((const struct sockaddr_in *)dst)->sin_addr : &dst->sin6_addr;
	struct tcphdr th;

	if (len < 8)
		return NULL;
	memcpy(&th, syn, 8);	/* source, destination, sequence */
	return probe_find(p, addr, th.dest, th.source, htonl(ntohl(th.seq) + 1));
}

/* Reads the error queue: an ICMP error about a probe's SYN fails it with
 * that error (a connect() fails on the same ones); "fragmentation needed"
 * cannot be about a 44-byte SYN, and local errors are the send's. */
static void errors_in(struct hop_prober *p)
{
	__u8 syn[64];
	union {
		char buf[CMSG_SPACE(sizeof(struct sock_extended_err) + sizeof(struct sockaddr_in6))];
		struct cmsghdr align;
	} ctl;

	for (unsigned i = 0; i < HOP_DRAIN_MAX; i++) {
		struct sockaddr_in6 dst;
		struct iovec iov = { .iov_base = syn, .iov_len = sizeof(syn) };
		struct msghdr msg = { .msg_name = &dst, .msg_namelen = sizeof(dst), .msg_iov = &iov,
				      .msg_iovlen = 1, .msg_control = ctl.buf,
				      .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(p->io.fd, &msg, MSG_ERRQUEUE);
		const struct sock_extended_err *ee = NULL;
		struct hop_check *h;

		if (n < 0)
			return;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
			if ((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_RECVERR) ||
			    (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_RECVERR))
				ee = (const struct sock_extended_err *)CMSG_DATA(cm);
		if (!ee || (ee->ee_origin != SO_EE_ORIGIN_ICMP && ee->ee_origin != SO_EE_ORIGIN_ICMP6) ||
		    ee->ee_errno == EMSGSIZE)
			continue;
		h = probe_of_error(p, &dst, syn, (size_t)n);
		if (!h)
			continue;
		snprintf(h->c->reason, sizeof(h->c->reason), "ICMP: %s", strerror((int)ee->ee_errno));
		probe_failed(h);
		fl_checker_done(h->c, false);
	}
}

static void prober_ready(struct fl_loop *loop, struct fl_io *io, uint32_t events)
{
	struct hop_prober *p = io->arg;
	/* an IPv4 header of up to 60 bytes and a TCP one of up to 60: a
	 * longer segment is cut, which loses nothing read here */
	__u32 buf[64], meminfo[SK_MEMINFO_VARS];
	socklen_t mlen = sizeof(meminfo);
	struct sockaddr_in6 from;

	(void)loop;
	p->dispatching = true;	/* a checker's callback may stop the last checker */
	if (events & EPOLLERR)
		errors_in(p);
	for (unsigned i = 0; i < HOP_DRAIN_MAX; i++) {
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(p->io.fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
		/* anything but EAGAIN is an ICMP error's errno, returned once
		 * (errors_in has the error itself) */
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0)
			continue;
		segment_in(p, (const __u8 *)buf, (size_t)n, &from);
	}
	/* A queue that overflowed was readable: the count is read here, once
	 * a wakeup, and the loop runs its timers (the timeouts) after. */
	if (getsockopt(p->io.fd, SOL_SOCKET, SO_MEMINFO, meminfo, &mlen) == 0 &&
	    mlen > SK_MEMINFO_DROPS * sizeof(meminfo[0]))
		p->drops = meminfo[SK_MEMINFO_DROPS];
	p->dispatching = false;
	prober_put(p);
}

const struct fl_check_ops fl_check_tcp_half_open_ops = {
	.name = "tcp-half-open",
	.attach = hop_attach,
	.detach = hop_detach,
	.start = hop_start,
	.abort = hop_abort,	/* no .ready: answers come through the prober */
};
