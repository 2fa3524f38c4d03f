/* Unit tests for lib/redact.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redact.h"

static const struct {
	const char *in, *out;
	int n;
} cases[] = {
    /* Keys: OpenAI, project, LiteLLM virtual, Anthropic. */
    {"Incorrect API key provided: sk-abc123DEF456ghi789.",
        "Incorrect API key provided: sk-[redacted].", 1},
    {"key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123 is invalid",
        "key sk-[redacted] is invalid", 1},
    {"(sk-Qx_u-7HkLmNoPqRsTuVw)", "(sk-[redacted])", 1},
    {"sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "sk-[redacted]", 1},
    /* 20 letters without a digit is a key too; fewer is a word. */
    {"sk-abcdefghijklmnopqrst", "sk-[redacted]", 1},
    {"use sk-learn or sk-abcde12 ok", "use sk-learn or sk-abcde12 ok", 0},
    {"sk-abcdef12", "sk-[redacted]", 1},
    /* Not at a word start: part of another word. */
    {"risk-assessment1234 task-12345678 disk-0123456789abc",
        "risk-assessment1234 task-12345678 disk-0123456789abc", 0},
    /* Bearer tokens, the word kept. */
    {"Authorization: Bearer abc.DEF-123_456~xyz/+= failed",
        "Authorization: Bearer [redacted] failed", 1},
    {"bad header 'bearer  tok3n-0123'", "bad header 'bearer  [redacted]'", 1},
    {"Missing Bearer token; Bearer authentication required",
        "Missing Bearer token; Bearer authentication required", 0},
    /* A JWT, whole. */
    {"token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl-_x expired",
        "token [redacted] expired", 1},
    {"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.", "[redacted]", 1},
    /* One part, or two without the second dot, is not a JWT. */
    {"x eyJhbGciOiJIUzI1NiJ9 y", "x eyJhbGciOiJIUzI1NiJ9 y", 0},
    {"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0 z",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0 z", 0},
    /* A failed start does not hide a JWT after the run. */
    {"eyJaaaaaaaaaa-eyJbbbbbbbbbb eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.s",
        "eyJaaaaaaaaaa-eyJbbbbbbbbbb [redacted]", 1},
    /* Long hex, long mixed base64. */
    {"hash=0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef",
        "hash=[redacted]", 1},
    {"secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY!", "secret [redacted]!",
        1},
    /* Left alone: hex too short or inside a word, names, uuids, prose. */
    {"id 0123456789abcdef0123456789abcde", "id 0123456789abcdef0123456789abcde",
        0},
    {"x0123456789abcdef0123456789abcdef0", "x0123456789abcdef0123456789abcdef0",
        0},
    {"The model `Qwen2.5-Coder-32B-Instruct-GGUF-Q4_K_M` does not exist",
        "The model `Qwen2.5-Coder-32B-Instruct-GGUF-Q4_K_M` does not exist", 0},
    {"request 3f2c1e4a-9b7d-4c1e-8f6a-2b3c4d5e6f70 failed",
        "request 3f2c1e4a-9b7d-4c1e-8f6a-2b3c4d5e6f70 failed", 0},
    {"meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo-FP8ABCDEFGH",
        "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo-FP8ABCDEFGH", 0},
    {"averyveryveryveryveryverylongwordwithoutanydigitsatallreally",
        "averyveryveryveryveryverylongwordwithoutanydigitsatallreally", 0},
    {"", "", 0},
    /* Several in one message. */
    {"sk-aaaa1111bbbb and Bearer cccc2222dddd",
        "sk-[redacted] and Bearer [redacted]", 2},
};

static void
test_cases(void **state)
{
	size_t i;
	int n;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = gw_redact_new(cases[i].in, &n);

		if (strcmp(out, cases[i].out) != 0 || n != cases[i].n)
			fail_msg("case %zu: %s: got %s (%d), want %s (%d)", i,
			    cases[i].in, out, n, cases[i].out, cases[i].n);
		free(out);
	}
	free(gw_redact_new("sk-x", NULL));
}

/*
 * Text built to make a naive scan quadratic (a word start every other
 * character, inside one long run of each class) is done in linear time:
 * 1 MiB of it in well under a second.
 */
static void
test_linear(void **state)
{
	static const char *const unit[] = {
	    "a+", "a-", "eyJaaaaaaaaaa-", "sk-", "Bearer ", "a="};
	size_t i, j, len = 1 << 20;
	char *s = malloc(len + 1), *out;
	clock_t t0;
	double secs;

	(void)state;
	for (i = 0; i < sizeof(unit) / sizeof(unit[0]); i++) {
		size_t ul = strlen(unit[i]);

		for (j = 0; j < len; j++)
			s[j] = unit[i][j % ul];
		s[len] = '\0';
		t0 = clock();
		out = gw_redact_new(s, NULL);
		secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
		free(out);
		if (secs > 1.0)
			fail_msg("pattern %s: %.2f s for 1 MiB", unit[i], secs);
	}
	free(s);
}

/* An upstream's SSE error event: its message redacted, the rest kept. */
static void
test_sse_error(void **state)
{
	static const struct {
		const char *in, *out; /* NULL: relayed as it is */
	} ev[] = {
	    {"data: {\"error\":{\"message\":\"bad key sk-abc123def456\","
	     "\"type\":\"server_error\",\"code\":null}}",
	        "data: {\"error\":{\"message\":\"bad key sk-[redacted]\","
	        "\"type\":\"server_error\",\"code\":null}}"},
	    {"event: error\ndata: {\"error\":\"Bearer abcdef123456789\"}",
	        "event: error\ndata: {\"error\":\"Bearer [redacted]\"}"},
	    /* No secret, no error, not JSON, no data: untouched. */
	    {"data: {\"error\":{\"message\":\"model overloaded\"}}", NULL},
	    {"data: {\"choices\":[{\"delta\":{\"content\":\"sk-abc123def456 "
	     "\\\"error\\\"\"}}]}",
	        NULL},
	    {"data: {\"error\" sk-abc123def456", NULL},
	    {"data: [DONE]", NULL},
	    {": keepalive", NULL},
	};
	size_t i, n;
	char *out;

	(void)state;
	for (i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
		n = 0;
		out = gw_redact_sse_error_new(ev[i].in, strlen(ev[i].in), &n);
		if (ev[i].out == NULL
		        ? out != NULL
		        : out == NULL || strcmp(out, ev[i].out) != 0 ||
		              n != strlen(ev[i].out))
			fail_msg("event %zu: %s: got %s", i, ev[i].in,
			    out ? out : "(null)");
		free(out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_linear),
	    cmocka_unit_test(test_sse_error),
	};

	return cmocka_run_group_tests_name("redact", tests, NULL, NULL);
}
