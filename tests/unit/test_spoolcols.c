/*
 * Unit tests for lib/spoolcols.c: spooled lines as binary arrays (the
 * wire format of array_recv and the element types' recv functions), and
 * every shape it leaves to PostgreSQL's JSON reading instead.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spoolcols.h"

/* Column indexes, in GW_SPOOLCOLS_SQL's order. */
enum {
	C_REQUEST_ID = 0,
	C_KEY_ALIAS = 2,
	C_PROMPT = 8,
	C_SPEND = 11,
	C_ESTIMATED = 12,
	C_START = 13,
	C_FIRST = 15,
	C_STATUS = 17,
	C_METADATA = 21,
	C_TAGS = 23,
	C_SESSION = 24,
	C_LF_INPUT = 25,
	C_LF_MODE = 27,
};

static uint32_t
be32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 |
	       (uint32_t)u[2] << 8 | u[3];
}

static uint64_t
be64(const char *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Element row of column col: its bytes, and *len (-1 for NULL). */
static const char *
element(const struct gw_spoolcols *c, int col, int row, int *len)
{
	const char *p = c->values[col] + 20;
	int i;

	assert_int_equal(be32(c->values[col]), 1); /* one dimension */
	assert_int_equal(be32(c->values[col] + 12), c->rows);
	assert_int_equal(be32(c->values[col] + 16), 1); /* lower bound */
	assert_int_equal(c->formats[col], 1);
	for (i = 0;; i++) {
		*len = (int)be32(p);
		if (i == row)
			return p + 4;
		p += 4 + (*len < 0 ? 0 : *len);
		assert_true(p < c->values[col] + c->lengths[col]);
	}
}

static const char line1[] =
    "{\"request_id\":\"r1\",\"api_key\":\"\",\"key_alias\":\"a \\\"q\\\" "
    "\\\\ \\/ \\n\\t\\u0041\\u001f\",\"user_id\":null,\"team_id\":null,"
    "\"model\":\"caf\xc3\xa9\",\"actual_model\":null,\"call_type\":\"chat\","
    "\"prompt_tokens\":-3,\"completion_tokens\":2147483647,"
    "\"total_tokens\":0,\"spend\":1.7000000000000003e-05,"
    "\"usage_estimated\":true,\"start_time\":\"2026-01-01T00:00:00.250Z\","
    "\"end_time\":\"2024-02-29T23:59:59.999999Z\","
    "\"completion_start_time\":null,\"ttft_ms\":1.5,\"status\":200,"
    "\"error_type\":null,\"stream\":false,\"client_disconnected\":false,"
    "\"metadata\":{\"a\":[1,{\"b\":\"}]\\\"\"}]},\"response_id\":\"x\","
    "\"request_tags\":[\"t\"]}";

static void
test_line_as_spend_writes_it(void **state)
{
	struct gw_spoolcols c;
	char buf[sizeof(line1) + 8];
	const char *e;
	int len;
	double spend;
	uint64_t bits;

	(void)state;
	snprintf(buf, sizeof(buf), "%s\n\n", line1);
	assert_int_equal(gw_spoolcols_build(&c, buf, strlen(buf)), GW_OK);
	assert_int_equal(c.rows, 1);
	e = element(&c, C_REQUEST_ID, 0, &len);
	assert_int_equal(len, 2);
	assert_memory_equal(e, "r1", 2);
	e = element(&c, C_KEY_ALIAS, 0, &len);
	assert_int_equal(len, 14);
	assert_memory_equal(e, "a \"q\" \\ / \n\tA\x1f", 14);
	e = element(&c, C_PROMPT, 0, &len);
	assert_int_equal(len, 4);
	assert_int_equal((int32_t)be32(e), -3);
	e = element(&c, C_SPEND, 0, &len);
	assert_int_equal(len, 8);
	bits = be64(e);
	memcpy(&spend, &bits, sizeof(spend));
	assert_true(spend == strtod("1.7000000000000003e-05", NULL));
	e = element(&c, C_ESTIMATED, 0, &len);
	assert_int_equal(len, 1);
	assert_int_equal(e[0], 1);
	/* 2026-01-01T00:00:00.25Z: 9497 days after 2000-01-01. */
	e = element(&c, C_START, 0, &len);
	assert_int_equal(len, 8);
	assert_true(be64(e) == (uint64_t)9497 * 86400 * 1000000 + 250000);
	e = element(&c, C_START + 1, 0, &len);
	assert_true(
	    be64(e) == ((uint64_t)8825 * 86400 + 86399) * 1000000 + 999999);
	e = element(&c, C_FIRST, 0, &len);
	assert_int_equal(len, -1);
	e = element(&c, C_STATUS, 0, &len);
	assert_int_equal((int32_t)be32(e), 200);
	/* jsonb: version 1, then the value's text as it was. */
	e = element(&c, C_METADATA, 0, &len);
	assert_int_equal(len, 1 + 22);
	assert_int_equal(e[0], 1);
	assert_memory_equal(e + 1, "{\"a\":[1,{\"b\":\"}]\\\"\"}]}", 22);
	/* Absent keys are NULL, and the arrays say they have NULLs. */
	element(&c, C_SESSION, 0, &len);
	assert_int_equal(len, -1);
	element(&c, C_LF_MODE, 0, &len);
	assert_int_equal(len, -1);
	assert_int_equal(be32(c.values[C_LF_MODE] + 4), 1);
	assert_int_equal(be32(c.values[C_REQUEST_ID] + 4), 0);
	/* Element types: text, int4, float8, bool, timestamptz, jsonb. */
	assert_int_equal(be32(c.values[C_REQUEST_ID] + 8), 25);
	assert_int_equal(be32(c.values[C_PROMPT] + 8), 23);
	assert_int_equal(be32(c.values[C_SPEND] + 8), 701);
	assert_int_equal(be32(c.values[C_ESTIMATED] + 8), 16);
	assert_int_equal(be32(c.values[C_START] + 8), 1184);
	assert_int_equal(be32(c.values[C_METADATA] + 8), 3802);
	gw_spoolcols_fini(&c);
}

/*
 * Strings are scanned and copied a plain run (16 bytes) at a time: an
 * escape, a non-ASCII byte or a refused control character at every offset
 * across two steps reads as it does byte by byte.
 */
static void
test_strings_at_every_offset(void **state)
{
	static const struct {
		const char *json, *text; /* text NULL: the batch is refused */
	} cases[] = {
	    {"\\\"", "\""},
	    {"\\\\", "\\"},
	    {"\\n", "\n"},
	    {"\\u0041", "A"},
	    {"\xc3\xa9", "\xc3\xa9"},
	    {"\x01", NULL},
	};
	char line[512], want[128];
	struct gw_spoolcols c;
	const char *e;
	size_t k;
	int off, len;

	(void)state;
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
		for (off = 0; off <= 40; off++) {
			snprintf(line, sizeof(line),
			    "{\"request_id\":\"r\",\"key_alias\":\"%.*s%syy"
			    "yyyyyyyyyyyyyyyyyy\"}\n",
			    off, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
			    cases[k].json);
			if (cases[k].text == NULL) {
				assert_int_equal(
				    gw_spoolcols_build(&c, line, strlen(line)),
				    GW_E_INVALID);
				gw_spoolcols_fini(&c);
				continue;
			}
			assert_int_equal(
			    gw_spoolcols_build(&c, line, strlen(line)), GW_OK);
			snprintf(want, sizeof(want),
			    "%.*s%syyyyyyyyyyyyyyyyyyyy", off,
			    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
			    cases[k].text);
			e = element(&c, C_KEY_ALIAS, 0, &len);
			assert_int_equal(len, (int)strlen(want));
			assert_memory_equal(e, want, strlen(want));
			gw_spoolcols_fini(&c);
		}
}

static void
test_rows_in_order(void **state)
{
	static const char lines[] = "{\"request_id\":\"a\"}\n"
	                            "{\"request_id\":\"bb\",\"status\":1}\n"
	                            "{}\n";
	struct gw_spoolcols c;
	const char *e;
	int len;

	(void)state;
	assert_int_equal(
	    gw_spoolcols_build(&c, lines, sizeof(lines) - 1), GW_OK);
	assert_int_equal(c.rows, 3);
	e = element(&c, C_REQUEST_ID, 1, &len);
	assert_int_equal(len, 2);
	assert_memory_equal(e, "bb", 2);
	element(&c, C_REQUEST_ID, 2, &len);
	assert_int_equal(len, -1);
	element(&c, C_STATUS, 0, &len);
	assert_int_equal(len, -1);
	e = element(&c, C_STATUS, 1, &len);
	assert_int_equal((int32_t)be32(e), 1);
	gw_spoolcols_fini(&c);
}

/*
 * metadata {} and request_tags [] go as NULL (the statement stores them
 * for NULL: no JSON for PostgreSQL to parse); any other value, and {} in
 * a payload column, as it is. payloads counts the rows with an lf_mode.
 */
static void
test_empty_json_as_null(void **state)
{
	static const char lines[] =
	    "{\"metadata\":{},\"request_tags\":[],\"lf_input\":{}}\n"
	    "{\"metadata\":[],\"request_tags\":{},\"lf_mode\":\"full\"}\n"
	    "{\"metadata\":{\"a\":1},\"request_tags\":[\"t\"]}\n";
	struct gw_spoolcols c;
	const char *e;
	int len;

	(void)state;
	assert_int_equal(
	    gw_spoolcols_build(&c, lines, sizeof(lines) - 1), GW_OK);
	assert_int_equal(c.rows, 3);
	assert_int_equal(c.payloads, 1);
	element(&c, C_METADATA, 0, &len);
	assert_int_equal(len, -1);
	element(&c, C_TAGS, 0, &len);
	assert_int_equal(len, -1);
	assert_int_equal(be32(c.values[C_METADATA] + 4), 1);
	assert_int_equal(be32(c.values[C_TAGS] + 4), 1);
	e = element(&c, C_LF_INPUT, 0, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(e, "\x01{}", 3);
	e = element(&c, C_METADATA, 1, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(e, "\x01[]", 3);
	e = element(&c, C_TAGS, 1, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(e, "\x01{}", 3);
	e = element(&c, C_METADATA, 2, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(e, "\x01{\"a\":1}", 8);
	e = element(&c, C_TAGS, 2, &len);
	assert_int_equal(len, 6);
	assert_memory_equal(e, "\x01[\"t\"]", 6);
	gw_spoolcols_fini(&c);
}

/* Element row of a roll-up array: its bytes and *len; *n its count. */
static const char *
relem(const char *arr, int row, int *len, int *n)
{
	const char *p = arr + 20;

	assert_int_equal(be32(arr), 1);
	*n = (int)be32(arr + 12);
	for (int i = 0; i < row; i++)
		p += 4 + be32(p);
	*len = (int)be32(p);
	return p + 4;
}

static double
f64(const char *p)
{
	uint64_t bits = be64(p);
	double v;

	memcpy(&v, &bits, sizeof(v));
	return v;
}

/* Roll-up parameters, by index ($30 is 0). */
enum {
	R_KEY = 0,
	R_USER = 2,
	R_TEAM = 4,
	R_DAY = 6,
	R_END_USER = 11,
	R_PROMPT = 12,
	R_SPEND = 15,
	R_REQUESTS = 16,
	R_OK = 17,
	R_FAILED = 18,
	R_TDAY = 19,
	R_TAG = 20,
	R_TREQUESTS = 28,
};

/*
 * The writer's roll-ups, as the statement's grouping has them: key totals
 * without the master key's '', users and teams when not NULL, one daily
 * row per day x key x model x user x team x end user (the last end_user
 * of the metadata, in whatever spacing), one per distinct tag of a row.
 */
static void
test_rollups(void **state)
{
	static const char lines[] =
	    "{\"api_key\":\"ka\",\"user_id\":\"u1\",\"team_id\":null,"
	    "\"model\":\"m\",\"prompt_tokens\":3,\"spend\":0.25,"
	    "\"start_time\":\"2026-01-01T23:59:59.999Z\",\"status\":200,"
	    "\"metadata\":{ \"end_user\" : \"x\", \"a\": [1], "
	    "\"end_user\": \"e\\u0041\" "
	    "},\"request_tags\":[\"t\",\"t\",\"u\"]}\n"
	    "{\"api_key\":\"ka\",\"user_id\":\"u1\",\"model\":\"m\","
	    "\"prompt_tokens\":4,\"spend\":0.5,"
	    "\"start_time\":\"2026-01-01T00:00:00.000Z\",\"status\":500,"
	    "\"metadata\":{\"end_user\":\"eA\"},\"request_tags\":[\"t\"]}\n"
	    "{\"api_key\":\"\",\"team_id\":\"t1\",\"model\":\"m\","
	    "\"spend\":1,\"start_time\":\"2026-01-02T00:00:00.000Z\","
	    "\"status\":299,\"metadata\":[\"end_user\"],"
	    "\"request_tags\":{\"t\":1}}\n";
	struct gw_spoolcols c;
	struct gw_spoolcols_rollups a;
	const char *e;
	int len, n;

	(void)state;
	assert_int_equal(
	    gw_spoolcols_build(&c, lines, sizeof(lines) - 1), GW_OK);
	assert_int_equal(gw_spoolcols_rollups(&a, &c), GW_OK);
	e = relem(a.values[R_KEY], 0, &len, &n);
	assert_int_equal(n, 1);
	assert_memory_equal(e, "ka", 2);
	e = relem(a.values[R_KEY + 1], 0, &len, &n);
	assert_true(f64(e) == 0.75);
	e = relem(a.values[R_USER], 0, &len, &n);
	assert_int_equal(n, 1);
	assert_memory_equal(e, "u1", 2);
	e = relem(a.values[R_TEAM], 0, &len, &n);
	assert_int_equal(n, 1);
	assert_memory_equal(e, "t1", 2);
	e = relem(a.values[R_TEAM + 1], 0, &len, &n);
	assert_true(f64(e) == 1.0);
	/* Day 9497 (2026-01-01) for both ka rows, end user "eA": one group. */
	e = relem(a.values[R_DAY], 0, &len, &n);
	assert_int_equal(n, 2);
	assert_int_equal(len, 4);
	assert_int_equal(be32(e), 9497);
	e = relem(a.values[R_END_USER], 0, &len, &n);
	assert_int_equal(len, 2);
	assert_memory_equal(e, "eA", 2);
	e = relem(a.values[R_PROMPT], 0, &len, &n);
	assert_true(be64(e) == 7);
	e = relem(a.values[R_SPEND], 0, &len, &n);
	assert_true(f64(e) == 0.75);
	e = relem(a.values[R_REQUESTS], 0, &len, &n);
	assert_true(be64(e) == 2);
	e = relem(a.values[R_OK], 0, &len, &n);
	assert_true(be64(e) == 1);
	e = relem(a.values[R_FAILED], 0, &len, &n);
	assert_true(be64(e) == 1);
	/* The master key's row: key '', no end user (metadata no object). */
	e = relem(a.values[R_DAY], 1, &len, &n);
	assert_int_equal(be32(e), 9498);
	relem(a.values[R_DAY + 1], 1, &len, &n);
	assert_int_equal(len, 0);
	relem(a.values[R_END_USER], 1, &len, &n);
	assert_int_equal(len, 0);
	e = relem(a.values[R_OK], 1, &len, &n);
	assert_true(be64(e) == 1);
	/* Tags: t (both rows, once each), u; none from an object. */
	e = relem(a.values[R_TAG], 0, &len, &n);
	assert_int_equal(n, 2);
	assert_memory_equal(e, "t", 1);
	e = relem(a.values[R_TREQUESTS], 0, &len, &n);
	assert_true(be64(e) == 2);
	e = relem(a.values[R_TAG], 1, &len, &n);
	assert_memory_equal(e, "u", 1);
	e = relem(a.values[R_TDAY], 1, &len, &n);
	assert_int_equal(be32(e), 9497);
	gw_spoolcols_rollups_fini(&a);
	gw_spoolcols_fini(&c);
}

/* What only PostgreSQL sums as it does: its own grouping then. */
static void
test_rollups_declined(void **state)
{
	static const char *const lines[] = {
	    "{\"start_time\":\"2026-01-01T00:00:00.000Z\",\"status\":200,"
	    "\"metadata\":{\"end_user\":1}}",
	    "{\"start_time\":\"2026-01-01T00:00:00.000Z\",\"status\":200,"
	    "\"metadata\":{\"end_\\u0075ser\":\"a\"}}",
	    "{\"start_time\":\"2026-01-01T00:00:00.000Z\",\"status\":200,"
	    "\"metadata\":{\"end_user\":\"caf\\u00e9\"}}",
	    "{\"start_time\":\"2026-01-01T00:00:00.000Z\",\"status\":200,"
	    "\"request_tags\":[\"a\",1]}",
	    "{\"start_time\":\"2026-01-01T00:00:00.000Z\",\"status\":200,"
	    "\"request_tags\":[null]}",
	    "{\"status\":200}",
	    "{\"start_time\":\"2026-01-01T00:00:00.000Z\"}",
	};
	struct gw_spoolcols c;
	struct gw_spoolcols_rollups a;

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		assert_int_equal(
		    gw_spoolcols_build(&c, lines[i], strlen(lines[i])), GW_OK);
		if (gw_spoolcols_rollups(&a, &c) != GW_E_INVALID)
			fail_msg("summed: %s", lines[i]);
		gw_spoolcols_rollups_fini(&a);
		gw_spoolcols_fini(&c);
	}
}

/* Shapes PostgreSQL reads (or refuses) itself: the batch goes as JSON. */
static void
test_other_shapes_declined(void **state)
{
	static const char *const lines[] = {
	    "{\"request_id\":\"a\",\"other\":1}",          /* unknown key */
	    "{\"request_id\":\"a\",\"request_id\":\"b\"}", /* repeated */
	    "{\"request_id\": \"a\"}",                     /* whitespace */
	    "{\"status\":\"200\"}",                        /* string for int */
	    "{\"status\":200.0}", "{\"status\":2e2}", "{\"status\":2147483648}",
	    "{\"status\":007}", "{\"spend\":1e999}", "{\"spend\":.5}",
	    "{\"model\":3}", /* number for text */
	    "{\"model\":\"caf\\u00e9\"}", "{\"model\":\"a\\u0000\"}",
	    "{\"model\":\"a\\x\"}", "{\"stream\":1}",
	    "{\"start_time\":\"2026-01-01 00:00:00.000Z\"}",
	    "{\"start_time\":\"2026-01-01T00:00:00Z\"}",
	    "{\"start_time\":\"2026-01-01T00:00:00.000+01:00\"}",
	    "{\"start_time\":\"1969-12-31T23:59:59.000Z\"}",
	    "{\"start_time\":\"2026-02-29T00:00:00.000Z\"}",
	    "{\"start_time\":\"2026-04-31T00:00:00.000Z\"}",
	    "{\"start_time\":\"2026-01-01T24:00:00.000Z\"}",
	    "{\"metadata\":{\"a\":\"}\"}",  /* never closed */
	    "{\"request_id\":\"a\"",        /* cut */
	    "{\"request_id\":\"a\"}x",      /* trailing bytes */
	    "[{\"request_id\":\"a\"}]",     /* not an object */
	    "{\"request_id\":\"a\tb\"}",    /* raw control character */
	    "{\"re\\u0071uest_id\":\"a\"}", /* escaped key */
	};
	struct gw_spoolcols c;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (gw_spoolcols_build(&c, lines[i], strlen(lines[i])) !=
		    GW_E_INVALID)
			fail_msg("taken: %s", lines[i]);
		gw_spoolcols_fini(&c);
	}
	/* One such line among good ones declines the whole batch. */
	{
		static const char batch[] = "{\"request_id\":\"a\"}\n"
		                            "{\"request_id\":\"b\",\"x\":1}\n";

		assert_int_equal(
		    gw_spoolcols_build(&c, batch, sizeof(batch) - 1),
		    GW_E_INVALID);
		gw_spoolcols_fini(&c);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_line_as_spend_writes_it),
	    cmocka_unit_test(test_strings_at_every_offset),
	    cmocka_unit_test(test_rows_in_order),
	    cmocka_unit_test(test_empty_json_as_null),
	    cmocka_unit_test(test_rollups),
	    cmocka_unit_test(test_rollups_declined),
	    cmocka_unit_test(test_other_shapes_declined),
	};

	return cmocka_run_group_tests_name("spoolcols", tests, NULL, NULL);
}
