/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Health checkers of fulcrum-cp: one checker per checked target and
 * settings (cp/daemon.h shares it between backends), one probe at a
 * time, one ops table per check type (check_tcp.c, check_tcp_half_open.c,
 * check_http.c), rise/fall hysteresis as keepalived and HAProxy do it. A
 * checker runs on the loop of cp/loop.h and reports only state changes,
 * through its callback.
 *
 * Timing: a probe starts every interval (plus or minus 5 % of jitter, so
 * checks started together drift apart), measured from the previous probe's
 * start; a probe not finished after timeout_ms fails with "timeout". The
 * first probe starts after the delay given to fl_checker_start: the caller
 * staggers its checkers (fl_checker_stagger_ms). Starts and deadlines fall
 * on a grid of 1/200 of the interval, so that checks share wakeups.
 *
 * Sockets: a checker keeps one socket across its probes. A probe connects
 * it; the probe's end dissolves the connection with connect(AF_UNSPEC),
 * which resets an open connection (no TIME_WAIT on either side, as
 * HAProxy's linger-0 close) and leaves the socket unbound, ready for the
 * next connect. The socket is registered once, edge-triggered for both
 * directions. A tcp check then costs two system calls and a share of
 * epoll_wait, not seven (no socket, epoll_ctl, setsockopt, getsockopt or
 * close per probe); the price is one fd per check (cp/daemon.h shares a
 * check between the backends that probe the same target the same way).
 *
 * tcp-half-open (check_tcp_half_open.c) has no socket of its own: its
 * checkers share one raw socket per address family, and hold a source port
 * from attach to detach. c->io stays closed for it.
 */
#ifndef FL_HEALTH_H
#define FL_HEALTH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "config.h"
#include "loop.h"

#define FL_HC_REASON_LEN 160

struct fl_checker;

/* A check type. start begins one probe on c->target (non-blocking, through
 * fl_checker_connect) and returns 0, or -errno with c->reason filled (the
 * probe then fails at once). ready gets the events of the checker's socket
 * (if it has one) while the probe runs; being edge-triggered, it must go on
 * until the socket would block, and it ends the probe with fl_checker_done.
 * abort frees whatever a running probe holds; it is called on timeout and
 * on stop, never after fl_checker_done. On timeout c->reason already says
 * "timeout after N ms", and abort may add what it knows of the cause.
 * attach and detach, when set, take and give back what the checker holds
 * for its whole life (c->held): attach at the end of fl_checker_init and in
 * a fl_checker_start after a stop (0, or -errno with a message), detach in
 * fl_checker_stop. */
struct fl_check_ops {
	const char *name;
	int (*attach)(struct fl_checker *c, char *err, size_t errlen);
	void (*detach)(struct fl_checker *c);
	int (*start)(struct fl_checker *c);
	void (*ready)(struct fl_checker *c, uint32_t events);
	void (*abort)(struct fl_checker *c);
};

extern const struct fl_check_ops fl_check_tcp_ops;
extern const struct fl_check_ops fl_check_http_ops;	/* http and https */
extern const struct fl_check_ops fl_check_tcp_half_open_ops;

typedef void (*fl_checker_cb)(struct fl_checker *c, void *arg);

struct fl_checker {
	/* What every probe touches first, in three cache lines, then
	 * reason and hc (its numbers first): with 10,000 checkers, each line
	 * a probe touches is a cache miss, 20,000 times a second. */
	struct fl_timer timer;		/* next probe, or the running one's deadline */
	struct fl_loop *loop;
	const struct fl_check_ops *ops;
	void *held;			/* what ops->attach took; NULL when none */
	void *probe;			/* the type's per-probe state */
	struct fl_io io;		/* the checker's socket; fd -1 when none */
	uint64_t probe_start_ns;
	bool running;			/* a probe is in flight */
	bool started;			/* fl_checker_start called, not stopped */
	/* state */
	bool up;
	bool last_ok;
	uint32_t ok_run;		/* consecutive successes */
	uint32_t fail_run;		/* consecutive failures */
	socklen_t target_len;
	uint64_t n_checks;
	uint64_t n_failures;
	/* what the callback is told */
	fl_checker_cb cb;
	void *cb_arg;
	struct sockaddr_storage target;
	char reason[FL_HC_REASON_LEN];	/* of the last probe */
	struct fl_hc_config hc;
	uint64_t n_changes;
	uint64_t last_change_ns;
	char target_text[64];		/* "ADDR:PORT", for messages and Host */
};

/*
 * Prepares a checker for the address and port to probe (host order port),
 * starting in state `up` with no run counted. hc->type must not be
 * FL_HC_NONE. Does not start probing. 0, or -errno with a message:
 * -EINVAL for a check that cannot be, or what attach failed with.
 */
int fl_checker_init(struct fl_checker *c, struct fl_loop *loop, const struct fl_hc_config *hc,
		    const union fl_addr *addr, __u8 family, __u16 port, bool up,
		    fl_checker_cb cb, void *cb_arg, char *err, size_t errlen);

/* Schedules the first probe first_delay_ms from the loop's now, taking
 * again what a check type holds if fl_checker_stop gave it back. 0, or
 * -errno (c->reason says why). */
int fl_checker_start(struct fl_checker *c, uint32_t first_delay_ms);

/* Stops probing, frees the running probe and gives back what the check
 * type holds (tcp-half-open: its source port); the state stays. Started
 * again, the checker takes it anew. */
void fl_checker_stop(struct fl_checker *c);

/* For check types: ends the running probe. ok false with c->reason set. */
void fl_checker_done(struct fl_checker *c, bool ok);

/* A first delay in [0, interval) for checker i of n: spread evenly, with
 * up to a tenth of the spacing of random jitter (HAProxy spread_checks). */
uint32_t fl_checker_stagger_ms(uint32_t interval_ms, uint32_t i, uint32_t n);

/* "3 of fall 3" / "2 of rise 2": the run that made the last change. */
const char *fl_checker_run_text(const struct fl_checker *c, char *buf, size_t len);

/* The process-wide TLS client contexts (verify on / off), made on first use.
 * NULL with a message when OpenSSL fails. */
struct ssl_ctx_st *fl_check_tls_ctx(bool verify, char *err, size_t errlen);
void fl_check_tls_fini(void);

/* For check types: 32 random bits from a xorshift seeded by getrandom;
 * enough for jitter and SYN sequence numbers, not for secrets. */
uint32_t fl_check_random(void);

/* For check types: starts connecting the checker's socket (opened on first
 * use) to c->target. 0 or -errno with c->reason set. */
int fl_checker_connect(struct fl_checker *c);
/* For check types: what the events of a connecting socket say. 0 when it is
 * connected, -EINPROGRESS when not yet (no reason set), else -errno with
 * c->reason set ("connect refused"). */
int fl_check_connect_result(struct fl_checker *c, uint32_t events);

#endif /* FL_HEALTH_H */
