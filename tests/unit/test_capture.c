/*
 * Unit tests for lib/capture.c's Langfuse keys (issue 21): how a client's
 * trace id becomes an OTel one, which strings are kept, how they are cut,
 * the model parameters, and the masks that make recording stricter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "capture.h"
#include "config.h"
#include "json_util.h"
#include "sha256.h"

static json_object *
parse(const char *s)
{
	json_object *o = NULL;
	char err[64];

	assert_int_equal(
	    gw_json_parse(s, strlen(s), &o, err, sizeof(err)), GW_OK);
	return o;
}

static void
test_trace_ids(void **state)
{
	char id[33], sid[17], h[65];

	(void)state;
	/* 32 hex digits: kept, lowercased. */
	gw_capture_trace_id("0AF7651916CD43DD8448EB211C80319C", id);
	assert_string_equal(id, "0af7651916cd43dd8448eb211c80319c");
	/* A UUID: its digits. */
	gw_capture_trace_id("0af76519-16cd-43dd-8448-eb211c80319c", id);
	assert_string_equal(id, "0af7651916cd43dd8448eb211c80319c");
	/* Anything else: hashed, the same for the same id. */
	gw_capture_trace_id("conv-42", id);
	gw_sha256_hex("llmgw-trace:conv-42", strlen("llmgw-trace:conv-42"), h);
	assert_memory_equal(id, h, 32);
	assert_int_equal(strlen(id), 32);
	/* All zeros is not a valid OTel id: hashed too. */
	gw_capture_trace_id("00000000000000000000000000000000", id);
	assert_string_not_equal(id, "00000000000000000000000000000000");
	/* 33 digits, or dashes elsewhere: hashed. */
	gw_capture_trace_id("0af7651916cd43dd8448eb211c80319c0", id);
	assert_string_not_equal(id, "0af7651916cd43dd8448eb211c80319c");
	gw_capture_trace_id("0af7651916cd43dd-8448eb211c80319c", id);
	assert_string_not_equal(id, "0af7651916cd43dd8448eb211c80319c");
	gw_capture_span_id("00F067AA0BA902B7", sid);
	assert_string_equal(sid, "00f067aa0ba902b7");
	gw_capture_span_id("gen-1", sid);
	gw_sha256_hex("llmgw-span:gen-1", strlen("llmgw-span:gen-1"), h);
	assert_memory_equal(sid, h, 16);
	/* A UUID is no span id (16 hex). */
	gw_capture_span_id("0af76519-16cd-43dd-8448-eb211c80319c", sid);
	assert_int_equal(strlen(sid), 16);
}

static void
test_str_ok(void **state)
{
	char big[GW_CAPTURE_STR_MAX + 2];

	(void)state;
	assert_true(gw_capture_str_ok("t1", 2));
	assert_true(gw_capture_str_ok("q\"uo\\te \xc3\xbc \xe2\x9c\x93",
	    strlen("q\"uo\\te \xc3\xbc \xe2\x9c\x93")));
	assert_false(gw_capture_str_ok("", 0));
	assert_false(gw_capture_str_ok("a\nb", 3));
	assert_false(gw_capture_str_ok("a\x7f", 2));
	assert_false(gw_capture_str_ok("\xff", 1));
	assert_false(gw_capture_str_ok("\xc3", 1));         /* cut */
	assert_false(gw_capture_str_ok("\xc0\xaf", 2));     /* overlong */
	assert_false(gw_capture_str_ok("\xed\xa0\x80", 3)); /* surrogate */
	assert_false(gw_capture_str_ok("\xc2\x85", 2));     /* C1 control */
	memset(big, 'x', sizeof(big));
	assert_true(gw_capture_str_ok(big, GW_CAPTURE_STR_MAX));
	assert_false(gw_capture_str_ok(big, GW_CAPTURE_STR_MAX + 1));
}

static void
test_trace_keys(void **state)
{
	struct gw_capture c;
	json_object *body, *t, *p;
	char name[400] = "", json[1200], session[GW_CAPTURE_STR_MAX + 1];
	int i;

	(void)state;
	/* 150 two-byte characters: cut to 100 of them, never mid-character. */
	for (i = 0; i < 150; i++)
		strcat(name, "\xc3\xbc");
	snprintf(json, sizeof(json),
	    "{\"model\":\"m\",\"user\":\"end-1\",\"temperature\":0.3,"
	    "\"max_tokens\":5,\"seed\":\"7\",\"stop\":[\"\\n\",3,\"END\"],"
	    "\"response_format\":{\"type\":\"json_schema\"},\"tools\":[{},{}],"
	    "\"metadata\":{\"trace_id\":\"conv\",\"trace_name\":\"%s\","
	    "\"session_id\":\"s-1\",\"generation_name\":\"a\\u0001b\","
	    "\"version\":3,\"trace_metadata\":{\"f\":1},"
	    "\"mask_output\":\"true\"}}",
	    name);
	body = parse(json);
	gw_capture_init(&c, 1, GW_LANGFUSE_RECORD_FULL, GW_CALL_CHAT);
	gw_capture_request(&c, body);
	assert_int_equal(c.in_mode, GW_LANGFUSE_RECORD_FULL);
	assert_int_equal(c.out_mode, GW_LANGFUSE_RECORD_REDACTED);
	assert_string_equal(gw_capture_mode_name(&c), "redacted");
	t = gw_capture_trace(&c, body);
	assert_non_null(t);
	assert_string_equal(gw_json_get_str(t, "trace_id"), "conv");
	assert_int_equal(strlen(gw_json_get_str(t, "otel_trace_id")), 32);
	assert_int_equal(strlen(gw_json_get_str(t, "trace_name")), 200);
	assert_string_equal(gw_json_get_str(t, "user_id"), "end-1");
	assert_string_equal(gw_json_get_str(t, "session_id"), "s-1");
	/* Not kept: a control character, a number where a string goes. */
	assert_null(gw_json_get(t, "generation_name"));
	assert_null(gw_json_get(t, "version"));
	assert_null(gw_json_get(t, "existing_trace"));
	assert_non_null(gw_json_get(t, "mask_output"));
	p = gw_json_get(t, "model_parameters");
	assert_string_equal(gw_json_str(p, NULL),
	    "{\"temperature\":0.3,\"max_tokens\":5,\"stop\":[\"\\n\",\"END\"],"
	    "\"response_format\":\"json_schema\",\"tools\":2}");
	assert_int_equal(gw_capture_session_id(body, session), 1);
	assert_string_equal(session, "s-1");
	json_object_put(t);
	gw_capture_fini(&c);
	json_object_put(body);
	/* existing_trace_id; an id with a newline is hashed, not kept. */
	body = parse("{\"metadata\":{\"existing_trace_id\":\"a\\nb\","
	             "\"trace_id\":\"ignored\",\"mask_input\":true}}");
	gw_capture_init(&c, 1, GW_LANGFUSE_RECORD_NONE, GW_CALL_CHAT);
	gw_capture_request(&c, body);
	/* A mask never loosens [langfuse] record. */
	assert_int_equal(c.in_mode, GW_LANGFUSE_RECORD_NONE);
	t = gw_capture_trace(&c, body);
	assert_true(json_object_get_boolean(gw_json_get(t, "existing_trace")));
	assert_string_equal(gw_json_get_str(t, "trace_id"),
	    gw_json_get_str(t, "otel_trace_id"));
	assert_int_equal(strlen(gw_json_get_str(t, "trace_id")), 32);
	json_object_put(t);
	gw_capture_fini(&c);
	json_object_put(body);
	/* Capture off: nothing. */
	gw_capture_init(&c, 0, GW_LANGFUSE_RECORD_FULL, GW_CALL_CHAT);
	assert_null(gw_capture_trace(&c, NULL));
	assert_int_equal(gw_capture_session_id(NULL, session), 0);
}

/* Responses: input with instructions, streamed deltas, a whole answer. */
static void
test_responses(void **state)
{
	struct gw_capture c;
	json_object *body, *o, *in;

	(void)state;
	body = parse("{\"model\":\"m\",\"instructions\":\"be brief\","
	             "\"input\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
	gw_capture_init(&c, 1, GW_LANGFUSE_RECORD_FULL, GW_CALL_RESPONSES);
	gw_capture_request(&c, body);
	in = gw_capture_input(&c, body);
	assert_string_equal(gw_json_str(in, NULL),
	    "{\"instructions\":\"be brief\",\"input\":[{\"role\":\"user\","
	    "\"content\":\"hi\"}]}");
	json_object_put(in);
	o = parse("{\"type\":\"response.created\",\"response\":{\"status\":"
	          "\"in_progress\"}}");
	gw_capture_chunk(&c, o);
	json_object_put(o);
	o = parse("{\"type\":\"response.output_text.delta\",\"delta\":\"a \"}");
	gw_capture_chunk(&c, o);
	gw_capture_chunk(&c, o);
	json_object_put(o);
	o = parse("{\"type\":\"response.completed\",\"response\":{\"status\":"
	          "\"completed\"}}");
	gw_capture_chunk(&c, o);
	json_object_put(o);
	o = gw_capture_output(&c);
	assert_string_equal(gw_json_str(o, NULL),
	    "{\"content\":\"a a \",\"finish_reason\":\"completed\"}");
	json_object_put(o);
	gw_capture_fini(&c);
	/* A JSON answer; redacted input: its length only. */
	gw_capture_init(&c, 1, GW_LANGFUSE_RECORD_REDACTED, GW_CALL_RESPONSES);
	gw_capture_request(&c, body);
	in = gw_capture_input(&c, body);
	assert_string_equal(gw_json_str(in, NULL), "{\"chars\":10}");
	json_object_put(in);
	o = parse("{\"status\":\"completed\",\"output\":[{\"type\":"
	          "\"message\",\"content\":[{\"type\":\"output_text\","
	          "\"text\":\"xyz\"}]}]}");
	gw_capture_answer(&c, o);
	json_object_put(o);
	o = gw_capture_output(&c);
	assert_string_equal(gw_json_str(o, NULL),
	    "{\"chars\":3,\"finish_reason\":\"completed\"}");
	json_object_put(o);
	gw_capture_fini(&c);
	json_object_put(body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_trace_ids),
	    cmocka_unit_test(test_str_ok),
	    cmocka_unit_test(test_trace_keys),
	    cmocka_unit_test(test_responses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
