/*
 * sse.h: an incremental Server-Sent Events splitter and the few facts the
 * relay needs from OpenAI stream chunks (usage, usage-only chunks, [DONE]).
 * Bytes go in as the upstream sends them; whole events come out.
 */
#ifndef GW_SSE_H
#define GW_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Events longer than this are passed on in pieces, never buffered whole. */
#define GW_SSE_MAX_EVENT (1024 * 1024)

struct gw_sse {
	struct gw_buf pending; /* bytes of an incomplete event */
	/*
	 * Bytes looked at for event ends, in all: each byte once (plus two
	 * of overlap per feed), so an event fed in tiny pieces costs time
	 * linear in its length. Read by tests.
	 */
	uint64_t examined;
};

/*
 * Called for each complete event: text without its terminating blank line
 * (e.g. "data: {...}"), and the length. Return 0 to go on, -1 to stop.
 */
typedef int (*gw_sse_event_fn)(void *arg, const char *ev, size_t len);

/*
 * Feed n bytes; calls fn for every event they complete. Returns -1 when fn
 * stopped, else 0. Events split across calls are joined.
 */
int gw_sse_feed(struct gw_sse *s, const char *p, size_t n, gw_sse_event_fn fn,
    void *arg) GW_NONNULL(1, 4);
/* Bytes of an unfinished event at the end of the stream (may be 0). */
size_t gw_sse_pending(const struct gw_sse *s) GW_NONNULL(1);
void gw_sse_reset(struct gw_sse *s) GW_NONNULL(1);
void gw_sse_fini(struct gw_sse *s) GW_NONNULL(1);

/*
 * The JSON payload of a "data:" event: json and jlen point inside ev.
 * Returns 0, or -1 for comments and events without data.
 */
int gw_sse_data(const char *ev, size_t len, const char **json, size_t *jlen)
    GW_NONNULL(1, 3, 4);
/* 1 when the data payload is [DONE]. */
int gw_sse_is_done(const char *data, size_t len) GW_NONNULL(1);
/*
 * Which keys the payload names, in one cheap scan (so that only those
 * chunks are parsed): GW_SSE_USAGE for a "usage" object (not null),
 * GW_SSE_ERROR for the string "error" anywhere.
 */
#define GW_SSE_USAGE 1u
#define GW_SSE_ERROR 2u
unsigned gw_sse_keys(const char *data, size_t len) GW_NONNULL(1);
/* 1 when the payload carries a "usage" object (gw_sse_keys). */
int gw_sse_has_usage(const char *data, size_t len) GW_NONNULL(1);

#endif /* GW_SSE_H */
