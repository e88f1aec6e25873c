/* SPDX-License-Identifier: BSD-3-Clause */
/* The checker state machine of cp/health.h: scheduling, timeouts,
 * rise/fall. The probes themselves live in check_*.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "addr.h"
#include "health.h"

#define NS_PER_MS 1000000ull

/* xorshift64*: jitter needs no quality, only no lockstep between processes;
 * tcp-half-open's sequence numbers need no more than not being guessable
 * from the clock and the pid, hence the seed from getrandom */
static uint64_t rng_state;

uint32_t fl_check_random(void)
{
	if (rng_state == 0) {
		if (getrandom(&rng_state, sizeof(rng_state), GRND_NONBLOCK) != sizeof(rng_state))
			rng_state = fl_mono_ns() ^ ((uint64_t)getpid() << 32);
		rng_state |= 1;		/* 0 is xorshift's fixed point */
	}
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)(rng_state * 0x2545f4914f6cdd1dull >> 32);
}

static uint32_t rng_below(uint32_t n)
{
	return n ? fl_check_random() % n : 0;
}

uint32_t fl_checker_stagger_ms(uint32_t interval_ms, uint32_t i, uint32_t n)
{
	uint64_t spacing, base;

	if (n == 0 || interval_ms == 0)
		return 0;
	spacing = interval_ms / n;
	base = (uint64_t)interval_ms * (i % n) / n;
	return (uint32_t)((base + rng_below((uint32_t)(spacing / 10 + 1))) % interval_ms);
}

static const struct fl_check_ops *ops_for(enum fl_hc_type t)
{
	switch (t) {
	case FL_HC_TCP:
		return &fl_check_tcp_ops;
	case FL_HC_TCP_HALF_OPEN:
		return &fl_check_tcp_half_open_ops;
	case FL_HC_HTTP:
	case FL_HC_HTTPS:
		return &fl_check_http_ops;
	case FL_HC_NONE:
		break;
	}
	return NULL;
}

static void on_timer(struct fl_loop *loop, struct fl_timer *t);

int fl_checker_init(struct fl_checker *c, struct fl_loop *loop, const struct fl_hc_config *hc,
		    const union fl_addr *addr, __u8 family, __u16 port, bool up,
		    fl_checker_cb cb, void *cb_arg, char *err, size_t errlen)
{
	char a[FL_ADDR_STRLEN];

	memset(c, 0, sizeof(*c));
	c->ops = ops_for(hc->type);
	if (!c->ops || hc->timeout_ms == 0 || hc->interval_ms == 0 || port == 0) {
		snprintf(err, errlen, "no check of type %s on port %u", fl_hc_type_name(hc->type), port);
		return -EINVAL;
	}
	c->hc = *hc;
	c->loop = loop;
	c->up = up;
	c->cb = cb;
	c->cb_arg = cb_arg;
	c->io.fd = -1;
	fl_timer_init(&c->timer, on_timer, c);
	fl_addr_format(addr, family, a, sizeof(a));
	if (family == FL_AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&c->target;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = addr->v4;
		c->target_len = sizeof(*sin);
		snprintf(c->target_text, sizeof(c->target_text), "%s:%u", a, port);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&c->target;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, addr->bytes, 16);
		c->target_len = sizeof(*sin6);
		snprintf(c->target_text, sizeof(c->target_text), "[%s]:%u", a, port);
	}
	return c->ops->attach ? c->ops->attach(c, err, errlen) : 0;
}

/*
 * Probes start, and time out, on a grid of 1/200 of the interval (5 ms for
 * a second, never under 1 ms), so that the checks due close together share
 * one wakeup of the loop: 10,000 checks a second cost 200 wakeups, not
 * 1,000, and a wakeup costs about as much as a tcp check (bench/RESULTS.md).
 * The grid is a tenth of the jitter; a deadline is only ever moved later.
 */
static uint64_t grid_ns(const struct fl_checker *c)
{
	uint64_t g = (uint64_t)c->hc.interval_ms * NS_PER_MS / 200;

	return g > NS_PER_MS ? g : NS_PER_MS;
}

static uint64_t grid_up(const struct fl_checker *c, uint64_t t)
{
	uint64_t g = grid_ns(c);

	return (t + g - 1) / g * g;
}

/* Next probe one interval after the last one started, +-5 % jitter, at the
 * nearest grid point (rounding up every time would stretch the interval). */
static void schedule_next(struct fl_checker *c)
{
	uint64_t iv = (uint64_t)c->hc.interval_ms * NS_PER_MS;
	uint64_t jitter = iv / 20;
	uint64_t when = c->probe_start_ns + iv - jitter + rng_below((uint32_t)(2 * jitter / 1000 + 1)) * 1000ull;

	when = grid_up(c, when - grid_ns(c) / 2);
	/* a loop that fell behind does not fire a burst of catch-up probes */
	if (when < c->loop->now_ns)
		when = c->loop->now_ns;
	fl_timer_at(c->loop, &c->timer, when);
}

static void probe_start(struct fl_checker *c)
{
	c->probe_start_ns = c->loop->now_ns;
	c->running = true;
	c->reason[0] = '\0';
	fl_timer_at(c->loop, &c->timer,
		    grid_up(c, c->probe_start_ns + (uint64_t)c->hc.timeout_ms * NS_PER_MS));
	if (c->ops->start(c) < 0) {
		if (c->reason[0] == '\0')
			snprintf(c->reason, sizeof(c->reason), "cannot start probe");
		fl_checker_done(c, false);
	}
}

static void on_timer(struct fl_loop *loop, struct fl_timer *t)
{
	struct fl_checker *c = t->arg;

	(void)loop;
	if (!c->running) {
		probe_start(c);
		return;
	}
	snprintf(c->reason, sizeof(c->reason), "timeout after %u ms", c->hc.timeout_ms);
	c->ops->abort(c);
	fl_checker_done(c, false);
}

/* Closes the socket with a reset, should a connection be open. */
static void socket_close(struct fl_checker *c)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int fd = c->io.fd;

	if (fd < 0)
		return;
	fl_io_del(c->loop, &c->io);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* Ends the probe's connection (a reset when it was open), keeping the
 * socket for the next probe; one that refuses is closed, and the next probe
 * opens another. */
static void socket_disconnect(struct fl_checker *c)
{
	struct sockaddr unspec = { .sa_family = AF_UNSPEC };

	if (c->io.fd >= 0 && connect(c->io.fd, &unspec, sizeof(unspec)) < 0)
		socket_close(c);
}

void fl_checker_done(struct fl_checker *c, bool ok)
{
	bool changed = false;

	if (!c->running)
		return;
	c->running = false;
	socket_disconnect(c);
	c->n_checks++;
	c->last_ok = ok;
	if (ok) {
		c->fail_run = 0;
		c->ok_run++;
		if (!c->up && c->ok_run >= c->hc.rise)
			changed = true;
	} else {
		c->n_failures++;
		c->ok_run = 0;
		c->fail_run++;
		if (c->up && c->fail_run >= c->hc.fall)
			changed = true;
	}
	if (c->started)
		schedule_next(c);
	else
		fl_timer_cancel(c->loop, &c->timer);
	if (changed) {
		c->up = ok;
		c->n_changes++;
		c->last_change_ns = c->loop->now_ns;
		if (c->cb)
			c->cb(c, c->cb_arg);
	}
}

int fl_checker_start(struct fl_checker *c, uint32_t first_delay_ms)
{
	/* started again after fl_checker_stop gave back what attach took */
	if (c->ops->attach && !c->held) {
		int rc = c->ops->attach(c, c->reason, sizeof(c->reason));
		if (rc < 0)
			return rc;
	}
	c->started = true;
	return fl_timer_at(c->loop, &c->timer,
			   grid_up(c, c->loop->now_ns + (uint64_t)first_delay_ms * NS_PER_MS));
}

void fl_checker_stop(struct fl_checker *c)
{
	c->started = false;
	if (c->running) {
		c->ops->abort(c);
		c->running = false;
	}
	if (c->ops->detach)
		c->ops->detach(c);
	socket_close(c);
	fl_timer_cancel(c->loop, &c->timer);
}

const char *fl_checker_run_text(const struct fl_checker *c, char *buf, size_t len)
{
	if (c->up)
		snprintf(buf, len, "%u of rise %u", c->ok_run, c->hc.rise);
	else
		snprintf(buf, len, "%u of fall %u", c->fail_run, c->hc.fall);
	return buf;
}

/* The socket's events go to the check type only while a probe runs: an
 * idle socket reports its own reset, and nothing else. */
static void on_io(struct fl_loop *loop, struct fl_io *io, uint32_t events)
{
	struct fl_checker *c = io->arg;

	(void)loop;
	if (c->running)
		c->ops->ready(c, events);
}

static int socket_open(struct fl_checker *c)
{
	int fd, rc;

	fd = socket(c->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0) {
		rc = -errno;
		snprintf(c->reason, sizeof(c->reason), "socket: %s", strerror(errno));
		return rc;
	}
	if (c->hc.type != FL_HC_TCP) {
		/* a small request, an answer awaited: send at once */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	} else {
		/* A connect check ends at the SYN-ACK: on a connecting socket,
		 * TCP_DEFER_ACCEPT makes Linux hold back the handshake's last
		 * ACK (tcp_rcv_synsent_state_process, "save one ACK"), and the
		 * reset follows at once. The backend sees SYN, SYN-ACK, RST, as
		 * from HAProxy's connect check: its listener never creates or
		 * queues a connection, and a check costs both hosts a packet and
		 * a socket less. TCP_QUICKACK off would do the same, but the
		 * AF_UNSPEC disconnect clears it; this one lasts the socket. */
		int secs = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
	}
	rc = fl_io_add(c->loop, &c->io, fd, EPOLLIN | EPOLLOUT | EPOLLET, on_io, c);
	if (rc < 0) {
		snprintf(c->reason, sizeof(c->reason), "epoll: %s", strerror(-rc));
		close(fd);
		return rc;
	}
	return 0;
}

int fl_checker_connect(struct fl_checker *c)
{
	int rc;

	if (c->io.fd < 0) {
		rc = socket_open(c);
		if (rc < 0)
			return rc;
	}
	if (connect(c->io.fd, (struct sockaddr *)&c->target, c->target_len) == 0 || errno == EINPROGRESS)
		return 0;
	rc = -errno;
	snprintf(c->reason, sizeof(c->reason), "connect: %s",
		 errno == ECONNREFUSED ? "refused" : strerror(errno));
	return rc;
}
