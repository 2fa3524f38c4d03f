/* http1.c: an HTTP/1.x answer, read incrementally (http1.h). */
#include "http1.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
	S_START,      /* no byte yet */
	S_STATUS,     /* the status line */
	S_HEADER,     /* header lines */
	S_BODY_LEN,   /* Content-Length bytes */
	S_BODY_CLOSE, /* everything up to the connection's end */
	S_CHUNK_SIZE, /* a chunk's size line */
	S_CHUNK_DATA, /* its bytes */
	S_CHUNK_END,  /* the CRLF after them */
	S_TRAILER,    /* trailer lines after the last chunk */
	S_DONE
};

void
gw_http1_init(struct gw_http1 *h, int no_body)
{
	h->state = S_START;
	h->status = h->minor = h->close = h->chunked = h->has_len = 0;
	h->keep_alive = 0;
	h->no_body = no_body;
	h->left = 0;
	h->line_len = 0;
	h->content_type[0] = h->retry_after[0] = '\0';
}

void
gw_http1_fini(struct gw_http1 *h)
{
	free(h->big);
	h->big = NULL;
}

/* Where a line cut by a read is gathered: room for len bytes, or NULL. */
static char *
line_room(struct gw_http1 *h, size_t len)
{
	if (len <= sizeof(h->small) && h->big == NULL)
		return h->small;
	if (len > GW_HTTP1_LINE_MAX)
		return NULL;
	if (h->big == NULL) {
		h->big = gw_xmalloc(GW_HTTP1_LINE_MAX);
		memcpy(h->big, h->small, h->line_len);
	}
	return h->big;
}

int
gw_http1_started(const struct gw_http1 *h)
{
	return h->state != S_START;
}

int
gw_http1_head_done(const struct gw_http1 *h)
{
	return h->state > S_HEADER;
}

/* "HTTP/1.x NNN reason": 0, or -1. */
static int
status_line(struct gw_http1 *h, const char *l, size_t n)
{
	if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || l[7] < '0' ||
	    l[7] > '9' || l[8] != ' ' || l[9] < '1' || l[9] > '5' ||
	    l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9' ||
	    (n > 12 && l[12] != ' '))
		return -1;
	h->minor = l[7] - '0';
	h->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	/* 101 would switch protocols: nothing here asks for that. */
	return h->status == 101 ? -1 : 0;
}

/* Does the comma-separated list v (n bytes) hold the token t? */
static int
has_token(const char *v, size_t n, const char *t)
{
	size_t tl = strlen(t), i = 0, j;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		j = i;
		while (j < n && v[j] != ',')
			j++;
		while (j > i && (v[j - 1] == ' ' || v[j - 1] == '\t'))
			j--;
		if (j - i == tl && strncasecmp(v + i, t, tl) == 0)
			return 1;
		while (j < n && v[j] != ',')
			j++;
		i = j;
	}
	return 0;
}

static void
copy_value(char *out, size_t cap, const char *v, size_t n)
{
	if (n > cap - 1)
		n = cap - 1;
	memcpy(out, v, n);
	out[n] = '\0';
}

/* One header line (no CRLF). 0, or -1. */
static int
header_line(struct gw_http1 *h, const char *l, size_t n)
{
	const char *colon = memchr(l, ':', n), *v;
	size_t nl, vn;
	uint64_t len = 0;

	if (colon == NULL || colon == l)
		return -1;
	nl = (size_t)(colon - l);
	v = colon + 1;
	vn = n - nl - 1;
	while (vn > 0 && (*v == ' ' || *v == '\t'))
		v++, vn--;
	while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
		vn--;
#define NAME_IS(s) (nl == sizeof(s) - 1 && strncasecmp(l, s, nl) == 0)
	if (NAME_IS("Content-Type")) {
		copy_value(h->content_type, sizeof(h->content_type), v, vn);
	} else if (NAME_IS("Retry-After")) {
		copy_value(h->retry_after, sizeof(h->retry_after), v, vn);
	} else if (NAME_IS("Content-Length")) {
		size_t i;

		if (vn == 0 || vn > 18)
			return -1;
		for (i = 0; i < vn; i++) {
			if (v[i] < '0' || v[i] > '9')
				return -1;
			len = len * 10 + (uint64_t)(v[i] - '0');
		}
		/* Two lengths that differ: which one frames the body? */
		if (h->has_len && h->left != len)
			return -1;
		h->has_len = 1;
		h->left = len;
	} else if (NAME_IS("Transfer-Encoding")) {
		if (has_token(v, vn, "chunked"))
			h->chunked = 1;
	} else if (NAME_IS("Connection")) {
		if (has_token(v, vn, "close"))
			h->close = 1;
		if (has_token(v, vn, "keep-alive"))
			h->keep_alive = 1;
	}
#undef NAME_IS
	return 0;
}

/* The empty line after the headers: how the body is framed. */
static int
head_end(struct gw_http1 *h, const struct gw_http1_cb *cb)
{
	if (h->status < 200) {
		/* 100 Continue and the like: the answer is still to come. */
		gw_http1_init(h, h->no_body);
		h->state = S_STATUS;
		return 0;
	}
	if (h->minor == 0 && !h->keep_alive)
		h->close = 1;
	if (h->no_body || h->status == 204 || h->status == 304) {
		h->state = S_DONE;
	} else if (h->chunked) {
		h->state = S_CHUNK_SIZE;
	} else if (h->has_len) {
		h->state = h->left > 0 ? S_BODY_LEN : S_DONE;
	} else {
		h->state = S_BODY_CLOSE;
		h->close = 1;
	}
	if (cb->on_head != NULL && cb->on_head(cb->arg, h) < 0)
		return -2;
	return 0;
}

/* A chunk's size line: hex digits, maybe ";extensions". */
static int
chunk_size(struct gw_http1 *h, const char *l, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;
	int d;

	for (; i < n; i++) {
		char c = l[i];

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (c | 0x20) - 'a' + 10;
		else
			break;
		if (i >= 15)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	if (i == 0)
		return -1;
	while (i < n && (l[i] == ' ' || l[i] == '\t'))
		i++;
	if (i < n && l[i] != ';')
		return -1;
	h->left = v;
	h->state = v > 0 ? S_CHUNK_DATA : S_TRAILER;
	return 0;
}

/* A whole line (CRLF or LF taken off) in the state at hand. */
static int
line(struct gw_http1 *h, const char *l, size_t n, const struct gw_http1_cb *cb)
{
	switch (h->state) {
	case S_STATUS:
		if (status_line(h, l, n) < 0)
			return -1;
		h->state = S_HEADER;
		return 0;
	case S_HEADER:
		return n == 0 ? head_end(h, cb) : header_line(h, l, n);
	case S_CHUNK_SIZE:
		return chunk_size(h, l, n);
	case S_CHUNK_END:
		if (n != 0)
			return -1;
		h->state = S_CHUNK_SIZE;
		return 0;
	case S_TRAILER:
		if (n == 0)
			h->state = S_DONE;
		return 0;
	default:
		return -1;
	}
}

/*
 * Take bytes of a line-shaped state: the line's bytes are gathered in
 * h->line (or read in place when whole in p). How many were taken, or
 * -1/-2 (bad, aborted).
 */
static long
take_line(
    struct gw_http1 *h, const char *p, size_t n, const struct gw_http1_cb *cb)
{
	const char *nl = memchr(p, '\n', n);
	size_t take = nl != NULL ? (size_t)(nl - p) + 1 : n;
	const char *l;
	char *buf;
	size_t ll;
	int rc;

	if (h->line_len + take > GW_HTTP1_LINE_MAX)
		return -1;
	if (nl == NULL || h->line_len > 0) {
		if ((buf = line_room(h, h->line_len + take)) == NULL)
			return -1;
		memcpy(buf + h->line_len, p, take);
		h->line_len += take;
		if (nl == NULL)
			return (long)n;
		l = buf;
		ll = h->line_len - 1;
	} else {
		l = p;
		ll = take - 1;
	}
	if (ll > 0 && l[ll - 1] == '\r')
		ll--;
	h->line_len = 0;
	rc = line(h, l, ll, cb);
	return rc < 0 ? rc : (long)take;
}

enum gw_http1_rc
gw_http1_feed(struct gw_http1 *h, const char *p, size_t n, size_t *used,
    const struct gw_http1_cb *cb)
{
	size_t off = 0, take;
	long got;
	enum gw_http1_rc rc = GW_HTTP1_MORE;

	if (h->state == S_START && n > 0)
		h->state = S_STATUS;
	while (off < n && h->state != S_DONE) {
		switch (h->state) {
		case S_BODY_LEN:
		case S_CHUNK_DATA:
		case S_BODY_CLOSE:
			take = n - off;
			if (h->state != S_BODY_CLOSE && take > h->left)
				take = (size_t)h->left;
			if (cb->on_body != NULL &&
			    (got = cb->on_body(cb->arg, p + off, take)) != 0) {
				rc = got > 0 ? GW_HTTP1_PAUSE : GW_HTTP1_ABORT;
				goto out;
			}
			off += take;
			if (h->state == S_BODY_CLOSE)
				break;
			h->left -= take;
			if (h->left == 0)
				h->state = h->state == S_BODY_LEN ? S_DONE
				                                  : S_CHUNK_END;
			break;
		default:
			got = take_line(h, p + off, n - off, cb);
			if (got < 0) {
				rc = got == -2 ? GW_HTTP1_ABORT : GW_HTTP1_BAD;
				goto out;
			}
			off += (size_t)got;
			break;
		}
	}
	if (h->state == S_DONE)
		rc = GW_HTTP1_DONE;
out:
	if (used != NULL)
		*used = off;
	return rc;
}

enum gw_http1_rc
gw_http1_eof(struct gw_http1 *h)
{
	if (h->state == S_BODY_CLOSE)
		h->state = S_DONE;
	return h->state == S_DONE ? GW_HTTP1_DONE : GW_HTTP1_MORE;
}
