/* SPDX-License-Identifier: BSD-3-Clause */
/* The control socket's server: cp/ctl.h. The operations: cp/ctl_ops.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "ctl.h"

#define NS_PER_MS 1000000ull
#define READ_CHUNK 16384u
#define READ_BUDGET (4u * READ_CHUNK)	/* per callback: one client cannot hog the loop */
#define ACCEPT_BUDGET 64
#define SWEEP_MS 1000u

struct ctl_client {
	struct fl_io io;
	struct fl_ctl *ctl;
	struct ctl_client *prev, *next;
	char *in;		/* the request line being read */
	size_t in_len, in_cap;
	char *out;		/* answers not yet written */
	size_t out_len, out_off, out_cap;
	uint64_t last_ns;	/* last progress either way */
	bool closing;		/* close once out is written */
};

struct fl_ctl {
	struct fl_cp *cp;
	struct fl_io lio;
	struct fl_timer sweep;
	struct ctl_client *clients;
	unsigned n_clients;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint64_t n_accepted, n_refused, n_requests;
};

static void client_close(struct ctl_client *c)
{
	struct fl_ctl *ctl = c->ctl;

	fl_io_del(&ctl->cp->loop, &c->io);
	close(c->io.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		ctl->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ctl->n_clients--;
	free(c->in);
	free(c->out);
	free(c);
}

static int out_append(struct ctl_client *c, const char *s, size_t n)
{
	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *p;

		while (cap < c->out_len + n)
			cap *= 2;
		if (cap > FL_CTL_MAX_OUT + FL_CTL_MAX_LINE)
			return -ENOBUFS;
		p = realloc(c->out, cap);
		if (!p)
			return -ENOMEM;
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, n);
	c->out_len += n;
	return 0;
}

static void answer(struct ctl_client *c, const char *line, size_t len)
{
	static const char nomem[] = "{\"ok\":false,\"error\":\"out of memory\"}";
	char *a = fl_ctl_handle(c->ctl->cp, line, len);

	c->ctl->n_requests++;
	if ((a ? out_append(c, a, strlen(a)) : out_append(c, nomem, sizeof(nomem) - 1)) < 0 ||
	    out_append(c, "\n", 1) < 0)
		c->closing = true;	/* an answer it would not take: give up on it */
	free(a);
}

static void answer_error(struct ctl_client *c, const char *msg)
{
	char buf[160];
	int n = snprintf(buf, sizeof(buf), "{\"ok\":false,\"error\":\"%s\"}\n", msg);

	out_append(c, buf, (size_t)n);
}

/* Answers every complete line in c->in; keeps the partial rest. */
static void take_lines(struct ctl_client *c)
{
	size_t start = 0;
	char *nl;

	while (!c->closing && (nl = memchr(c->in + start, '\n', c->in_len - start))) {
		size_t len = (size_t)(nl - (c->in + start));

		if (len && c->in[start + len - 1] == '\r')
			len--;
		if (len)	/* empty lines are keep-alives, not requests */
			answer(c, c->in + start, len);
		start = (size_t)(nl - c->in) + 1;
	}
	memmove(c->in, c->in + start, c->in_len - start);
	c->in_len -= start;
	if (!c->closing && c->in_len >= FL_CTL_MAX_LINE) {
		answer_error(c, "request line longer than 65536 bytes; closing");
		c->closing = true;
	}
}

/* Writes what it can; the events to watch next, or 0 when c is closed. */
static uint32_t flush(struct ctl_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->io.fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return EPOLLOUT;	/* no new request until these are read */
		if (n <= 0) {
			client_close(c);
			return 0;
		}
		c->out_off += (size_t)n;
		c->last_ns = c->ctl->cp->loop.now_ns;
	}
	c->out_off = c->out_len = 0;
	if (c->closing) {
		client_close(c);
		return 0;
	}
	return EPOLLIN | EPOLLRDHUP;
}

static bool read_some(struct ctl_client *c)
{
	size_t budget = READ_BUDGET;

	while (budget && !c->closing) {
		size_t want = READ_CHUNK;
		ssize_t n;

		if (c->in_cap - c->in_len < want) {
			size_t cap = c->in_len + want;
			char *p;

			if (cap > FL_CTL_MAX_LINE + READ_CHUNK)
				cap = FL_CTL_MAX_LINE + READ_CHUNK;
			p = realloc(c->in, cap);
			if (!p)
				return false;
			c->in = p;
			c->in_cap = cap;
		}
		want = c->in_cap - c->in_len;
		n = recv(c->io.fd, c->in + c->in_len, want, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n < 0)
			return false;
		if (n == 0) {
			/* half-closed: a last request without its newline still
			 * gets its answer, then the connection ends */
			if (c->in_len && c->in_len < FL_CTL_MAX_LINE)
				answer(c, c->in, c->in_len);
			c->in_len = 0;
			c->closing = true;
			return true;
		}
		c->in_len += (size_t)n;
		c->last_ns = c->ctl->cp->loop.now_ns;
		budget -= (size_t)n < budget ? (size_t)n : budget;
		take_lines(c);
		if (c->out_len > c->out_off)
			break;	/* answer before reading more */
	}
	return true;
}

static void on_client(struct fl_loop *loop, struct fl_io *io, uint32_t events)
{
	struct ctl_client *c = io->arg;
	uint32_t want;

	if (events & EPOLLERR) {
		client_close(c);
		return;
	}
	if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) && c->out_len == c->out_off &&
	    !read_some(c)) {
		client_close(c);
		return;
	}
	want = flush(c);
	if (want && want != io->events && fl_io_mod(loop, io, want) < 0)
		client_close(c);
}

static void on_accept(struct fl_loop *loop, struct fl_io *io, uint32_t events)
{
	struct fl_ctl *ctl = io->arg;

	(void)events;
	for (int i = 0; i < ACCEPT_BUDGET; i++) {
		int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ctl_client *c;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				fl_log(FL_LOG_WARN, "control socket: accept: %s", strerror(errno));
			return;
		}
		if (ctl->n_clients >= FL_CTL_MAX_CLIENTS || !(c = calloc(1, sizeof(*c)))) {
			ctl->n_refused++;
			close(fd);	/* too many at once: closed, never queued */
			continue;
		}
		c->ctl = ctl;
		c->last_ns = loop->now_ns;
		if (fl_io_add(loop, &c->io, fd, EPOLLIN | EPOLLRDHUP, on_client, c) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = ctl->clients;
		if (c->next)
			c->next->prev = c;
		ctl->clients = c;
		ctl->n_clients++;
		ctl->n_accepted++;
	}
}

/* Closes clients that made no progress for FL_CTL_IDLE_MS: a stalled
 * half line or an unread answer does not hold memory for ever. */
static void on_sweep(struct fl_loop *loop, struct fl_timer *t)
{
	struct fl_ctl *ctl = t->arg;
	uint64_t limit = FL_CTL_IDLE_MS * NS_PER_MS;

	for (struct ctl_client *c = ctl->clients, *next; c; c = next) {
		next = c->next;
		if (loop->now_ns - c->last_ns > limit)
			client_close(c);
	}
	fl_timer_in(loop, t, SWEEP_MS);
}

/* Refuses to take the path from a live server; replaces a stale socket. */
static int clear_path(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "control socket %s: exists and is not a socket", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, path, strlen(path));
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "control socket %s: another process serves it", path);
		return -EADDRINUSE;
	}
	unlink(path);
	return 0;
}

/* /run/fulcrum may not exist yet on a fresh boot (systemd's RuntimeDirectory
 * makes it when it runs us); one level is made, the rest is the admin's. */
static void make_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0755);
	}
}

int fl_ctl_open(struct fl_cp *cp, const char *path, unsigned mode, struct fl_ctl **out,
		char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct fl_ctl *ctl;
	mode_t old;
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path) || !path[0]) {
		snprintf(err, errlen, "control socket %s: path too long", path);
		return -ENAMETOOLONG;
	}
	make_parent(path);
	rc = clear_path(path, err, errlen);
	if (rc < 0)
		return rc;
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ctl->cp = cp;
	ctl->lio.fd = -1;
	snprintf(ctl->path, sizeof(ctl->path), "%s", path);
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	/* never reachable by more than mode allows, not even for a moment */
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chmod(path, mode & 07777) < 0 || listen(fd, 128) < 0) {
		rc = -errno;
		goto fail_fd;
	}
	rc = fl_io_add(&cp->loop, &ctl->lio, fd, EPOLLIN, on_accept, ctl);
	if (rc < 0)
		goto fail_fd;
	fl_timer_init(&ctl->sweep, on_sweep, ctl);
	fl_timer_in(&cp->loop, &ctl->sweep, SWEEP_MS);
	*out = ctl;
	return 0;
fail_fd:
	close(fd);
	unlink(path);
fail:
	snprintf(err, errlen, "control socket %s: %s", path, strerror(-rc));
	free(ctl);
	return rc;
}

void fl_ctl_close(struct fl_ctl *ctl)
{
	if (!ctl)
		return;
	while (ctl->clients)
		client_close(ctl->clients);
	fl_timer_cancel(&ctl->cp->loop, &ctl->sweep);
	fl_io_del(&ctl->cp->loop, &ctl->lio);
	close(ctl->lio.fd);
	unlink(ctl->path);
	free(ctl);
}
