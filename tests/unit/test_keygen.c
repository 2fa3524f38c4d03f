/* Unit tests for lib/keygen.c: the raw key's format and the key's name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "keygen.h"

/* Python: "sk-" + base64.urlsafe_b64encode(b).rstrip(b"="). */
static void
test_encode_is_unpadded_base64url(void **state)
{
	unsigned char b[32];
	char out[GW_KEYGEN_RAW_SIZE];
	int i;

	(void)state;
	memset(b, 0, sizeof(b));
	gw_keygen_encode(b, out);
	assert_string_equal(
	    out, "sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	for (i = 0; i < 32; i++)
		b[i] = (unsigned char)i;
	gw_keygen_encode(b, out);
	assert_string_equal(
	    out, "sk-AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
	/* The URL-safe alphabet: '_' (and '-'), never '/', '+' or '='. */
	memset(b, 0xff, sizeof(b));
	gw_keygen_encode(b, out);
	assert_string_equal(
	    out, "sk-__________________________________________8");
	memset(b, 0xfb, sizeof(b));
	gw_keygen_encode(b, out);
	assert_string_equal(
	    out, "sk--_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_s");
	assert_int_equal(strlen(out), 46);
}

static void
test_raw_keys_are_new_each_time(void **state)
{
	char a[GW_KEYGEN_RAW_SIZE], b[GW_KEYGEN_RAW_SIZE];

	(void)state;
	gw_keygen_raw(a);
	gw_keygen_raw(b);
	assert_int_equal(strlen(a), 46);
	assert_memory_equal(a, "sk-", 3);
	assert_int_equal(
	    strspn(a + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                  "0123456789-_"),
	    43);
	assert_string_not_equal(a, b);
}

static void
test_name_shows_the_last_four(void **state)
{
	char name[GW_KEYGEN_NAME_SIZE];

	(void)state;
	gw_keygen_name("sk-AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", name);
	assert_string_equal(name, "sk-...dHh8");
	gw_keygen_name("sk-abcdefwxyz", name);
	assert_string_equal(name, "sk-...wxyz");
	/* Shorter than four: all of it, never before the string. */
	gw_keygen_name("ab", name);
	assert_string_equal(name, "sk-...ab");
	gw_keygen_name("", name);
	assert_string_equal(name, "sk-...");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode_is_unpadded_base64url),
	    cmocka_unit_test(test_raw_keys_are_new_each_time),
	    cmocka_unit_test(test_name_shows_the_last_four),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
