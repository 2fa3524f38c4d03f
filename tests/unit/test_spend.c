/*
 * Unit tests for lib/spend.c: a recorded request as the spend_logs row the
 * database receives, through the spool and the process's writer thread
 * (the database is fake_db.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "fake_db.h"
#include "keystore.h"
#include "log.h"
#include "spend.h"
#include "spool.h"

static char top[200];
static struct gw_cfg *cfg;

static int
setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	char dir[300], err[512];

	(void)state;
	snprintf(top, sizeof(top), "%s/llmgw-test-spend-XXXXXX",
	    tmp != NULL && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(top) == NULL)
		return -1;
	snprintf(dir, sizeof(dir), "%s/spool", top);
	setenv("LLMGW_SPEND_SPOOL_DIR", dir, 1);
	setenv("LLMGW_SPEND_FLUSH_MS", "10", 1);
	if (gw_cfg_load("data/price/prices.conf", &cfg, err, sizeof(err)) !=
	    GW_OK)
		return -1;
	unsetenv("LLMGW_SPEND_SPOOL_DIR");
	unsetenv("LLMGW_SPEND_FLUSH_MS");
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	gw_spend_process_fini(); /* drained: nothing left behind */
	assert_int_equal(gw_spool_backlog(), 0);
	gw_cfg_unref(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	return system(cmd) == 0 ? 0 : -1;
}

/* Wait up to 5 s for the database to hold n rows; row n - 1, parsed. */
static json_object *
wait_row(int n)
{
	int i;
	json_object *o;

	for (i = 0; i < 500 && fake_db_nrows() < n; i++)
		usleep(10 * 1000);
	assert_int_equal(fake_db_nrows(), n);
	pthread_mutex_lock(&fake.mu);
	o = json_tokener_parse(fake.rows[n - 1]);
	pthread_mutex_unlock(&fake.mu);
	assert_non_null(o);
	return o;
}

static const char *
str(json_object *o, const char *key)
{
	json_object *v;

	assert_true(json_object_object_get_ex(o, key, &v));
	return v == NULL ? NULL : json_object_get_string(v);
}

static int
is_null(json_object *o, const char *key)
{
	json_object *v;

	assert_true(json_object_object_get_ex(o, key, &v));
	return v == NULL;
}

static void
test_key_row(void **state)
{
	struct gw_keyrec k = {0};
	struct gw_principal who = {0};
	struct gw_spend_rec r = {0};
	json_object *meta = json_tokener_parse("{\"tag\":\"a \\\"b\\\"\"}");
	json_object *in = json_tokener_parse("[{\"role\":\"user\"}]");
	json_object *o;

	(void)state;
	snprintf(k.token, sizeof(k.token), "%064d", 7);
	k.key_alias = "alias one";
	k.user_id = "u1";
	k.team_id = "t1";
	who.role = GW_ROLE_KEY;
	who.rec = &k;
	r.request_id = "req-1";
	r.who = &who;
	r.model = "gpt-4";
	r.actual_model = "qwen3-30b-a3b";
	r.call_type = "chat";
	r.prompt_tokens = 3;
	r.completion_tokens = 5;
	r.total_tokens = 8;
	r.cost = 0.0000170;
	r.start_us = INT64_C(1767225600000000); /* 2026-01-01T00:00:00Z */
	r.first_token_us = r.start_us + 1500;
	r.end_us = r.start_us + 250000;
	r.status = 200;
	r.stream = 1;
	r.metadata = meta;
	r.response_id = "chatcmpl-1";
	r.request_tags = "[\"a\",\"b\"]";
	r.lf_mode = "full";
	r.lf_input = in;
	assert_int_equal(gw_spend_record(cfg, &r), GW_OK);
	o = wait_row(1);
	assert_string_equal(str(o, "request_id"), "req-1");
	assert_string_equal(str(o, "api_key"), k.token);
	assert_string_equal(str(o, "key_alias"), "alias one");
	assert_string_equal(str(o, "user_id"), "u1");
	assert_string_equal(str(o, "team_id"), "t1");
	assert_string_equal(str(o, "model"), "gpt-4");
	assert_string_equal(str(o, "actual_model"), "qwen3-30b-a3b");
	assert_string_equal(str(o, "call_type"), "chat");
	assert_string_equal(str(o, "prompt_tokens"), "3");
	assert_string_equal(str(o, "completion_tokens"), "5");
	assert_string_equal(str(o, "total_tokens"), "8");
	assert_string_equal(str(o, "spend"), "1.7e-05");
	assert_string_equal(str(o, "usage_estimated"), "false");
	assert_string_equal(str(o, "start_time"), "2026-01-01T00:00:00.000Z");
	assert_string_equal(str(o, "end_time"), "2026-01-01T00:00:00.250Z");
	assert_string_equal(
	    str(o, "completion_start_time"), "2026-01-01T00:00:00.001Z");
	assert_string_equal(str(o, "ttft_ms"), "1.5");
	assert_string_equal(str(o, "status"), "200");
	assert_true(is_null(o, "error_type"));
	assert_string_equal(str(o, "stream"), "true");
	assert_string_equal(str(o, "client_disconnected"), "false");
	assert_string_equal(str(o, "metadata"), "{ \"tag\": \"a \\\"b\\\"\" }");
	assert_string_equal(str(o, "response_id"), "chatcmpl-1");
	assert_string_equal(str(o, "request_tags"), "[ \"a\", \"b\" ]");
	assert_string_equal(str(o, "lf_mode"), "full");
	assert_string_equal(str(o, "lf_input"), "[ { \"role\": \"user\" } ]");
	assert_true(is_null(o, "lf_output"));
	json_object_put(o);
	json_object_put(meta);
	json_object_put(in);
}

static void
test_refused_jwt_row(void **state)
{
	struct gw_keyrec k = {0};
	struct gw_principal who = {0};
	struct gw_spend_rec r = {0};
	json_object *o, *v;

	(void)state;
	/* A JWT's record has no key: no hash, no alias. */
	snprintf(k.token, sizeof(k.token), "jwt-not-a-key");
	k.user_id = "jwt-user";
	who.role = GW_ROLE_JWT;
	who.rec = &k;
	r.request_id = "req-2";
	r.who = &who;
	r.call_type = "embedding";
	r.start_us = INT64_C(1767225600000000);
	r.end_us = r.start_us;
	r.status = 400;
	r.error_type = "budget_exceeded";
	assert_int_equal(gw_spend_record(cfg, &r), GW_OK);
	o = wait_row(2);
	assert_string_equal(str(o, "request_id"), "req-2");
	assert_string_equal(str(o, "api_key"), "");
	assert_true(is_null(o, "key_alias"));
	assert_string_equal(str(o, "user_id"), "jwt-user");
	assert_true(is_null(o, "team_id"));
	assert_string_equal(str(o, "model"), "");
	assert_true(is_null(o, "actual_model"));
	assert_string_equal(str(o, "spend"), "0");
	assert_true(is_null(o, "completion_start_time"));
	assert_true(is_null(o, "ttft_ms"));
	assert_string_equal(str(o, "error_type"), "budget_exceeded");
	assert_string_equal(str(o, "metadata"), "{ }");
	assert_true(is_null(o, "response_id"));
	assert_string_equal(str(o, "request_tags"), "[ ]");
	/* Not recorded for Langfuse: no payload fields at all. */
	assert_false(json_object_object_get_ex(o, "lf_mode", &v));
	assert_false(json_object_object_get_ex(o, "lf_input", &v));
	json_object_put(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_row),
	    cmocka_unit_test(test_refused_jwt_row),
	};

	gw_log_init("unit", GW_LOG_ERR, NULL);
	return cmocka_run_group_tests_name("spend", tests, setup, teardown);
}
