/* http_upstream.c: the only libcurl caller. */
#include "http_upstream.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evloop.h"
#include "http1.h"
#include "log.h"

/* Plain-HTTP connections a thread keeps, by origin (least recent goes). */
#define RAW_CONNS 4
/* A blocking POST's receive buffer. */
#define RAW_RBUF (16 * 1024)
/* The longest origin ("host:port") the plain path takes. */
#define RAW_ORIGIN_MAX 255
/* A blocking plain POST hears on_tick (and checks its deadline) this often. */
#define RAW_TICK_MS 100
/* Body parts the plain path sends in one sendmsg (with the head). */
#define RAW_PARTS_MAX 14

struct raw_conn {
	CURL *h; /* holds the connection (CURLOPT_CONNECT_ONLY); NULL: none */
	int fd;
	uint64_t used; /* when last used, on up->raw_clock */
	size_t olen;
	char origin[RAW_ORIGIN_MAX + 1];
};

/* A blocking POST's own HTTP/1.1 (plain http:// only; see raw_post). */
struct raw {
	struct raw_conn conn[RAW_CONNS];
	uint64_t clock;
	struct gw_buf head;
	struct gw_http1 h1;
	char rbuf[RAW_RBUF];
};

struct gw_upstream {
	CURL *h;
	int post_ready;  /* the handle holds the options every POST shares */
	int parts_set;   /* its body is read from a post_ctx's parts */
	CURLU *url;      /* the last POST's URL, parsed once ... */
	char *url_str;   /* ... from this string */
	struct raw *raw; /* made at the first plain POST */
};

struct sink {
	struct gw_buf *buf;
	size_t cap;
};

/*
 * 1 when the environment names no proxy: libcurl then reads the proxy
 * variables again on every transfer (five getenv walks of environ), so
 * they are read once at start and, none being set, every transfer is told
 * there is none. A proxy set in the environment is used as libcurl would.
 */
static int no_proxy_env;
/* LLMGW_UPSTREAM_LIBCURL_HTTP=1: every POST through libcurl (raw_post). */
static int raw_off;

enum gw_status
gw_upstream_global_init(void)
{
	static const char *const vars[] = {"http_proxy", "HTTP_PROXY",
	    "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
	    "NO_PROXY"};
	size_t i;

	no_proxy_env = 1;
	raw_off = getenv("LLMGW_UPSTREAM_LIBCURL_HTTP") != NULL &&
	          strcmp(getenv("LLMGW_UPSTREAM_LIBCURL_HTTP"), "1") == 0;
	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (getenv(vars[i]) != NULL)
			no_proxy_env = 0;
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK
	           ? GW_OK
	           : GW_E_INTERNAL;
}

struct gw_upstream *
gw_upstream_new(void)
{
	struct gw_upstream *up = gw_xcalloc(1, sizeof(*up));

	up->h = curl_easy_init();
	GW_ASSERT(up->h != NULL);
	return up;
}

void
gw_upstream_free(struct gw_upstream *up)
{
	if (up == NULL)
		return;
	curl_easy_cleanup(up->h);
	curl_url_cleanup(up->url);
	free(up->url_str);
	if (up->raw != NULL) {
		int i;

		for (i = 0; i < RAW_CONNS; i++)
			curl_easy_cleanup(up->raw->conn[i].h);
		gw_buf_fini(&up->raw->head);
		gw_http1_fini(&up->raw->h1);
		free(up->raw);
	}
	free(up);
}

static size_t
sink_write(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n, room;

	if (s->buf != NULL && s->buf->len < s->cap) {
		room = s->cap - s->buf->len;
		gw_buf_append(s->buf, p, len < room ? len : room);
	}
	return len;
}

/* Common options for every transfer on a reused handle. */
static void
base_options(CURL *h, int connect_timeout_ms)
{
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(
	    h, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (no_proxy_env)
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
}

static enum gw_status
map_curl_error(CURLcode rc, const char *url, char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: %s", url, curl_easy_strerror(rc));
	return rc == CURLE_OPERATION_TIMEDOUT ? GW_E_TIMEOUT : GW_E_UPSTREAM;
}

enum gw_status
gw_upstream_get(struct gw_upstream *up, const char *url, int connect_timeout_ms,
    int timeout_ms, int *http_status, struct gw_buf *body, size_t cap,
    char *err, size_t errlen)
{
	struct sink s = {body, cap};
	CURLcode rc;
	long code = 0;

	*http_status = 0;
	curl_easy_reset(up->h);
	up->parts_set = 0;
	up->post_ready = 0;
	base_options(up->h, connect_timeout_ms);
	curl_easy_setopt(up->h, CURLOPT_URL, url);
	curl_easy_setopt(up->h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(up->h, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(up->h, CURLOPT_WRITEDATA, &s);
	rc = curl_easy_perform(up->h);
	if (rc != CURLE_OK)
		return map_curl_error(rc, url, err, errlen);
	curl_easy_getinfo(up->h, CURLINFO_RESPONSE_CODE, &code);
	*http_status = (int)code;
	return GW_OK;
}

struct post_ctx {
	const struct gw_upstream_cb *cb;
	struct gw_xfer *x; /* on the event loop; NULL: a blocking POST */
	struct gw_upstream_result *res;
	CURL *h;
	int head_done;
	char ctype[128];
	char retry_after[64];
	struct curl_slist *hdrs; /* the request's header lines */
	/* A body in parts (gw_upstream_post.parts): where libcurl is. */
	const struct iovec *parts;
	size_t nparts, part, off;
};

/* Copy a header's value when its name matches (case-insensitively). */
static void
header_value(
    const char *line, size_t n, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name), vl;

	if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	line += nl + 1;
	n -= nl + 1;
	while (n > 0 && (*line == ' ' || *line == '\t'))
		line++, n--;
	while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n' ||
	                    line[n - 1] == ' '))
		n--;
	vl = n < outlen - 1 ? n : outlen - 1;
	memcpy(out, line, vl);
	out[vl] = '\0';
}

static size_t
post_header(char *p, size_t size, size_t n, void *arg)
{
	struct post_ctx *c = arg;
	size_t len = size * n;

	/* A new status line (after 100 Continue or a redirect) resets. */
	if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
		c->ctype[0] = c->retry_after[0] = '\0';
		return len;
	}
	header_value(p, len, "Content-Type", c->ctype, sizeof(c->ctype));
	header_value(
	    p, len, "Retry-After", c->retry_after, sizeof(c->retry_after));
	return len;
}

static int
deliver_head(struct post_ctx *c)
{
	long code = 0;

	if (c->head_done)
		return 0;
	c->head_done = 1;
	curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
	c->res->http_status = (int)code;
	if (c->cb->on_head != NULL &&
	    c->cb->on_head(c->cb->arg, (int)code, c->ctype[0] ? c->ctype : NULL,
	        c->retry_after[0] ? c->retry_after : NULL) < 0) {
		c->res->aborted = 1;
		return -1;
	}
	return 0;
}

static void mark_dirty(struct gw_xfer *x);

static size_t
post_write(char *p, size_t size, size_t n, void *arg)
{
	struct post_ctx *c = arg;
	size_t len = size * n;
	int rc;

	if (deliver_head(c) < 0)
		return 0;
	rc = c->cb->on_data != NULL ? c->cb->on_data(c->cb->arg, p, len) : 0;
	/* Held back: libcurl hands the same bytes again on resume. */
	if (rc > 0)
		return CURL_WRITEFUNC_PAUSE;
	c->res->bytes += len;
	if (rc < 0) {
		c->res->aborted = 1;
		return 0;
	}
	if (c->x != NULL && c->cb->on_read_end != NULL)
		mark_dirty(c->x);
	return len;
}

static int
post_tick(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
    curl_off_t ulnow)
{
	struct post_ctx *c = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (c->cb->on_tick != NULL && c->cb->on_tick(c->cb->arg) < 0) {
		c->res->aborted = 1;
		return 1;
	}
	return 0;
}

/*
 * POSTs go to the same few URLs: parsed once into a URL handle (libcurl
 * parses a CURLOPT_URL string again on every transfer). A URL the parser
 * refuses is left to libcurl, which reports it as it would.
 */
static void
set_post_url(struct gw_upstream *up, const char *url)
{
	if (up->url_str == NULL || strcmp(up->url_str, url) != 0) {
		free(up->url_str);
		up->url_str = NULL;
		if (up->url == NULL)
			up->url = curl_url();
		if (up->url != NULL &&
		    curl_url_set(up->url, CURLUPART_URL, url, 0) == CURLUE_OK)
			up->url_str = gw_xstrdup(url);
	}
	if (up->url_str != NULL) {
		curl_easy_setopt(up->h, CURLOPT_CURLU, up->url);
	} else {
		curl_easy_setopt(up->h, CURLOPT_CURLU, NULL);
		curl_easy_setopt(up->h, CURLOPT_URL, url);
	}
}

/* libcurl asks for the next bytes of a body in parts. */
static size_t
post_read(char *dst, size_t size, size_t nitems, void *arg)
{
	struct post_ctx *c = arg;
	size_t room = size * nitems, n = 0, take;

	while (n < room && c->part < c->nparts) {
		const struct iovec *v = &c->parts[c->part];

		take = v->iov_len - c->off;
		if (take > room - n)
			take = room - n;
		memcpy(dst + n, (const char *)v->iov_base + c->off, take);
		n += take;
		c->off += take;
		if (c->off == v->iov_len)
			c->part++, c->off = 0;
	}
	return n;
}

/* ... and to start again (a kept connection found closed: sent anew). */
static int
post_seek(void *arg, curl_off_t offset, int origin)
{
	struct post_ctx *c = arg;
	size_t left;

	if (origin != SEEK_SET || offset < 0)
		return CURL_SEEKFUNC_CANTSEEK;
	left = (size_t)offset;
	for (c->part = 0; c->part < c->nparts; c->part++) {
		if (left < c->parts[c->part].iov_len)
			break;
		left -= c->parts[c->part].iov_len;
	}
	if (c->part == c->nparts && left > 0)
		return CURL_SEEKFUNC_FAIL;
	c->off = left;
	return CURL_SEEKFUNC_OK;
}

/* The body: in memory, or read from its parts as it is sent. */
static void
post_body(struct gw_upstream *up, const struct gw_upstream_post *p,
    struct post_ctx *c)
{
	c->parts = p->parts;
	c->nparts = p->nparts;
	c->part = c->off = 0;
	if (p->parts != NULL) {
		/* No postfields: libcurl reads (POST stays the method). */
		curl_easy_setopt(up->h, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(up->h, CURLOPT_READFUNCTION, post_read);
		curl_easy_setopt(up->h, CURLOPT_READDATA, c);
		curl_easy_setopt(up->h, CURLOPT_SEEKFUNCTION, post_seek);
		curl_easy_setopt(up->h, CURLOPT_SEEKDATA, c);
		up->parts_set = 1;
	} else {
		if (up->parts_set) {
			curl_easy_setopt(up->h, CURLOPT_READFUNCTION, NULL);
			curl_easy_setopt(up->h, CURLOPT_READDATA, NULL);
			curl_easy_setopt(up->h, CURLOPT_SEEKFUNCTION, NULL);
			curl_easy_setopt(up->h, CURLOPT_SEEKDATA, NULL);
			up->parts_set = 0;
		}
		curl_easy_setopt(up->h, CURLOPT_POSTFIELDS, p->body);
	}
	curl_easy_setopt(
	    up->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->body_len);
}

/*
 * Set up up->h for the POST p (its headers list goes to c->hdrs, freed by
 * post_result): the part a blocking and a loop transfer share.
 */
static void
post_prepare(struct gw_upstream *up, const struct gw_upstream_post *p,
    struct post_ctx *c)
{
	struct curl_slist *hdrs = NULL;
	char line[600];
	size_t i;

	memset(c->res, 0, sizeof(*c->res));
	/*
	 * POSTs follow POSTs on a handle: set the options they share once,
	 * not curl_easy_reset and all again per request.
	 */
	if (!up->post_ready) {
		curl_easy_reset(up->h);
		up->parts_set = 0;
		base_options(up->h, p->connect_timeout_ms);
		curl_easy_setopt(up->h, CURLOPT_POST, 1L);
		curl_easy_setopt(up->h, CURLOPT_HEADERFUNCTION, post_header);
		curl_easy_setopt(up->h, CURLOPT_WRITEFUNCTION, post_write);
		curl_easy_setopt(up->h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(up->h, CURLOPT_XFERINFOFUNCTION, post_tick);
		up->post_ready = 1;
	}
	curl_easy_setopt(
	    up->h, CURLOPT_CONNECTTIMEOUT_MS, (long)p->connect_timeout_ms);
	/*
	 * Few and short: libcurl formats every header byte through its own
	 * printf (about 125 instructions a byte); its default Accept stays.
	 */
	if (p->content_type == NULL) {
		hdrs =
		    curl_slist_append(hdrs, "Content-Type: application/json");
	} else {
		snprintf(
		    line, sizeof(line), "Content-Type: %s", p->content_type);
		hdrs = curl_slist_append(hdrs, line);
	}
	/* No "Expect: 100-continue" round trip (curl asks above 1 MiB). */
	if (p->body_len > 1024 * 1024)
		hdrs = curl_slist_append(hdrs, "Expect:");
	if (p->bearer != NULL) {
		snprintf(
		    line, sizeof(line), "Authorization: Bearer %s", p->bearer);
		hdrs = curl_slist_append(hdrs, line);
		explicit_bzero(line, sizeof(line));
	}
	if (p->request_id != NULL) {
		snprintf(line, sizeof(line), "x-request-id: %s", p->request_id);
		hdrs = curl_slist_append(hdrs, line);
	}
	for (i = 0; p->headers != NULL && p->headers[i] != NULL; i++)
		hdrs = curl_slist_append(hdrs, p->headers[i]);
	/* NULL and 0 clear what a previous POST set. */
	curl_easy_setopt(up->h, CURLOPT_USERPWD, p->userpwd);
	curl_easy_setopt(up->h, CURLOPT_TIMEOUT_MS,
	    (long)(p->timeout_ms > 0 ? p->timeout_ms : 0));
	set_post_url(up, p->url);
	post_body(up, p, c);
	curl_easy_setopt(up->h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(up->h, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(up->h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(up->h, CURLOPT_XFERINFODATA, c);
	c->hdrs = hdrs;
}

/* The transfer ended with rc: fill c->res and say how it went. */
static enum gw_status
post_result(struct gw_upstream *up, struct post_ctx *c, CURLcode rc)
{
	struct gw_upstream_result *res = c->res;

	/* An answer with an empty body still has a head to deliver. */
	if (rc == CURLE_OK && !res->aborted && deliver_head(c) < 0)
		rc = CURLE_WRITE_ERROR;
	/* The list is freed: the handle must not point at it any more. */
	curl_easy_setopt(up->h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(c->hdrs);
	c->hdrs = NULL;
	if (res->aborted)
		return GW_OK;
	if (rc != CURLE_OK) {
		snprintf(
		    res->err, sizeof(res->err), "%s", curl_easy_strerror(rc));
		res->connect_failed = rc == CURLE_COULDNT_CONNECT ||
		                      rc == CURLE_COULDNT_RESOLVE_HOST ||
		                      (rc == CURLE_OPERATION_TIMEDOUT &&
		                          !c->head_done && res->bytes == 0);
		if (!c->head_done) {
			long code = 0;

			curl_easy_getinfo(up->h, CURLINFO_RESPONSE_CODE, &code);
			res->http_status = (int)code;
		}
		return GW_E_UPSTREAM;
	}
	return GW_OK;
}

/* ------------------------------------------------------------------ */
/*
 * Blocking POSTs to a plain http:// upstream, without libcurl's transfer
 * machinery: libcurl makes the connection (CURLOPT_CONNECT_ONLY: its
 * resolver, connect timeout and words for failures), then the head and
 * body go out in one sendmsg and the answer is read with poll and recv
 * (http1.h). libcurl 7.88 spends ~55,000 instructions a transfer on
 * formatting its head through its own printf, its connection cache and
 * progress; this path ~3,000. Anything else (https, a proxy, basic auth,
 * more headers) goes through libcurl as before.
 */

struct raw_rd {
	const struct gw_upstream_cb *cb;
	struct gw_upstream_result *res;
	int aborted;
};

/*
 * url's authority and path when the plain path takes it: 1, or 0 (libcurl
 * then takes it as it would).
 */
static int
raw_url(const char *url, const char **auth, size_t *alen, const char **path)
{
	const char *q;

	if (strncmp(url, "http://", 7) != 0)
		return 0;
	*auth = url + 7;
	for (q = *auth; *q != '\0' && *q != '/' && *q != '?'; q++)
		if (*q == '@' || *q == '#' || (unsigned char)*q <= ' ' ||
		    (unsigned char)*q >= 0x7f)
			return 0;
	*alen = (size_t)(q - *auth);
	if (*alen == 0 || *alen > RAW_ORIGIN_MAX)
		return 0;
	*path = q;
	for (; *q != '\0'; q++)
		if (*q == '#' || (unsigned char)*q <= ' ' ||
		    (unsigned char)*q >= 0x7f)
			return 0;
	return 1;
}

/* A header value the head can carry as it is (no line breaks). */
static int
raw_value_ok(const char *v)
{
	return v == NULL || strpbrk(v, "\r\n") == NULL;
}

static void
raw_conn_drop(struct raw_conn *c)
{
	curl_easy_cleanup(c->h);
	c->h = NULL;
	c->fd = -1;
	c->olen = 0;
}

/*
 * A connection to the origin auth: a kept one (*reused = 1) or a new one
 * made by libcurl. NULL when it could not be made (res says why).
 */
static struct raw_conn *
raw_conn_get(struct raw *rw, const char *auth, size_t alen, int fresh,
    const struct gw_upstream_post *p, int64_t deadline,
    struct gw_upstream_result *res, int *reused)
{
	struct raw_conn *c = NULL, *lru = &rw->conn[0];
	char url[RAW_ORIGIN_MAX + 16];
	curl_socket_t fd = CURL_SOCKET_BAD;
	CURLcode rc;
	int i;

	*reused = 0;
	for (i = 0; i < RAW_CONNS; i++) {
		struct raw_conn *k = &rw->conn[i];

		if (!fresh && k->h != NULL && k->olen == alen &&
		    memcmp(k->origin, auth, alen) == 0) {
			k->used = ++rw->clock;
			*reused = 1;
			return k;
		}
		if (k->h == NULL)
			c = k;
		else if (k->used < lru->used)
			lru = k;
	}
	if (c == NULL) {
		c = lru;
		raw_conn_drop(c);
	}
	c->h = curl_easy_init();
	GW_ASSERT(c->h != NULL);
	base_options(c->h, p->connect_timeout_ms);
	snprintf(url, sizeof(url), "http://%.*s/", (int)alen, auth);
	curl_easy_setopt(c->h, CURLOPT_URL, url);
	curl_easy_setopt(c->h, CURLOPT_CONNECT_ONLY, 1L);
	if (deadline > 0) {
		int64_t left = (deadline - gw_now_mono_us()) / 1000;

		curl_easy_setopt(
		    c->h, CURLOPT_TIMEOUT_MS, (long)(left < 1 ? 1 : left));
	}
	rc = curl_easy_perform(c->h);
	if (rc == CURLE_OK &&
	    (curl_easy_getinfo(c->h, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK ||
	        fd == CURL_SOCKET_BAD))
		rc = CURLE_COULDNT_CONNECT;
	if (rc != CURLE_OK) {
		raw_conn_drop(c);
		snprintf(
		    res->err, sizeof(res->err), "%s", curl_easy_strerror(rc));
		res->connect_failed = rc == CURLE_COULDNT_CONNECT ||
		                      rc == CURLE_COULDNT_RESOLVE_HOST ||
		                      rc == CURLE_OPERATION_TIMEDOUT;
		return NULL;
	}
	c->fd = (int)fd;
	/*
	 * Blocking, with a receive timeout of a tick: once the request is
	 * sent, the answer is waited for in recv itself (no poll first).
	 */
	{
		struct timeval tv = {0, RAW_TICK_MS * 1000};
		int fl = fcntl(c->fd, F_GETFL);

		if (fl >= 0)
			fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	memcpy(c->origin, auth, alen);
	c->olen = alen;
	c->used = ++rw->clock;
	return c;
}

/* The request's head, as libcurl would have sent it. */
static void
raw_head(struct gw_buf *b, const struct gw_upstream_post *p, const char *auth,
    size_t alen, const char *path)
{
	char num[21];

	gw_buf_reset(b, 4096);
	gw_buf_append(b, "POST ", 5);
	if (*path != '/')
		gw_buf_append(b, "/", 1);
	gw_buf_puts(b, path);
	gw_buf_append(b, " HTTP/1.1\r\nHost: ", 17);
	gw_buf_append(b, auth, alen);
	gw_buf_append(b, "\r\nAccept: */*\r\nContent-Type: ", 29);
	gw_buf_puts(
	    b, p->content_type != NULL ? p->content_type : "application/json");
	if (p->bearer != NULL) {
		gw_buf_append(b, "\r\nAuthorization: Bearer ", 24);
		gw_buf_puts(b, p->bearer);
	}
	if (p->request_id != NULL) {
		gw_buf_append(b, "\r\nx-request-id: ", 16);
		gw_buf_puts(b, p->request_id);
	}
	gw_buf_append(b, "\r\nContent-Length: ", 18);
	gw_buf_append(b, num, gw_fmt_u64(num, p->body_len));
	gw_buf_append(b, "\r\n\r\n", 4);
}

static int
raw_on_head(void *arg, const struct gw_http1 *h)
{
	struct raw_rd *rd = arg;

	rd->res->http_status = h->status;
	if (rd->cb->on_head != NULL &&
	    rd->cb->on_head(rd->cb->arg, h->status,
	        h->content_type[0] ? h->content_type : NULL,
	        h->retry_after[0] ? h->retry_after : NULL) < 0) {
		rd->aborted = 1;
		return -1;
	}
	return 0;
}

static int
raw_on_body(void *arg, const char *p, size_t n)
{
	struct raw_rd *rd = arg;

	/* Blocking: nothing is held back (a pause means go on). */
	if (rd->cb->on_data != NULL && rd->cb->on_data(rd->cb->arg, p, n) < 0) {
		rd->aborted = 1;
		return -1;
	}
	rd->res->bytes += n;
	return 0;
}

/* How one exchange on a connection ended. */
enum raw_end {
	RAW_KEEP,  /* answered; the connection can carry the next */
	RAW_CLOSE, /* answered (or aborted); the connection is done */
	RAW_RETRY, /* a kept connection was found closed: nothing came */
	RAW_FAIL   /* failed: res->err says how */
};

static enum raw_end
raw_fail(struct gw_upstream_result *res, CURLcode rc)
{
	snprintf(res->err, sizeof(res->err), "%s", curl_easy_strerror(rc));
	return RAW_FAIL;
}

/* sendmsg took n bytes of m's iovecs: m starts at what is still to send. */
static void
iov_sent(struct msghdr *m, size_t n)
{
	while (n > 0 && m->msg_iovlen > 0) {
		size_t len = m->msg_iov->iov_len;

		if (n < len) {
			m->msg_iov->iov_base = (char *)m->msg_iov->iov_base + n;
			m->msg_iov->iov_len = len - n;
			return;
		}
		n -= len;
		m->msg_iov++;
		m->msg_iovlen--;
	}
}

/* As libcurl's path has it: a timeout before any answer byte. */
static void
timeout_before_answer(struct gw_upstream_result *res, const struct gw_http1 *h)
{
	if (!gw_http1_head_done(h) && res->bytes == 0 &&
	    strcmp(res->err, curl_easy_strerror(CURLE_OPERATION_TIMEDOUT)) == 0)
		res->connect_failed = 1;
}

/*
 * Send the request (v: head and body) on c and read its answer into cb,
 * until deadline (0: none).
 */
static enum raw_end
raw_exchange(struct raw *rw, struct raw_conn *c, struct iovec *v, int nv,
    const struct gw_upstream_cb *cb, struct gw_upstream_result *res,
    int64_t deadline)
{
	struct raw_rd rd = {cb, res, 0};
	const struct gw_http1_cb hcb = {&rd, raw_on_head, raw_on_body};
	struct msghdr msg = {0};
	struct pollfd pfd = {.fd = c->fd};
	int64_t now, last_tick = gw_now_mono_us(), wait;
	int sending = 1, send_err = 0, first = 1;
	enum gw_http1_rc hr;
	size_t used;
	ssize_t n;

	gw_http1_init(&rw->h1, 0);
	msg.msg_iov = v;
	msg.msg_iovlen = (size_t)nv;
	for (;;) {
		/* Send what the socket takes; the answer may come early. */
		if (sending && (first || (pfd.revents & (POLLOUT | POLLERR)))) {
			n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				send_err = errno;
				sending = 0;
			}
			if (n > 0)
				iov_sent(&msg, (size_t)n);
			if (msg.msg_iovlen == 0)
				sending = 0;
		}
		first = 0;
		now = gw_now_mono_us();
		if (deadline > 0 && now >= deadline)
			return raw_fail(res, CURLE_OPERATION_TIMEDOUT);
		wait = RAW_TICK_MS;
		if (deadline > 0 && (deadline - now + 999) / 1000 < wait)
			wait = (deadline - now + 999) / 1000;
		pfd.events = POLLIN | (sending ? POLLOUT : 0);
		pfd.revents = 0;
		if (!sending && wait == RAW_TICK_MS) {
			/* All sent: wait in recv (SO_RCVTIMEO is a tick). */
			pfd.revents = POLLIN;
		} else if (poll(&pfd, 1, (int)wait) < 0 && errno != EINTR) {
			return raw_fail(res, CURLE_RECV_ERROR);
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = recv(c->fd, rw->rbuf, sizeof(rw->rbuf),
			    pfd.events & POLLOUT ? MSG_DONTWAIT : 0);
			if (n > 0) {
				hr = gw_http1_feed(
				    &rw->h1, rw->rbuf, (size_t)n, &used, &hcb);
				if (hr == GW_HTTP1_ABORT || rd.aborted) {
					res->aborted = 1;
					return RAW_CLOSE;
				}
				if (hr == GW_HTTP1_BAD)
					return raw_fail(
					    res, CURLE_WEIRD_SERVER_REPLY);
				if (hr == GW_HTTP1_DONE)
					return rw->h1.close || sending ||
					               send_err != 0 ||
					               used < (size_t)n
					           ? RAW_CLOSE
					           : RAW_KEEP;
			} else if (n == 0 ||
			           (errno != EAGAIN && errno != EINTR)) {
				int gone = n == 0 ? 0 : errno;

				if (!gw_http1_started(&rw->h1))
					return RAW_RETRY;
				if (n == 0 &&
				    gw_http1_eof(&rw->h1) == GW_HTTP1_DONE)
					return RAW_CLOSE;
				return raw_fail(
				    res, gone != 0 ? CURLE_RECV_ERROR
				         : gw_http1_head_done(&rw->h1)
				             ? CURLE_PARTIAL_FILE
				             : CURLE_WEIRD_SERVER_REPLY);
			}
		} else if (send_err != 0 && !sending && pfd.revents == 0 &&
		           !gw_http1_started(&rw->h1)) {
			/* Refused mid-send and nothing to read since. */
			return RAW_RETRY;
		}
		now = gw_now_mono_us();
		if (now - last_tick >= RAW_TICK_MS * 1000) {
			last_tick = now;
			if (cb->on_tick != NULL && cb->on_tick(cb->arg) < 0) {
				res->aborted = 1;
				return RAW_CLOSE;
			}
		}
	}
}

/*
 * The plain path's POST: GW_OK, GW_E_UPSTREAM as gw_upstream_post, or
 * GW_E_INVALID when p is not for it (libcurl then takes it).
 */
static enum gw_status
raw_post(struct gw_upstream *up, const struct gw_upstream_post *p,
    const struct gw_upstream_cb *cb, struct gw_upstream_result *res)
{
	const char *auth, *path;
	size_t alen, i;
	struct iovec v[RAW_PARTS_MAX + 1];
	struct raw_conn *c;
	int nv = 0, reused, attempt;
	int64_t deadline = 0;
	enum raw_end e = RAW_FAIL;

	if (raw_off || !no_proxy_env || p->userpwd != NULL ||
	    (p->headers != NULL && p->headers[0] != NULL) ||
	    (p->parts != NULL && p->nparts > RAW_PARTS_MAX) ||
	    !raw_url(p->url, &auth, &alen, &path) || !raw_value_ok(p->bearer) ||
	    !raw_value_ok(p->request_id) || !raw_value_ok(p->content_type))
		return GW_E_INVALID;
	if (up->raw == NULL) {
		up->raw = gw_xcalloc(1, sizeof(*up->raw));
		for (i = 0; i < RAW_CONNS; i++)
			up->raw->conn[i].fd = -1;
	}
	memset(res, 0, sizeof(*res));
	if (p->timeout_ms > 0)
		deadline = gw_now_mono_us() + (int64_t)p->timeout_ms * 1000;
	raw_head(&up->raw->head, p, auth, alen, path);
	/* Once at most: a kept connection the upstream had closed. */
	for (attempt = 0; attempt < 2; attempt++) {
		c = raw_conn_get(up->raw, auth, alen, attempt > 0, p, deadline,
		    res, &reused);
		if (c == NULL)
			break;
		nv = 0;
		v[nv].iov_base = up->raw->head.p;
		v[nv++].iov_len = up->raw->head.len;
		if (p->parts != NULL) {
			for (i = 0; i < p->nparts; i++)
				if (p->parts[i].iov_len > 0)
					v[nv++] = p->parts[i];
		} else if (p->body_len > 0) {
			v[nv].iov_base = (void *)p->body;
			v[nv++].iov_len = p->body_len;
		}
		e = raw_exchange(up->raw, c, v, nv, cb, res, deadline);
		if (e != RAW_KEEP)
			raw_conn_drop(c);
		if (e != RAW_RETRY)
			break;
		if (!reused) {
			raw_fail(res, CURLE_GOT_NOTHING);
			e = RAW_FAIL;
			break;
		}
		res->http_status = 0;
		res->bytes = 0;
	}
	/* The bearer was in the head's bytes. */
	if (p->bearer != NULL)
		explicit_bzero(up->raw->head.p, up->raw->head.len);
	if (c == NULL)
		return GW_E_UPSTREAM;
	if (e == RAW_FAIL) {
		timeout_before_answer(res, &up->raw->h1);
		return GW_E_UPSTREAM;
	}
	return GW_OK;
}

enum gw_status
gw_upstream_post(struct gw_upstream *up, const struct gw_upstream_post *p,
    const struct gw_upstream_cb *cb, struct gw_upstream_result *res)
{
	struct post_ctx c = {.cb = cb, .res = res, .h = up->h};

	enum gw_status st = raw_post(up, p, cb, res);

	if (st != GW_E_INVALID)
		return st;
	post_prepare(up, p, &c);
	return post_result(up, &c, curl_easy_perform(up->h));
}

/* ------------------------------------------------------------------ */
/* Transfers on the event loop: one libcurl multi per process.        */

/* Easy handles kept for reuse (their options set), at most this many. */
#define SPARE_MAX 32
/* Upstream connections the multi keeps beyond those in use. */
#define IDLE_CONNS_MAX 64
/* libcurl's receive buffer for a loop transfer (its least is 1024). */
#define LOOP_RECV_BUF 1024L
/* Every transfer's on_tick runs this often. */
#define LOOP_TICK_US (100 * 1000)

struct gw_xfer {
	struct gw_upstream_multi *um;
	struct gw_upstream *up; /* the handle, borrowed from the spares */
	struct post_ctx c;
	struct gw_upstream_result res;
	void (*done)(
	    void *arg, enum gw_status st, const struct gw_upstream_result *res);
	int resume; /* asked to go on (see gw_upstream_resume) */
	struct gw_xfer *next, *prev; /* the multi's running transfers */
	int dirty;                   /* on_data since the last on_read_end */
	struct gw_xfer *dirty_next;
	struct lx *lx; /* a plain transfer's state; NULL: libcurl's */
};

struct gw_upstream_multi {
	struct gw_loop *loop;
	CURLM *m;
	struct gw_loop_timer timer; /* libcurl's timeout */
	struct gw_loop_timer tick;  /* every transfer's on_tick */
	struct gw_xfer *running;
	struct gw_xfer *dirty; /* given data by the libcurl call at hand */
	struct gw_upstream *spare[SPARE_MAX];
	int nspare;
	int resume_posted;
	struct lconn *idle; /* plain connections kept for the next transfer */
	int nidle;
	char *rbuf; /* every plain transfer reads here */
};

/* A socket libcurl asked us to watch. */
struct sock {
	struct gw_loop_io io;
	struct gw_upstream_multi *um;
};

/* ------------------------------------------------------------------ */
/*
 * Plain transfers on the loop: a stream to an http:// upstream named by
 * its address (base_url = http://127.0.0.1:8080, say) runs on the loop's
 * own connections, as raw_post does on a worker thread: a non-blocking
 * connect, head and body in one sendmsg, the answer read into one buffer
 * the loop shares (http1.h). libcurl's multi took ~135,000 instructions a
 * 20-chunk stream. A host name (it would need the resolver on the loop),
 * https, a proxy, basic auth and more headers stay on libcurl.
 */

/* The loop's receive buffer, shared by every plain transfer. */
#define LOOP_RBUF (16 * 1024)

struct lconn {
	struct gw_loop_io io;
	struct gw_upstream_multi *um;
	struct gw_xfer *x;  /* the transfer on it; NULL: idle */
	struct lconn *next; /* the multi's idle connections */
	int connecting;
	size_t olen;
	char origin[RAW_ORIGIN_MAX + 1];
};

struct lx {
	struct lconn *lc;
	const struct gw_upstream_post *p;
	struct sockaddr_storage sa;
	socklen_t salen;
	const char *auth;
	size_t alen;
	struct gw_buf head;
	struct iovec v[2];
	struct msghdr msg; /* what is still to send: v[...] */
	int sending, reused, resent, dirty;
	int kicked; /* lx_kick ran: the transfer may end */
	int64_t conn_deadline, deadline;
	char *held; /* read but held back by on_data: fed again on resume */
	size_t held_len;
	int paused;
	struct gw_http1 h1;
};

/* x joins the multi's running transfers: heard every tick from now. */
static void
running_add(struct gw_upstream_multi *um, struct gw_xfer *x)
{
	x->next = um->running;
	if (um->running != NULL)
		um->running->prev = x;
	um->running = x;
	if (um->tick.due_us == 0)
		gw_loop_timer_set(um->loop, &um->tick, LOOP_TICK_US);
}

/* x leaves them; the tick stops with the last. */
static void
running_remove(struct gw_upstream_multi *um, struct gw_xfer *x)
{
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		um->running = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	if (um->running == NULL)
		gw_loop_timer_set(um->loop, &um->tick, -1);
}

static void lx_end(struct gw_xfer *x, enum raw_end e);

/* The address of an authority "a.b.c.d[:port]" or "[v6][:port]": 0, -1. */
static int
lx_addr(const char *auth, size_t alen, struct sockaddr_storage *sa,
    socklen_t *salen)
{
	char host[64];
	const char *port = NULL, *end = auth + alen;
	size_t hl;
	unsigned long pn = 80;
	char *e;

	memset(sa, 0, sizeof(*sa));
	if (alen > 0 && auth[0] == '[') {
		const char *rb = memchr(auth, ']', alen);

		if (rb == NULL)
			return -1;
		hl = (size_t)(rb - auth - 1);
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, auth + 1, hl);
		host[hl] = '\0';
		if (rb + 1 < end && rb[1] != ':')
			return -1;
		if (rb + 1 < end)
			port = rb + 2;
	} else {
		const char *colon = memchr(auth, ':', alen);

		hl = colon != NULL ? (size_t)(colon - auth) : alen;
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, auth, hl);
		host[hl] = '\0';
		if (colon != NULL)
			port = colon + 1;
	}
	if (port != NULL) {
		if (port == end || end - port > 5)
			return -1;
		pn = strtoul(port, &e, 10);
		if (e != end || pn == 0 || pn > 65535)
			return -1;
	}
	if (auth[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;

		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return -1;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)pn);
		*salen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)sa;

		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return -1;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)pn);
		*salen = sizeof(*s4);
	}
	return 0;
}

static void
lconn_close(struct lconn *lc)
{
	gw_loop_forget(lc->um->loop, &lc->io);
	close(lc->io.fd);
	/* An event of the batch at hand may still name it. */
	gw_loop_post(lc->um->loop, free, lc);
}

/* Take lc off the idle list. */
static void
lconn_unidle(struct lconn *lc)
{
	struct lconn **pp = &lc->um->idle;

	while (*pp != NULL && *pp != lc)
		pp = &(*pp)->next;
	if (*pp == lc) {
		*pp = lc->next;
		lc->um->nidle--;
	}
	lc->next = NULL;
}

static void
lx_watch(struct gw_xfer *x)
{
	struct lx *l = x->lx;
	uint32_t ev = 0;

	/*
	 * Read with EPOLLRDHUP, as an idle connection is watched: a kept
	 * connection's request and answer change nothing (no epoll_ctl).
	 */
	if (l->lc->connecting)
		ev = EPOLLOUT;
	else if (!l->paused)
		ev = EPOLLIN | EPOLLRDHUP | (l->sending ? EPOLLOUT : 0);
	gw_loop_watch(x->um->loop, &l->lc->io, ev);
}

static void on_lconn(void *arg, uint32_t events);

/* A new connection for x (connecting, or failed: x ends). 0 or -1. */
static int
lx_connect(struct gw_xfer *x)
{
	struct lx *l = x->lx;
	struct lconn *lc = gw_xcalloc(1, sizeof(*lc));
	int fd, one = 1;

	fd = socket(
	    l->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		free(lc);
		raw_fail(&x->res, CURLE_COULDNT_CONNECT);
		x->res.connect_failed = 1;
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	lc->io.fn = on_lconn;
	lc->io.arg = lc;
	lc->io.fd = fd;
	lc->um = x->um;
	lc->x = x;
	memcpy(lc->origin, l->auth, l->alen);
	lc->olen = l->alen;
	l->lc = lc;
	l->reused = 0;
	if (connect(fd, (struct sockaddr *)&l->sa, l->salen) < 0) {
		if (errno != EINPROGRESS) {
			raw_fail(&x->res, CURLE_COULDNT_CONNECT);
			x->res.connect_failed = 1;
			return -1;
		}
		lc->connecting = 1;
		l->conn_deadline =
		    gw_now_mono_us() + (int64_t)(l->p->connect_timeout_ms > 0
		                                     ? l->p->connect_timeout_ms
		                                     : 300000) *
		                           1000;
	}
	return 0;
}

/* Send from the start again (a new connection). */
static void
lx_rewind(struct lx *l)
{
	l->v[0].iov_base = l->head.p;
	l->v[0].iov_len = l->head.len;
	l->v[1].iov_base = (void *)l->p->body;
	l->v[1].iov_len = l->p->body_len;
	memset(&l->msg, 0, sizeof(l->msg));
	l->msg.msg_iov = l->v;
	l->msg.msg_iovlen = l->p->body_len > 0 ? 2 : 1;
	l->sending = 1;
	gw_http1_init(&l->h1, 0);
}

/*
 * A kept connection that turned out closed before any answer byte: once,
 * the request goes again on a new one. 0 when it does (watched: the
 * caller must not touch the old connection again), -1 when not (x as it
 * was), -2 when the new one failed (x is to end, res says why).
 */
static int
lx_retry(struct gw_xfer *x)
{
	struct lx *l = x->lx;

	if (!l->reused || l->resent || gw_http1_started(&l->h1))
		return -1;
	l->resent = 1;
	l->lc->x = NULL;
	lconn_close(l->lc);
	l->lc = NULL;
	lx_rewind(l);
	if (lx_connect(x) < 0)
		return -2;
	lx_watch(x);
	return 0;
}

static int
lx_on_head(void *arg, const struct gw_http1 *h)
{
	struct gw_xfer *x = arg;

	x->res.http_status = h->status;
	if (x->c.cb->on_head != NULL &&
	    x->c.cb->on_head(x->c.cb->arg, h->status,
	        h->content_type[0] ? h->content_type : NULL,
	        h->retry_after[0] ? h->retry_after : NULL) < 0) {
		x->res.aborted = 1;
		return -1;
	}
	return 0;
}

static int
lx_on_body(void *arg, const char *p, size_t n)
{
	struct gw_xfer *x = arg;
	int rc =
	    x->c.cb->on_data != NULL ? x->c.cb->on_data(x->c.cb->arg, p, n) : 0;

	if (rc > 0)
		return 1;
	if (rc < 0) {
		x->res.aborted = 1;
		return -1;
	}
	x->res.bytes += n;
	x->lx->dirty = 1;
	return 0;
}

/*
 * Hand n read bytes to the answer's reader. 1 when x ended (it is gone
 * then), 0 when it goes on.
 */
static int
lx_feed(struct gw_xfer *x, const char *p, size_t n)
{
	struct lx *l = x->lx;
	const struct gw_http1_cb hcb = {x, lx_on_head, lx_on_body};
	enum gw_http1_rc hr;
	size_t used = 0;

	hr = gw_http1_feed(&l->h1, p, n, &used, &hcb);
	if (hr == GW_HTTP1_PAUSE) {
		/* Kept until gw_upstream_resume; the socket unwatched. */
		char *keep = gw_xmalloc(n - used);

		memcpy(keep, p + used, n - used);
		free(l->held);
		l->held = keep;
		l->held_len = n - used;
		l->paused = 1;
		lx_watch(x);
	}
	if (l->dirty && x->c.cb->on_read_end != NULL && hr != GW_HTTP1_ABORT) {
		l->dirty = 0;
		if (x->c.cb->on_read_end(x->c.cb->arg) < 0) {
			x->res.aborted = 1;
			hr = GW_HTTP1_ABORT;
		}
	}
	l->dirty = 0;
	switch (hr) {
	case GW_HTTP1_ABORT:
		x->res.aborted = 1;
		lx_end(x, RAW_CLOSE);
		return 1;
	case GW_HTTP1_BAD:
		raw_fail(&x->res, CURLE_WEIRD_SERVER_REPLY);
		lx_end(x, RAW_FAIL);
		return 1;
	case GW_HTTP1_DONE:
		lx_end(x, l->h1.close || l->sending || used < n ? RAW_CLOSE
		                                                : RAW_KEEP);
		return 1;
	default:
		return 0;
	}
}

/*
 * Send what the socket takes. 0 when x goes on on this connection; 1 when
 * x ended or went on on a new one (the caller stops there).
 */
static int
lx_send(struct gw_xfer *x)
{
	struct lx *l = x->lx;
	ssize_t n = sendmsg(l->lc->io.fd, &l->msg, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		switch (lx_retry(x)) {
		case 0:
			return 1;
		case -2:
			lx_end(x, RAW_FAIL);
			return 1;
		default:
			break;
		}
		/* An answer may already wait (an early refusal): read it. */
		if (!gw_http1_started(&l->h1))
			raw_fail(&x->res, CURLE_SEND_ERROR);
		l->sending = 0;
		lx_watch(x);
		return 0;
	}
	iov_sent(&l->msg, (size_t)n);
	if (l->msg.msg_iovlen == 0) {
		l->sending = 0;
		lx_watch(x);
	}
	return 0;
}

/* The connection's end, or its failure: retried once, else x ends. */
static void
lx_closed(struct gw_xfer *x, int err)
{
	struct lx *l = x->lx;

	switch (lx_retry(x)) {
	case 0:
		return;
	case -2:
		lx_end(x, RAW_FAIL);
		return;
	default:
		break;
	}
	if (err == 0 && gw_http1_eof(&l->h1) == GW_HTTP1_DONE) {
		lx_end(x, RAW_CLOSE);
		return;
	}
	raw_fail(&x->res, err != 0                    ? CURLE_RECV_ERROR
	                  : !gw_http1_started(&l->h1) ? CURLE_GOT_NOTHING
	                  : gw_http1_head_done(&l->h1)
	                      ? CURLE_PARTIAL_FILE
	                      : CURLE_WEIRD_SERVER_REPLY);
	lx_end(x, RAW_FAIL);
}

static void
on_lconn(void *arg, uint32_t events)
{
	struct lconn *lc = arg;
	struct gw_upstream_multi *um = lc->um;
	struct gw_xfer *x = lc->x;
	struct lx *l;
	int err = 0;
	socklen_t el = sizeof(err);
	ssize_t n;

	if (x == NULL) {
		/* Idle: the upstream closed it (or said what it should not). */
		lconn_unidle(lc);
		lconn_close(lc);
		return;
	}
	l = x->lx;
	if (lc->connecting) {
		if (getsockopt(lc->io.fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err != 0) {
			raw_fail(&x->res, CURLE_COULDNT_CONNECT);
			x->res.connect_failed = 1;
			lx_end(x, RAW_FAIL);
			return;
		}
		lc->connecting = 0;
		if (lx_send(x) == 0)
			lx_watch(x);
		return;
	}
	if (l->sending && (events & (EPOLLOUT | EPOLLERR)) && lx_send(x) != 0)
		return;
	/* A send that failed left its words; an answer may still come. */
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) ||
	    l->paused)
		return;
	n = recv(lc->io.fd, um->rbuf, LOOP_RBUF, MSG_DONTWAIT);
	if (n > 0) {
		lx_feed(x, um->rbuf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	lx_closed(x, n < 0 ? errno : 0);
}

/*
 * x's end: its connection kept (RAW_KEEP) or closed, its owner told (as
 * post_result would have: aborted is GW_OK), x freed.
 */
static void
lx_end(struct gw_xfer *x, enum raw_end e)
{
	struct gw_upstream_multi *um = x->um;
	struct lx *l = x->lx;
	struct lconn *lc = l->lc;
	enum gw_status st = GW_OK;

	if (lc != NULL) {
		lc->x = NULL;
		if (e == RAW_KEEP && um->nidle < IDLE_CONNS_MAX) {
			/* Watched while idle: a close is seen at once. */
			gw_loop_watch(um->loop, &lc->io, EPOLLIN | EPOLLRDHUP);
			lc->next = um->idle;
			um->idle = lc;
			um->nidle++;
		} else {
			lconn_close(lc);
		}
	}
	running_remove(um, x);
	if (e == RAW_FAIL && !x->res.aborted) {
		st = GW_E_UPSTREAM;
		timeout_before_answer(&x->res, &l->h1);
	}
	if (l->p->bearer != NULL)
		explicit_bzero(l->head.p, l->head.len);
	x->done(x->c.cb->arg, st, &x->res);
	gw_buf_fini(&l->head);
	gw_http1_fini(&l->h1);
	free(l->held);
	free(l);
	free(x);
}

/* First step of a plain transfer, from the loop (never inside start). */
static void
lx_kick(void *arg)
{
	struct gw_xfer *x = arg;
	struct lx *l = x->lx;
	struct lconn *lc, **pp;

	l->kicked = 1;
	for (pp = &x->um->idle; (lc = *pp) != NULL; pp = &lc->next)
		if (lc->olen == l->alen &&
		    memcmp(lc->origin, l->auth, l->alen) == 0)
			break;
	if (lc != NULL) {
		*pp = lc->next;
		lc->next = NULL;
		x->um->nidle--;
		lc->x = x;
		l->lc = lc;
		l->reused = 1;
	} else if (lx_connect(x) < 0) {
		lx_end(x, RAW_FAIL);
		return;
	}
	if (!l->lc->connecting && lx_send(x) != 0)
		return;
	lx_watch(x);
}

/* A plain transfer for p, or NULL when p is not for the plain path. */
static struct lx *
lx_new(const struct gw_upstream_post *p)
{
	const char *auth, *path;
	size_t alen;
	struct sockaddr_storage sa;
	socklen_t salen = 0;
	struct lx *l;

	if (raw_off || !no_proxy_env || p->userpwd != NULL ||
	    (p->headers != NULL && p->headers[0] != NULL) || p->parts != NULL ||
	    !raw_url(p->url, &auth, &alen, &path) ||
	    lx_addr(auth, alen, &sa, &salen) < 0 || !raw_value_ok(p->bearer) ||
	    !raw_value_ok(p->request_id) || !raw_value_ok(p->content_type))
		return NULL;
	l = gw_xcalloc(1, sizeof(*l));
	l->p = p;
	l->sa = sa;
	l->salen = salen;
	l->auth = auth;
	l->alen = alen;
	raw_head(&l->head, p, auth, alen, path);
	lx_rewind(l);
	if (p->timeout_ms > 0)
		l->deadline = gw_now_mono_us() + (int64_t)p->timeout_ms * 1000;
	return l;
}

/* The tick's checks of a plain transfer: 1 when it ended. */
static int
lx_tick(struct gw_xfer *x, int64_t now)
{
	struct lx *l = x->lx;

	if ((l->lc != NULL && l->lc->connecting && now >= l->conn_deadline) ||
	    (l->deadline > 0 && now >= l->deadline)) {
		raw_fail(&x->res, CURLE_OPERATION_TIMEDOUT);
		if (l->lc != NULL && l->lc->connecting)
			x->res.connect_failed = 1;
		lx_end(x, RAW_FAIL);
		return 1;
	}
	return 0;
}

/* Go on after a pause: the held bytes first, then the socket. */
static void
lx_resume(struct gw_xfer *x)
{
	struct lx *l = x->lx;
	char *held = l->held;
	size_t n = l->held_len;

	if (!l->paused)
		return;
	l->paused = 0;
	l->held = NULL;
	l->held_len = 0;
	if (n > 0 && lx_feed(x, held, n) != 0) {
		free(held);
		return;
	}
	free(held);
	if (!l->paused)
		lx_watch(x);
}

static void after_action(struct gw_upstream_multi *um);

static void
mark_dirty(struct gw_xfer *x)
{
	if (x->dirty)
		return;
	x->dirty = 1;
	x->dirty_next = x->um->dirty;
	x->um->dirty = x;
}

static void
on_sock_event(void *arg, uint32_t events)
{
	struct sock *s = arg;
	struct gw_upstream_multi *um = s->um;
	int flags = 0, running;

	if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & EPOLLERR)
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(um->m, s->io.fd, flags, &running);
	after_action(um);
}

static int
sock_cb(CURL *h, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct gw_upstream_multi *um = arg;
	struct sock *s = sockp;
	uint32_t ev = 0;

	(void)h;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			gw_loop_watch(um->loop, &s->io, 0);
			curl_multi_assign(um->m, fd, NULL);
			/* An event of the batch at hand may still name it. */
			gw_loop_post(um->loop, free, s);
		}
		return 0;
	}
	if (s == NULL) {
		s = gw_xcalloc(1, sizeof(*s));
		s->io.fn = on_sock_event;
		s->io.arg = s;
		s->io.fd = fd;
		s->um = um;
		curl_multi_assign(um->m, fd, s);
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		ev |= EPOLLIN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		ev |= EPOLLOUT;
	gw_loop_watch(um->loop, &s->io, ev);
	return 0;
}

static void
on_timer(void *arg)
{
	struct gw_upstream_multi *um = arg;
	int running;

	curl_multi_socket_action(um->m, CURL_SOCKET_TIMEOUT, 0, &running);
	after_action(um);
}

static int
timer_cb(CURLM *m, long timeout_ms, void *arg)
{
	struct gw_upstream_multi *um = arg;

	(void)m;
	gw_loop_timer_set(um->loop, &um->timer,
	    timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000);
	return 0;
}

/* Take x off the multi, give its handle back, tell its owner. */
static void
xfer_end(struct gw_upstream_multi *um, struct gw_xfer *x, CURLcode rc)
{
	enum gw_status st;

	curl_multi_remove_handle(um->m, x->up->h);
	if (x->dirty) {
		struct gw_xfer **pp = &um->dirty;

		while (*pp != x)
			pp = &(*pp)->dirty_next;
		*pp = x->dirty_next;
	}
	running_remove(um, x);
	st = post_result(x->up, &x->c, rc);
	if (um->nspare < SPARE_MAX)
		um->spare[um->nspare++] = x->up;
	else
		gw_upstream_free(x->up);
	x->done(x->c.cb->arg, st, &x->res);
	free(x);
}

static void
check_done(struct gw_upstream_multi *um)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(um->m, &left)) != NULL) {
		struct gw_xfer *x = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &x);
		xfer_end(um, x, msg->data.result);
	}
}

/*
 * After a libcurl call: each transfer it gave data ends its read
 * (on_read_end), then the transfers it finished end.
 */
static void
after_action(struct gw_upstream_multi *um)
{
	struct gw_xfer *x;

	while ((x = um->dirty) != NULL) {
		um->dirty = x->dirty_next;
		x->dirty = 0;
		if (x->c.cb->on_read_end(x->c.cb->arg) < 0) {
			x->res.aborted = 1;
			xfer_end(um, x, CURLE_ABORTED_BY_CALLBACK);
		}
	}
	check_done(um);
}

/* Timeouts, keep-alives and vanished clients: each transfer's on_tick. */
static void
on_tick(void *arg)
{
	struct gw_upstream_multi *um = arg;
	struct gw_xfer *x, *next;
	int64_t now = gw_now_mono_us();

	for (x = um->running; x != NULL; x = next) {
		next = x->next;
		if (x->lx != NULL && !x->lx->kicked)
			continue;
		if (x->c.cb->on_tick != NULL &&
		    x->c.cb->on_tick(x->c.cb->arg) < 0) {
			x->res.aborted = 1;
			if (x->lx != NULL)
				lx_end(x, RAW_CLOSE);
			else
				xfer_end(um, x, CURLE_ABORTED_BY_CALLBACK);
		} else if (x->lx != NULL) {
			lx_tick(x, now);
		}
	}
	if (um->running != NULL)
		gw_loop_timer_set(um->loop, &um->tick, LOOP_TICK_US);
}

struct gw_upstream_multi *
gw_upstream_multi_new(struct gw_loop *loop)
{
	struct gw_upstream_multi *um = gw_xcalloc(1, sizeof(*um));

	um->loop = loop;
	um->m = curl_multi_init();
	GW_ASSERT(um->m != NULL);
	curl_multi_setopt(um->m, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(um->m, CURLMOPT_SOCKETDATA, um);
	curl_multi_setopt(um->m, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(um->m, CURLMOPT_TIMERDATA, um);
	/* Idle connections kept for reuse after a burst of streams. */
	curl_multi_setopt(um->m, CURLMOPT_MAXCONNECTS, (long)IDLE_CONNS_MAX);
	um->timer.fn = on_timer;
	um->timer.arg = um;
	um->tick.fn = on_tick;
	um->tick.arg = um;
	um->rbuf = gw_xmalloc(LOOP_RBUF);
	return um;
}

struct gw_xfer *
gw_upstream_start(struct gw_upstream_multi *um,
    const struct gw_upstream_post *p, const struct gw_upstream_cb *cb,
    void (*done)(
        void *arg, enum gw_status st, const struct gw_upstream_result *res))
{
	struct gw_xfer *x = gw_xcalloc(1, sizeof(*x));

	if ((x->lx = lx_new(p)) != NULL) {
		x->um = um;
		x->c.cb = cb;
		x->c.res = &x->res;
		x->done = done;
		running_add(um, x);
		/* As libcurl's: it begins once the caller has x. */
		gw_loop_post(um->loop, lx_kick, x);
		return x;
	}
	x->c.x = x;
	x->um = um;
	x->up = um->nspare > 0 ? um->spare[--um->nspare] : gw_upstream_new();
	x->c.cb = cb;
	x->c.res = &x->res;
	x->c.h = x->up->h;
	x->done = done;
	post_prepare(x->up, p, &x->c);
	/*
	 * A loop transfer is a stream, held for minutes with a chunk (a few
	 * hundred bytes) now and then: libcurl's receive buffer is part of
	 * every open stream's memory (issue 19: <= 24 KiB a stream).
	 */
	curl_easy_setopt(x->up->h, CURLOPT_BUFFERSIZE, LOOP_RECV_BUF);
	curl_easy_setopt(x->up->h, CURLOPT_PRIVATE, x);
	running_add(um, x);
	/* libcurl asks for a timer at once: the transfer starts there. */
	curl_multi_add_handle(um->m, x->up->h);
	return x;
}

static void
resume_all(void *arg)
{
	struct gw_upstream_multi *um = arg;
	struct gw_xfer *x, *next;

	um->resume_posted = 0;
	for (x = um->running; x != NULL; x = next) {
		next = x->next;
		if (x->resume) {
			x->resume = 0;
			if (x->lx != NULL)
				lx_resume(x);
			else
				curl_easy_pause(x->up->h, CURLPAUSE_CONT);
		}
	}
	after_action(um);
}

void
gw_upstream_resume(struct gw_xfer *x)
{
	struct gw_upstream_multi *um = x->um;

	/*
	 * Not from here: the caller may be inside one of this transfer's
	 * callbacks. Once the events at hand are handled, outside libcurl.
	 */
	x->resume = 1;
	if (!um->resume_posted) {
		um->resume_posted = 1;
		gw_loop_post(um->loop, resume_all, um);
	}
}
