/* SPDX-License-Identifier: BSD-3-Clause */
/* The epoll + timerfd + timer heap loop of cp/loop.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include "loop.h"

#define FL_LOOP_BATCH 1024
/* full batches taken before the timers run: bounds an iteration when fds
 * never stop being ready */
#define FL_LOOP_MAX_ROUNDS 16
#define NS_PER_MS 1000000ull
#define FL_LOOP_SLACK_NS NS_PER_MS
/* tfd_armed_ns after the timerfd fired: matches no time, forcing a re-arm */
#define TFD_FIRED UINT64_MAX

uint64_t fl_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int fl_loop_init(struct fl_loop *loop, char *err, size_t errlen)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int rc;

	memset(loop, 0, sizeof(*loop));
	loop->tfd = -1;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
		return rc;
	}
	loop->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (loop->tfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "timerfd_create: %s", strerror(errno));
		goto fail;
	}
	/* the timerfd is the one entry whose data.ptr is NULL */
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->tfd, &ev) < 0) {
		rc = -errno;
		snprintf(err, errlen, "epoll_ctl(timerfd): %s", strerror(errno));
		goto fail;
	}
	loop->now_ns = fl_mono_ns();
	return 0;
fail:
	fl_loop_fini(loop);
	return rc;
}

void fl_loop_fini(struct fl_loop *loop)
{
	if (loop->tfd >= 0)
		close(loop->tfd);
	if (loop->epfd >= 0)
		close(loop->epfd);
	for (uint32_t i = 0; i < loop->n_timers; i++)
		loop->heap[i].t->heap_idx = FL_TIMER_IDLE;
	free(loop->heap);
	loop->heap = NULL;
	loop->n_timers = loop->cap_timers = 0;
	loop->tfd = loop->epfd = -1;
}

int fl_io_add(struct fl_loop *loop, struct fl_io *io, int fd, uint32_t events,
	      fl_io_cb cb, void *arg)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };

	io->fd = fd;
	io->events = events;
	io->cb = cb;
	io->arg = arg;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		io->fd = -1;
		return -errno;
	}
	return 0;
}

int fl_io_mod(struct fl_loop *loop, struct fl_io *io, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };

	if (io->events == events)
		return 0;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -errno;
	io->events = events;
	return 0;
}

void fl_io_del(struct fl_loop *loop, struct fl_io *io)
{
	if (io->fd < 0)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->fd = -1;
	/* an event of this io later in the batch must not reach freed memory */
	for (int i = loop->batch_i + 1; i < loop->batch_n; i++)
		if (loop->batch[i].data.ptr == io)
			loop->batch[i].data.ptr = loop;
}

/* ---- the heap: 4-ary, parent of i is (i - 1) / 4, earliest at 0 ----
 * The four children of a slot are 64 contiguous bytes, and the tree is half
 * as deep as a binary one: 10,000 checks re-arm 30,000 times a second. */

#define HEAP_ARITY 4

static void heap_place(struct fl_loop *loop, uint32_t i, struct fl_timer_slot s)
{
	loop->heap[i] = s;
	s.t->heap_idx = i;
}

static void heap_up(struct fl_loop *loop, uint32_t i)
{
	struct fl_timer_slot s = loop->heap[i];

	while (i > 0) {
		uint32_t p = (i - 1) / HEAP_ARITY;
		if (loop->heap[p].when_ns <= s.when_ns)
			break;
		heap_place(loop, i, loop->heap[p]);
		i = p;
	}
	heap_place(loop, i, s);
}

static void heap_down(struct fl_loop *loop, uint32_t i)
{
	struct fl_timer_slot s = loop->heap[i];
	uint32_t n = loop->n_timers;

	for (;;) {
		uint32_t first = HEAP_ARITY * i + 1, last, c;
		if (first >= n)
			break;
		last = first + HEAP_ARITY < n ? first + HEAP_ARITY : n;
		c = first;
		for (uint32_t k = first + 1; k < last; k++)
			if (loop->heap[k].when_ns < loop->heap[c].when_ns)
				c = k;
		if (s.when_ns <= loop->heap[c].when_ns)
			break;
		heap_place(loop, i, loop->heap[c]);
		i = c;
	}
	heap_place(loop, i, s);
}

static void heap_remove(struct fl_loop *loop, struct fl_timer *t)
{
	uint32_t i = t->heap_idx;
	struct fl_timer_slot last = loop->heap[--loop->n_timers];

	t->heap_idx = FL_TIMER_IDLE;
	if (last.t == t)
		return;
	heap_place(loop, i, last);
	if (i > 0 && loop->heap[(i - 1) / HEAP_ARITY].when_ns > last.when_ns)
		heap_up(loop, i);
	else
		heap_down(loop, i);
}

/* Points the timerfd at the earliest timer; only when that changed, so a
 * busy heap costs no syscall per timer. Setting the timerfd also clears its
 * expiry, which is why a wakeup by it needs no read(). */
static void tfd_sync(struct fl_loop *loop)
{
	uint64_t want = loop->n_timers ? loop->heap[0].when_ns : 0;
	struct itimerspec its = { 0 };

	/* 1 ms of slack: timers due within the same millisecond share one
	 * wakeup (10,000 checks a second then cost 1,000 wakeups, not 10,000) */
	want = (want + FL_LOOP_SLACK_NS - 1) / FL_LOOP_SLACK_NS * FL_LOOP_SLACK_NS;

	if (want == loop->tfd_armed_ns)
		return;
	if (want) {
		its.it_value.tv_sec = (time_t)(want / 1000000000ull);
		its.it_value.tv_nsec = (long)(want % 1000000000ull);
	}
	timerfd_settime(loop->tfd, want ? TFD_TIMER_ABSTIME : 0, &its, NULL);
	loop->tfd_armed_ns = want;
}

void fl_timer_init(struct fl_timer *t, fl_timer_cb cb, void *arg)
{
	t->when_ns = 0;
	t->heap_idx = FL_TIMER_IDLE;
	t->cb = cb;
	t->arg = arg;
}

int fl_timer_at(struct fl_loop *loop, struct fl_timer *t, uint64_t when_ns)
{
	if (when_ns == 0)
		when_ns = 1;	/* 0 means "disarmed" to the timerfd */
	if (fl_timer_armed(t)) {
		uint64_t old = t->when_ns;
		t->when_ns = when_ns;
		loop->heap[t->heap_idx].when_ns = when_ns;
		if (when_ns < old)
			heap_up(loop, t->heap_idx);
		else
			heap_down(loop, t->heap_idx);
		return 0;
	}
	if (loop->n_timers == loop->cap_timers) {
		uint32_t cap = loop->cap_timers ? 2 * loop->cap_timers : 64;
		struct fl_timer_slot *h = realloc(loop->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		loop->heap = h;
		loop->cap_timers = cap;
	}
	t->when_ns = when_ns;
	heap_place(loop, loop->n_timers++, (struct fl_timer_slot){ when_ns, t });
	heap_up(loop, t->heap_idx);
	return 0;
}

int fl_timer_in(struct fl_loop *loop, struct fl_timer *t, uint64_t delay_ms)
{
	return fl_timer_at(loop, t, loop->now_ns + delay_ms * NS_PER_MS);
}

void fl_timer_cancel(struct fl_loop *loop, struct fl_timer *t)
{
	if (fl_timer_armed(t))
		heap_remove(loop, t);
}

void fl_loop_set_after(struct fl_loop *loop, fl_loop_hook hook, void *arg)
{
	loop->after = hook;
	loop->after_arg = arg;
}

/* Runs every timer due by now; a timer re-armed for now or earlier waits
 * for the next iteration, so a callback cannot keep the loop here. */
static int run_timers(struct fl_loop *loop)
{
	uint64_t now = loop->now_ns;
	int ran = 0;

	while (loop->n_timers && loop->heap[0].when_ns <= now) {
		struct fl_timer *t = loop->heap[0].t;
		heap_remove(loop, t);
		t->cb(loop, t);
		ran++;
		if (ran > 100000)
			break;
	}
	loop->timers_fired += (uint64_t)ran;
	return ran;
}

/* Runs the callbacks of one batch of ready fds. */
static int dispatch(struct fl_loop *loop, struct epoll_event *evs, int n)
{
	int ran = 0;

	loop->batch = evs;
	loop->batch_n = n;
	for (loop->batch_i = 0; loop->batch_i < n; loop->batch_i++) {
		struct fl_io *io = evs[loop->batch_i].data.ptr;
		if (io == NULL) {
			/* the timerfd: the heap says what is due, and the
			 * next tfd_sync re-arms it, which also clears it */
			loop->tfd_armed_ns = TFD_FIRED;
			continue;
		}
		if ((void *)io == (void *)loop)
			continue;	/* removed during this batch */
		io->cb(loop, io, evs[loop->batch_i].events);
		ran++;
	}
	loop->batch = NULL;
	loop->batch_n = loop->batch_i = 0;
	return ran;
}

int fl_loop_run_once(struct fl_loop *loop, int max_wait_ms)
{
	struct epoll_event evs[FL_LOOP_BATCH];
	int timeout = max_wait_ms, n, ran = 0;

	tfd_sync(loop);
	/* a timer already due (armed in the past) must not wait for the fd */
	if (loop->n_timers && loop->heap[0].when_ns <= fl_mono_ns())
		timeout = 0;
	/* a full batch may leave fds ready: take them all before the timers,
	 * or a probe's timeout could fire with its answer still queued */
	for (int round = 0; round < FL_LOOP_MAX_ROUNDS; round++) {
		n = epoll_wait(loop->epfd, evs, FL_LOOP_BATCH, timeout);
		if (n < 0) {
			if (errno != EINTR)
				return -errno;
			n = 0;
		}
		loop->now_ns = fl_mono_ns();
		ran += dispatch(loop, evs, n);
		if (n < FL_LOOP_BATCH)
			break;
		timeout = 0;
	}
	loop->iterations++;
	loop->now_ns = fl_mono_ns();
	ran += run_timers(loop);
	if (loop->after)
		loop->after(loop, loop->after_arg);
	return ran;
}

int fl_loop_run(struct fl_loop *loop)
{
	loop->stop = false;
	while (!loop->stop) {
		int rc = fl_loop_run_once(loop, -1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void fl_loop_stop(struct fl_loop *loop)
{
	loop->stop = true;
}
