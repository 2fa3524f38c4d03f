/* http_upstream.c: the only libcurl caller. */
#include "http_upstream.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct gw_upstream {
	CURL *h;
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
