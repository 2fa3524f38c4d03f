/* Unit tests for lib/json_util.c: what strict parsing accepts and refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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
	/* RFC 8259 takes any value at the top, not only containers. */
	assert_int_equal(parse("1", msg), GW_OK);
	assert_int_equal(parse("-0.5e3", msg), GW_OK);
	assert_int_equal(parse("true", msg), GW_OK);
	assert_int_equal(parse(" \"x\" ", msg), GW_OK);
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
	    /* json-c takes these; RFC 8259 does not, nor do we. */
	    {"{'a':1}", "not strict JSON (RFC 8259) at byte 1"},
	    {"{\"a\":1.}", "not strict JSON"},
	    {"{\"a\":\"\t\"}", "not strict JSON (RFC 8259) at byte 6"},
	    {"{\"a\":\"\xc0\x80\"}", "not strict JSON"},
	    /* Each failure says what it was and where. */
	    {"null", "null is not a document"},
	    {"{\"a\":[1,2}", "at byte 9: unexpected character"},
	    {"{\"a\":01}", "at byte 6: unexpected character"},
	    {"{\"a\":-x}", "at byte 6: invalid number"},
	    {"{\"a\":1e+}", "at byte 8: invalid number"},
	    {"{\"a\":\"\\q\"}", "at byte 7: invalid escape"},
	    {"{\"a\":\"\\u12x4\"}", "at byte 10: invalid escape"},
	    {"{\"a\":\"\x01\"}", "at byte 6: control character"},
	    {"{\"a\":\"\xed\xa0\x80\"}", "at byte 6: invalid utf-8"},
	    {"{\"a\":\"\xf4\x90\x80\x80\"}", "invalid utf-8"},
	    {"{\"a\":\"\xe2\x82\"}", "invalid utf-8"},
	    {"{\"a\":\"x", "unexpected end"},
	    {"{\"a\":tru", "at byte 5: unexpected character"},
	    {"{\"a\":Infinity}", "are not numbers (byte 5)"},
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

/* json-c's limit: 64 levels of values, scalars included. */
static void
test_depth_limit(void **state)
{
	char deep[300], msg[256];
	int i, n;

	(void)state;
	for (n = 63; n <= 65; n++) {
		for (i = 0; i < n - 1; i++)
			deep[i] = '[';
		deep[i++] = '1';
		while (i < 2 * n - 1)
			deep[i++] = ']';
		deep[i] = '\0';
		assert_int_equal(
		    parse(deep, msg), n <= 64 ? GW_OK : GW_E_INVALID);
	}
	assert_non_null(strstr(msg, "nested deeper than 64 at byte 64"));
}

/* The tree is the one json_tokener builds, serialized back. */
static void
test_tree(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    /* The last duplicate wins, in the first one's place. */
	    {"{\"a\":1,\"b\":2,\"a\":[3]}", "{\"a\":[3],\"b\":2}"},
	    /* Doubles keep their text; integers are clamped as json-c does. */
	    {"[1.50,1E+5,-0.0,1e-400,0.1]", "[1.50,1E+5,-0.0,1e-400,0.1]"},
	    {"[-0,9223372036854775807,9223372036854775808,"
	     "18446744073709551615,18446744073709551616,99999999999999999999]",
	        "[0,9223372036854775807,9223372036854775808,"
	        "18446744073709551615,18446744073709551615,"
	        "18446744073709551615]"},
	    {"[-9223372036854775808,-9223372036854775809,-"
	     "99999999999999999999]",
	        "[-9223372036854775808,-9223372036854775808,"
	        "-9223372036854775808]"},
	    {"{ \"k\" : [ true , false , null , { } , [ ] ] }",
	        "{\"k\":[true,false,null,{},[]]}"},
	    /* Escapes: a pair is one code point, a lone surrogate U+FFFD. */
	    {"[\"\\u00e9\\u20ac\\ud83d\\ude00\\/\\b\\f\\r\\t\"]",
	        "[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80/\\b\\f\\r\\t\"]"},
	    {"[\"\\ud83d\",\"\\ude00\",\"\\ud83dx\",\"\\ud83d\\n\","
	     "\"\\ud83d\\ud83d\\ude00\",\"\\ud83d\\u0041\"]",
	        "[\"\xef\xbf\xbd\",\"\xef\xbf\xbd\",\"\xef\xbf\xbdx\","
	        "\"\xef\xbf\xbd\\n\",\"\xef\xbf\xbd\xf0\x9f\x98\x80\","
	        "\"\xef\xbf\xbd"
	        "A\"]"},
	    /*
	     * U+1D800 and U+2D800 (SignWriting, CJK Extension F): json-c 0.16
	     * gave U+FFFD for code points whose low 16 bits look like a
	     * surrogate; they are decoded.
	     */
	    {"[\"\\ud836\\udc00\",\"\\ud876\\udc00\"]",
	        "[\"\xf0\x9d\xa0\x80\",\"\xf0\xad\xa0\x80\"]"},
	    /* A key ends at an escaped NUL (json-c keys are C strings). */
	    {"{\"a\\u0000b\":\"x\\u0000y\"}", "{\"a\":\"x\\u0000y\"}"},
	};
	json_object *o = NULL;
	char msg[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (gw_json_parse(cases[i].in, strlen(cases[i].in), &o, msg,
		        sizeof(msg)) != GW_OK)
			fail_msg("'%s': %s", cases[i].in, msg);
		if (strcmp(gw_json_str(o, NULL), cases[i].out) != 0)
			fail_msg("'%s' gave '%s', not '%s'", cases[i].in,
			    gw_json_str(o, NULL), cases[i].out);
		json_object_put(o);
	}
	/* An escaped NUL inside a string value is kept. */
	{
		const char *nul = "\"x\\u0000y\"";

		assert_int_equal(
		    gw_json_parse(nul, strlen(nul), &o, msg, 256), GW_OK);
	}
	assert_int_equal(json_object_get_string_len(o), 3);
	json_object_put(o);
	/* A long key and an escaped one are whole. */
	{
		char doc[200];

		snprintf(doc, sizeof(doc), "{\"%0100d\\n\":1}", 7);
		assert_int_equal(
		    gw_json_parse(doc, strlen(doc), &o, msg, 256), GW_OK);
		json_object_object_foreach(o, k, v)
		{
			(void)v;
			assert_int_equal(strlen(k), 101);
			assert_int_equal(k[100], '\n');
		}
		json_object_put(o);
	}
}

/* The text is read up to len, not to a NUL; numbers at the very end too. */
static void
test_slices(void **state)
{
	json_object *o = NULL;
	char msg[256];

	(void)state;
	assert_int_equal(gw_json_parse("[1]xyz", 3, &o, msg, 256), GW_OK);
	json_object_put(o);
	assert_int_equal(gw_json_parse("12345", 3, &o, msg, 256), GW_OK);
	assert_int_equal(json_object_get_int64(o), 123);
	json_object_put(o);
	assert_int_equal(gw_json_parse("1.259", 3, &o, msg, 256), GW_OK);
	assert_string_equal(gw_json_str(o, NULL), "1.2");
	json_object_put(o);
	/* A NUL byte is no end of the text: a character out of place. */
	assert_int_equal(
	    gw_json_parse("{\"a\":\"x\"\0}", 10, &o, msg, 256), GW_E_INVALID);
	assert_non_null(strstr(msg, "at byte 8: unexpected character"));
	assert_int_equal(gw_json_parse(NULL, 0, &o, msg, 256), GW_E_INVALID);
	assert_null(o);
	assert_non_null(strstr(msg, "empty"));
}

/*
 * Nothing carries over from one parse to the next: json-c's kept tokener
 * remembered a dangling high surrogate escape of a refused body and put a
 * U+FFFD before the next body's first escape.
 */
static void
test_no_state_between_parses(void **state)
{
	json_object *o = NULL;
	char msg[256];
	const char *bad = "{\"a\":\"\\ud83d", *good = "{\"a\":\"\\u00e9\"}";

	(void)state;
	assert_int_equal(gw_json_parse(bad, strlen(bad), &o, msg, sizeof(msg)),
	    GW_E_INVALID);
	assert_int_equal(
	    gw_json_parse(good, strlen(good), &o, msg, sizeof(msg)), GW_OK);
	assert_string_equal(gw_json_get_str(o, "a"), "\xc3\xa9");
	json_object_put(o);
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
 * The writer's quoting scans 16 bytes a step: every special byte (quote,
 * backslash, control, non-ASCII) at every place of strings of 1 to 40
 * bytes comes back as it went in, and a plain string is copied as is.
 */
static void
test_writer_runs(void **state)
{
	static const char specials[] = {'"', '\\', '\n', '\x1f', '\xc3'};
	struct gw_buf b = {0};
	json_object *o = NULL;
	char s[48], expect[64], msg[128];
	size_t len, at, k;

	(void)state;
	for (len = 1; len <= 40; len++) {
		memset(s, 'a', len);
		s[len] = '\0';
		gw_buf_reset(&b, 0);
		gw_jw_quote(&b, s);
		snprintf(expect, sizeof(expect), "\"%s\"", s);
		assert_string_equal(b.p, expect);
		for (at = 0; at < len; at++) {
			for (k = 0; k < sizeof(specials); k++) {
				memset(s, 'a', len);
				s[len] = '\0';
				s[at] = specials[k];
				if (specials[k] == '\xc3') {
					if (at + 1 >= len)
						continue;
					s[at + 1] = '\xa9'; /* é: valid UTF-8 */
				}
				gw_buf_reset(&b, 0);
				gw_jw_begin(&b);
				gw_jw_str(&b, "s", s);
				gw_jw_end(&b);
				assert_int_equal(gw_json_parse(b.p, b.len, &o,
				                     msg, sizeof(msg)),
				    GW_OK);
				assert_string_equal(gw_json_get_str(o, "s"), s);
				json_object_put(o);
			}
		}
	}
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

static enum gw_status
scan(const char *s, struct gw_json_usage *u)
{
	enum gw_status st = gw_json_scan_usage(s, strlen(s), u);
	struct gw_json_usage p;
	json_object *o = NULL;
	char msg[256];

	/* A parse then gw_json_get_usage reads the same. */
	if (st == GW_OK &&
	    gw_json_parse(s, strlen(s), &o, msg, sizeof(msg)) == GW_OK) {
		gw_json_get_usage(o, &p);
		assert_int_equal(p.known, u->known);
		assert_memory_equal(p.has, u->has, sizeof(p.has));
		for (int i = 0; i < 3; i++)
			if (p.has[i])
				assert_true(p.v[i] == u->v[i]);
		json_object_put(o);
	}
	return st;
}

/* The answer's top-level "id", scanned or from a parse (the spend row's). */
static void
test_scan_id(void **state)
{
	static const char doc[] =
	    "{\"choices\":[{\"id\":\"nested\"}],\"id\":\"chatcmpl-7\","
	    "\"usage\":{\"prompt_tokens\":1}}";
	struct gw_json_usage u;
	json_object *o = NULL;
	char msg[64];

	(void)state;
	assert_int_equal(gw_json_scan_usage(doc, strlen(doc), &u), GW_OK);
	assert_true(u.known && u.id != NULL);
	assert_int_equal(u.id_len, 10);
	assert_memory_equal(u.id, "chatcmpl-7", 10);
	assert_int_equal(
	    gw_json_parse(doc, strlen(doc), &o, msg, sizeof(msg)), GW_OK);
	gw_json_get_usage(o, &u);
	assert_string_equal(u.id, "chatcmpl-7");
	json_object_put(o);
	/* None, not a string, or with escapes: not kept. */
	assert_int_equal(gw_json_scan_usage("{\"id\":7}", 8, &u), GW_OK);
	assert_null(u.id);
	assert_int_equal(
	    gw_json_scan_usage("{\"id\":\"a\\\"b\"}", 13, &u), GW_OK);
	assert_null(u.id);
}

/* A stream chunk's top-level "id", skimmed: nested ids are not it. */
static void
test_top_id(void **state)
{
	const char *id;
	size_t n;
	static const char *const no[] = {"{}", "{\"a\":{\"id\":\"x\"}}",
	    "[{\"id\":\"x\"}]", "{\"x\":\"id\",\"y\":1}", "{\"id\":1}",
	    "{\"id\":\"a\\\"b\"}", "{\"id\":\"open", "{\"i\\\"d\":\"x\"}", ""};
	size_t i;

	(void)state;
	assert_int_equal(
	    gw_json_top_id("{\"id\":\"chatcmpl-1\",\"x\":1}", 25, &id, &n), 0);
	assert_int_equal(n, 10);
	assert_memory_equal(id, "chatcmpl-1", 10);
	/* llama.cpp sends "choices" first, with tool calls that have ids. */
	static const char ll[] =
	    "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"call_1\"}]},"
	    "\"s\":\"},{\\\"id\\\":\"}],\"created\":1, \"id\" : "
	    "\"chatcmpl-2\"}";
	assert_int_equal(gw_json_top_id(ll, strlen(ll), &id, &n), 0);
	assert_int_equal(n, 10);
	assert_memory_equal(id, "chatcmpl-2", 10);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_int_equal(
		    gw_json_top_id(no[i], strlen(no[i]), &id, &n), -1);
}

/* The scanner reads "usage" the way a parse and take_usage would. */
static void
test_scan_usage(void **state)
{
	struct gw_json_usage u;

	(void)state;
	assert_int_equal(scan("{\"id\":\"x\",\"usage\":{\"prompt_tokens\":3,"
	                      "\"completion_tokens\":5,\"total_tokens\":8}}",
	                     &u),
	    GW_OK);
	assert_true(u.known && u.has[0] && u.has[1] && u.has[2]);
	assert_true(u.v[0] == 3 && u.v[1] == 5 && u.v[2] == 8);
	/* Nested "usage" is not the answer's; a non-integer is not counted. */
	assert_int_equal(scan(" {\"a\":{\"usage\":{\"prompt_tokens\":9}},"
	                      "\"usage\":{\"prompt_tokens\":2.0,"
	                      "\"completion_tokens\":-4,\"x\":[{}]}} ",
	                     &u),
	    GW_OK);
	assert_true(u.known && !u.has[0] && u.has[1] && !u.has[2]);
	assert_true(u.v[1] == -4);
	/* The last duplicate wins; "usage" that is not an object is not. */
	assert_int_equal(
	    scan("{\"usage\":{\"prompt_tokens\":1},\"usage\":null}", &u),
	    GW_OK);
	assert_false(u.known);
	assert_int_equal(scan("{\"usage\":{\"total_tokens\":"
	                      "99999999999999999999,\"prompt_tokens\":"
	                      "-99999999999999999999}}",
	                     &u),
	    GW_OK);
	/* Beyond int64: clamped, as json-c does. */
	assert_true(u.known && u.has[2] && u.v[2] == INT64_MAX);
	assert_true(u.has[0] && u.v[0] == INT64_MIN);
	assert_int_equal(scan("{}", &u), GW_OK);
	assert_false(u.known);
	/* Only an object; broken documents are refused and say nothing. */
	assert_int_equal(scan("[]", &u), GW_E_INVALID);
	assert_int_equal(
	    scan("{\"usage\":{\"prompt_tokens\":1}", &u), GW_E_INVALID);
	assert_false(u.known);
}

/*
 * Differential: the scanner accepts exactly the objects gw_json_parse
 * accepts, over fixed cases and seeded random mutations of an answer.
 * Known differences are skipped: json-c refuses numbers beyond a double
 * (relayed verbatim, they are fine) and takes 'single quotes', "1.", raw
 * control characters in strings and overlong UTF-8, which the scanner
 * refuses (RFC 8259).
 */
/* json-c alone, as gw_json_parse calls it: 1 for an object. */
static int
jsonc_object(const char *doc, size_t len, char *msg, size_t msglen)
{
	struct json_tokener *tok = json_tokener_new_ex(64);
	json_object *o;
	size_t i;
	int ok;

	json_tokener_set_flags(
	    tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, doc, (int)len);
	ok = o != NULL && json_tokener_get_error(tok) == json_tokener_success &&
	     json_object_is_type(o, json_type_object);
	for (i = json_tokener_get_parse_end(tok); ok && i < len; i++)
		ok = strchr(" \t\r\n", doc[i]) != NULL && doc[i] != '\0';
	snprintf(msg, msglen, "%s",
	    json_tokener_error_desc(json_tokener_get_error(tok)));
	json_object_put(o);
	json_tokener_free(tok);
	return ok;
}

static int
has_high(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static int
has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20)
			return 1;
	return 0;
}

static int
lax_number(const char *s)
{
	for (; s[0] && s[1]; s++)
		if (s[0] >= '0' && s[0] <= '9' && s[1] == '.' &&
		    !(s[2] >= '0' && s[2] <= '9'))
			return 1;
	return 0;
}

static void
test_scan_matches_parse(void **state)
{
	static const char *const fixed[] = {"{\"a\":1}",
	    "{\"a\":\"\\u00e9\\n\"}",
	    "{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}", "{\"a\":01}",
	    "{\"a\":-}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}",
	    "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\t\"}",
	    "{\"a\":\"\xc0\x80\"}", "{\"a\":\"\xed\xa0\x80\"}",
	    "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":tru}", "{\"a\" 1}", "{,}",
	    "{\"a\":1,}", "{\"a\":[1 2]}", "{\"a\":1}}", "{\"\":-0.0e+1}",
	    "\t{ \"a\" : [ ] , \"b\" : { } }\r\n"};
	static const char base[] =
	    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":"
	    "1795654720,\"model\":\"q\",\"choices\":[{\"index\":0,\"message\":"
	    "{\"role\":\"assistant\",\"content\":\"t\\u00e9 \\\"x\\\" "
	    "\xc3\xa9\"},"
	    "\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{"
	    "\"prompt_tokens\":1,\"completion_tokens\":5,\"total_tokens\":6},"
	    "\"ok\":true,\"f\":false,\"n\":-1.5e-3}";
	static const char alphabet[] =
	    "{}[]\":,\\ 0123456789.-+eEtrufalsn\x80\xc3\xa9\x01'";
	char doc[sizeof(base) + 8], msg[256];
	struct gw_json_usage u;
	uint64_t seed = 42;
	size_t i, n, len;
	int k, got, want, compared = 0;

	(void)state;
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]) + 20000; i++) {
		if (i < sizeof(fixed) / sizeof(fixed[0])) {
			snprintf(doc, sizeof(doc), "%s", fixed[i]);
			len = strlen(doc);
		} else {
			memcpy(doc, base, sizeof(base));
			len = sizeof(base) - 1;
			for (k = 0; k < 1 + (int)(seed % 3); k++) {
				seed = seed * 6364136223846793005ULL +
				       1442695040888963407ULL;
				n = (size_t)(seed >> 33) % len;
				doc[n] = alphabet[(seed >> 20) %
				                  (sizeof(alphabet) - 1)];
			}
			if (seed % 7 == 0)
				len = (size_t)(seed >> 40) % len;
			doc[len] = '\0';
		}
		want = jsonc_object(doc, len, msg, sizeof(msg));
		if (!want &&
		    (strstr(msg, "NaN") != NULL || strstr(msg, "nan") != NULL ||
		        memchr(doc, '\'', len) != NULL ||
		        memchr(doc, 0, len) != NULL))
			continue;
		got = gw_json_scan_usage(doc, len, &u) == GW_OK;
		if (!got && want &&
		    (lax_number(doc) || has_control(doc) || has_high(doc)))
			continue;
		if (got != want)
			fail_msg("scan %s, parse %s: '%s'",
			    got ? "ok" : "refused", want ? "ok" : msg, doc);
		compared++;
	}
	assert_true(compared > 15000);
}

/*
 * One meaning of an answer's usage, whether it is captured (parsed, then
 * gw_json_get_usage) or not (gw_json_scan_usage): both readers take the
 * same documents and read the same usage, over issue #22's reproducers
 * and seeded mutations of a usage-heavy answer. Nothing is skipped.
 */
static void
both_readers(const char *doc, size_t len, int *scan_ok, int *parse_ok,
    struct gw_json_usage *su, struct gw_json_usage *pu)
{
	json_object *o = NULL;
	char msg[256];

	*scan_ok = gw_json_scan_usage(doc, len, su) == GW_OK;
	*parse_ok = gw_json_parse(doc, len, &o, msg, sizeof(msg)) == GW_OK &&
	            json_object_is_type(o, json_type_object);
	memset(pu, 0, sizeof(*pu));
	if (*parse_ok)
		gw_json_get_usage(o, pu);
	json_object_put(o);
}

static int
same_usage(const struct gw_json_usage *a, const struct gw_json_usage *b)
{
	int i;

	if (a->known != b->known)
		return 0;
	for (i = 0; i < 3; i++)
		if (a->has[i] != b->has[i] || (a->has[i] && a->v[i] != b->v[i]))
			return 0;
	return 1;
}

static void
test_usage_one_meaning(void **state)
{
	static const char *const fixed[] = {
	    /* #22: a later non-number duplicate wins. */
	    "{\"usage\":{\"completion_tokens\":6,\"completion_tokens\":\"\"}}",
	    "{\"usage\":{\"completion_tokens\":6,\"completion_tokens\":null}}",
	    "{\"usage\":{\"completion_tokens\":\"\",\"completion_tokens\":6}}",
	    /* #22: escaped keys mean what they decode to. */
	    "{\"usage\":{\"prompt\\u005ftokens\":5}}",
	    "{\"\\u0075sage\":{\"prompt_tokens\":5}}",
	    "{\"us\\u0061ge\":{\"total_tokens\":7},\"usage\":3}",
	    "{\"usage\\u0000x\":{\"prompt_tokens\":4}}",
	    "{\"usage\":{\"prompt_tokens\\u0000\":4}}",
	    "{\"usage\":{\"prompt_tokens\\n\":4}}",
	    "{\"usage\":{\"\\u00e9\":4,\"total\\/tokens\":1}}",
	    /* Numbers: non-integers do not count; beyond a double: refused. */
	    "{\"usage\":{\"prompt_tokens\":1e2,\"total_tokens\":3}}",
	    "{\"usage\":{\"prompt_tokens\":1e999}}",
	    "{\"x\":-1.5e308,\"usage\":{\"prompt_tokens\":1}}",
	    "{\"x\":1.8e308}",
	    "{\"x\":0.00001e312}",
	    "{\"x\":1e-999}",
	    "{\"x\":179769313486231570000000000000000000000000000000000000000"
	    "0000000000000000000000000000000000000000000000000000000000000000"
	    "0000000000000000000000000000000000000000000000000000000000000000"
	    "0000000000000000000000000000000000000000000000000000000000000000"
	    "00000000000000000000000000000000000000000000000000000000.0}",
	    "{\"usage\":{\"total_tokens\":99999999999999999999}}",
	};
	static const char base[] =
	    "{\"id\":\"c\",\"usage\":{\"prompt_tokens\":12,\"completion_t"
	    "okens\":3,\"total_tokens\":15,\"prompt\\u005ftokens\":2},\"usa"
	    "ge\":{\"completion_tokens\":[1],\"total_tokens\":-4}}";
	static const char alphabet[] = "{}[]\":,\\u005f 0123456789.-eE\"nul";
	char doc[4096];
	struct gw_json_usage su, pu;
	uint64_t seed = 22;
	size_t i, n, len;
	int k, sok, pok, agreed = 0, with_usage = 0;

	(void)state;
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]) + 40000; i++) {
		if (i < sizeof(fixed) / sizeof(fixed[0])) {
			snprintf(doc, sizeof(doc), "%s", fixed[i]);
		} else {
			memcpy(doc, base, sizeof(base));
			len = sizeof(base) - 1;
			for (k = 0; k < 1 + (int)(seed % 3); k++) {
				seed = seed * 6364136223846793005ULL +
				       1442695040888963407ULL;
				n = (size_t)(seed >> 33) % len;
				doc[n] = alphabet[(seed >> 20) %
				                  (sizeof(alphabet) - 1)];
			}
		}
		len = strlen(doc);
		both_readers(doc, len, &sok, &pok, &su, &pu);
		if (sok != pok || !same_usage(&su, &pu))
			fail_msg("scan %s (known %d has %d%d%d v %lld %lld "
			         "%lld), parse %s (known %d has %d%d%d v %lld "
			         "%lld %lld): '%s'",
			    sok ? "ok" : "refused", su.known, su.has[0],
			    su.has[1], su.has[2], (long long)su.v[0],
			    (long long)su.v[1], (long long)su.v[2],
			    pok ? "ok" : "refused", pu.known, pu.has[0],
			    pu.has[1], pu.has[2], (long long)pu.v[0],
			    (long long)pu.v[1], (long long)pu.v[2], doc);
		agreed++;
		with_usage += sok && su.known;
	}
	assert_true(with_usage > 5000);
	/* The reproducers read as the parse reads them. */
	both_readers(fixed[0], strlen(fixed[0]), &sok, &pok, &su, &pu);
	assert_true(sok && su.known && !su.has[1]);
	both_readers(fixed[3], strlen(fixed[3]), &sok, &pok, &su, &pu);
	assert_true(sok && su.known && su.has[0] && su.v[0] == 5);
	both_readers(fixed[4], strlen(fixed[4]), &sok, &pok, &su, &pu);
	assert_true(sok && su.known && su.has[0] && su.v[0] == 5);
	both_readers(fixed[6], strlen(fixed[6]), &sok, &pok, &su, &pu);
	assert_true(sok && su.known && su.has[0] && su.v[0] == 4);
	both_readers(fixed[11], strlen(fixed[11]), &sok, &pok, &su, &pu);
	assert_false(sok);
	assert_true(agreed > 40000);
}

/* #15: a cap on values, checked before the one too many is built. */
static void
test_max_values(void **state)
{
	json_object *o = NULL;
	char msg[256], *big;
	size_t i, n = 1000000;

	(void)state;
	/* Every value counts, containers too: [0,0,0] is four. */
	assert_int_equal(
	    gw_json_parse_max("[0,0,0]", 7, 4, &o, msg, sizeof(msg)), GW_OK);
	json_object_put(o);
	assert_int_equal(
	    gw_json_parse_max("[0,0,0]", 7, 3, &o, msg, sizeof(msg)),
	    GW_E_INVALID);
	assert_null(o);
	assert_string_equal(msg, "Request body holds more than 3 JSON values "
	                         "([gateway] max_json_values)");
	assert_int_equal(gw_json_parse_max("{\"a\":{\"b\":[1]}}", 15, 4, &o,
	                     msg, sizeof(msg)),
	    GW_OK);
	json_object_put(o);
	/* A million zeros under a cap of 1,000: refused at once. */
	big = malloc(2 * n + 2);
	big[0] = '[';
	for (i = 0; i < n; i++) {
		big[1 + 2 * i] = '0';
		big[2 + 2 * i] = i + 1 < n ? ',' : ']';
	}
	assert_int_equal(
	    gw_json_parse_max(big, 2 * n + 1, 1000, &o, msg, sizeof(msg)),
	    GW_E_INVALID);
	assert_int_equal(
	    gw_json_parse_max(big, 2 * n + 1, 0, &o, msg, sizeof(msg)), GW_OK);
	assert_int_equal(json_object_array_length(o), n);
	json_object_put(o);
	free(big);
}

/* #22: depth inside "usage" is counted as the parser counts it. */
static void
test_usage_depth(void **state)
{
	struct gw_json_usage su, pu;
	char doc[512];
	int k, nest, sok, pok;

	(void)state;
	for (nest = 60; nest <= 64; nest++) {
		size_t o =
		    (size_t)snprintf(doc, sizeof(doc), "{\"usage\":{\"a\":");

		for (k = 0; k < nest; k++)
			doc[o++] = '[';
		for (k = 0; k < nest; k++)
			doc[o++] = ']';
		memcpy(doc + o, "}}", 3);
		both_readers(doc, strlen(doc), &sok, &pok, &su, &pu);
		assert_int_equal(sok, pok);
		/*
		 * The top object, "usage" and nest arrays: 2 + nest levels,
		 * 64 at most. The reproducer (63) is one too many.
		 */
		assert_int_equal(sok, nest <= 62);
	}
}

/* 1 when every number under o is finite (json-c takes NaN, Infinity). */
static int
all_finite(json_object *o)
{
	size_t i;

	if (json_object_is_type(o, json_type_double))
		return isfinite(json_object_get_double(o));
	if (json_object_is_type(o, json_type_array)) {
		for (i = 0; i < json_object_array_length(o); i++)
			if (!all_finite(json_object_array_get_idx(o, i)))
				return 0;
	} else if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, k, v)
		{
			(void)k;
			if (!all_finite(v))
				return 0;
		}
	}
	return 1;
}

static unsigned
hex4(const char *p)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		if (!isxdigit((unsigned char)p[i]))
			return 0;
		v = v * 16 + (unsigned)(isdigit((unsigned char)p[i])
		                            ? p[i] - '0'
		                            : (p[i] | 0x20) - 'a' + 10);
	}
	return v;
}

/*
 * json-c 0.16 turns an escaped pair whose code point has its low 16 bits
 * in D800-DFFF (U+1D800, U+2D800, ...) into U+FFFD: not a reference there.
 */
static int
jsonc_pair_bug(const char *d, size_t n)
{
	unsigned hi, lo, cp;
	size_t i;

	for (i = 0; i + 12 <= n; i++) {
		if (d[i] != '\\' || d[i + 1] != 'u' || d[i + 6] != '\\' ||
		    d[i + 7] != 'u')
			continue;
		hi = hex4(d + i + 2);
		lo = hex4(d + i + 8);
		cp = ((hi & 0x3ff) << 10) + (lo & 0x3ff) + 0x10000;
		if ((hi & 0xfc00) == 0xd800 && (lo & 0xfc00) == 0xdc00 &&
		    (cp & 0xf800) == 0xd800)
			return 1;
	}
	return 0;
}

/*
 * Differential: gw_json_parse accepts exactly the objects that json-c's
 * strict tokener (a fresh one), then the finite-number check, then the
 * RFC 8259 scanner (gw_json_scan_usage) accepted when the parse was
 * those three passes, and builds the same tree, byte for byte once
 * serialized. Seeded mutations (replace, insert, delete, cut) of a chat
 * body rich in escapes and numbers.
 */
static void
test_parse_matches_jsonc(void **state)
{
	static const char base[] =
	    "{\"model\":\"gpt-4\",\"messages\":[{\"role\":\"user\","
	    "\"content\":\"t\\u00e9 \\\"x\\\" \\ud83d\\ude00 \xc3\xa9\\n\"}],"
	    "\"temperature\":0.7,\"max_tokens\":100,\"n\":-1.5e-3,\"stop\":"
	    "[\"a\",\"\\/\"],\"stream\":true,\"f\":false,\"z\":null,\"big\":"
	    "12345678901234567890,\"metadata\":{\"k\":[{},[]]}}";
	static const char alphabet[] = "{}[]\":,\\ 0123456789.-+eEtrufalsnu"
	                               "\x80\xc3\xa9\x01'\xed\xa0\xf0\x9f"
	                               "dDNI";
	char doc[sizeof(base) + 16], msg[256], *want_s;
	struct gw_json_usage u;
	json_object *want, *got;
	struct json_tokener *tok;
	uint64_t seed = 7;
	size_t i, n, len, k;
	int accepted = 0, refused = 0, op;

	(void)state;
	for (i = 0; i < 40000; i++) {
		memcpy(doc, base, sizeof(base));
		len = sizeof(base) - 1;
		for (k = 0; i > 0 && k < 1 + seed % 3; k++) {
			seed = seed * 6364136223846793005ULL +
			       1442695040888963407ULL;
			n = (size_t)(seed >> 33) % len;
			op = (int)((seed >> 12) % 3);
			if (op == 0) {
				doc[n] = alphabet[(seed >> 20) %
				                  (sizeof(alphabet) - 1)];
			} else if (op == 1 && len + 1 < sizeof(doc)) {
				memmove(doc + n + 1, doc + n, len - n);
				doc[n] = alphabet[(seed >> 20) %
				                  (sizeof(alphabet) - 1)];
				len++;
			} else if (len > 1) {
				memmove(doc + n, doc + n + 1, len - n - 1);
				len--;
			}
		}
		if (seed % 11 == 0)
			len = (size_t)(seed >> 40) % len;
		doc[len] = '\0';
		if (jsonc_pair_bug(doc, len))
			continue;
		/* The reference: the three passes gw_json_parse used to make.
		 */
		tok = json_tokener_new_ex(64);
		json_tokener_set_flags(
		    tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
		want = json_tokener_parse_ex(tok, doc, (int)len);
		if (want != NULL &&
		    (json_tokener_get_error(tok) != json_tokener_success ||
		        !json_object_is_type(want, json_type_object) ||
		        strspn(
		            doc + json_tokener_get_parse_end(tok), " \t\r\n") !=
		            len - json_tokener_get_parse_end(tok) ||
		        !all_finite(want) ||
		        gw_json_scan_usage(doc, len, &u) != GW_OK)) {
			json_object_put(want);
			want = NULL;
		}
		json_tokener_free(tok);
		got = NULL;
		if (gw_json_parse(doc, len, &got, msg, sizeof(msg)) == GW_OK &&
		    !json_object_is_type(got, json_type_object)) {
			json_object_put(got); /* a bare value: json-c waits */
			json_object_put(want);
			continue;
		}
		if ((want != NULL) != (got != NULL))
			fail_msg("'%s': json-c %s, gw_json_parse %s", doc,
			    want ? "took it" : "refused it",
			    got ? "took it" : msg);
		if (want != NULL) {
			want_s = strdup(gw_json_str(want, NULL));
			if (strcmp(want_s, gw_json_str(got, NULL)) != 0)
				fail_msg("'%s': json-c '%s', ours '%s'", doc,
				    want_s, gw_json_str(got, NULL));
			free(want_s);
			accepted++;
		} else
			refused++;
		json_object_put(want);
		json_object_put(got);
	}
	assert_true(accepted > 3000 && refused > 20000);
}

/* gw_json_parse_doc + gw_json_splice: the text kept, the model replaced. */
static void
test_splice(void **state)
{
	static const struct {
		const char *in;
		int spliceable;
		const char *out; /* model "q", no members added */
	} cases[] = {
	    {"{\"model\":\"gpt-4\",\"n\":1.50}", 1,
	        "{\"model\":\"q\",\"n\":1.50}"},
	    {" { \"a\" : [1, {\"model\":\"x\"}] , \"model\" : \"g\\u0041\" } "
	     "\n",
	        1,
	        " { \"a\" : [1, {\"model\":\"x\"}] , \"model\" : \"q\" } \n"},
	    {"{\"model\":\"a\",\"model\":\"b\"}", 0, NULL}, /* twice */
	    {"{\"model\":\"a\",\"m\":{\"k\":1,\"k\":2}}", 0, NULL},
	    {"{\"mode\\u006c\":\"a\"}", 0, NULL}, /* an escaped key */
	    {"{\"model\":\"a\",\"c\":\"\\ud800\"}", 0, NULL}, /* lone */
	    {"{\"model\":\"a\",\"c\":\"\\ud83d\\ude00\"}", 1,
	        "{\"model\":\"q\",\"c\":\"\\ud83d\\ude00\"}"},
	    {"[\"model\"]", 0, NULL},
	};
	struct gw_buf b = {NULL, 0, 0}, c = {NULL, 0, 0};
	struct gw_json_doc doc;
	json_object *o;
	char msg[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(
		    gw_json_parse_doc(cases[i].in, strlen(cases[i].in), 0, &o,
		        &doc, msg, sizeof(msg)),
		    GW_OK);
		if (doc.spliceable != cases[i].spliceable)
			fail_msg(
			    "%s: spliceable %d", cases[i].in, doc.spliceable);
		if (cases[i].out != NULL) {
			gw_json_splice(&b, cases[i].in, strlen(cases[i].in),
			    &doc, "q", NULL);
			assert_string_equal(b.p, cases[i].out);
		}
		json_object_put(o);
	}
	/* No model member: nothing to splice into. */
	assert_int_equal(
	    gw_json_parse_doc("{\"m\":1}", 7, 0, &o, &doc, msg, sizeof(msg)),
	    GW_OK);
	assert_int_equal(doc.model_end, 0);
	json_object_put(o);
	/* Members added before the closing brace, the model quoted. */
	assert_int_equal(gw_json_parse_doc("{\"model\":\"a\"} ", 14, 0, &o,
	                     &doc, msg, sizeof(msg)),
	    GW_OK);
	gw_json_splice(&b, "{\"model\":\"a\"} ", 14, &doc, "x\"y",
	    "\"stream_options\":{\"include_usage\":true}");
	assert_string_equal(b.p, "{\"model\":\"x\\\"y\",\"stream_options\":{"
	                         "\"include_usage\":true}} ");
	/* doc now says where b's model is: spliced again from b's text. */
	gw_json_splice(&c, b.p, b.len, &doc, "longer-model", NULL);
	assert_string_equal(c.p, "{\"model\":\"longer-model\",\"stream_"
	                         "options\":{\"include_usage\":true}} ");
	gw_json_splice(&b, c.p, c.len, &doc, "s", "\"k\":1");
	assert_string_equal(b.p, "{\"model\":\"s\",\"stream_options\":{"
	                         "\"include_usage\":true},\"k\":1} ");
	gw_buf_fini(&c);
	json_object_put(o);
	gw_buf_fini(&b);
}

/* A long plain run, and one byte of each kind the fast scan must stop at. */
static void
test_string_runs(void **state)
{
	char buf[200], msg[256];
	const char stops[] = {'"', '\\', 0x1f, (char)0xc3};
	json_object *o;
	size_t i, at;

	(void)state;
	for (at = 1; at < 40; at++)
		for (i = 0; i < sizeof(stops); i++) {
			memset(buf, 'a', sizeof(buf));
			buf[0] = '"';
			buf[at] = stops[i];
			buf[60] = '"';
			/* '"' ends the string early: trailing data; '\\a' is a
			 * bad escape; 0x1f a control; 0xc3 'a' bad UTF-8. */
			assert_int_equal(
			    gw_json_parse(buf, 61, &o, msg, sizeof(msg)),
			    GW_E_INVALID);
			assert_null(o);
		}
	memset(buf, 'a', sizeof(buf));
	buf[0] = '"';
	buf[60] = '"';
	assert_int_equal(gw_json_parse(buf, 61, &o, msg, sizeof(msg)), GW_OK);
	assert_int_equal(json_object_get_string_len(o), 59);
	json_object_put(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepts),
	    cmocka_unit_test(test_refuses),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_depth_limit),
	    cmocka_unit_test(test_tree),
	    cmocka_unit_test(test_slices),
	    cmocka_unit_test(test_no_state_between_parses),
	    cmocka_unit_test(test_accessors),
	    cmocka_unit_test(test_writer),
	    cmocka_unit_test(test_writer_nul),
	    cmocka_unit_test(test_writer_runs),
	    cmocka_unit_test(test_scan_usage),
	    cmocka_unit_test(test_scan_id),
	    cmocka_unit_test(test_top_id),
	    cmocka_unit_test(test_scan_matches_parse),
	    cmocka_unit_test(test_usage_one_meaning),
	    cmocka_unit_test(test_usage_depth),
	    cmocka_unit_test(test_max_values),
	    cmocka_unit_test(test_parse_matches_jsonc),
	    cmocka_unit_test(test_splice),
	    cmocka_unit_test(test_string_runs),
	};

	return cmocka_run_group_tests_name("json_util", tests, NULL, NULL);
}
