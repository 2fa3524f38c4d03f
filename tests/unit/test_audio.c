/* Unit tests for lib/audio.c: the characters a speech input is counted in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "audio.h"

static long
chars(const char *s)
{
	return gw_audio_chars(s, strlen(s));
}

static void
test_chars(void **state)
{
	(void)state;
	assert_int_equal(chars(""), 0);
	assert_int_equal(chars("hello"), 5);
	/* Two, three and four bytes each count one. */
	assert_int_equal(chars("\xc3\xa9t\xc3\xa9"), 3);   /* été */
	assert_int_equal(chars("\xe2\x82\xac"), 1);        /* euro */
	assert_int_equal(chars("\xf0\x9f\x8e\xb5 ok"), 4); /* note, " ok" */
	assert_int_equal(chars("\xf4\x8f\xbf\xbf"), 1);    /* U+10FFFF */
	/* An inner NUL is a character (the length is given). */
	assert_int_equal(gw_audio_chars("a\0b", 3), 3);
}

static void
test_not_utf8(void **state)
{
	static const char *const bad[] = {
	    "\x80",             /* a lone continuation byte */
	    "\xc3",             /* cut */
	    "\xe2\x82",         /* cut */
	    "\xc0\xaf",         /* overlong "/" */
	    "\xe0\x80\xaf",     /* overlong */
	    "\xf0\x80\x80\xaf", /* overlong */
	    "\xed\xa0\x80",     /* a surrogate */
	    "\xf4\x90\x80\x80", /* beyond U+10FFFF */
	    "\xf5\x80\x80\x80",
	    "\xff",
	    "a\xc3(",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(chars(bad[i]), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_chars),
	    cmocka_unit_test(test_not_utf8),
	};

	return cmocka_run_group_tests_name("audio", tests, NULL, NULL);
}
