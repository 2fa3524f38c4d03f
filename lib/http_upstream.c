/* http_upstream.c: the only libcurl caller. */
#include "http_upstream.h"

#include <curl/curl.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct gw_upstream {
	CURL *h;
	int post_ready; /* the handle holds the options every POST shares */
	CURLU *url;     /* the last POST's URL, parsed once ... */
	char *url_str;  /* ... from this string */
};

struct sink {
	struct gw_buf *buf;
	size_t cap;
};

enum gw_status
gw_upstream_global_init(void)
{
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
	struct gw_upstream_result *res;
	CURL *h;
	int head_done;
	char ctype[128];
	char retry_after[64];
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

static size_t
post_write(char *p, size_t size, size_t n, void *arg)
{
	struct post_ctx *c = arg;
	size_t len = size * n;

	if (deliver_head(c) < 0)
		return 0;
	c->res->bytes += len;
	if (c->cb->on_data != NULL && c->cb->on_data(c->cb->arg, p, len) < 0) {
		c->res->aborted = 1;
		return 0;
	}
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

enum gw_status
gw_upstream_post(struct gw_upstream *up, const struct gw_upstream_post *p,
    const struct gw_upstream_cb *cb, struct gw_upstream_result *res)
{
	struct post_ctx c = {cb, res, up->h, 0, "", ""};
	struct curl_slist *hdrs = NULL;
	char line[600];
	CURLcode rc;
	size_t i;

	memset(res, 0, sizeof(*res));
	/*
	 * POSTs follow POSTs on a worker thread: set the options they share
	 * once, not curl_easy_reset and all again per request.
	 */
	if (!up->post_ready) {
		curl_easy_reset(up->h);
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
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
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
	curl_easy_setopt(up->h, CURLOPT_POSTFIELDS, p->body);
	curl_easy_setopt(
	    up->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->body_len);
	curl_easy_setopt(up->h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(up->h, CURLOPT_HEADERDATA, &c);
	curl_easy_setopt(up->h, CURLOPT_WRITEDATA, &c);
	curl_easy_setopt(up->h, CURLOPT_XFERINFODATA, &c);
	rc = curl_easy_perform(up->h);
	/* An answer with an empty body still has a head to deliver. */
	if (rc == CURLE_OK && deliver_head(&c) < 0)
		rc = CURLE_WRITE_ERROR;
	/* The list is freed: the handle must not point at it any more. */
	curl_easy_setopt(up->h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	if (res->aborted)
		return GW_OK;
	if (rc != CURLE_OK) {
		snprintf(
		    res->err, sizeof(res->err), "%s", curl_easy_strerror(rc));
		res->connect_failed = rc == CURLE_COULDNT_CONNECT ||
		                      rc == CURLE_COULDNT_RESOLVE_HOST ||
		                      (rc == CURLE_OPERATION_TIMEDOUT &&
		                          !c.head_done && res->bytes == 0);
		if (!c.head_done) {
			long code = 0;

			curl_easy_getinfo(up->h, CURLINFO_RESPONSE_CODE, &code);
			res->http_status = (int)code;
		}
		return GW_E_UPSTREAM;
	}
	return GW_OK;
}
