/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The event loop of fulcrum-cp: one epoll set, one timerfd armed for the
 * earliest timer. Single-threaded; callbacks may add, modify and remove fds
 * and arm and cancel any timer, including their own. Every fd given to the
 * loop must be non-blocking: a callback never waits. An iteration
 * dispatches every ready fd before it runs the timers due, so a timeout
 * timer never fires for an answer that was already there.
 *
 * Timers have a resolution of one millisecond: a timer fires in the first
 * iteration that starts at or after its due time rounded up to the
 * millisecond (one armed for now or earlier: in the next iteration), in the
 * order of those milliseconds, and of arming within one. Those due within
 * FL_WHEEL_SLOTS ms sit in a timing wheel of one list per millisecond,
 * where arming, cancelling and firing cost the same whatever the number of
 * timers (10,000 health checks arm 20,000 timers a second, nearly all of
 * them within a second); those due later wait in a heap (keepalived's
 * scheduler, Redis ae for size) until the wheel spans them.
 */
#ifndef FL_LOOP_H
#define FL_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

struct fl_loop;
struct fl_io;
struct fl_timer;

typedef void (*fl_io_cb)(struct fl_loop *loop, struct fl_io *io, uint32_t events);
typedef void (*fl_timer_cb)(struct fl_loop *loop, struct fl_timer *t);
typedef void (*fl_loop_hook)(struct fl_loop *loop, void *arg);

/* An fd watched by the loop; embed it, the loop keeps a pointer to it. */
struct fl_io {
	int fd;
	uint32_t events;	/* EPOLLIN, EPOLLOUT, ... as registered */
	fl_io_cb cb;
	void *arg;
};

/* A link of a circular list of timers; a list's head is one too, so that
 * unlinking needs no head and moving a whole list costs the same for any
 * length. */
struct fl_timer_link {
	struct fl_timer_link *next;
	struct fl_timer_link *prev;
};

/* A one-shot timer; embed it. Re-arm it from its callback for periodic work. */
struct fl_timer {
	uint64_t when_ns;		/* CLOCK_MONOTONIC */
	struct fl_timer_link link;	/* in its list, when FL_TIMER_LISTED */
	uint32_t heap_idx;		/* FL_TIMER_IDLE, FL_TIMER_LISTED or in the heap */
	fl_timer_cb cb;
	void *arg;
};

#define FL_TIMER_IDLE UINT32_MAX
/* in a list: a slot of the wheel, the expired ones, or those firing */
#define FL_TIMER_LISTED (UINT32_MAX - 1)

/* The wheel's span in milliseconds (a power of 2): 4 s, more than the
 * interval of nearly every health check. */
#define FL_WHEEL_SLOTS 4096

/* Work deferred to the end of an iteration, after its timers: where what
 * the timer callbacks queued goes out in one system call. Embed it. */
struct fl_defer {
	struct fl_defer *next;		/* in the loop's list, when queued */
	bool queued;
	fl_loop_hook cb;
	void *arg;
};

/* A heap slot keeps its timer's due time beside the pointer: sifting
 * compares slots without touching the timers, which are spread over memory. */
struct fl_timer_slot {
	uint64_t when_ns;
	struct fl_timer *t;
};

struct fl_loop {
	int epfd;
	int tfd;			/* timerfd, CLOCK_MONOTONIC, absolute */
	uint64_t tfd_armed_ns;		/* what tfd is set to; 0 = disarmed */
	uint32_t n_timers;		/* armed, wherever they are */
	/* slot ms % FL_WHEEL_SLOTS: the timers due at the millisecond ms,
	 * rounded up, for ms from wheel_ms to wheel_ms + FL_WHEEL_SLOTS - 1 */
	struct fl_timer_link *wheel;
	uint64_t wheel_bits[FL_WHEEL_SLOTS / 64];	/* clear: the slot is empty */
	uint64_t wheel_ms;		/* the first millisecond not yet run */
	struct fl_timer_link expired;	/* armed for the cached now or earlier */
	struct fl_timer_slot *heap;	/* those due after the wheel's span */
	uint32_t n_heap;
	uint32_t cap_heap;
	struct fl_defer *deferred;	/* for the end of this iteration */
	struct fl_defer *deferring;	/* those being run there */
	uint64_t now_ns;		/* cached at each wakeup */
	bool stop;
	/* the batch being dispatched: fl_io_del clears its later entries */
	struct epoll_event *batch;
	int batch_n;
	int batch_i;
	fl_loop_hook after;		/* at the end of every iteration */
	void *after_arg;
	/* statistics */
	uint64_t iterations;
	uint64_t timers_fired;
};

/* 0, or -errno with a message. The loop stays where it is until
 * fl_loop_fini: its timer lists point into it. */
int fl_loop_init(struct fl_loop *loop, char *err, size_t errlen);
void fl_loop_fini(struct fl_loop *loop);

/* CLOCK_MONOTONIC now, in ns (not the cached value). */
uint64_t fl_mono_ns(void);

/* Watches io->fd for events, calling cb(loop, io, revents). 0 or -errno. */
int fl_io_add(struct fl_loop *loop, struct fl_io *io, int fd, uint32_t events,
	      fl_io_cb cb, void *arg);
/* Changes the events watched. 0 or -errno. */
int fl_io_mod(struct fl_loop *loop, struct fl_io *io, uint32_t events);
/* Stops watching (does not close the fd). Safe on an io never added (fd -1). */
void fl_io_del(struct fl_loop *loop, struct fl_io *io);

void fl_timer_init(struct fl_timer *t, fl_timer_cb cb, void *arg);
/* Arms (or re-arms) t for an absolute CLOCK_MONOTONIC time. 0 or -ENOMEM. */
int fl_timer_at(struct fl_loop *loop, struct fl_timer *t, uint64_t when_ns);
/* Arms t delay_ms after the loop's cached now. */
int fl_timer_in(struct fl_loop *loop, struct fl_timer *t, uint64_t delay_ms);
/* Disarms t; nothing when it is not armed. */
void fl_timer_cancel(struct fl_loop *loop, struct fl_timer *t);

static inline bool fl_timer_armed(const struct fl_timer *t)
{
	return t->heap_idx != FL_TIMER_IDLE;
}

void fl_defer_init(struct fl_defer *d, fl_loop_hook cb, void *arg);
/* Calls d's callback once, at the end of this iteration: after the fd and
 * timer callbacks, before the after hook. Queued by a deferred callback, it
 * runs in the next iteration, which then does not wait. Nothing when d is
 * queued already. */
void fl_defer(struct fl_loop *loop, struct fl_defer *d);
/* Unqueues d; nothing when it is not queued. */
void fl_defer_cancel(struct fl_loop *loop, struct fl_defer *d);

/* Calls hook(loop, arg) at the end of every iteration, after the fd and
 * timer callbacks of that iteration: the place to coalesce their effects. */
void fl_loop_set_after(struct fl_loop *loop, fl_loop_hook hook, void *arg);

/*
 * One iteration: waits at most max_wait_ms (-1 = until something happens)
 * for fds or the earliest timer, then runs the callbacks of all ready fds
 * (taking further batches while a batch comes back full), then those of
 * every expired timer, then the deferred ones, then the after hook.
 * Returns the number of callbacks run, or -errno (EINTR is not an error: 0).
 */
int fl_loop_run_once(struct fl_loop *loop, int max_wait_ms);

/* Iterates until fl_loop_stop. 0 or -errno. */
int fl_loop_run(struct fl_loop *loop);
void fl_loop_stop(struct fl_loop *loop);

#endif /* FL_LOOP_H */
