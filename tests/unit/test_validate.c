/*
 * Unit tests for lib/validate.c: request bodies that pass, and those that
 * do not with the exact OpenAI "param" and message a client sees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "json_util.h"
#include "validate.h"

enum kind { CHAT, COMPLETION, EMBEDDING };

struct vcase {
	enum kind kind;
	const char *body;
	const char *param; /* NULL: the body passes */
	const char *msg;
};

#define M "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"

static const struct vcase cases[] = {
    /* Bodies that pass, with every optional field in range. */
    {CHAT, "{\"model\":\"m\"," M "}", NULL, NULL},
    {CHAT,
        "{\"model\":\"m\"," M ",\"temperature\":2,\"top_p\":0,"
        "\"presence_penalty\":-2,\"frequency_penalty\":2.0,"
        "\"max_tokens\":1,\"max_completion_tokens\":9,\"n\":128,"
        "\"seed\":-5,\"stream\":false,\"stream_options\":{},\"user\":\"u\","
        "\"stop\":[\"a\",\"b\",\"c\",\"d\"],\"top_logprobs\":20,"
        "\"logprobs\":true,\"tools\":[],\"response_format\":{}}",
        NULL, NULL},
    {CHAT,
        "{\"model\":\"m\"," M ",\"temperature\":null,\"stop\":\"x\","
        "\"max_tokens\":null,\"metadata\":{\"any\":[1]}}",
        NULL, NULL},
    {CHAT,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\","
        "\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},"
        "{\"role\":\"assistant\"},{\"role\":\"tool\",\"content\":\"r\"},"
        "{\"role\":\"function\",\"content\":\"f\"},"
        "{\"role\":\"system\",\"content\":\"s\"}]}",
        NULL, NULL},
    {COMPLETION, "{\"model\":\"m\",\"prompt\":\"\"}", NULL, NULL},
    {COMPLETION,
        "{\"model\":\"m\",\"prompt\":[\"a\",1,[2,3]],\"logprobs\":5,"
        "\"best_of\":20,\"echo\":true,\"suffix\":\"s\"}",
        NULL, NULL},
    {EMBEDDING, "{\"model\":\"m\",\"input\":\"hello\"}", NULL, NULL},
    {EMBEDDING,
        "{\"model\":\"m\",\"input\":[[1,2],\"b\"],\"dimensions\":8,"
        "\"encoding_format\":\"base64\",\"user\":\"u\"}",
        NULL, NULL},
    /* null is as good as absent, here as for every optional field. */
    {EMBEDDING, "{\"model\":\"m\",\"input\":\"x\",\"encoding_format\":null}",
        NULL, NULL},

    /* model, for every kind. */
    {CHAT, "[1,2]", "", "Request body must be a JSON object"},
    {CHAT, "{" M "}", "model", "'model' is required"},
    {CHAT, "{\"model\":5," M "}", "model", "'model' must be a string"},
    {COMPLETION, "{\"model\":\"\",\"prompt\":\"p\"}", "model",
        "'model' must not be empty"},
    {EMBEDDING, "\"m\"", "", "Request body must be a JSON object"},

    /* messages. */
    {CHAT, "{\"model\":\"m\"}", "messages", "'messages' is required"},
    {CHAT, "{\"model\":\"m\",\"messages\":{}}", "messages",
        "'messages' must be an array"},
    {CHAT, "{\"model\":\"m\",\"messages\":[]}", "messages",
        "'messages' must not be empty"},
    {CHAT, "{\"model\":\"m\",\"messages\":[\"hi\"]}", "messages[0]",
        "'messages[0]' must be an object"},
    {CHAT,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"x\"},{\"content\":\"x\"}]}",
        "messages[1].role",
        "'messages[1].role' is required and must be a string"},
    {CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":1,\"content\":\"x\"}]}",
        "messages[0].role",
        "'messages[0].role' is required and must be a string"},
    {CHAT,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"wizard\",\"content\":"
        "\"x\"}]}",
        "messages[0].role",
        "'messages[0].role' must be one of system, user, assistant, tool, "
        "function, developer; got 'wizard'"},
    {CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}",
        "messages[0].content",
        "'messages[0].content' is required for role 'user'"},
    {CHAT,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "null}]}",
        "messages[0].content",
        "'messages[0].content' is required for role 'user'"},
    {CHAT,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "7}]}",
        "messages[0].content",
        "'messages[0].content' must be a string or an array of parts"},

    /* Sampling fields, shared by chat and completions. */
    {CHAT, "{\"model\":\"m\"," M ",\"temperature\":2.5}", "temperature",
        "'temperature' must be between 0 and 2, got 2.5"},
    {CHAT, "{\"model\":\"m\"," M ",\"temperature\":-0.1}", "temperature",
        "'temperature' must be between 0 and 2, got -0.1"},
    {CHAT, "{\"model\":\"m\"," M ",\"temperature\":\"hot\"}", "temperature",
        "'temperature' must be a number"},
    {CHAT, "{\"model\":\"m\"," M ",\"top_p\":1.5}", "top_p",
        "'top_p' must be between 0 and 1, got 1.5"},
    {CHAT, "{\"model\":\"m\"," M ",\"presence_penalty\":-3}",
        "presence_penalty",
        "'presence_penalty' must be between -2 and 2, got -3"},
    {CHAT, "{\"model\":\"m\"," M ",\"frequency_penalty\":2.1}",
        "frequency_penalty",
        "'frequency_penalty' must be between -2 and 2, got 2.1"},
    {CHAT, "{\"model\":\"m\"," M ",\"max_tokens\":0}", "max_tokens",
        "'max_tokens' must be at least 1, got 0"},
    {CHAT, "{\"model\":\"m\"," M ",\"max_tokens\":2.5}", "max_tokens",
        "'max_tokens' must be an integer"},
    {CHAT, "{\"model\":\"m\"," M ",\"max_completion_tokens\":-1}",
        "max_completion_tokens",
        "'max_completion_tokens' must be at least 1, got -1"},
    {CHAT, "{\"model\":\"m\"," M ",\"n\":0}", "n",
        "'n' must be at least 1, got 0"},
    {CHAT, "{\"model\":\"m\"," M ",\"n\":129}", "n",
        "'n' must be at most 128, got 129"},
    {CHAT, "{\"model\":\"m\"," M ",\"seed\":1.5}", "seed",
        "'seed' must be an integer"},
    {CHAT, "{\"model\":\"m\"," M ",\"stream\":\"yes\"}", "stream",
        "'stream' must be a boolean"},
    {CHAT, "{\"model\":\"m\"," M ",\"stream_options\":true}", "stream_options",
        "'stream_options' must be an object"},
    {CHAT, "{\"model\":\"m\"," M ",\"user\":1}", "user",
        "'user' must be a string"},
    {CHAT, "{\"model\":\"m\"," M ",\"stop\":[1]}", "stop",
        "'stop' must be a string or an array of strings"},
    {CHAT, "{\"model\":\"m\"," M ",\"stop\":5}", "stop",
        "'stop' must be a string or an array of strings"},
    {CHAT, "{\"model\":\"m\"," M ",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}",
        "stop", "'stop' takes at most 4 sequences"},
    {COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"top_p\":-1}", "top_p",
        "'top_p' must be between 0 and 1, got -1"},

    /* Chat-only fields. */
    {CHAT, "{\"model\":\"m\"," M ",\"top_logprobs\":21}", "top_logprobs",
        "'top_logprobs' must be at most 20, got 21"},
    {CHAT, "{\"model\":\"m\"," M ",\"logprobs\":1}", "logprobs",
        "'logprobs' must be a boolean"},
    {CHAT, "{\"model\":\"m\"," M ",\"tools\":{}}", "tools",
        "'tools' must be an array"},
    {CHAT, "{\"model\":\"m\"," M ",\"response_format\":\"json\"}",
        "response_format", "'response_format' must be an object"},
    /* The first failure is the one reported: messages before sampling. */
    {CHAT, "{\"model\":\"m\",\"messages\":[],\"temperature\":9}", "messages",
        "'messages' must not be empty"},

    /* Completions. */
    {COMPLETION, "{\"model\":\"m\"}", "prompt", "'prompt' is required"},
    {COMPLETION, "{\"model\":\"m\",\"prompt\":null}", "prompt",
        "'prompt' is required"},
    {COMPLETION, "{\"model\":\"m\",\"prompt\":[]}", "prompt",
        "'prompt' must not be empty"},
    {COMPLETION, "{\"model\":\"m\",\"prompt\":[[]]}", "prompt",
        "'prompt' must be a string or an array of strings or token arrays"},
    {COMPLETION, "{\"model\":\"m\",\"prompt\":{}}", "prompt",
        "'prompt' must be a string or an array of strings or token arrays"},
    {COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"logprobs\":6}",
        "logprobs", "'logprobs' must be at most 5, got 6"},
    {COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"best_of\":0}", "best_of",
        "'best_of' must be at least 1, got 0"},
    {COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"echo\":\"y\"}", "echo",
        "'echo' must be a boolean"},
    {COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"suffix\":3}", "suffix",
        "'suffix' must be a string"},

    /* Embeddings. */
    {EMBEDDING, "{\"model\":\"m\"}", "input", "'input' is required"},
    {EMBEDDING, "{\"model\":\"m\",\"input\":\"\"}", "input",
        "'input' must not be empty"},
    {EMBEDDING, "{\"model\":\"m\",\"input\":[1.5]}", "input",
        "'input' must be a string or an array of strings or token arrays"},
    {EMBEDDING, "{\"model\":\"m\",\"input\":\"x\",\"dimensions\":0}",
        "dimensions", "'dimensions' must be at least 1, got 0"},
    {EMBEDDING, "{\"model\":\"m\",\"input\":\"x\",\"user\":[]}", "user",
        "'user' must be a string"},
    {EMBEDDING, "{\"model\":\"m\",\"input\":\"x\",\"encoding_format\":\"hex\"}",
        "encoding_format", "'encoding_format' must be 'float' or 'base64'"},
};

static void
test_cases(void **state)
{
	struct gw_verr e;
	json_object *o;
	enum gw_status st;
	char msg[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct vcase *c = &cases[i];

		o = NULL;
		if (gw_json_parse(c->body, strlen(c->body), &o, msg,
		        sizeof(msg)) != GW_OK)
			fail_msg("case %zu: %s: %s", i, c->body, msg);
		memset(&e, 0, sizeof(e));
		st = c->kind == CHAT         ? gw_validate_chat(o, &e)
		     : c->kind == COMPLETION ? gw_validate_completion(o, &e)
		                             : gw_validate_embedding(o, &e);
		json_object_put(o);
		if (c->param == NULL) {
			if (st != GW_OK)
				fail_msg("case %zu: %s refused: %s: %s", i,
				    c->body, e.param, e.msg);
			continue;
		}
		if (st != GW_E_INVALID)
			fail_msg("case %zu: %s passed", i, c->body);
		if (strcmp(e.param, c->param) != 0 ||
		    strcmp(e.msg, c->msg) != 0)
			fail_msg("case %zu: %s: got (%s) %s, want (%s) %s", i,
			    c->body, e.param, e.msg, c->param, c->msg);
	}
}

/* Messages that do not fit are cut, never overflow. */
static void
test_long_role(void **state)
{
	char body[600];
	struct gw_verr e;
	json_object *o = NULL;
	char msg[256];

	(void)state;
	snprintf(body, sizeof(body),
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"%0300d\","
	    "\"content\":\"x\"}]}",
	    1);
	assert_int_equal(
	    gw_json_parse(body, strlen(body), &o, msg, sizeof(msg)), GW_OK);
	assert_int_equal(gw_validate_chat(o, &e), GW_E_INVALID);
	assert_string_equal(e.param, "messages[0].role");
	/* The role is quoted up to 40 characters. */
	assert_non_null(
	    strstr(e.msg, "got '0000000000000000000000000000000000000000'"));
	json_object_put(o);
}

/* metadata: at most max bytes as JSON, else refused and dropped. */
static void
test_metadata_cap(void **state)
{
	static const char fits[] =
	    "{\"model\":\"m\",\"metadata\":{\"a\":\"xy\"}}";
	struct gw_verr e = {"", ""};
	json_object *o = NULL;
	char msg[256];

	(void)state;
	assert_int_equal(gw_validate_metadata(NULL, 16, &e), GW_OK);
	assert_int_equal(
	    gw_json_parse(fits, strlen(fits), &o, msg, sizeof(msg)), GW_OK);
	/* {"a":"xy"} is 10 bytes: 10 fits, 9 does not. */
	assert_int_equal(gw_validate_metadata(o, 10, &e), GW_OK);
	assert_non_null(gw_json_get(o, "metadata"));
	assert_int_equal(gw_validate_metadata(o, 9, &e), GW_E_INVALID);
	assert_string_equal(e.param, "metadata");
	assert_string_equal(e.msg,
	    "'metadata' must be at most 9 bytes as JSON, got 10 "
	    "([gateway] max_metadata_bytes)");
	/* Gone from the body: nothing stores it for the refusal. */
	assert_null(gw_json_get(o, "metadata"));
	assert_string_equal(gw_json_get_str(o, "model"), "m");
	assert_int_equal(gw_validate_metadata(o, 9, &e), GW_OK);
	json_object_put(o);
}

/* The field checks rerank.c and responses.c share with validate.c. */
static void
test_shared_checks(void **state)
{
	static const char body[] =
	    "{\"s\":\"x\",\"empty\":\"\",\"nul\":null,\"n\":3,\"d\":0.5}";
	char longp[200];
	struct gw_verr e = {"", ""};
	json_object *o = NULL;
	char msg[256];

	(void)state;
	assert_int_equal(
	    gw_json_parse(body, strlen(body), &o, msg, sizeof(msg)), GW_OK);
	assert_int_equal(gw_validate_need_string(o, "s", &e), GW_OK);
	assert_int_equal(gw_validate_need_string(o, "nul", &e), GW_E_INVALID);
	assert_string_equal(e.param, "nul");
	assert_string_equal(e.msg, "'nul' is required");
	assert_int_equal(gw_validate_need_string(o, "n", &e), GW_E_INVALID);
	assert_string_equal(e.msg, "'n' must be a string");
	assert_int_equal(gw_validate_need_string(o, "empty", &e), GW_E_INVALID);
	assert_string_equal(e.msg, "'empty' must not be empty");
	assert_int_equal(gw_validate_number_in(o, "absent", 0, 1, &e), GW_OK);
	assert_int_equal(gw_validate_number_in(o, "nul", 0, 1, &e), GW_OK);
	assert_int_equal(gw_validate_number_in(o, "d", 0, 1, &e), GW_OK);
	assert_int_equal(gw_validate_number_in(o, "n", 0, 2, &e), GW_E_INVALID);
	assert_string_equal(e.param, "n");
	assert_string_equal(e.msg, "'n' must be between 0 and 2, got 3");
	assert_int_equal(gw_validate_number_in(o, "s", 0, 2, &e), GW_E_INVALID);
	assert_string_equal(e.msg, "'s' must be a number");
	/* A message longer than e holds is cut, not overrun. */
	memset(longp, 'p', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(
	    gw_validate_fail(&e, longp, "%s%s", longp, longp), GW_E_INVALID);
	assert_int_equal(strlen(e.param), sizeof(e.param) - 1);
	assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
	json_object_put(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_long_role),
	    cmocka_unit_test(test_metadata_cap),
	    cmocka_unit_test(test_shared_checks),
	};

	return cmocka_run_group_tests_name("validate", tests, NULL, NULL);
}
