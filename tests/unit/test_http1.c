/*
 * Unit tests for lib/http1.c: each answer read whole and in pieces of
 * every size from 1 to 17 bytes must give the same head, body and end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

struct got {
	int heads, status, close;
	char ctype[128], retry[64];
	char body[4096];
	size_t blen;
	int abort_head, abort_body_at; /* -1 at the head / after n bytes */
	int pause_every; /* hold back every other body piece (1 each time) */
	int held;
};

static int
on_head(void *arg, const struct gw_http1 *h)
{
	struct got *g = arg;

	g->heads++;
	g->status = h->status;
	snprintf(g->ctype, sizeof(g->ctype), "%s", h->content_type);
	snprintf(g->retry, sizeof(g->retry), "%s", h->retry_after);
	return g->abort_head ? -1 : 0;
}

static int
on_body(void *arg, const char *p, size_t n)
{
	struct got *g = arg;

	if (g->pause_every && (g->held = !g->held))
		return 1;
	assert_true(g->blen + n <= sizeof(g->body));
	memcpy(g->body + g->blen, p, n);
	g->blen += n;
	if (g->abort_body_at > 0 && g->blen >= (size_t)g->abort_body_at)
		return -1;
	return 0;
}

/*
 * Feed text in pieces of step bytes (0: whole); the last rc, and in *used
 * the bytes taken in all. eof: the connection ends after the text.
 */
static enum gw_http1_rc
run(const char *text, size_t len, size_t step, int eof, struct got *g,
    struct gw_http1 *h, size_t *taken)
{
	const struct gw_http1_cb cb = {g, on_head, on_body};
	enum gw_http1_rc rc = GW_HTTP1_MORE;
	size_t off = 0, n, used;

	memset(h, 0, sizeof(*h));
	gw_http1_init(h, 0);
	*taken = 0;
	while (off < len) {
		n = step == 0 || step > len - off ? len - off : step;
		rc = gw_http1_feed(h, text + off, n, &used, &cb);
		*taken += used;
		if (rc == GW_HTTP1_PAUSE) {
			/* Held back: the same bytes again, from where it
			 * stopped. */
			off += used;
			continue;
		}
		if (rc != GW_HTTP1_MORE)
			goto out;
		assert_int_equal(used, n);
		off += n;
	}
	if (eof)
		rc = gw_http1_eof(h);
out:
	gw_http1_fini(h);
	return rc;
}

/* Every piece size gives what the whole text gives. */
static void
check_all_steps(const char *text, int eof, enum gw_http1_rc want_rc,
    int want_status, const char *want_body, size_t want_taken)
{
	size_t step, taken;
	int pause;

	for (pause = 0; pause <= 1; pause++)
		for (step = 0; step <= 17; step++) {
			struct got g = {.pause_every = pause};
			struct gw_http1 h;
			enum gw_http1_rc rc =
			    run(text, strlen(text), step, eof, &g, &h, &taken);

			assert_int_equal(rc, want_rc);
			if (want_status == 0)
				continue;
			assert_int_equal(g.heads, 1);
			assert_int_equal(g.status, want_status);
			assert_int_equal(g.blen, strlen(want_body));
			assert_memory_equal(g.body, want_body, g.blen);
			if (want_taken > 0)
				assert_int_equal(taken, want_taken);
		}
}

static void
test_content_length(void **state)
{
	const char *t = "HTTP/1.1 200 OK\r\n"
	                "content-type: application/json\r\n"
	                "Content-Length: 11\r\n"
	                "Retry-After:  7 \r\n\r\n"
	                "{\"a\":\"xyz\"}";
	struct got g = {0};
	struct gw_http1 h;
	size_t taken;

	(void)state;
	check_all_steps(t, 0, GW_HTTP1_DONE, 200, "{\"a\":\"xyz\"}", strlen(t));
	assert_int_equal(
	    run(t, strlen(t), 0, 0, &g, &h, &taken), GW_HTTP1_DONE);
	assert_string_equal(g.ctype, "application/json");
	assert_string_equal(g.retry, "7");
	assert_int_equal(h.close, 0);
}

static void
test_chunked_with_extensions_and_trailers(void **state)
{
	const char *t = "HTTP/1.1 200 OK\r\n"
	                "Transfer-Encoding: gzip, chunked\r\n\r\n"
	                "5;name=v\r\nhello\r\n"
	                "1\r\n \r\n"
	                "A\r\n0123456789\r\n"
	                "0\r\nX-Trailer: 1\r\n\r\n";

	(void)state;
	check_all_steps(
	    t, 0, GW_HTTP1_DONE, 200, "hello 0123456789", strlen(t));
}

static void
test_continue_then_answer_and_bytes_after(void **state)
{
	const char *ans = "HTTP/1.1 100 Continue\r\n\r\n"
	                  "HTTP/1.1 429 Too Many Requests\r\n"
	                  "Retry-After: 3\r\nContent-Length: 2\r\n\r\nno";
	char t[512];

	(void)state;
	/* What follows the answer is not taken (the caller closes). */
	snprintf(t, sizeof(t), "%sHTTP/1.1 200 OK\r\n", ans);
	check_all_steps(t, 0, GW_HTTP1_DONE, 429, "no", strlen(ans));
}

static void
test_body_to_close_and_no_body(void **state)
{
	struct got g = {0};
	struct gw_http1 h;
	size_t taken;
	const char *c10 = "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx";
	const char *k10 = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
	                  "Content-Length: 1\r\n\r\nx";
	const char *cl = "HTTP/1.1 200 OK\r\nConnection: Close\r\n"
	                 "Content-Length: 1\r\n\r\nx";

	(void)state;
	check_all_steps("HTTP/1.1 200 OK\r\n\r\nuntil the end", 1,
	    GW_HTTP1_DONE, 200, "until the end", 0);
	/* Cut short by the end: not done. */
	check_all_steps("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", 1,
	    GW_HTTP1_MORE, 200, "abc", 0);
	check_all_steps("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	                "5\r\nab",
	    1, GW_HTTP1_MORE, 200, "ab", 0);
	check_all_steps("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
	    0, GW_HTTP1_DONE, 204, "", 0);
	check_all_steps("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0,
	    GW_HTTP1_DONE, 200, "", 0);
	assert_int_equal(
	    run(c10, strlen(c10), 0, 0, &g, &h, &taken), GW_HTTP1_DONE);
	assert_int_equal(h.close, 1);
	assert_int_equal(
	    run(k10, strlen(k10), 0, 0, &g, &h, &taken), GW_HTTP1_DONE);
	assert_int_equal(h.close, 0);
	assert_int_equal(
	    run(cl, strlen(cl), 0, 0, &g, &h, &taken), GW_HTTP1_DONE);
	assert_int_equal(h.close, 1);
	gw_http1_init(&h, 0);
	assert_false(gw_http1_started(&h));
	assert_int_equal(gw_http1_eof(&h), GW_HTTP1_MORE);
}

static void
test_bad_answers(void **state)
{
	static const char *const bad[] = {
	    "HTTP/2 200 OK\r\n\r\n",
	    "HTTP/1.1 20 OK\r\n\r\n",
	    "HTTP/1.1 2000 OK\r\n\r\n",
	    "SSH-2.0-OpenSSH\r\n",
	    "HTTP/1.1 101 Switching Protocols\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "1\r\nab\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "10000000000000000\r\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_all_steps(bad[i], 0, GW_HTTP1_BAD, 0, NULL, 0);
}

static void
test_long_header_line_refused(void **state)
{
	size_t n = GW_HTTP1_LINE_MAX + 100, step, taken;
	char *t = malloc(n + 64);
	struct got g = {0};
	struct gw_http1 h;

	(void)state;
	strcpy(t, "HTTP/1.1 200 OK\r\nX-Long: ");
	memset(t + strlen(t), 'a', n);
	strcpy(t + 26 + n - 1, "\r\n\r\n");
	for (step = 0; step <= 17; step += 17)
		assert_int_equal(
		    run(t, strlen(t), step, 0, &g, &h, &taken), GW_HTTP1_BAD);
	free(t);
}

/* A header line longer than the small buffer, cut by reads: kept whole. */
static void
test_long_line_across_reads(void **state)
{
	char t[4096], v[1500];
	size_t step, taken;

	(void)state;
	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = '\0';
	snprintf(t, sizeof(t),
	    "HTTP/1.1 503 Busy\r\nX-Long: %s\r\nContent-Type: text/%s\r\n"
	    "Content-Length: 2\r\n\r\nok",
	    v, v + 1300);
	for (step = 1; step <= 700; step += 233) {
		struct got g = {0};
		struct gw_http1 h;

		assert_int_equal(
		    run(t, strlen(t), step, 0, &g, &h, &taken), GW_HTTP1_DONE);
		assert_int_equal(g.status, 503);
		assert_int_equal(strlen(g.ctype), 127);
		assert_memory_equal(g.ctype, "text/vvv", 8);
		assert_int_equal(g.blen, 2);
	}
}

static void
test_callbacks_abort(void **state)
{
	const char *t = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
	                "0123456789";
	size_t step, taken;

	(void)state;
	for (step = 0; step <= 17; step++) {
		struct got g = {.abort_head = 1};
		struct got b = {.abort_body_at = 4};
		struct gw_http1 h;

		assert_int_equal(
		    run(t, strlen(t), step, 0, &g, &h, &taken), GW_HTTP1_ABORT);
		assert_int_equal(g.blen, 0);
		assert_int_equal(
		    run(t, strlen(t), step, 0, &b, &h, &taken), GW_HTTP1_ABORT);
		assert_true(b.blen >= 4);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_content_length),
	    cmocka_unit_test(test_chunked_with_extensions_and_trailers),
	    cmocka_unit_test(test_continue_then_answer_and_bytes_after),
	    cmocka_unit_test(test_body_to_close_and_no_body),
	    cmocka_unit_test(test_bad_answers),
	    cmocka_unit_test(test_long_header_line_refused),
	    cmocka_unit_test(test_long_line_across_reads),
	    cmocka_unit_test(test_callbacks_abort),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
