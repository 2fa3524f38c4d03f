/*
 * Unit tests for lib/sha256.c: FIPS 180-4 vectors and LiteLLM's key hash,
 * through libcrypto.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sha256.h"

static void
test_vectors(void **state)
{
	char out[65];
	char *million = malloc(1000000);

	(void)state;
	gw_sha256_hex("", 0, out);
	assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb924"
	                         "27ae41e4649b934ca495991b7852b855");
	gw_sha256_hex("abc", 3, out);
	assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223"
	                         "b00361a396177a9cb410ff61f20015ad");
	gw_sha256_hex(
	    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	    out);
	assert_string_equal(out, "248d6a61d20638b8e5c026930c3e6039"
	                         "a33ce45964ff2167f6ecedd419db06c1");
	/* One million 'a' (FIPS 180-4's long message). */
	assert_non_null(million);
	memset(million, 'a', 1000000);
	gw_sha256_hex(million, 1000000, out);
	free(million);
	assert_string_equal(out, "cdc76e5c9914fb9281a1c7e284d73e67"
	                         "f1809a48a497200e046d39ccc7112cd0");
	/* NULL with no bytes is the empty message. */
	gw_sha256_hex(NULL, 0, out);
	assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb924"
	                         "27ae41e4649b934ca495991b7852b855");
}

/* Python: hashlib.sha256(b"sk-1234").hexdigest() (LiteLLM's hash_token). */
static void
test_litellm_key(void **state)
{
	char out[65];

	(void)state;
	gw_sha256_hex("sk-1234", 7, out);
	assert_string_equal(out,
	    "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_litellm_key),
	};

	return cmocka_run_group_tests_name("sha256", tests, NULL, NULL);
}
