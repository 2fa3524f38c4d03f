/*
 * evloop.h: one event-loop thread per worker process (epoll). Requests
 * that wait long on the upstream (streamed answers) are handed to it, so
 * an open stream holds no thread: only its sockets and a few KiB of state.
 *
 * Everything below runs on the loop thread, except gw_loop_post, which
 * any thread may call to get work onto it.
 */
#ifndef GW_EVLOOP_H
#define GW_EVLOOP_H

#include <stdint.h>

#include "err.h"
#include "util.h"

struct gw_loop;

/* A file descriptor's interest, owned by the caller while it is watched. */
struct gw_loop_io {
	void (*fn)(void *arg, uint32_t events); /* EPOLLIN, EPOLLOUT... */
	void *arg;
	int fd;
	uint32_t events; /* what is watched now; 0: not watched */
};

/* A one-shot timer, owned by the caller while it is armed. */
struct gw_loop_timer {
	void (*fn)(void *arg);
	void *arg;
	int64_t due_us; /* monotonic; 0: not armed */
	struct gw_loop_timer *next, *prev;
};

/*
 * The process's loop, started on first use (its thread runs until the
 * process exits). NULL when it cannot start (logged once).
 */
struct gw_loop *gw_loop_get(void);

/*
 * Run fn(arg) on the loop thread, soon. From the loop thread itself, fn
 * runs after the events at hand are handled: the way to free what a
 * pending event may still point at.
 */
void gw_loop_post(struct gw_loop *l, void (*fn)(void *arg), void *arg)
    GW_NONNULL(1, 2);

/*
 * Watch io->fd for events (EPOLLIN, EPOLLOUT, EPOLLRDHUP; level-
 * triggered); 0 stops watching. GW_E_INTERNAL when epoll refuses (logged).
 */
enum gw_status gw_loop_watch(
    struct gw_loop *l, struct gw_loop_io *io, uint32_t events) GW_NONNULL(1, 2);

/*
 * Stop watching io because its fd is about to be closed (which removes it
 * from the epoll set without a system call): events pending for it in
 * the batch at hand are dropped.
 */
void gw_loop_forget(struct gw_loop *l, struct gw_loop_io *io) GW_NONNULL(1, 2);

/* Arm t to fire in in_us microseconds (re-arming moves it); < 0 disarms. */
void gw_loop_timer_set(
    struct gw_loop *l, struct gw_loop_timer *t, int64_t in_us) GW_NONNULL(1, 2);

/* 1 on the loop thread. */
int gw_loop_is_mine(const struct gw_loop *l) GW_NONNULL(1);

#endif /* GW_EVLOOP_H */
