/*
 * Unit tests for lib/relay.c, the parts that run without a server: the
 * upstream URL, how the usage of chunks adds up, the body parsed and
 * checked once, and how a model name turns into the models tried.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alias.h"
#include "config.h"
#include "json_util.h"
#include "relay.h"
#include "validate.h"

static void
test_url(void **state)
{
	static const struct {
		const char *base, *path, *want;
	} cases[] = {
	    {"http://h:8080", "/chat/completions",
	        "http://h:8080/v1/chat/completions"},
	    {"http://h:8080/", "/embeddings", "http://h:8080/v1/embeddings"},
	    {"http://h:8080///", "/completions",
	        "http://h:8080/v1/completions"},
	    /* A base that already ends in /v1 gets no second one. */
	    {"https://api.example/v1", "/chat/completions",
	        "https://api.example/v1/chat/completions"},
	    {"https://api.example/v1/", "/embeddings",
	        "https://api.example/v1/embeddings"},
	    {"http://h/openai/v1", "/models", "http://h/openai/v1/models"},
	    {"http://h/v10", "/models", "http://h/v10/v1/models"},
	    {"http://h/api", "/models", "http://h/api/v1/models"},
	};
	size_t i;
	char *u;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		u = gw_relay_url(cases[i].base, cases[i].path);
		if (strcmp(u, cases[i].want) != 0)
			fail_msg("%s + %s: %s, not %s", cases[i].base,
			    cases[i].path, u, cases[i].want);
		free(u);
	}
}

/* The usage of one chunk, read as the relay reads it. */
static void
chunk(struct gw_usage *acc, const char *json)
{
	struct gw_json_usage u;

	assert_int_equal(gw_json_scan_usage(json, strlen(json), &u), GW_OK);
	gw_relay_note_usage(acc, &u);
}

static void
test_usage(void **state)
{
	struct gw_usage acc = {0};

	(void)state;
	/* No usage anywhere: nothing known. */
	chunk(&acc, "{\"choices\":[]}");
	chunk(&acc, "{\"usage\":null}");
	assert_false(acc.known);
	assert_true(acc.prompt == 0 && acc.completion == 0 && acc.total == 0);
	/* A chunk with the prompt only: the total follows. */
	chunk(&acc, "{\"usage\":{\"prompt_tokens\":7}}");
	assert_true(acc.known);
	assert_true(acc.prompt == 7 && acc.completion == 0 && acc.total == 7);
	/* A later one adds the completion; the prompt stays. */
	chunk(&acc, "{\"usage\":{\"completion_tokens\":5}}");
	assert_true(acc.prompt == 7 && acc.completion == 5 && acc.total == 12);
	/* A chunk without usage changes nothing. */
	chunk(&acc, "{\"choices\":[{\"delta\":{}}]}");
	assert_true(acc.prompt == 7 && acc.completion == 5 && acc.total == 12);
	/* A total the upstream states wins over the sum. */
	chunk(&acc, "{\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":6,"
	            "\"total_tokens\":20}}");
	assert_true(acc.prompt == 8 && acc.completion == 6 && acc.total == 20);
	/* ... until a chunk without one: the sum again. */
	chunk(&acc, "{\"usage\":{\"completion_tokens\":9}}");
	assert_true(acc.prompt == 8 && acc.completion == 9 && acc.total == 17);
	/* Members that are not integers keep what was known. */
	chunk(&acc, "{\"usage\":{\"prompt_tokens\":1.5,\"completion_tokens\":"
	            "\"3\"}}");
	assert_true(acc.prompt == 8 && acc.completion == 9 && acc.total == 17);
	/* Negative counts are none (a negative cost would stall shipping). */
	chunk(&acc, "{\"usage\":{\"prompt_tokens\":-100,\"completion_tokens\":"
	            "-1,\"total_tokens\":-101}}");
	assert_true(acc.prompt == 8 && acc.completion == 9 && acc.total == 17);
	/* Counts beyond int64 clamp; their sum saturates, never wraps. */
	chunk(&acc, "{\"usage\":{\"prompt_tokens\":99999999999999999999,"
	            "\"completion_tokens\":99999999999999999999}}");
	assert_true(acc.prompt == INT64_MAX && acc.completion == INT64_MAX &&
	            acc.total == INT64_MAX);
}

/* gw_relay_parse_body: the parse, then the check of the call's kind. */
static void
test_parse_body(void **state)
{
	static const struct {
		enum gw_call call;
		const char *body;
		const char *param; /* NULL: passes */
		const char *msg;   /* exact, or the start of a parse error */
	} cases[] = {
	    {GW_CALL_CHAT,
	        "{\"model\":\"gpt-4\",\"messages\":[{\"role\":\"user\","
	        "\"content\":\"hello\"}]}",
	        NULL, NULL},
	    {GW_CALL_COMPLETION, "{\"model\":\"gpt-4\",\"prompt\":\"hi\"}",
	        NULL, NULL},
	    {GW_CALL_EMBEDDING, "{\"model\":\"e\",\"input\":\"hello world\"}",
	        NULL, NULL},
	    /* Each kind is checked by its own rules. */
	    {GW_CALL_CHAT, "{\"model\":\"e\",\"input\":\"x\"}", "messages",
	        "'messages' is required"},
	    {GW_CALL_COMPLETION, "{\"model\":\"e\",\"input\":\"x\"}", "prompt",
	        "'prompt' is required"},
	    {GW_CALL_EMBEDDING, "{\"model\":\"e\",\"prompt\":\"x\"}", "input",
	        "'input' is required"},
	    /* Text that is not JSON: no param, the parser's message. */
	    {GW_CALL_CHAT, "", "",
	        "Request body is empty; expected a JSON object"},
	    {GW_CALL_CHAT, "not json", "",
	        "Invalid JSON in request body: not strict JSON (RFC 8259) at "
	        "byte 0: unexpected character"},
	    {GW_CALL_CHAT, "{\"model\":\"gpt-4\",\"messages\":[]} trailing", "",
	        "Invalid JSON in request body: trailing data at byte 32"},
	    {GW_CALL_EMBEDDING, "{\"model\":\"e\",\"input\":\"\xff\"}", "",
	        "Invalid JSON in request body: not strict JSON (RFC 8259) at "
	        "byte 22: invalid utf-8"},
	    {GW_CALL_CHAT, "{\"model\":\"gpt-4\",\"temperature\":NaN}", "",
	        "Invalid JSON in request body: NaN and Infinity are not "
	        "numbers (byte 31)"},
	    {GW_CALL_CHAT, "{\"model\":\"gpt-4\",\"n\":1e999}", "",
	        "Invalid JSON in request body: NaN and Infinity are not "
	        "numbers (byte 21)"},
	    {GW_CALL_COMPLETION, "{\"model\":\"gpt-4\",\"prompt\":\"x", "",
	        "Invalid JSON in request body: unexpected end of input"},
	    /* JSON, but no object. */
	    {GW_CALL_CHAT, "[1,2]", "", "Request body must be a JSON object"},
	};
	struct gw_verr e;
	json_object *body;
	enum gw_status st;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&e, 'x', sizeof(e));
		body = (json_object *)&e; /* must be overwritten */
		st = gw_relay_parse_body(cases[i].call, cases[i].body,
		    strlen(cases[i].body), 0, &body, NULL, &e);
		if (cases[i].param == NULL) {
			if (st != GW_OK || body == NULL)
				fail_msg("%s refused: (%s) %s", cases[i].body,
				    e.param, e.msg);
			assert_non_null(gw_json_get_str(body, "model"));
		} else {
			if (st != GW_E_INVALID)
				fail_msg("%s passed", cases[i].body);
			if (strcmp(e.param, cases[i].param) != 0 ||
			    strcmp(e.msg, cases[i].msg) != 0)
				fail_msg("%s: (%s) %s, not (%s) %s",
				    cases[i].body, e.param, e.msg,
				    cases[i].param, cases[i].msg);
			/* Parsed but refused: the body is the caller's. */
			if (cases[i].param[0] != '\0' ||
			    strstr(cases[i].msg, "must be a JSON") != NULL)
				assert_non_null(body);
			else
				assert_null(body);
		}
		json_object_put(body);
	}
}

/* An alias is its models in order; any other name is tried as it is. */
static void
test_alias(void **state)
{
	char path[] = "/tmp/test_relay_XXXXXX", err[512];
	const char *conf = "[aliases]\n"
	                   "gpt-4 = qwen3-30b-a3b, qwen2.5-14b-instruct\n"
	                   "small = qwen2.5-14b-instruct\n";
	struct gw_cfg *cfg = NULL;
	struct gw_targets t;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, conf, strlen(conf)), (ssize_t)strlen(conf));
	close(fd);
	if (gw_cfg_load(path, &cfg, err, sizeof(err)) != GW_OK)
		fail_msg("config: %s", err);
	unlink(path);
	gw_alias_resolve(cfg, "gpt-4", &t);
	assert_true(t.aliased);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.models[0], "qwen3-30b-a3b");
	assert_string_equal(t.models[1], "qwen2.5-14b-instruct");
	gw_alias_resolve(cfg, "small", &t);
	assert_true(t.aliased && t.n == 1);
	assert_string_equal(t.models[0], "qwen2.5-14b-instruct");
	/* Not an alias (names are exact): passed through, borrowed. */
	gw_alias_resolve(cfg, "GPT-4", &t);
	assert_false(t.aliased);
	assert_int_equal(t.n, 1);
	assert_string_equal(t.models[0], "GPT-4");
	gw_cfg_unref(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url),
	    cmocka_unit_test(test_usage),
	    cmocka_unit_test(test_parse_body),
	    cmocka_unit_test(test_alias),
	};

	return cmocka_run_group_tests_name("relay", tests, NULL, NULL);
}
