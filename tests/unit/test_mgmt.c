/*
 * Unit tests for lib/mgmt.c: durations, the fields a key, user or team
 * body may hold (accepted, types, ranges, the error's param and message)
 * and the statements they build, failures, callers, info answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "json_util.h"
#include "mgmt.h"

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
test_duration_units(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
	    {"30s", "30 seconds"},
	    {"15m", "15 minutes"},
	    {"1h", "1 hours"},
	    {"30d", "30 days"},
	    {"2w", "2 weeks"},
	    {"1mo", "1 months"},
	    {"999999d", "999999 days"}, /* six digits at most */
	    {"000007s", "7 seconds"},
	};
	char out[64];
	size_t i;

	(void)state;
	for (i = 0; i < GW_ARRAY_LEN(ok); i++) {
		memset(out, 0, sizeof(out));
		assert_int_equal(
		    gw_mgmt_duration(ok[i].in, out, sizeof(out)), GW_OK);
		assert_string_equal(out, ok[i].out);
	}
}

static void
test_duration_rejects(void **state)
{
	static const char *const bad[] = {"", "d", "mo", "0d", "000000s",
	    "1000000d", "10y", "abc", "-1d", "+1d", "1.5h", "1 d", " 1d", "1d ",
	    "1D", "1M", "1mos", "1dd", "1month", "30", "1e3s", "0x10s"};
	char out[64] = "untouched";
	size_t i;

	(void)state;
	for (i = 0; i < GW_ARRAY_LEN(bad); i++)
		assert_int_equal(
		    gw_mgmt_duration(bad[i], out, sizeof(out)), GW_E_INVALID);
	assert_string_equal(out, "untouched");
}

static void
test_stmt_builder(void **state)
{
	struct gw_mgmt_stmt s = {0};
	char v[] = "abc";

	(void)state;
	gw_mgmt_stmt_set(&s, "a", "$?", v);
	v[0] = 'X'; /* parameters are copies */
	gw_mgmt_stmt_set(&s, "b", "now() + $?::interval", "1 days");
	gw_mgmt_stmt_set(&s, "c", "COALESCE($?::jsonb, '{}')", NULL);
	assert_int_equal(gw_mgmt_stmt_param(&s, "id"), 4);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.cols.p, "a, b, c");
	assert_string_equal(
	    s.vals.p, "$1, now() + $2::interval, COALESCE($3::jsonb, '{}')");
	assert_string_equal(s.sets.p,
	    "a = $1, b = now() + $2::interval, c = COALESCE($3::jsonb, '{}')");
	assert_string_equal(s.params[0], "abc");
	assert_string_equal(s.params[1], "1 days");
	assert_null(s.params[2]);
	assert_string_equal(s.params[3], "id");
	gw_mgmt_stmt_fini(&s);
	assert_int_equal(s.n, 0);
	gw_mgmt_stmt_fini(&s); /* again: nothing left */
}

/* body's fields for entity into a statement; GW_OK expected. */
static void
take(enum gw_mgmt_entity entity, const char *body, struct gw_mgmt_stmt *s)
{
	json_object *o = parse(body);
	struct gw_mgmt_fail f;

	assert_int_equal(gw_mgmt_take_fields(o, entity, s, &f), GW_OK);
	json_object_put(o);
}

static void
test_key_fields_build_the_statement(void **state)
{
	struct gw_mgmt_stmt s = {0};
	static const char *const params[] = {"gen-1", "u-1", "t-1",
	    "[\"gpt-4\",\"gpt-3.5-turbo\"]", "12.5", "1mo", "1 months", "1000",
	    "10", "3", "{\"team\":\"ml\"}", "false", "30 days"};
	int i;

	(void)state;
	/* Table order, whatever the body's; unknown fields are ignored. */
	take(GW_MGMT_KEY,
	    "{\"duration\":\"30d\",\"blocked\":false,\"metadata\":{\"team\":"
	    "\"ml\"},\"max_parallel_requests\":3,\"rpm_limit\":10,"
	    "\"tpm_limit\":1000,\"budget_duration\":\"1mo\",\"max_budget\":"
	    "12.5,\"models\":[\"gpt-4\",\"gpt-3.5-turbo\"],\"team_id\":\"t-1\","
	    "\"user_id\":\"u-1\",\"key_alias\":\"gen-1\",\"spend\":99,"
	    "\"key\":\"sk-x\",\"soft_budget\":1}",
	    &s);
	assert_string_equal(s.cols.p,
	    "key_alias, user_id, team_id, models, max_budget, budget_duration, "
	    "budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, "
	    "metadata, blocked, expires");
	assert_string_equal(s.vals.p,
	    "$1, $2, $3, ARRAY(SELECT json_array_elements_text($4::json)), "
	    "$5::float8, $6, now() + $7::interval, $8::bigint, $9::bigint, "
	    "$10::bigint, $11::jsonb, $12::boolean, now() + $13::interval");
	assert_int_equal(s.n, (int)GW_ARRAY_LEN(params));
	for (i = 0; i < s.n; i++)
		assert_string_equal(s.params[i], params[i]);
	gw_mgmt_stmt_fini(&s);
}

static void
test_nulls_clear(void **state)
{
	struct gw_mgmt_stmt s = {0};
	int i;

	(void)state;
	take(GW_MGMT_KEY,
	    "{\"key_alias\":null,\"models\":null,\"max_budget\":null,"
	    "\"budget_duration\":null,\"tpm_limit\":null,\"metadata\":null,"
	    "\"duration\":null}",
	    &s);
	assert_string_equal(s.sets.p,
	    "key_alias = $1, models = COALESCE($2::text[], '{}'), max_budget = "
	    "$3, budget_duration = $4, budget_reset_at = $5, tpm_limit = $6, "
	    "metadata = COALESCE($7::jsonb, '{}'), expires = $8");
	for (i = 0; i < s.n; i++)
		assert_null(s.params[i]);
	gw_mgmt_stmt_fini(&s);
}

static void
test_values_and_ranges(void **state)
{
	struct gw_mgmt_stmt s = {0};

	(void)state;
	/* Zero is a limit; integers stay exact; budgets keep 17 digits. */
	take(GW_MGMT_KEY,
	    "{\"max_budget\":0.1,\"tpm_limit\":9007199254740993,"
	    "\"rpm_limit\":0,\"models\":[]}",
	    &s);
	assert_string_equal(s.params[0], "[]");
	assert_string_equal(s.params[1], "0.10000000000000001");
	assert_string_equal(s.params[2], "9007199254740993");
	assert_string_equal(s.params[3], "0");
	gw_mgmt_stmt_fini(&s);
	/* An integer budget; a role; teams' and users' own fields. */
	take(GW_MGMT_USER,
	    "{\"max_budget\":5,\"user_role\":\"internal_user\",\"user_email\":"
	    "\"u@x.test\",\"blocked\":\"ignored: not a user field\","
	    "\"duration\":\"ignored\"}",
	    &s);
	assert_string_equal(s.cols.p, "user_email, user_role, max_budget");
	assert_string_equal(s.params[0], "u@x.test");
	assert_string_equal(s.params[1], "internal_user");
	assert_string_equal(s.params[2], "5");
	gw_mgmt_stmt_fini(&s);
	take(GW_MGMT_TEAM,
	    "{\"team_alias\":\"A\",\"blocked\":true,\"user_id\":7,"
	    "\"team_id\":\"not a team field here\"}",
	    &s);
	assert_string_equal(s.sets.p, "team_alias = $1, blocked = $2::boolean");
	assert_string_equal(s.params[1], "true");
	gw_mgmt_stmt_fini(&s);
	take(GW_MGMT_TEAM, "{}", &s);
	assert_int_equal(s.n, 0);
	gw_mgmt_stmt_fini(&s);
}

#define DURATION_MSG                                                           \
	"must be a number and a unit (s, m, h, d, w, mo), e.g. '30s', '15m', " \
	"'1h', '30d', '1mo'"
#define ROLE_MSG                                                               \
	"must be one of proxy_admin, proxy_admin_viewer, internal_user, "      \
	"internal_user_viewer, team, customer"

static void
test_bad_fields(void **state)
{
	static const struct {
		enum gw_mgmt_entity entity;
		const char *body, *param, *msg;
	} cases[] = {
	    {GW_MGMT_KEY, "{\"max_budget\":-1}", "max_budget",
	        "'max_budget' cannot be negative"},
	    {GW_MGMT_KEY, "{\"max_budget\":-0.5}", "max_budget",
	        "'max_budget' cannot be negative"},
	    {GW_MGMT_KEY, "{\"max_budget\":\"10\"}", "max_budget",
	        "'max_budget' must be a number >= 0"},
	    {GW_MGMT_KEY, "{\"max_budget\":true}", "max_budget",
	        "'max_budget' must be a number >= 0"},
	    {GW_MGMT_KEY, "{\"rpm_limit\":-5}", "rpm_limit",
	        "'rpm_limit' cannot be negative"},
	    {GW_MGMT_KEY, "{\"tpm_limit\":1.5}", "tpm_limit",
	        "'tpm_limit' must be an integer >= 0"},
	    {GW_MGMT_KEY, "{\"max_parallel_requests\":\"2\"}",
	        "max_parallel_requests",
	        "'max_parallel_requests' must be an integer >= 0"},
	    {GW_MGMT_KEY, "{\"duration\":\"10y\"}", "duration",
	        "'duration' " DURATION_MSG},
	    {GW_MGMT_KEY, "{\"duration\":30}", "duration",
	        "'duration' " DURATION_MSG},
	    {GW_MGMT_KEY, "{\"budget_duration\":\"1fortnight\"}",
	        "budget_duration", "'budget_duration' " DURATION_MSG},
	    {GW_MGMT_KEY, "{\"models\":\"gpt-4\"}", "models",
	        "'models' must be an array of strings"},
	    {GW_MGMT_KEY, "{\"models\":[1]}", "models",
	        "'models' must be an array of non-empty strings"},
	    {GW_MGMT_KEY, "{\"models\":[\"gpt-4\",\"\"]}", "models",
	        "'models' must be an array of non-empty strings"},
	    {GW_MGMT_KEY, "{\"metadata\":[1]}", "metadata",
	        "'metadata' must be a JSON object"},
	    {GW_MGMT_KEY, "{\"metadata\":\"x\"}", "metadata",
	        "'metadata' must be a JSON object"},
	    {GW_MGMT_KEY, "{\"blocked\":\"yes\"}", "blocked",
	        "'blocked' must be true or false"},
	    {GW_MGMT_KEY, "{\"blocked\":null}", "blocked",
	        "'blocked' must be true or false"},
	    {GW_MGMT_KEY, "{\"key_alias\":7}", "key_alias",
	        "'key_alias' must be a string"},
	    {GW_MGMT_KEY, "{\"key_alias\":\"\"}", "key_alias",
	        "'key_alias' must be a non-empty string"},
	    {GW_MGMT_KEY, "{\"team_id\":[\"t\"]}", "team_id",
	        "'team_id' must be a string"},
	    /* The first bad field in table order is the one named. */
	    {GW_MGMT_KEY, "{\"duration\":1,\"metadata\":1,\"user_id\":1}",
	        "user_id", "'user_id' must be a string"},
	    {GW_MGMT_USER, "{\"user_role\":\"god\"}", "user_role",
	        "'user_role' " ROLE_MSG},
	    {GW_MGMT_USER, "{\"user_role\":null}", "user_role",
	        "'user_role' " ROLE_MSG},
	    {GW_MGMT_USER, "{\"user_role\":1}", "user_role",
	        "'user_role' " ROLE_MSG},
	    {GW_MGMT_USER, "{\"user_role\":\"Proxy_Admin\"}", "user_role",
	        "'user_role' " ROLE_MSG},
	    {GW_MGMT_USER, "{\"user_email\":false}", "user_email",
	        "'user_email' must be a string"},
	    {GW_MGMT_TEAM, "{\"team_alias\":\"\"}", "team_alias",
	        "'team_alias' must be a non-empty string"},
	    {GW_MGMT_TEAM, "{\"blocked\":1}", "blocked",
	        "'blocked' must be true or false"},
	    {GW_MGMT_TEAM, "{\"max_budget\":-1}", "max_budget",
	        "'max_budget' cannot be negative"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < GW_ARRAY_LEN(cases); i++) {
		struct gw_mgmt_stmt s = {0};
		struct gw_mgmt_fail f;
		json_object *o = parse(cases[i].body);

		memset(&f, 0, sizeof(f));
		if (gw_mgmt_take_fields(o, cases[i].entity, &s, &f) !=
		    GW_E_INVALID)
			fail_msg("accepted: %s", cases[i].body);
		assert_int_equal(f.status, 400);
		assert_string_equal(f.type, "invalid_request_error");
		assert_string_equal(f.param, cases[i].param);
		assert_string_equal(f.msg, cases[i].msg);
		gw_mgmt_stmt_fini(&s);
		json_object_put(o);
	}
}

static void
test_fail(void **state)
{
	struct gw_mgmt_fail f;

	(void)state;
	assert_int_equal(gw_mgmt_set_fail(&f, 503, "no_db_connection", NULL,
	                     "Database unavailable"),
	    GW_E_DB);
	assert_int_equal(f.status, 503);
	assert_string_equal(f.param, "");
	assert_int_equal(gw_mgmt_set_fail(&f, 404, "not_found_error", "key",
	                     "%s not found", "Key"),
	    GW_E_INVALID);
	assert_string_equal(f.param, "key");
	assert_string_equal(f.msg, "Key not found");
	assert_int_equal(
	    gw_mgmt_invalid(&f, NULL, "'%s' is required", "x"), GW_E_INVALID);
	assert_int_equal(f.status, 400);
	assert_string_equal(f.type, "invalid_request_error");
	assert_string_equal(f.param, "");
	assert_string_equal(f.msg, "'x' is required");
}

static void
test_caller_name(void **state)
{
	struct gw_keyrec rec;
	struct gw_principal who;
	char uid[] = "u-1";

	(void)state;
	memset(&rec, 0, sizeof(rec));
	memset(&who, 0, sizeof(who));
	snprintf(who.key_name, sizeof(who.key_name), "sk-...abcd");
	who.role = GW_ROLE_MASTER;
	assert_string_equal(gw_mgmt_caller_name(&who), "master_key");
	who.role = GW_ROLE_KEY;
	who.rec = &rec;
	assert_string_equal(gw_mgmt_caller_name(&who), "key");
	rec.user_id = uid;
	assert_string_equal(gw_mgmt_caller_name(&who), "u-1");
	who.role = GW_ROLE_JWT;
	assert_string_equal(gw_mgmt_caller_name(&who), "u-1");
	rec.user_id = NULL;
	assert_string_equal(gw_mgmt_caller_name(&who), "jwt");
}

static void
test_info_answer(void **state)
{
	static const char *const top[] = {"spend", "models", "absent"};
	json_object *info = parse("{\"spend\":1.5,\"models\":[\"m\"],\"x\":1}");
	json_object *out;

	(void)state;
	out = gw_mgmt_info_new("user_id", "u-1", top, 3, "user_info", info);
	json_object_put(info); /* out holds its own reference */
	assert_string_equal(gw_json_str(out, NULL),
	    "{\"user_id\":\"u-1\",\"spend\":1.5,\"models\":[\"m\"],"
	    "\"user_info\":{\"spend\":1.5,\"models\":[\"m\"],\"x\":1}}");
	json_object_put(out);
	info = parse("{}");
	out = gw_mgmt_info_new("team_id", "t", NULL, 0, "team_info", info);
	assert_string_equal(
	    gw_json_str(out, NULL), "{\"team_id\":\"t\",\"team_info\":{}}");
	json_object_put(out);
	json_object_put(info);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_duration_units),
	    cmocka_unit_test(test_duration_rejects),
	    cmocka_unit_test(test_stmt_builder),
	    cmocka_unit_test(test_key_fields_build_the_statement),
	    cmocka_unit_test(test_nulls_clear),
	    cmocka_unit_test(test_values_and_ranges),
	    cmocka_unit_test(test_bad_fields),
	    cmocka_unit_test(test_fail),
	    cmocka_unit_test(test_caller_name),
	    cmocka_unit_test(test_info_answer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
