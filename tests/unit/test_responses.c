/*
 * Unit tests for lib/responses.c and lib/rerank.c: the Responses API's
 * usage names (top level in an answer, under "response" in events), an
 * upstream's lack of the API told from a refusal, the output text; and the
 * rerank body's checks with the param a client sees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "json_util.h"
#include "rerank.h"
#include "responses.h"

static json_object *
parse(const char *s)
{
	json_object *o = NULL;
	char msg[128];

	assert_int_equal(
	    gw_json_parse(s, strlen(s), &o, msg, sizeof(msg)), GW_OK);
	return o;
}

static void
usage_of_answer_and_events(void **state)
{
	struct gw_json_usage u;
	json_object *o;

	(void)state;
	o = parse(
	    "{\"id\":\"resp_1\",\"object\":\"response\",\"usage\":"
	    "{\"input_tokens\":3,\"output_tokens\":5,\"total_tokens\":8}}");
	gw_responses_get_usage(o, &u);
	assert_true(u.known);
	assert_int_equal(u.v[0], 3);
	assert_int_equal(u.v[1], 5);
	assert_int_equal(u.v[2], 8);
	assert_int_equal(u.id_len, 6);
	assert_memory_equal(u.id, "resp_1", 6);
	json_object_put(o);
	/* response.completed: under "response". */
	o = parse("{\"type\":\"response.completed\",\"response\":{\"id\":"
	          "\"resp_2\",\"usage\":{\"input_tokens\":1,"
	          "\"output_tokens\":2}}}");
	gw_responses_get_usage(o, &u);
	assert_true(u.known && u.has[0] && u.has[1] && !u.has[2]);
	assert_int_equal(u.v[1], 2);
	json_object_put(o);
	/* response.created: usage null, known 0, the id kept. */
	o = parse("{\"type\":\"response.created\",\"response\":{\"id\":"
	          "\"resp_3\",\"usage\":null}}");
	gw_responses_get_usage(o, &u);
	assert_false(u.known);
	assert_non_null(u.id);
	json_object_put(o);
	/* A delta event: nothing. */
	o = parse("{\"type\":\"response.output_text.delta\",\"delta\":\"x\","
	          "\"usage\":{\"input_tokens\":9}}");
	gw_responses_get_usage(o, &u);
	assert_false(u.known);
	json_object_put(o);
}

static void
unsupported(void **state)
{
	static const char nf[] = "404 page not found";
	static const char model[] =
	    "{\"error\":{\"message\":\"no\",\"type\":\"invalid_request_error\","
	    "\"param\":\"model\",\"code\":\"model_not_found\"}}";

	(void)state;
	assert_true(gw_responses_unsupported(404, nf, sizeof(nf) - 1));
	assert_true(gw_responses_unsupported(404, NULL, 0));
	assert_true(gw_responses_unsupported(405, NULL, 0));
	assert_true(gw_responses_unsupported(501, NULL, 0));
	assert_false(gw_responses_unsupported(404, model, sizeof(model) - 1));
	assert_false(gw_responses_unsupported(400, nf, sizeof(nf) - 1));
	assert_false(gw_responses_unsupported(500, NULL, 0));
}

static void
add(void *arg, const char *s, size_t n)
{
	strncat(arg, s, n);
}

static void
output_text(void **state)
{
	char got[64] = "";
	json_object *o = parse(
	    "{\"output\":[{\"type\":\"reasoning\",\"content\":[{\"type\":"
	    "\"reasoning_text\",\"text\":\"hmm\"}]},{\"type\":\"message\","
	    "\"content\":[{\"type\":\"output_text\",\"text\":\"a \"},"
	    "{\"type\":\"refusal\",\"refusal\":\"r\"},{\"type\":"
	    "\"output_text\",\"text\":\"b\"}]}]}");

	(void)state;
	gw_responses_output_text(o, add, got);
	assert_string_equal(got, "a b");
	json_object_put(o);
}

struct vcase {
	int rerank;
	const char *body;
	const char *param; /* NULL: passes */
};

static const struct vcase vcases[] = {
    {1,
        "{\"model\":\"m\",\"query\":\"q\",\"documents\":[\"a\",{\"text\":"
        "\"b\"}],\"top_n\":2,\"return_documents\":true}",
        NULL},
    {1,
        "{\"model\":\"m\",\"query\":\"q\",\"documents\":[\"a\"],"
        "\"top_n\":null}",
        NULL},
    {1, "[]", ""},
    {1, "{\"model\":\"\",\"query\":\"q\",\"documents\":[\"a\"]}", "model"},
    {1, "{\"model\":\"m\",\"query\":\"\",\"documents\":[\"a\"]}", "query"},
    {1, "{\"model\":\"m\",\"query\":\"q\",\"documents\":{}}", "documents"},
    {1, "{\"model\":\"m\",\"query\":\"q\",\"documents\":[{\"text\":1}]}",
        "documents"},
    {1,
        "{\"model\":\"m\",\"query\":\"q\",\"documents\":[\"a\"],"
        "\"top_n\":2}",
        "top_n"},
    {1,
        "{\"model\":\"m\",\"query\":\"q\",\"documents\":[\"a\"],"
        "\"top_n\":1.5}",
        "top_n"},
    {1,
        "{\"model\":\"m\",\"query\":\"q\",\"documents\":[\"a\"],"
        "\"return_documents\":1}",
        "return_documents"},
    {0, "{\"model\":\"m\",\"input\":\"x\"}", NULL},
    {0,
        "{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":\"x\"}],"
        "\"stream\":true,\"instructions\":\"i\",\"max_output_tokens\":16,"
        "\"temperature\":0.5,\"top_p\":1}",
        NULL},
    {0, "{\"model\":\"m\",\"previous_response_id\":\"resp_1\"}", NULL},
    {0, "{\"model\":\"m\"}", "input"},
    {0, "{\"model\":7,\"input\":\"x\"}", "model"},
    {0, "{\"model\":\"m\",\"input\":{}}", "input"},
    {0, "{\"model\":\"m\",\"input\":\"x\",\"top_p\":2}", "top_p"},
};

static void
validation(void **state)
{
	struct gw_verr e;
	json_object *o;
	enum gw_status st;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
		o = parse(vcases[i].body);
		memset(&e, 0, sizeof(e));
		st = vcases[i].rerank ? gw_rerank_validate(o, &e)
		                      : gw_responses_validate(o, &e);
		if (vcases[i].param == NULL) {
			assert_int_equal(st, GW_OK);
		} else {
			assert_int_equal(st, GW_E_INVALID);
			assert_string_equal(e.param, vcases[i].param);
			assert_true(e.msg[0] != '\0');
		}
		json_object_put(o);
	}
}

static void
rerank_chars(void **state)
{
	json_object *o = parse("{\"query\":\"abc\",\"documents\":[\"de\","
	                       "{\"text\":\"fgh\"},5]}");

	(void)state;
	assert_int_equal(gw_rerank_text_chars(o), 8);
	json_object_put(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(usage_of_answer_and_events),
	    cmocka_unit_test(unsupported),
	    cmocka_unit_test(output_text),
	    cmocka_unit_test(validation),
	    cmocka_unit_test(rerank_chars),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
