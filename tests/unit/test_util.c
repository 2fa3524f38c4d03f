/* Unit tests for lib/util.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void
test_url_decode(void **state)
{
	char out[16];
	static const char *const bad[] = {"%00", "a%00b", "0123456789abcdef"};
	size_t i;

	(void)state;
	assert_int_equal(
	    gw_url_decode("org%2Fm%41", 10, out, sizeof(out), 0), 0);
	assert_string_equal(out, "org/mA");
	/* '+' is a space in a query string only. */
	assert_int_equal(gw_url_decode("a+b", 3, out, sizeof(out), 0), 0);
	assert_string_equal(out, "a+b");
	assert_int_equal(gw_url_decode("a+b", 3, out, sizeof(out), 1), 0);
	assert_string_equal(out, "a b");
	/* Two hex digits or nothing: no whitespace skipped, no half escape. */
	assert_int_equal(gw_url_decode("% 41%zz%4", 9, out, sizeof(out), 0), 0);
	assert_string_equal(out, "% 41%zz%4");
	/* Only [s, s+n) is read. */
	assert_int_equal(gw_url_decode("%41%42", 3, out, sizeof(out), 0), 0);
	assert_string_equal(out, "A");
	for (i = 0; i < GW_ARRAY_LEN(bad); i++)
		assert_int_equal(
		    gw_url_decode(bad[i], strlen(bad[i]), out, sizeof(out), 0),
		    -1);
	assert_int_equal(gw_url_decode("", 0, out, 0, 0), -1);
}

static void
test_buf(void **state)
{
	struct gw_buf b = {0};
	int i;

	(void)state;
	for (i = 0; i < 1000; i++)
		gw_buf_printf(&b, "%d,", i);
	assert_int_equal(b.len, strlen(b.p));
	assert_memory_equal(b.p, "0,1,2,", 6);
	assert_string_equal(b.p + b.len - 4, "999,");
	gw_buf_reset(&b, 16);
	assert_int_equal(b.len, 0);
	assert_null(b.p); /* large storage released */
	gw_buf_puts(&b, "x");
	gw_buf_reset(&b, 1 << 20);
	assert_non_null(b.p); /* small storage kept for reuse */
	assert_string_equal(b.p, "");
	gw_buf_fini(&b);
}

static void
test_ct_compare(void **state)
{
	(void)state;
	assert_true(gw_ct_streq("sk-abc", "sk-abc"));
	assert_false(gw_ct_streq("sk-abc", "sk-abd"));
	assert_false(gw_ct_streq("sk-abc", "sk-ab"));
	assert_false(gw_ct_streq("", "x"));
	assert_true(gw_ct_streq("", ""));
	assert_true(gw_ct_memeq("abc", "abc", 3));
	assert_false(gw_ct_memeq("abc", "abd", 3));
}

static void
test_rfc3339(void **state)
{
	char out[32];

	(void)state;
	gw_time_rfc3339(INT64_C(1764111451123456), out);
	assert_string_equal(out, "2025-11-25T22:57:31.123Z");
	gw_time_rfc3339(0, out);
	assert_string_equal(out, "1970-01-01T00:00:00.000Z");
	gw_time_rfc3339(INT64_C(951782400007000), out); /* a leap day */
	assert_string_equal(out, "2000-02-29T00:00:00.007Z");
}

/* The printf-free number writers agree with printf. */
static void
test_numbers(void **state)
{
	static const int64_t v[] = {0, 1, -1, 9, 10, 999, 1000, -1234567,
	    INT64_MAX, INT64_MIN, 4200042};
	struct gw_buf b = {0};
	char want[64], d[21];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		gw_buf_reset(&b, 0);
		gw_buf_put_i64(&b, v[i]);
		snprintf(want, sizeof(want), "%lld", (long long)v[i]);
		assert_string_equal(b.p, want);
		if (v[i] == INT64_MIN)
			continue;
		gw_buf_reset(&b, 0);
		gw_buf_put_milli(&b, v[i]);
		snprintf(want, sizeof(want), "%s%lld.%03lld",
		    v[i] < 0 ? "-" : "",
		    (long long)(v[i] < 0 ? -v[i] : v[i]) / 1000,
		    (long long)(v[i] < 0 ? -v[i] : v[i]) % 1000);
		assert_string_equal(b.p, want);
	}
	assert_int_equal(gw_fmt_u64(d, UINT64_MAX), 20);
	assert_string_equal(d, "18446744073709551615");
	gw_buf_fini(&b);
}

static void
test_uuid(void **state)
{
	uint64_t st[2] = {0, 0};
	char a[37], b[37];
	int i;

	(void)state;
	gw_uuid4(st, a);
	gw_uuid4(st, b);
	assert_int_equal(strlen(a), 36);
	assert_string_not_equal(a, b);
	assert_int_equal(a[8], '-');
	assert_int_equal(a[14], '4');
	assert_true(strchr("89ab", a[19]) != NULL);
	for (i = 0; i < 36; i++)
		assert_true(a[i] == '-' || strchr("0123456789abcdef", a[i]));
}

/* UUIDv7: version 7, the variant, the time in front, so ids sort by time. */
static void
test_uuid7(void **state)
{
	uint64_t st[2] = {0, 0};
	char a[37], b[37], c[37];

	(void)state;
	gw_uuid7(st, 0x0191a2b3c4d5LL, a);
	gw_uuid7(st, 0x0191a2b3c4d5LL, b);
	gw_uuid7(st, 0x0191a2b3c4d6LL, c);
	assert_int_equal(strlen(a), 36);
	assert_memory_equal(a, "0191a2b3-c4d5-7", 15);
	assert_true(strchr("89ab", a[19]) != NULL);
	assert_string_not_equal(a, b);
	assert_true(strcmp(a, c) < 0 && strcmp(b, c) < 0);
}

static void
test_strtrim(void **state)
{
	char s1[] = "  a b \t\n", s2[] = "", s3[] = "   ";

	(void)state;
	assert_string_equal(gw_strtrim(s1), "a b");
	assert_string_equal(gw_strtrim(s2), "");
	assert_string_equal(gw_strtrim(s3), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buf),
	    cmocka_unit_test(test_url_decode),
	    cmocka_unit_test(test_ct_compare),
	    cmocka_unit_test(test_rfc3339),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_uuid),
	    cmocka_unit_test(test_uuid7),
	    cmocka_unit_test(test_strtrim),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
