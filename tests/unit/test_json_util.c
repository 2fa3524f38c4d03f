/* Unit tests for lib/json_util.c: what strict parsing accepts and refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "json_util.h"

static enum gw_status
parse(const char *s, char *msg)
{
	json_object *o = NULL;
	enum gw_status st = gw_json_parse(s, strlen(s), &o, msg, 256);

	if (st == GW_OK)
		assert_non_null(o);
	else
		assert_null(o);
	json_object_put(o);
	return st;
}

static void
test_accepts(void **state)
{
	char msg[256];

	(void)state;
	assert_int_equal(parse("{\"a\":1}", msg), GW_OK);
	assert_int_equal(
	    parse("  {\"a\":[1,2.5,\"x\",null,true]}\n ", msg), GW_OK);
	assert_int_equal(parse("[]", msg), GW_OK);
	assert_int_equal(parse("{\"t\":\"\xc3\xa9\"}", msg), GW_OK);
}

static void
test_refuses(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"", "empty"},
	    {"  \n", "empty"},
	    {"{\"a\":1", "unexpected end"},
	    {"{\"a\":1} x", "at byte 8"},
	    {"{\"a\":1}{}", "Invalid JSON"},
	    {"{\"a\":NaN}", "NaN and Infinity"},
	    {"{\"a\":[1,-Infinity]}", "NaN and Infinity"},
	    {"{\"a\":{\"b\":1e999}}", "NaN and Infinity"},
	    {"{\"a\":\"\xff\"}", "utf-8"},
	    {"[1,]", "Invalid JSON"},
	    {"nope", "Invalid JSON"},
	};
	char msg[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		msg[0] = '\0';
		assert_int_equal(parse(cases[i].in, msg), GW_E_INVALID);
		if (strstr(msg, cases[i].want) == NULL)
			fail_msg("'%s': message '%s' lacks '%s'", cases[i].in,
			    msg, cases[i].want);
	}
}

static void
test_depth(void **state)
{
	char deep[300], msg[256];
	int i;

	(void)state;
	for (i = 0; i < 100; i++)
		deep[i] = '[';
	for (i = 100; i < 200; i++)
		deep[i] = ']';
	deep[200] = '\0';
	assert_int_equal(parse(deep, msg), GW_E_INVALID);
}

static void
test_accessors(void **state)
{
	json_object *o = NULL;
	char msg[256];
	int64_t n = 0;
	const char *s = "{\"m\":\"x\",\"n\":7,\"d\":1.5}";

	(void)state;
	assert_int_equal(
	    gw_json_parse(s, strlen(s), &o, msg, sizeof(msg)), GW_OK);
	assert_string_equal(gw_json_get_str(o, "m"), "x");
	assert_null(gw_json_get_str(o, "n"));
	assert_null(gw_json_get(o, "zz"));
	assert_int_equal(gw_json_get_int(o, "n", &n), 0);
	assert_int_equal(n, 7);
	assert_int_equal(gw_json_get_int(o, "d", &n), -1);
	assert_string_equal(gw_json_str(o, NULL), s);
	json_object_put(o);
}

/* The direct writer's output parses back to what was written. */
static void
test_writer(void **state)
{
	struct gw_buf b = {0};
	json_object *o = NULL;
	char msg[256];
	const char *tricky = "q\"uote\\ back\nline\ttab\x01"
	                     "ctl \xc3\xa9";

	(void)state;
	gw_jw_begin(&b);
	gw_jw_end(&b);
	assert_string_equal(b.p, "{}");
	gw_buf_reset(&b, 0);
	gw_jw_begin(&b);
	gw_jw_str(&b, "s", tricky);
	gw_jw_str(&b, "n", NULL);
	gw_jw_int(&b, "i", -42);
	gw_jw_num(&b, "d", 0.1);
	gw_jw_bool(&b, "t", 1);
	gw_jw_null(&b, "z");
	gw_jw_raw(&b, "r", "{\"a\":[1,2]}");
	gw_jw_end(&b);
	assert_int_equal(
	    gw_json_parse(b.p, b.len, &o, msg, sizeof(msg)), GW_OK);
	assert_string_equal(gw_json_get_str(o, "s"), tricky);
	assert_true(json_object_is_type(gw_json_get(o, "n"), json_type_null) ||
	            gw_json_get(o, "n") == NULL);
	assert_int_equal(json_object_get_int64(gw_json_get(o, "i")), -42);
	assert_true(json_object_get_double(gw_json_get(o, "d")) == 0.1);
	assert_true(json_object_get_boolean(gw_json_get(o, "t")));
	assert_int_equal(
	    json_object_array_length(gw_json_get(gw_json_get(o, "r"), "a")), 2);
	assert_non_null(strstr(b.p, "\\u0001"));
	json_object_put(o);
	gw_buf_fini(&b);
}

/*
 * U+0000 never reaches a spooled row (PostgreSQL refuses it, and one such row
 * would stall its whole batch); an escaped backslash before "u0000" is text.
 */
static void
test_writer_nul(void **state)
{
	struct gw_buf b = {0};

	(void)state;
	gw_jw_raw(&b, "m", "{\"a\":\"x\\u0000y\\\\u0000\\\\\\u0000\"}");
	assert_string_equal(
	    b.p, "\"m\":{\"a\":\"x\\ufffdy\\\\u0000\\\\\\ufffd\"},");
	gw_buf_reset(&b, 0);
	gw_jw_raw(&b, "t", "\"trailing\\\\\"");
	assert_string_equal(b.p, "\"t\":\"trailing\\\\\",");
	gw_buf_fini(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepts),
	    cmocka_unit_test(test_refuses),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_accessors),
	    cmocka_unit_test(test_writer),
	    cmocka_unit_test(test_writer_nul),
	};

	return cmocka_run_group_tests_name("json_util", tests, NULL, NULL);
}
