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

/* gw_fmt_g against printf, for the values it formats itself and not. */
static void
check_g(double v, int prec)
{
	char want[64], got[32];
	size_t n;

	snprintf(want, sizeof(want), "%.*g", prec, v);
	n = gw_fmt_g(got, v, prec);
	if (strcmp(want, got) != 0 || n != strlen(want))
		fail_msg("%%.%dg of %a: printf \"%s\", gw_fmt_g \"%s\" (%zu)",
		    prec, v, want, got, n);
}

static void
test_fmt_g(void **state)
{
	static const double fixed[] = {0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1.5, 2.5,
	    0.125, 1e-5, 1.5e-5, 0.0001, 0.00012345, 9.9999999995, 99999.5,
	    123456789.0, 1234567890.0, 9999999999.0, 12345678901.0,
	    9007199254740991.0, 9007199254740992.0, 1e16, 1e300, 1e-300, 5e-324,
	    2.2250738585072014e-308, 0.30000000000000004, 1.0 / 3.0, 2.0 / 3.0,
	    0.000002, 3.2e-7, 1e-22, 1e-23, __builtin_inf(), -__builtin_inf(),
	    __builtin_nan("")};
	uint64_t r = 0x9e3779b97f4a7c15ULL, u;
	double v;
	size_t i;
	int prec;

	(void)state;
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		for (prec = 1; prec <= 17; prec++)
			check_g(fixed[i], prec);
	/* Random mantissas at exponents from 2^-90 to 2^60. */
	for (i = 0; i < 300000; i++) {
		r ^= r << 13;
		r ^= r >> 7;
		r ^= r << 17;
		u = (r & ((1ULL << 52) - 1)) |
		    ((uint64_t)(1023 - 90 + (int)((r >> 52) % 150)) << 52) |
		    (r & (1ULL << 63));
		memcpy(&v, &u, sizeof(v));
		check_g(v, 1 + (int)(i % 17));
		check_g(v, 10);
		check_g(v, 17);
	}
	/* Short decimals, as costs are, and halves where ties happen. */
	for (i = 0; i < 200000; i++) {
		v = (double)i * 1e-7;
		check_g(v, 10);
		check_g(v, 17);
		check_g((double)i + 0.5, 1 + (int)(i % 6));
	}
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
	    cmocka_unit_test(test_fmt_g),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
