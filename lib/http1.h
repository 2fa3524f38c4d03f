/*
 * http1.h: an HTTP/1.x answer read as it arrives, in pieces of any size:
 * the status line, the few headers the relay needs, and the body framed
 * by Content-Length, chunked transfer coding or the connection's end.
 * A line cut by a read is kept in a small buffer inside the struct, and
 * in an allocated one (GW_HTTP1_LINE_MAX, the longest line taken) only
 * when it does not fit: an open stream costs no more than the struct.
 */
#ifndef GW_HTTP1_H
#define GW_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define GW_HTTP1_LINE_MAX 8192
#define GW_HTTP1_LINE_SMALL 128

struct gw_http1 {
	int state;      /* where the reader is (http1.c) */
	int status;     /* the final answer's status, 0 until its line came */
	int minor;      /* HTTP/1.minor */
	int close;      /* the connection ends with this answer */
	int chunked;    /* Transfer-Encoding: chunked */
	int has_len;    /* Content-Length given */
	int no_body;    /* the answer to a HEAD request */
	int keep_alive; /* Connection: keep-alive (HTTP/1.0) */
	uint64_t left;  /* body or chunk bytes still to come */
	size_t line_len;
	char *big; /* GW_HTTP1_LINE_MAX bytes once a line needed them */
	char content_type[128];
	char retry_after[64];
	char small[GW_HTTP1_LINE_SMALL];
};

/* What the reader hands on; either may be NULL. Returning -1 aborts. */
struct gw_http1_cb {
	void *arg;
	/* The final answer's head is in (1xx answers are skipped). */
	int (*on_head)(void *arg, const struct gw_http1 *h);
	/* 1: not taken now (GW_HTTP1_PAUSE); the same bytes come again. */
	int (*on_body)(void *arg, const char *p, size_t n);
};

enum gw_http1_rc {
	GW_HTTP1_MORE = 0,  /* all of p taken: more is to come */
	GW_HTTP1_DONE = 1,  /* the answer is complete (*used says how far) */
	GW_HTTP1_PAUSE = 2, /* on_body held bytes back: feed from *used again */
	GW_HTTP1_BAD = -1,  /* not HTTP/1.x as it should be */
	GW_HTTP1_ABORT = -2 /* a callback returned -1 */
};

/*
 * Ready for an answer; no_body: to a HEAD request (none follows). The
 * first init needs zeroed storage; later ones keep the big buffer.
 */
void gw_http1_init(struct gw_http1 *h, int no_body) GW_NONNULL(1);

/* Free what the reader allocated; h may be initialised again after. */
void gw_http1_fini(struct gw_http1 *h) GW_NONNULL(1);

/*
 * Read n bytes of the answer. *used (when not NULL) receives how many
 * were taken: all of them, except after GW_HTTP1_DONE or GW_HTTP1_PAUSE.
 */
enum gw_http1_rc gw_http1_feed(struct gw_http1 *h, const char *p, size_t n,
    size_t *used, const struct gw_http1_cb *cb) GW_NONNULL(1, 5);

/*
 * The connection ended: GW_HTTP1_DONE when that ends the answer (a body
 * read to the close), GW_HTTP1_MORE when the answer was cut short.
 */
enum gw_http1_rc gw_http1_eof(struct gw_http1 *h) GW_NONNULL(1);

/* 1 once any byte of an answer was read. */
int gw_http1_started(const struct gw_http1 *h) GW_NONNULL(1);

/* 1 once the final answer's head is in. */
int gw_http1_head_done(const struct gw_http1 *h) GW_NONNULL(1);

#endif /* GW_HTTP1_H */
