/*
 * fcgi.h: the responder side of FastCGI, as a worker thread uses it: take
 * a connection from the listening socket, read one request's parameters
 * and body, frame its stdout, end it. libfcgi's FCGX_Accept_r and streams
 * do the same work with an 8 KiB buffer each way, a malloc per parameter
 * and a read per record; here one read usually brings the whole request
 * and one write takes the whole answer with its end records.
 *
 * One request at a time on a connection (FCGI_MPXS_CONNS 0): a second
 * FCGI_BEGIN_REQUEST meanwhile is refused with FCGI_CANT_MPX_CONN. With
 * FCGI_KEEP_CONN (Apache's mod_proxy_fcgi always asks) the connection is
 * read for the next request once this one's body was read to its end;
 * otherwise it is closed after the end records.
 */
#ifndef GW_FCGI_H
#define GW_FCGI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define GW_FCGI_NO_RECORD ((size_t)-1)

struct gw_fcgi {
	int fd;      /* the web server's connection, -1 between requests */
	int id;      /* the request's id */
	int keep;    /* FCGI_KEEP_CONN was asked */
	int in_eof;  /* the empty FCGI_STDIN record came */
	int out_err; /* a write failed: the web server is gone */
	char **envp; /* "NAME=value" strings, NULL-terminated */
	/* The rest is the reader's and writer's own. */
	int listen_fd;
	unsigned char *in; /* bytes read, not yet taken, at [in_off, in_len) */
	size_t in_off, in_len;
	size_t rec_left, pad_left; /* of the FCGI_STDIN record being read */
	int64_t drain_until;       /* reads end then (monotonic us), or 0 */
	struct gw_buf params;      /* FCGI_PARAMS content, then the strings */
	char **envv;
	unsigned *nlen; /* envv[i]'s name length */
	size_t env_cap;
	struct gw_buf out; /* framed stdout not yet written */
	size_t rec;        /* the open stdout record's header in out */
};

/* Ready to accept on listen_fd (nothing allocated until the first). */
void gw_fcgi_init(struct gw_fcgi *c, int listen_fd) GW_NONNULL(1);

/*
 * The next request: on the kept connection if there is one, else on a
 * connection accepted now. Returns 0 with envp and id set, -1 when accept
 * fails (errno). Connections that end or break the protocol before a
 * request's parameters are complete are closed and the next one taken.
 */
int gw_fcgi_accept(struct gw_fcgi *c) GW_NONNULL(1);

/* The parameter's value, or NULL. envp may be any "NAME=value" array. */
const char *gw_fcgi_param(char *const *envp, const char *name);

/*
 * The same for c's envp, through the name lengths kept when c parsed the
 * parameters itself (a test may hand it any envp: then as above).
 */
const char *gw_fcgi_get(const struct gw_fcgi *c, const char *name)
    GW_NONNULL(1, 2);

/*
 * Up to n bytes of the body into dst: > 0 bytes read, 0 at its end, -1
 * when the connection broke or the web server aborted the request.
 */
ssize_t gw_fcgi_read(struct gw_fcgi *c, void *dst, size_t n) GW_NONNULL(1);

/* n bytes of stdout, framed; written once 64 KiB are queued. 0 or -1. */
int gw_fcgi_write(struct gw_fcgi *c, const void *p, size_t n) GW_NONNULL(1);

/* Everything queued, written now (blocking). 0 or -1. */
int gw_fcgi_flush(struct gw_fcgi *c) GW_NONNULL(1);

/*
 * End the request: the empty stdout record and FCGI_END_REQUEST go with
 * what is queued, in one write. A body not read to its end is then read
 * and dropped (up to 64 MiB, for at most 2 s), as libfcgi does before it
 * closes: the web server may still be sending it. Then the connection is
 * kept (see above) or closed.
 */
void gw_fcgi_finish(struct gw_fcgi *c) GW_NONNULL(1);

/*
 * The connection goes to another owner (a detached request), who ends
 * the request and closes it; c forgets it. What is queued is written
 * first. Returns the descriptor.
 */
int gw_fcgi_release(struct gw_fcgi *c) GW_NONNULL(1);

/* Everything c holds, the connection closed. */
void gw_fcgi_free(struct gw_fcgi *c) GW_NONNULL(1);

/*
 * Append n bytes of stdout for request id to q as records, the open one
 * (its header at *rec, or GW_FCGI_NO_RECORD) grown first up to 65535.
 */
void gw_fcgi_frame(struct gw_buf *q, size_t *rec, int id, const void *p,
    size_t n) GW_NONNULL(1, 2);

/* Append the empty stdout record and FCGI_END_REQUEST (complete) to q. */
void gw_fcgi_frame_end(struct gw_buf *q, int id) GW_NONNULL(1);

#endif
