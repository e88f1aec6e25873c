/* SPDX-License-Identifier: BSD-3-Clause */
/* The event loop of cp/loop.h: timer order, cancellation, many timers,
 * timers beyond the wheel, callbacks re-arming and cancelling due timers,
 * timerfd wakeups, fd readiness, and fds before timers. Every wait is
 * bounded. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/resource.h>

#include "check.h"
#include "loop.h"
#include "rng.h"

#define MS 1000000ull

struct rec {
	struct fl_timer t;
	int id;
	uint64_t fired_ns;
	int *order;
	int *n_order;
};

static void rec_cb(struct fl_loop *loop, struct fl_timer *t)
{
	struct rec *r = t->arg;

	r->fired_ns = loop->now_ns;
	if (r->order)
		r->order[(*r->n_order)++] = r->id;
}

/* Runs the loop until cond or deadline_ms; false on the deadline. */
#define RUN_UNTIL(loop, cond, deadline_ms)                                    \
	({                                                                    \
		uint64_t end_ = fl_mono_ns() + (deadline_ms) * MS;            \
		while (!(cond) && fl_mono_ns() < end_)                        \
			fl_loop_run_once(loop, 10);                           \
		(bool)(cond);                                                 \
	})

static int init(struct fl_loop *l)
{
	char err[128];
	int rc = fl_loop_init(l, err, sizeof(err));

	CHECK(rc == 0, "loop init: %s", err);
	return rc;
}

static void heap_order(void)
{
	struct fl_loop l;
	struct rec r[8];
	static const int delay[8] = { 50, 10, 40, 20, 70, 30, 60, 0 };
	int order[8], n = 0;

	REQUIRE(init(&l) == 0, "init");
	for (int i = 0; i < 8; i++) {
		r[i] = (struct rec){ .id = i, .order = order, .n_order = &n };
		fl_timer_init(&r[i].t, rec_cb, &r[i]);
		fl_timer_in(&l, &r[i].t, (uint64_t)delay[i]);
	}
	CHECK(l.n_timers == 8, "%u timers", l.n_timers);
	CHECK(RUN_UNTIL(&l, n == 8, 2000), "only %d fired", n);
	static const int want[8] = { 7, 1, 3, 5, 2, 0, 6, 4 };
	for (int i = 0; i < 8 && i < n; i++)
		CHECK(order[i] == want[i], "position %d: timer %d, want %d", i, order[i], want[i]);
	for (int i = 0; i < 8; i++)
		CHECK(r[i].fired_ns >= r[i].t.when_ns, "timer %d fired early", i);
	CHECK(l.n_timers == 0, "%u timers left", l.n_timers);
	fl_loop_fini(&l);
}

static void cancel(void)
{
	struct fl_loop l;
	struct rec a = { .id = 1 }, b = { .id = 2 }, c = { .id = 3 };

	REQUIRE(init(&l) == 0, "init");
	fl_timer_init(&a.t, rec_cb, &a);
	fl_timer_init(&b.t, rec_cb, &b);
	fl_timer_init(&c.t, rec_cb, &c);
	fl_timer_in(&l, &a.t, 20);
	fl_timer_in(&l, &b.t, 10);
	fl_timer_in(&l, &c.t, 30);
	fl_timer_cancel(&l, &b.t);	/* the earliest: the timerfd must move */
	fl_timer_cancel(&l, &b.t);	/* twice is nothing */
	CHECK(!fl_timer_armed(&b.t), "b still armed");
	fl_timer_in(&l, &c.t, 5);	/* re-arm earlier */
	CHECK(RUN_UNTIL(&l, a.fired_ns && c.fired_ns, 2000), "a or c did not fire");
	CHECK(c.fired_ns < a.fired_ns, "re-armed c fired after a");
	/* a little longer: b must stay silent */
	RUN_UNTIL(&l, false, 50);
	CHECK(b.fired_ns == 0, "cancelled timer fired");
	fl_loop_fini(&l);
}

struct many_ctx {
	uint64_t last;
	unsigned fired;
	unsigned out_of_order;
};

static struct many_ctx many_state;

static void many_cb(struct fl_loop *loop, struct fl_timer *t)
{
	(void)loop;
	if (t->when_ns < many_state.last)
		many_state.out_of_order++;
	many_state.last = t->when_ns;
	many_state.fired++;
}

static void many_timers(void)
{
	enum { N = 20000 };
	struct fl_timer *t = calloc(N, sizeof(*t));
	struct fl_loop l;
	struct rng rng = { 42 };
	unsigned cancelled = 0;

	REQUIRE(t && init(&l) == 0, "init");
	for (unsigned i = 0; i < N; i++) {
		fl_timer_init(&t[i], many_cb, NULL);
		fl_timer_at(&l, &t[i], l.now_ns + (rng_next(&rng) % 200) * MS + 1);
	}
	/* cancel and re-arm some at random: heap positions must follow */
	for (unsigned i = 0; i < N; i += 3) {
		fl_timer_cancel(&l, &t[i]);
		cancelled++;
	}
	/* re-arm some, cancelled ones among them */
	for (unsigned i = 1; i < N; i += 7) {
		if (!fl_timer_armed(&t[i]))
			cancelled--;
		fl_timer_at(&l, &t[i], l.now_ns + (rng_next(&rng) % 200) * MS + 1);
	}
	CHECK(l.n_timers == N - cancelled, "%u armed, want %u", l.n_timers, N - cancelled);
	memset(&many_state, 0, sizeof(many_state));
	CHECK(RUN_UNTIL(&l, many_state.fired == N - cancelled, 3000), "%u of %u fired",
	      many_state.fired, N - cancelled);
	CHECK(many_state.out_of_order == 0, "%u out of order", many_state.out_of_order);
	CHECK(l.n_timers == 0, "%u timers left", l.n_timers);
	fl_loop_fini(&l);
	free(t);
}

/* Timers due after the wheel's span wait in the heap, leave it when
 * re-armed nearer or cancelled, and move to the wheel as it comes near:
 * the far one fires on time, after the near ones. */
static void beyond_wheel(void)
{
	const uint64_t far_ms = FL_WHEEL_SLOTS + 10;	/* in the wheel after 10 ms */
	struct fl_loop l;
	struct rec far = { .id = 1 }, near = { .id = 2 }, pulled = { .id = 3 }, gone = { .id = 4 };
	int order[4], n = 0;

	REQUIRE(init(&l) == 0, "init");
	struct rec *all[] = { &far, &near, &pulled, &gone };
	for (int i = 0; i < 4; i++) {
		all[i]->order = order;
		all[i]->n_order = &n;
		fl_timer_init(&all[i]->t, rec_cb, all[i]);
	}
	fl_timer_in(&l, &far.t, far_ms);
	fl_timer_in(&l, &near.t, 30);
	fl_timer_in(&l, &pulled.t, far_ms);
	fl_timer_in(&l, &gone.t, far_ms + 50);
	CHECK(l.n_heap == 3 && l.n_timers == 4, "%u in the heap, %u armed", l.n_heap, l.n_timers);
	fl_timer_in(&l, &pulled.t, 20);
	fl_timer_cancel(&l, &gone.t);
	CHECK(l.n_heap == 1 && l.n_timers == 3, "%u in the heap, %u armed", l.n_heap, l.n_timers);
	CHECK(RUN_UNTIL(&l, n == 2, 2000), "near timers: %d fired", n);
	CHECK(l.n_heap == 0, "the far timer is still in the heap");
	CHECK(RUN_UNTIL(&l, n == 3, far_ms + 2000), "far timer: %d fired", n);
	CHECK(n == 3 && order[0] == 3 && order[1] == 2 && order[2] == 1, "order %d %d %d",
	      order[0], order[1], order[2]);
	CHECK(far.fired_ns >= far.t.when_ns, "far timer fired early");
	CHECK(gone.fired_ns == 0 && l.n_timers == 0, "cancelled timer fired, %u armed", l.n_timers);
	fl_loop_fini(&l);
}

struct rearm_ctx {
	struct fl_timer self;		/* re-arms itself for now */
	struct fl_timer victim;		/* due with self, cancelled by it */
	int self_runs;
	int victim_runs;
};

static void rearm_self(struct fl_loop *loop, struct fl_timer *t)
{
	struct rearm_ctx *x = t->arg;

	x->self_runs++;
	fl_timer_cancel(loop, &x->victim);
	if (x->self_runs < 3)
		fl_timer_at(loop, t, loop->now_ns);
}

static void victim_cb(struct fl_loop *loop, struct fl_timer *t)
{
	struct rearm_ctx *x = t->arg;

	(void)loop;
	x->victim_runs++;
}

/* A callback that re-arms its timer for now runs again in the next
 * iteration, not in this one; one that cancels a timer due in the same
 * iteration keeps it from running. */
static void rearm_in_callback(void)
{
	struct rearm_ctx x = { 0 };
	struct fl_loop l;
	uint64_t start;

	REQUIRE(init(&l) == 0, "init");
	fl_timer_init(&x.self, rearm_self, &x);
	fl_timer_init(&x.victim, victim_cb, &x);
	/* the same due time: armed first, self fires first, with the
	 * victim in the list being run */
	fl_timer_in(&l, &x.self, 10);
	fl_timer_at(&l, &x.victim, x.self.when_ns);
	CHECK(RUN_UNTIL(&l, x.self_runs == 1, 1000), "self did not fire");
	CHECK(x.self_runs == 1, "self ran %d times in one iteration", x.self_runs);
	CHECK(x.victim_runs == 0 && !fl_timer_armed(&x.victim), "victim ran %d times", x.victim_runs);
	CHECK(fl_timer_armed(&x.self), "self not re-armed");
	start = fl_mono_ns();
	fl_loop_run_once(&l, 1000);
	CHECK(x.self_runs == 2 && fl_mono_ns() - start < 100 * MS, "re-armed timer: %d runs",
	      x.self_runs);
	fl_loop_run_once(&l, 1000);
	CHECK(x.self_runs == 3 && l.n_timers == 0, "%d runs, %u armed", x.self_runs, l.n_timers);
	fl_loop_fini(&l);
}

/* One epoll_wait wakes for a timer: the timerfd does the waking. */
static void timerfd_wakeup(void)
{
	struct fl_loop l;
	struct rec r = { .id = 1 };
	uint64_t start;
	int ran;

	REQUIRE(init(&l) == 0, "init");
	fl_timer_init(&r.t, rec_cb, &r);
	fl_timer_in(&l, &r.t, 30);
	start = fl_mono_ns();
	ran = fl_loop_run_once(&l, 2000);	/* would block 2 s without the timerfd */
	if (ran == 0)
		ran = fl_loop_run_once(&l, 2000);	/* tolerate one early wakeup */
	uint64_t took = fl_mono_ns() - start;
	CHECK(ran == 1 && r.fired_ns != 0, "timer did not fire (ran %d)", ran);
	CHECK(took >= 29 * MS && took < 500 * MS, "woke after %llu ms", (unsigned long long)(took / MS));
	/* a timer armed in the past fires at once */
	fl_timer_at(&l, &r.t, 1);
	r.fired_ns = 0;
	start = fl_mono_ns();
	fl_loop_run_once(&l, 2000);
	CHECK(r.fired_ns != 0 && fl_mono_ns() - start < 100 * MS, "past timer waited");
	/* the timerfd that fired is not left readable: an idle loop sleeps */
	start = fl_mono_ns();
	fl_loop_run_once(&l, 50);
	fl_loop_run_once(&l, 50);
	CHECK(fl_mono_ns() - start >= 90 * MS, "idle loop woke after %llu ms",
	      (unsigned long long)((fl_mono_ns() - start) / MS));
	fl_loop_fini(&l);
}

struct io_ctx {
	int reads;
	int writes;
	char got;
	struct fl_io *other;	/* deleted by the callback */
};

static void io_cb(struct fl_loop *loop, struct fl_io *io, uint32_t events)
{
	struct io_ctx *c = io->arg;

	if (events & EPOLLIN) {
		if (read(io->fd, &c->got, 1) == 1)
			c->reads++;
		if (c->other)
			fl_io_del(loop, c->other);
	}
	if (events & EPOLLOUT) {
		c->writes++;
		fl_io_mod(loop, io, EPOLLIN);
	}
}

static void fd_ready(void)
{
	struct fl_loop l;
	struct fl_io rio, wio, rio2;
	struct io_ctx rc = { 0 }, wc = { 0 }, rc2 = { 0 };
	int p[2], q[2];

	REQUIRE(init(&l) == 0, "init");
	REQUIRE(pipe2(p, O_NONBLOCK) == 0 && pipe2(q, O_NONBLOCK) == 0, "pipe");
	CHECK(fl_io_add(&l, &rio, p[0], EPOLLIN, io_cb, &rc) == 0, "add read end");
	CHECK(fl_io_add(&l, &wio, p[1], EPOLLOUT, io_cb, &wc) == 0, "add write end");
	/* nothing to read: only the write end is ready */
	fl_loop_run_once(&l, 100);
	CHECK(wc.writes == 1 && rc.reads == 0, "writes %d reads %d", wc.writes, rc.reads);
	/* now only EPOLLIN on the write end: it stays quiet */
	fl_loop_run_once(&l, 20);
	CHECK(wc.writes == 1, "write end fired after mod (%d)", wc.writes);
	CHECK(write(p[1], "x", 1) == 1, "write");
	CHECK(RUN_UNTIL(&l, rc.reads == 1, 1000) && rc.got == 'x', "no read");
	/* a callback deleting another io ready in the same batch */
	CHECK(fl_io_add(&l, &rio2, q[0], EPOLLIN, io_cb, &rc2) == 0, "add q");
	rc.other = &rio2;
	rc2.other = &rio;
	CHECK(write(p[1], "y", 1) == 1 && write(q[1], "z", 1) == 1, "write both");
	fl_loop_run_once(&l, 100);
	CHECK(rc.reads + rc2.reads == 2, "exactly one of two read: %d %d", rc.reads, rc2.reads);
	fl_io_del(&l, &rio);
	fl_io_del(&l, &rio2);
	fl_io_del(&l, &wio);
	for (int i = 0; i < 2; i++) {
		close(p[i]);
		close(q[i]);
	}
	fl_loop_fini(&l);
}

static struct {
	int io_runs;
	int io_runs_at_timer;
} drain;

static void drain_io(struct fl_loop *loop, struct fl_io *io, uint32_t events)
{
	uint64_t v;

	(void)loop;
	(void)events;
	if (read(io->fd, &v, sizeof(v)) == sizeof(v))
		drain.io_runs++;
}

static void drain_timer(struct fl_loop *loop, struct fl_timer *t)
{
	(void)loop;
	(void)t;
	drain.io_runs_at_timer = drain.io_runs;
}

/* More fds ready than one epoll_wait returns, and a timer due: every fd
 * callback runs before the timer, as a probe's answer must beat its
 * timeout. */
static void fds_before_timers(void)
{
	enum { N = 1500 };
	struct fl_io *io = calloc(N, sizeof(*io));
	struct rlimit rl;
	struct fl_timer t;
	struct fl_loop l;
	int n = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < N + 64 && rl.rlim_max >= N + 64) {
		rl.rlim_cur = N + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	REQUIRE(io && init(&l) == 0, "init");
	for (; n < N; n++) {
		int fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
		if (fd < 0)
			break;
		if (fl_io_add(&l, &io[n], fd, EPOLLIN, drain_io, NULL) < 0) {
			close(fd);
			break;
		}
	}
	CHECK(n == N, "only %d readable fds: %s", n, strerror(errno));
	drain.io_runs = 0;
	drain.io_runs_at_timer = -1;
	fl_timer_init(&t, drain_timer, NULL);
	fl_timer_at(&l, &t, 1);
	fl_loop_run_once(&l, 100);
	CHECK(drain.io_runs == n && drain.io_runs_at_timer == n, "%d of %d fds, %d before the timer",
	      drain.io_runs, n, drain.io_runs_at_timer);
	for (int i = 0; i < n; i++) {
		int fd = io[i].fd;
		fl_io_del(&l, &io[i]);
		close(fd);
	}
	fl_loop_fini(&l);
	free(io);
}

struct defer_ctx {
	struct fl_defer a, b;
	struct fl_timer t;
	int a_runs, b_runs, t_runs;
	bool a_after_t;
};

static void defer_a(struct fl_loop *loop, void *arg)
{
	struct defer_ctx *x = arg;

	x->a_runs++;
	x->a_after_t = x->t_runs == 1;
	fl_defer_cancel(loop, &x->b);	/* queued with a: it must not run */
	if (x->a_runs == 1)
		fl_defer(loop, &x->a);	/* again: in the next iteration */
}

static void defer_b(struct fl_loop *loop, void *arg)
{
	(void)loop;
	((struct defer_ctx *)arg)->b_runs++;
}

static void defer_timer(struct fl_loop *loop, struct fl_timer *t)
{
	struct defer_ctx *x = t->arg;

	x->t_runs++;
	fl_defer(loop, &x->b);
	fl_defer(loop, &x->a);	/* runs first: the list is LIFO */
	fl_defer(loop, &x->a);	/* queued already: nothing */
}

/* Deferred work runs once at the end of the iteration, after the timers
 * that queued it; a deferred callback may cancel another queued with it,
 * and one it queues again runs in the next iteration without a wait. */
static void deferred(void)
{
	struct defer_ctx x = { 0 };
	struct fl_loop l;
	uint64_t start;

	REQUIRE(init(&l) == 0, "init");
	fl_defer_init(&x.a, defer_a, &x);
	fl_defer_init(&x.b, defer_b, &x);
	fl_timer_init(&x.t, defer_timer, &x);
	fl_timer_in(&l, &x.t, 5);
	CHECK(RUN_UNTIL(&l, x.t_runs == 1, 1000), "timer did not fire");
	CHECK(x.a_runs == 1 && x.a_after_t && x.b_runs == 0, "a %d, b %d", x.a_runs, x.b_runs);
	start = fl_mono_ns();
	fl_loop_run_once(&l, 1000);
	CHECK(x.a_runs == 2 && fl_mono_ns() - start < 100 * MS, "requeued: %d runs", x.a_runs);
	fl_loop_run_once(&l, 0);
	CHECK(x.a_runs == 2 && x.b_runs == 0, "a %d, b %d", x.a_runs, x.b_runs);
	fl_loop_fini(&l);
}

static const struct fl_test_case cases[] = {
	{ "deferred", deferred },
	{ "heap_order", heap_order },
	{ "cancel", cancel },
	{ "many_timers", many_timers },
	{ "beyond_wheel", beyond_wheel },
	{ "rearm_in_callback", rearm_in_callback },
	{ "timerfd_wakeup", timerfd_wakeup },
	{ "fd_ready", fd_ready },
	{ "fds_before_timers", fds_before_timers },
};

FL_TEST_MAIN(cases)
