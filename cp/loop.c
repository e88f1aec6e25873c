/* SPDX-License-Identifier: BSD-3-Clause */
/* The epoll + timerfd + timing wheel loop of cp/loop.h. */
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
/* tfd_armed_ns after the timerfd fired: matches no time, forcing a re-arm */
#define TFD_FIRED UINT64_MAX

uint64_t fl_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- timer lists: the wheel's slots, the expired, those firing ---- */

static uint64_t ms_up(uint64_t ns)
{
	return (ns + NS_PER_MS - 1) / NS_PER_MS;
}

static void list_init(struct fl_timer_link *head)
{
	head->next = head->prev = head;
}

static bool list_empty(const struct fl_timer_link *head)
{
	return head->next == head;
}

static struct fl_timer *list_timer(struct fl_timer_link *l)
{
	return (struct fl_timer *)((char *)l - offsetof(struct fl_timer, link));
}

static void list_add_tail(struct fl_timer_link *head, struct fl_timer *t)
{
	t->link.prev = head->prev;
	t->link.next = head;
	head->prev->next = &t->link;
	head->prev = &t->link;
	t->heap_idx = FL_TIMER_LISTED;
}

static void list_del(struct fl_timer *t)
{
	t->link.prev->next = t->link.next;
	t->link.next->prev = t->link.prev;
}

/* Moves the timers of from to the end of to, touching only the ends: a
 * walk along a slot would miss the cache once per timer, one at a time. */
static void list_splice_tail(struct fl_timer_link *to, struct fl_timer_link *from)
{
	struct fl_timer_link *first = from->next, *last = from->prev;

	if (list_empty(from))
		return;
	first->prev = to->prev;
	to->prev->next = first;
	last->next = to;
	to->prev = last;
	list_init(from);
}

/* Marks the timers of a list not armed (the loop is going). */
static void timers_forget(struct fl_timer_link *head)
{
	for (struct fl_timer_link *l = head->next; l != head; l = l->next)
		list_timer(l)->heap_idx = FL_TIMER_IDLE;
}

int fl_loop_init(struct fl_loop *loop, char *err, size_t errlen)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int rc;

	memset(loop, 0, sizeof(*loop));
	loop->tfd = -1;
	list_init(&loop->expired);
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
		return rc;
	}
	loop->wheel = malloc(FL_WHEEL_SLOTS * sizeof(*loop->wheel));
	if (!loop->wheel) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (uint32_t s = 0; s < FL_WHEEL_SLOTS; s++)
		list_init(&loop->wheel[s]);
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
	loop->wheel_ms = loop->now_ns / NS_PER_MS + 1;
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
	for (uint32_t i = 0; i < loop->n_heap; i++)
		loop->heap[i].t->heap_idx = FL_TIMER_IDLE;
	timers_forget(&loop->expired);
	for (uint32_t s = 0; loop->wheel && s < FL_WHEEL_SLOTS; s++)
		timers_forget(&loop->wheel[s]);
	while (loop->deferred)
		fl_defer_cancel(loop, loop->deferred);
	free(loop->heap);
	free(loop->wheel);
	loop->heap = NULL;
	loop->wheel = NULL;
	list_init(&loop->expired);
	memset(loop->wheel_bits, 0, sizeof(loop->wheel_bits));
	loop->n_timers = loop->n_heap = loop->cap_heap = 0;
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

#define WHEEL_MASK (FL_WHEEL_SLOTS - 1)
#define NO_MS UINT64_MAX

static void wheel_bit_clear(struct fl_loop *loop, uint32_t s)
{
	loop->wheel_bits[s / 64] &= ~(1ull << (s % 64));
}

/* The first millisecond from wheel_ms, before limit, whose slot holds
 * timers, or NO_MS. A cancel leaves its slot's bit set: the bits of slots
 * found empty are cleared here. */
static uint64_t wheel_next(struct fl_loop *loop, uint64_t limit)
{
	uint64_t ms = loop->wheel_ms, end = ms + FL_WHEEL_SLOTS;

	if (limit < end)
		end = limit;
	while (ms < end) {
		uint32_t s = ms & WHEEL_MASK;
		uint64_t bits = loop->wheel_bits[s / 64] >> (s % 64);

		if (bits == 0) {
			ms += 64 - s % 64;
			continue;
		}
		ms += (uint64_t)__builtin_ctzll(bits);
		if (ms >= end)
			break;
		s = ms & WHEEL_MASK;
		if (!list_empty(&loop->wheel[s]))
			return ms;
		wheel_bit_clear(loop, s);
		ms++;
	}
	return NO_MS;
}

/* ---- the heap of the timers beyond the wheel: 4-ary, parent of i is
 * (i - 1) / 4, earliest at 0. The four children of a slot are 64
 * contiguous bytes, and the tree is half as deep as a binary one. ---- */

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
	uint32_t n = loop->n_heap;

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

/* Room for one more timer in the heap. 0 or -ENOMEM. */
static int heap_reserve(struct fl_loop *loop)
{
	uint32_t cap = loop->cap_heap ? 2 * loop->cap_heap : 64;
	struct fl_timer_slot *h;

	if (loop->n_heap < loop->cap_heap)
		return 0;
	h = realloc(loop->heap, cap * sizeof(*h));
	if (!h)
		return -ENOMEM;
	loop->heap = h;
	loop->cap_heap = cap;
	return 0;
}

static void heap_remove(struct fl_loop *loop, struct fl_timer *t)
{
	uint32_t i = t->heap_idx;
	struct fl_timer_slot last = loop->heap[--loop->n_heap];

	t->heap_idx = FL_TIMER_IDLE;
	if (last.t == t)
		return;
	heap_place(loop, i, last);
	if (i > 0 && loop->heap[(i - 1) / HEAP_ARITY].when_ns > last.when_ns)
		heap_up(loop, i);
	else
		heap_down(loop, i);
}

/* ---- timers ---- */

/* Due after the wheel's span: the heap's. */
static bool beyond_wheel(const struct fl_loop *loop, uint64_t when_ns)
{
	return when_ns > loop->now_ns && ms_up(when_ns) >= loop->wheel_ms + FL_WHEEL_SLOTS;
}

/* Files an unfiled timer by its when_ns; the heap has room when it goes
 * there. A time after the cached now is at least wheel_ms rounded up: the
 * last run_timers set wheel_ms to the millisecond after its now. */
static void timer_file(struct fl_loop *loop, struct fl_timer *t)
{
	uint32_t s;

	if (t->when_ns <= loop->now_ns) {
		list_add_tail(&loop->expired, t);
	} else if (beyond_wheel(loop, t->when_ns)) {
		heap_place(loop, loop->n_heap++, (struct fl_timer_slot){ t->when_ns, t });
		heap_up(loop, t->heap_idx);
	} else {
		s = ms_up(t->when_ns) & WHEEL_MASK;
		list_add_tail(&loop->wheel[s], t);
		loop->wheel_bits[s / 64] |= 1ull << (s % 64);
	}
}

static void timer_unfile(struct fl_loop *loop, struct fl_timer *t)
{
	if (t->heap_idx == FL_TIMER_LISTED)
		list_del(t);
	else
		heap_remove(loop, t);
	t->heap_idx = FL_TIMER_IDLE;
}

/* Points the timerfd at the earliest timer of the wheel and the heap; only
 * when that changed, so a busy loop costs no syscall per timer. Setting the
 * timerfd also clears its expiry, which is why a wakeup by it needs no
 * read(). The expired timers need no timerfd: they make the next wait 0. */
static void tfd_sync(struct fl_loop *loop)
{
	uint64_t ms = wheel_next(loop, NO_MS), want = 0;
	struct itimerspec its = { 0 };

	if (loop->n_heap && ms_up(loop->heap[0].when_ns) < ms)
		ms = ms_up(loop->heap[0].when_ns);
	/* whole milliseconds: the timers due within one share one wakeup
	 * (10,000 checks a second then cost at most 1,000 wakeups) */
	if (ms != NO_MS)
		want = ms * NS_PER_MS;
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
	t->link.next = t->link.prev = NULL;
	t->heap_idx = FL_TIMER_IDLE;
	t->cb = cb;
	t->arg = arg;
}

int fl_timer_at(struct fl_loop *loop, struct fl_timer *t, uint64_t when_ns)
{
	/* a timer already in the heap keeps its room there */
	if (beyond_wheel(loop, when_ns) && (!fl_timer_armed(t) || t->heap_idx == FL_TIMER_LISTED) &&
	    heap_reserve(loop) < 0)
		return -ENOMEM;
	if (fl_timer_armed(t))
		timer_unfile(loop, t);
	else
		loop->n_timers++;
	t->when_ns = when_ns;
	timer_file(loop, t);
	return 0;
}

int fl_timer_in(struct fl_loop *loop, struct fl_timer *t, uint64_t delay_ms)
{
	return fl_timer_at(loop, t, loop->now_ns + delay_ms * NS_PER_MS);
}

void fl_timer_cancel(struct fl_loop *loop, struct fl_timer *t)
{
	if (!fl_timer_armed(t))
		return;
	timer_unfile(loop, t);
	loop->n_timers--;
}

void fl_defer_init(struct fl_defer *d, fl_loop_hook cb, void *arg)
{
	d->next = NULL;
	d->queued = false;
	d->cb = cb;
	d->arg = arg;
}

void fl_defer(struct fl_loop *loop, struct fl_defer *d)
{
	if (d->queued)
		return;
	d->queued = true;
	d->next = loop->deferred;
	loop->deferred = d;
}

static bool defer_unlink(struct fl_defer **pp, struct fl_defer *d)
{
	for (; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			return true;
		}
	return false;
}

void fl_defer_cancel(struct fl_loop *loop, struct fl_defer *d)
{
	if (d->queued && !defer_unlink(&loop->deferred, d))
		defer_unlink(&loop->deferring, d);
	d->queued = false;
}

/* Runs what was deferred before this call, one at a time from the loop's
 * list, so that a callback may cancel any of the others. */
static int run_deferred(struct fl_loop *loop)
{
	struct fl_defer *d;
	int ran = 0;

	loop->deferring = loop->deferred;
	loop->deferred = NULL;
	while ((d = loop->deferring) != NULL) {
		loop->deferring = d->next;
		d->queued = false;
		d->cb(loop, d->arg);
		ran++;
	}
	return ran;
}

void fl_loop_set_after(struct fl_loop *loop, fl_loop_hook hook, void *arg)
{
	loop->after = hook;
	loop->after_arg = arg;
}

/* Takes the timers due by the cached now off the wheel and the heap, moves
 * the heap's timers that the wheel now spans into it, and runs the ones
 * taken. A timer armed by these callbacks is filed anew: one armed for now
 * or earlier waits for the next iteration, so a callback cannot keep the
 * loop here. */
static int run_timers(struct fl_loop *loop)
{
	uint64_t now_ms = loop->now_ns / NS_PER_MS, ms;
	struct fl_timer_link due;
	struct fl_timer *t;
	int ran = 0;

	list_init(&due);
	list_splice_tail(&due, &loop->expired);
	while ((ms = wheel_next(loop, now_ms + 1)) != NO_MS) {
		uint32_t s = ms & WHEEL_MASK;
		list_splice_tail(&due, &loop->wheel[s]);
		wheel_bit_clear(loop, s);
		loop->wheel_ms = ms + 1;
	}
	loop->wheel_ms = now_ms + 1;
	/* the heap's timers come due here only after a stall of the loop
	 * longer than the wheel's span */
	while (loop->n_heap && loop->heap[0].when_ns <= loop->now_ns) {
		t = loop->heap[0].t;
		heap_remove(loop, t);
		list_add_tail(&due, t);
	}
	while (loop->n_heap && !beyond_wheel(loop, loop->heap[0].when_ns)) {
		t = loop->heap[0].t;
		heap_remove(loop, t);
		timer_file(loop, t);
	}
	/* one at a time off due: a callback may cancel or re-arm any of them */
	while (!list_empty(&due)) {
		t = list_timer(due.next);
		list_del(t);
		t->heap_idx = FL_TIMER_IDLE;
		loop->n_timers--;
		t->cb(loop, t);
		ran++;
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
			/* the timerfd: run_timers finds what is due, and the
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
	/* a timer already due (armed in the past) or deferred work must not
	 * wait for the fds */
	if (!list_empty(&loop->expired) || loop->deferred ||
	    (loop->tfd_armed_ns && loop->tfd_armed_ns <= fl_mono_ns()))
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
	ran += run_deferred(loop);
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
