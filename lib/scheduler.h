/*
 * scheduler.h: swap-aware admission in front of llama-swap ([scheduler]).
 *
 * llama-swap runs one model per group at a time and swaps first come,
 * first served: A B A C A B thrashes the GPU, each swap costing seconds.
 * This module keeps, per host, in the shared memory area
 * GW_SHM_AREA_SCHEDULER, for each swap group ([scheduler] groups; default:
 * every model of the upstream in one group) the active model (the one it
 * last admitted, or what llama-swap's /running says while the group is
 * idle), and every request in flight or waiting, by model, with
 * its arrival time, over all worker processes and threads.
 *
 * The rule, decided under one process-shared lock for a few stores:
 *  - a request for the active model goes through (at most
 *    [scheduler] concurrency in flight per model, 0: no cap);
 *  - a request for another model waits while the active model still has
 *    requests in flight or waiting, and for min_loaded_s after a swap;
 *  - unless a waiting request of another model has waited max_wait_s: the
 *    group drains (the active model admits no more) and, once nothing is
 *    in flight, switches to the model whose oldest request waited longest;
 *  - requests of one model go in arrival order; a request whose model is
 *    the only one asked for is never held (min_loaded_s 0).
 * Waiters poll (gw_scheduler_poll) every few tens of milliseconds: the caller
 * keeps its client alive and notices a disconnect meanwhile.
 *
 * Slots are tagged with the pid of their process; the slots of a process
 * that died are reaped (at most once a second), so a crash loses nothing
 * but its own requests.
 */
#ifndef GW_SCHEDULER_H
#define GW_SCHEDULER_H

#include <stdint.h>

#include "config.h"
#include "util.h"

/* The most groups [scheduler] groups may name (the default group aside). */
#define GW_SCHEDULER_GROUPS_MAX 15

enum gw_scheduler_verdict {
	GW_SCHEDULER_OFF = 0, /* not scheduled: go (off, or no room to track) */
	GW_SCHEDULER_GO,      /* admitted: call the upstream now */
	GW_SCHEDULER_WAIT,    /* queued: poll again later */
	GW_SCHEDULER_FULL,    /* the group's queue is full: answer 429 */
};

/* One request's place; caller storage, all zero before gw_scheduler_enter. */
struct gw_scheduler_ticket {
	int slot;        /* index + 1 in the shared table; 0: none */
	uint64_t seq;    /* the slot's sequence number, checked on use */
	int64_t t_enter; /* monotonic us */
	int64_t wait_us; /* time spent waiting, once admitted or gone */
	int waited;      /* 1 when it was queued at all */
	int swapped;     /* 1 when its admission switched the group */
};

/*
 * The group of model under the groups setting ("a, b; c, d": groups by
 * ';', models by ','; blanks trimmed): 1 + the index of the group naming
 * it, or 0 (the default group: every model not named).
 */
int gw_scheduler_group_of(const char *groups, const char *model)
    GW_NONNULL(1, 2);

/*
 * Enter the scheduler for a request of model at monotonic time now_us.
 * GW_SCHEDULER_GO or GW_SCHEDULER_WAIT hold a slot: gw_scheduler_leave it at
 * the end, whatever happens. GW_SCHEDULER_FULL and GW_SCHEDULER_OFF hold none.
 * OFF also when cfg->sched_enabled is 0 or the shared area is missing.
 */
enum gw_scheduler_verdict gw_scheduler_enter(struct gw_scheduler_ticket *t,
    const struct gw_cfg *cfg, const char *model, int64_t now_us)
    GW_NONNULL(1, 2, 3);

/*
 * A waiting ticket asks again: GW_SCHEDULER_GO once admitted (then t->wait_us
 * is the time it waited), GW_SCHEDULER_WAIT otherwise. GW_SCHEDULER_OFF when
 * its slot was lost (reaped): go.
 */
enum gw_scheduler_verdict gw_scheduler_poll(struct gw_scheduler_ticket *t,
    const struct gw_cfg *cfg, int64_t now_us) GW_NONNULL(1, 2);

/*
 * The request is over (answered, failed, or its client left the queue):
 * free its slot. No-op for a ticket that holds none; t can be left again.
 */
void gw_scheduler_leave(struct gw_scheduler_ticket *t, int64_t now_us)
    GW_NONNULL(1);

/*
 * 1 when the caller should ask llama-swap's [scheduler] running_path
 * ("/running") now, before entering with model: the scheduler is on, the
 * path is set, model's group has nothing in flight or waiting, and nobody
 * on the host asked for that group in the last second (the caller is then
 * the one who asks).
 */
int gw_scheduler_want_running(const struct gw_cfg *cfg, const char *model,
    int64_t now_us) GW_NONNULL(1, 2);

/*
 * What /running answered (body, len bytes: {"running":[{"model","state"}]}):
 * in each idle group, a model llama-swap has loaded (state "ready" or
 * none) becomes the active model, with no swap counted (someone else,
 * another gateway host say, loaded it). Anything else is ignored.
 */
void gw_scheduler_note_running(const struct gw_cfg *cfg, const char *body,
    size_t len, int64_t now_us) GW_NONNULL(1, 2);

/*
 * The state as JSON text into out, for GET /scheduler/status:
 * {"enabled":b,"groups":[{"group","active","active_for_s","draining",
 *  "swaps","models":[{"model","in_flight","waiting","oldest_wait_s",
 *  "swaps"}]}]}.
 */
void gw_scheduler_status(struct gw_buf *out, const struct gw_cfg *cfg,
    int64_t now_us) GW_NONNULL(1, 2);

/*
 * Append the scheduler's Prometheus series to out: llmgw_scheduler_swaps_
 * total{model}, llmgw_scheduler_queue_depth{model},
 * llmgw_scheduler_in_flight{model} and the histogram
 * llmgw_scheduler_wait_seconds{model}. Nothing when no area exists.
 */
void gw_scheduler_render_metrics(struct gw_buf *out) GW_NONNULL(1);

#endif /* GW_SCHEDULER_H */
