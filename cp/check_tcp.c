/* SPDX-License-Identifier: BSD-3-Clause */
/* The tcp check: the backend accepts a connection. Closed with a reset at
 * once, as HAProxy's plain connect check does. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "health.h"

int fl_check_connect_result(struct fl_checker *c, uint32_t events)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr == 0 && (events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLOUT))
		soerr = ECONNRESET;
	if (soerr) {
		snprintf(c->reason, sizeof(c->reason), "connect %s",
			 soerr == ECONNREFUSED ? "refused" : strerror(soerr));
		return -soerr;
	}
	return 0;
}

static void tcp_ready(struct fl_loop *loop, struct fl_io *io, uint32_t events)
{
	struct fl_checker *c = io->arg;

	(void)loop;
	if (fl_check_connect_result(c, events) < 0) {
		fl_checker_done(c, false);
		return;
	}
	snprintf(c->reason, sizeof(c->reason), "connected");
	fl_checker_done(c, true);
}

static int tcp_start(struct fl_checker *c)
{
	return fl_checker_connect(c, tcp_ready);
}

static void tcp_abort(struct fl_checker *c)
{
	(void)c;	/* the socket is all there is; the caller closes it */
}

const struct fl_check_ops fl_check_tcp_ops = {
	.name = "tcp",
	.start = tcp_start,
	.abort = tcp_abort,
};
