/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The event loop of fulcrum-cp: one epoll set, one timerfd armed for the
 * earliest of a heap of timers (keepalived's scheduler, Redis ae for size).
 * Single-threaded; callbacks may add, modify and remove fds and arm and
 * cancel any timer, including their own. Every fd given to the loop must be
 * non-blocking: a callback never waits. An iteration dispatches every ready
 * fd before it runs the timers due, so a timeout timer never fires for an
 * answer that was already there.
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

/* A one-shot timer; embed it. Re-arm it from its callback for periodic work. */
struct fl_timer {
	uint64_t when_ns;	/* CLOCK_MONOTONIC */
	uint32_t heap_idx;	/* FL_TIMER_IDLE when not armed */
	fl_timer_cb cb;
	void *arg;
};

#define FL_TIMER_IDLE UINT32_MAX

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
	struct fl_timer_slot *heap;
	uint32_t n_timers;
	uint32_t cap_timers;
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

/* 0, or -errno with a message. */
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

/* Calls hook(loop, arg) at the end of every iteration, after the fd and
 * timer callbacks of that iteration: the place to coalesce their effects. */
void fl_loop_set_after(struct fl_loop *loop, fl_loop_hook hook, void *arg);

/*
 * One iteration: waits at most max_wait_ms (-1 = until something happens)
 * for fds or the earliest timer, then runs the callbacks of all ready fds
 * (taking further batches while a batch comes back full), then those of
 * every expired timer, then the after hook. Returns the number of
 * callbacks run, or -errno (EINTR is not an error: 0).
 */
int fl_loop_run_once(struct fl_loop *loop, int max_wait_ms);

/* Iterates until fl_loop_stop. 0 or -errno. */
int fl_loop_run(struct fl_loop *loop);
void fl_loop_stop(struct fl_loop *loop);

#endif /* FL_LOOP_H */
