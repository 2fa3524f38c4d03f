/* Unit tests for lib/sse.c: splitting at every byte boundary, usage scan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sse.h"

struct seen {
	char ev[8][128];
	int n;
};

static int
collect(void *arg, const char *ev, size_t len)
{
	struct seen *s = arg;

	assert_true(s->n < 8 && len < 128);
	memcpy(s->ev[s->n], ev, len);
	s->ev[s->n][len] = '\0';
	s->n++;
	return 0;
}

static const char stream[] = "data: {\"a\":1}\n\n"
                             ": keepalive\n\n"
                             "data: {\"b\":2}\r\n\r\n"
                             "event: x\ndata: {\"c\":3}\n\n"
                             "data: [DONE]\n\n";

static void
check_events(const struct seen *s)
{
	assert_int_equal(s->n, 5);
	assert_string_equal(s->ev[0], "data: {\"a\":1}");
	assert_string_equal(s->ev[1], ": keepalive");
	assert_string_equal(s->ev[2], "data: {\"b\":2}");
	assert_string_equal(s->ev[3], "event: x\ndata: {\"c\":3}");
	assert_string_equal(s->ev[4], "data: [DONE]");
}

static void
test_whole(void **state)
{
	struct gw_sse sse = {0};
	struct seen s = {0};

	(void)state;
	assert_int_equal(
	    gw_sse_feed(&sse, stream, strlen(stream), collect, &s), 0);
	check_events(&s);
	assert_int_equal(gw_sse_pending(&sse), 0);
	gw_sse_fini(&sse);
}

/* Every split point of the stream into two pieces gives the same events. */
static void
test_every_split(void **state)
{
	size_t cut, n = strlen(stream);

	(void)state;
	for (cut = 0; cut <= n; cut++) {
		struct gw_sse sse = {0};
		struct seen s = {0};

		gw_sse_feed(&sse, stream, cut, collect, &s);
		gw_sse_feed(&sse, stream + cut, n - cut, collect, &s);
		check_events(&s);
		assert_int_equal(gw_sse_pending(&sse), 0);
		gw_sse_fini(&sse);
	}
}

static void
test_byte_by_byte_and_pending(void **state)
{
	struct gw_sse sse = {0};
	struct seen s = {0};
	size_t i, n = strlen(stream);

	(void)state;
	for (i = 0; i < n; i++)
		gw_sse_feed(&sse, stream + i, 1, collect, &s);
	check_events(&s);
	gw_sse_feed(&sse, "data: {\"unfinished", 18, collect, &s);
	assert_int_equal(gw_sse_pending(&sse), 18);
	gw_sse_reset(&sse);
	assert_int_equal(gw_sse_pending(&sse), 0);
	gw_sse_fini(&sse);
}

static int
stop_at_second(void *arg, const char *ev, size_t len)
{
	int *n = arg;

	(void)ev;
	(void)len;
	return ++*n == 2 ? -1 : 0;
}

static void
test_stop(void **state)
{
	struct gw_sse sse = {0};
	int n = 0;

	(void)state;
	assert_int_equal(
	    gw_sse_feed(&sse, stream, strlen(stream), stop_at_second, &n), -1);
	assert_int_equal(n, 2);
	gw_sse_fini(&sse);
}

static void
test_data_and_done(void **state)
{
	const char *j = NULL;
	size_t jl = 0;

	(void)state;
	assert_int_equal(gw_sse_data("data: {\"x\":1}", 13, &j, &jl), 0);
	assert_int_equal(jl, 7);
	assert_memory_equal(j, "{\"x\":1}", 7);
	assert_int_equal(gw_sse_data("data:{}", 7, &j, &jl), 0);
	assert_int_equal(jl, 2);
	assert_int_equal(gw_sse_data("event: e\ndata: {}\r", 18, &j, &jl), 0);
	assert_int_equal(jl, 2);
	assert_int_equal(gw_sse_data(": comment", 9, &j, &jl), -1);
	assert_true(gw_sse_is_done("[DONE]", 6));
	assert_true(gw_sse_is_done("[DONE]\r", 7));
	assert_false(gw_sse_is_done("[DONE]x", 7));
}

static void
test_has_usage(void **state)
{
	const char *a = "{\"choices\":[],\"usage\":{\"prompt_tokens\":3}}";
	const char *b = "{\"choices\":[{}],\"usage\":null}";
	const char *c = "{\"usage\" : \n {}}";
	const char *d = "{\"content\":\"the \\\"usage\\\" word\"}";

	(void)state;
	assert_true(gw_sse_has_usage(a, strlen(a)));
	assert_false(gw_sse_has_usage(b, strlen(b)));
	assert_true(gw_sse_has_usage(c, strlen(c)));
	assert_false(gw_sse_has_usage(d, strlen(d)));
}

/* Either key at every offset, across and at the end of 16-byte steps. */
static void
test_keys_at_every_offset(void **state)
{
	static const struct {
		const char *tail;
		unsigned want;
	} cases[] = {
	    {"\"usage\":{\"total_tokens\":1}}", GW_SSE_USAGE},
	    {"\"usage\" :\t{}}", GW_SSE_USAGE},
	    {"\"usage\":null}", 0},
	    {"\"usage\"", 0},
	    {"\"error\":{\"message\":\"m\"}}", GW_SSE_ERROR},
	    {"\"e\":\"error\"", GW_SSE_ERROR},
	    {"\"error\":1,\"usage\":{}}", GW_SSE_ERROR | GW_SSE_USAGE},
	    {"\"c\":\"an \\\"error\\\" and \\\"usage\\\":{}\"}", 0},
	    {"\"erro", 0},
	    {"\"u", 0},
	};
	char buf[256];
	size_t i, pad;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (pad = 0; pad < 40; pad++) {
			int n = snprintf(buf, sizeof(buf), "{\"x\":\"%.*s\",%s",
			    (int)pad,
			    "eeeeeeeeeeuuuuuuuuuueeeeeeeeeeuuuuuuuuuu",
			    cases[i].tail);

			assert_int_equal(
			    gw_sse_keys(buf, (size_t)n), cases[i].want);
			assert_int_equal(gw_sse_has_usage(buf, (size_t)n),
			    (cases[i].want & GW_SSE_USAGE) != 0);
		}
}

struct big {
	size_t len[4];
	int n;
	int ok;
};

static int
measure(void *arg, const char *ev, size_t len)
{
	struct big *b = arg;

	if (b->n < 4)
		b->len[b->n] = len;
	/* What comes out is the event as it went in. */
	b->ok = b->ok && len >= 6 && memcmp(ev, "data: ", 6) == 0 &&
	        ev[len - 1] == 'x';
	b->n++;
	return 0;
}

static double
cpu_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/*
 * #22: an event of almost 1 MiB fed one byte at a time, with each kind of
 * blank line split across feeds, is looked at once: at most 3 bytes per
 * byte fed (the two of overlap a feed resumes with), never again from
 * the start (the old splitter looked at ~n^2/2 bytes: minutes). The CPU
 * bound is loose enough for valgrind; the byte count is exact.
 */
static void
test_long_event_byte_by_byte_is_linear(void **state)
{
	static const char *const ends[] = {"\n\n", "\r\n\r\n", "\n\r\n"};
	const size_t evlen = GW_SSE_MAX_EVENT - 64;
	char *buf = malloc(3 * (evlen + 4));
	struct gw_sse sse = {0};
	struct big b = {{0}, 0, 1};
	size_t i, total = 0;
	double t0;
	int e;

	(void)state;
	for (e = 0; e < 3; e++) {
		memcpy(buf + total, "data: ", 6);
		memset(buf + total + 6, 'x', evlen - 6);
		total += evlen;
		memcpy(buf + total, ends[e], strlen(ends[e]));
		total += strlen(ends[e]);
	}
	t0 = cpu_s();
	for (i = 0; i < total; i++)
		assert_int_equal(gw_sse_feed(&sse, buf + i, 1, measure, &b), 0);
	assert_int_equal(b.n, 3);
	assert_true(b.ok);
	for (e = 0; e < 3; e++)
		assert_int_equal(b.len[e], evlen);
	assert_int_equal(gw_sse_pending(&sse), 0);
	assert_true(sse.examined <= 3 * (uint64_t)total);
	assert_true(cpu_s() - t0 < 10.0);
	gw_sse_fini(&sse);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_whole),
	    cmocka_unit_test(test_every_split),
	    cmocka_unit_test(test_byte_by_byte_and_pending),
	    cmocka_unit_test(test_stop),
	    cmocka_unit_test(test_data_and_done),
	    cmocka_unit_test(test_has_usage),
	    cmocka_unit_test(test_keys_at_every_offset),
	    cmocka_unit_test(test_long_event_byte_by_byte_is_linear),
	};

	return cmocka_run_group_tests_name("sse", tests, NULL, NULL);
}
