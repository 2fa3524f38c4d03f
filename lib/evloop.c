/* evloop.c: the per-process event loop (epoll, an eventfd inbox, timers). */
#include "evloop.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

#define MAX_EVENTS 64

struct job {
	void (*fn)(void *arg);
	void *arg;
	struct job *next;
};

/* Jobs in the order posted. */
struct jobq {
	struct job *head, **tail;
};

struct gw_loop {
	int ep;
	int wake_fd;
	pthread_t tid;
	/* Work posted by other threads, taken in one swap per wake-up. */
	pthread_mutex_t lock;
	struct jobq inbox;
	int woken;
	/* Work posted by the loop thread: runs after the current events. */
	struct jobq later;
	struct gw_loop_timer *timers; /* armed ones, unordered */
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct gw_loop *the_loop;

int
gw_loop_is_mine(const struct gw_loop *l)
{
	return pthread_equal(pthread_self(), l->tid);
}

static void
jobq_push(struct jobq *q, struct job *j)
{
	*q->tail = j;
	q->tail = &j->next;
}

/* Take every job queued, leaving q empty. */
static struct job *
jobq_take(struct jobq *q)
{
	struct job *j = q->head;

	q->head = NULL;
	q->tail = &q->head;
	return j;
}

static void
run_jobs(struct job *j)
{
	struct job *next;

	for (; j != NULL; j = next) {
		next = j->next;
		j->fn(j->arg);
		free(j);
	}
}

void
gw_loop_post(struct gw_loop *l, void (*fn)(void *arg), void *arg)
{
	struct job *j = gw_xcalloc(1, sizeof(*j));
	uint64_t one = 1;
	int wake;

	j->fn = fn;
	j->arg = arg;
	if (gw_loop_is_mine(l)) {
		jobq_push(&l->later, j);
		return;
	}
	pthread_mutex_lock(&l->lock);
	jobq_push(&l->inbox, j);
	wake = !l->woken;
	l->woken = 1;
	pthread_mutex_unlock(&l->lock);
	/* One write per batch: the loop clears woken when it takes them. */
	if (wake && write(l->wake_fd, &one, sizeof(one)) < 0)
		gw_log_errno(NULL, "loop", "eventfd write");
}

enum gw_status
gw_loop_watch(struct gw_loop *l, struct gw_loop_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};
	int op;

	if (events == io->events)
		return GW_OK;
	op = io->events == 0 ? EPOLL_CTL_ADD
	     : events == 0   ? EPOLL_CTL_DEL
	                     : EPOLL_CTL_MOD;
	if (epoll_ctl(l->ep, op, io->fd, &ev) < 0) {
		gw_log_errno(NULL, "loop", "epoll_ctl fd %d", io->fd);
		return GW_E_INTERNAL;
	}
	io->events = events;
	return GW_OK;
}

void
gw_loop_forget(struct gw_loop *l, struct gw_loop_io *io)
{
	(void)l;
	io->events = 0;
}

void
gw_loop_timer_set(struct gw_loop *l, struct gw_loop_timer *t, int64_t in_us)
{
	if (t->due_us != 0) {
		if (t->prev != NULL)
			t->prev->next = t->next;
		else
			l->timers = t->next;
		if (t->next != NULL)
			t->next->prev = t->prev;
		t->next = t->prev = NULL;
		t->due_us = 0;
	}
	if (in_us < 0)
		return;
	t->due_us = gw_now_mono_us() + in_us;
	if (t->due_us == 0)
		t->due_us = 1;
	t->next = l->timers;
	if (l->timers != NULL)
		l->timers->prev = t;
	l->timers = t;
}

/* Fire what is due; the wait in ms until the next one (-1: none). */
static int
run_timers(struct gw_loop *l)
{
	struct gw_loop_timer *t, *due;
	int64_t now = gw_now_mono_us(), first;

again:
	first = -1;
	due = NULL;
	/*
	 * The earliest due one first: after a late wake several are due at
	 * once, and they fire in the order of their times, not of the list
	 * (a test saw 25 ms fire before 20 ms on a loaded machine). The list
	 * is short (libcurl's timer and tick, lingering requests), so a
	 * scan per fire is cheap.
	 */
	for (t = l->timers; t != NULL; t = t->next)
		if (t->due_us <= now) {
			if (due == NULL || t->due_us < due->due_us)
				due = t;
		} else if (first < 0 || t->due_us < first)
			first = t->due_us;
	if (due != NULL) {
		gw_loop_timer_set(l, due, -1);
		due->fn(due->arg);
		/* fn may have changed the list: start over. */
		goto again;
	}
	return first < 0 ? -1 : (int)((first - now + 999) / 1000);
}

static void *
loop_main(void *arg)
{
	struct gw_loop *l = arg;
	struct epoll_event evs[MAX_EVENTS];
	struct job *jobs;
	uint64_t n;
	int i, k, wait_ms;

	for (;;) {
		wait_ms = run_timers(l);
		k = epoll_wait(l->ep, evs, MAX_EVENTS, wait_ms);
		if (k < 0 && errno != EINTR) {
			gw_log_errno(NULL, "loop", "epoll_wait");
			sleep(1);
		}
		for (i = 0; i < k; i++) {
			struct gw_loop_io *io = evs[i].data.ptr;

			if (io == NULL) {
				if (read(l->wake_fd, &n, sizeof(n)) < 0 &&
				    errno != EAGAIN)
					gw_log_errno(NULL, "loop", "eventfd");
				continue;
			}
			/* Unwatched by an earlier event of this batch. */
			if (io->events != 0)
				io->fn(io->arg, evs[i].events);
		}
		pthread_mutex_lock(&l->lock);
		jobs = jobq_take(&l->inbox);
		l->woken = 0;
		pthread_mutex_unlock(&l->lock);
		run_jobs(jobs);
		while ((jobs = jobq_take(&l->later)) != NULL)
			run_jobs(jobs);
	}
	return NULL;
}

static void
start(void)
{
	struct gw_loop *l = gw_xcalloc(1, sizeof(*l));
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	pthread_attr_t attr;

	pthread_mutex_init(&l->lock, NULL);
	jobq_take(&l->inbox); /* empty, with its tail set */
	jobq_take(&l->later);
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->ep < 0 || l->wake_fd < 0 ||
	    epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0) {
		gw_log_errno(NULL, "loop", "cannot set up the event loop");
		goto fail;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	errno = pthread_create(&l->tid, &attr, loop_main, l);
	pthread_attr_destroy(&attr);
	if (errno != 0) {
		gw_log_errno(NULL, "loop", "pthread_create");
		goto fail;
	}
	the_loop = l;
	return;
fail:
	if (l->ep >= 0)
		close(l->ep);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	free(l);
}

struct gw_loop *
gw_loop_get(void)
{
	pthread_once(&once, start);
	return the_loop;
}
