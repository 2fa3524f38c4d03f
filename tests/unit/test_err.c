/* Unit tests for lib/err.c: the status maps and the OpenAI error body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static void
test_err_map(void **state)
{
	(void)state;
	assert_int_equal(gw_err_http_status(GW_OK), 200);
	assert_int_equal(gw_err_http_status(GW_E_INVALID), 400);
	assert_int_equal(gw_err_http_status(GW_E_AUTH), 401);
	assert_int_equal(gw_err_http_status(GW_E_FORBIDDEN), 403);
	assert_int_equal(gw_err_http_status(GW_E_NOTFOUND), 404);
	assert_int_equal(gw_err_http_status(GW_E_METHOD), 405);
	assert_int_equal(gw_err_http_status(GW_E_TOOBIG), 413);
	assert_int_equal(gw_err_http_status(GW_E_RATELIMIT), 429);
	assert_int_equal(gw_err_http_status(GW_E_UPSTREAM), 502);
	assert_int_equal(gw_err_http_status(GW_E_DB), 503);
	assert_int_equal(gw_err_http_status(GW_E_TIMEOUT), 504);
	assert_int_equal(gw_err_http_status((enum gw_status)999), 500);
	assert_string_equal(gw_err_type(GW_E_RATELIMIT), "rate_limit_error");
	assert_string_equal(gw_err_reason(404), "Not Found");
}

static void
test_err_json(void **state)
{
	char *s = gw_err_json_new(
	    400, "invalid_request_error", "model", "bad \"model\"\n");
	json_object *o = json_tokener_parse(s), *e, *v;

	(void)state;
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "error", &e));
	assert_true(json_object_object_get_ex(e, "message", &v));
	assert_string_equal(json_object_get_string(v), "bad \"model\"\n");
	assert_true(json_object_object_get_ex(e, "type", &v));
	assert_string_equal(json_object_get_string(v), "invalid_request_error");
	assert_true(json_object_object_get_ex(e, "param", &v));
	assert_string_equal(json_object_get_string(v), "model");
	assert_true(json_object_object_get_ex(e, "code", &v));
	assert_true(json_object_is_type(v, json_type_string));
	assert_string_equal(json_object_get_string(v), "400");
	json_object_put(o);
	free(s);

	s = gw_err_json_new(404, NULL, NULL, NULL);
	assert_string_equal(s, "{\"error\":{\"message\":\"Not Found\",\"type\":"
	                       "\"internal_server_error\",\"param\":null,"
	                       "\"code\":\"404\"}}");
	free(s);
}

/*
 * An upstream's error status, when its body names no type: the type the
 * relay answers with (the same map LiteLLM clients see from OpenAI).
 */
static void
test_err_type_for_http(void **state)
{
	static const struct {
		int status;
		const char *type;
	} cases[] = {
	    {400, "invalid_request_error"},
	    {401, "auth_error"},
	    {403, "permission_error"},
	    {404, "not_found_error"},
	    {405, "invalid_request_error"},
	    {408, "timeout_error"},
	    {409, "invalid_request_error"},
	    {413, "request_too_large"},
	    {422, "invalid_request_error"},
	    {429, "rate_limit_error"},
	    {499, "invalid_request_error"},
	    {500, "upstream_error"},
	    {502, "upstream_error"},
	    {503, "upstream_error"},
	    {504, "upstream_error"},
	    {599, "upstream_error"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (strcmp(gw_err_type_for_http(cases[i].status),
		        cases[i].type) != 0)
			fail_msg("%d: %s, not %s", cases[i].status,
			    gw_err_type_for_http(cases[i].status),
			    cases[i].type);
	/* The status-to-type map of our own errors agrees where they meet. */
	assert_string_equal(
	    gw_err_type_for_http(gw_err_http_status(GW_E_RATELIMIT)),
	    gw_err_type(GW_E_RATELIMIT));
	assert_string_equal(gw_err_type_for_http(gw_err_http_status(GW_E_AUTH)),
	    gw_err_type(GW_E_AUTH));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_err_map),
	    cmocka_unit_test(test_err_json),
	    cmocka_unit_test(test_err_type_for_http),
	};

	return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
