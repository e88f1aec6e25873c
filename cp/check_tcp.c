/* SPDX-License-Identifier: BSD-3-Clause */
/* The tcp check: the backend's listener answers connect() with a SYN-ACK.
 * Reset at once, before the handshake's last ACK (health.c, socket_open),
 * as HAProxy's plain connect check does. */
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

	/* writable without an error or a hangup is connected: only a failure
	 * needs SO_ERROR, for its reason */
	if (!(events & (EPOLLERR | EPOLLHUP)))
		return events & EPOLLOUT ? 0 : -EINPROGRESS;
	if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr == 0 && !(events & EPOLLOUT))
		soerr = ECONNRESET;
	if (soerr) {
		snprintf(c->reason, sizeof(c->reason), "connect %s",
			 soerr == ECONNREFUSED ? "refused" : strerror(soerr));
		return -soerr;
	}
	return 0;
}

static void tcp_ready(struct fl_checker *c, uint32_t events)
{
	int rc = fl_check_connect_result(c, events);

	if (rc == -EINPROGRESS)
		return;
	if (rc < 0) {
		fl_checker_done(c, false);
		return;
	}
	snprintf(c->reason, sizeof(c->reason), "connected");
	fl_checker_done(c, true);
}

static int tcp_start(struct fl_checker *c)
{
	return fl_checker_connect(c);
}

static void tcp_abort(struct fl_checker *c)
{
	(void)c;	/* the connection is all there is; fl_checker_done ends it */
}

const struct fl_check_ops fl_check_tcp_ops = {
	.name = "tcp",
	.start = tcp_start,
	.ready = tcp_ready,
	.abort = tcp_abort,
};
