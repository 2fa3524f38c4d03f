/*
 * Unit tests for lib/auth.c: the bearer token, the master key, model
 * restrictions of a key and of its team. Virtual keys are looked up in
 * PostgreSQL and tested through the front (tests/integration/test_keys.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "auth.h"
#include "config.h"
#include "keystore.h"
#include "req.h"

struct fake {
	struct gw_fcgi fr;
	struct gw_cfg cfg;
	struct gw_req req;
	char *env[4];
};

/* A request whose only header is Authorization: value (NULL: none). */
static void
fake_init(struct fake *f, const char *value)
{
	static char line[512];

	memset(f, 0, sizeof(*f));
	if (value != NULL) {
		snprintf(line, sizeof(line), "HTTP_AUTHORIZATION=%s", value);
		f->env[0] = line;
	}
	f->fr.envp = f->env;
	f->cfg.master_key = "sk-master-0123456789";
	f->req.fr = &f->fr;
	f->req.cfg = &f->cfg;
}

static void
test_bearer(void **state)
{
	static const struct {
		const char *header, *token;
	} cases[] = {
	    {"Bearer sk-abc", "sk-abc"},
	    {"bearer sk-abc", "sk-abc"},     /* the scheme in any case */
	    {"  BEARER   sk-abc", "sk-abc"}, /* spaces around it */
	    {"Bearer ", NULL},
	    {"Bearer", NULL},
	    {"Basic dXNlcjpwYXNz", NULL},
	    {"sk-abc", NULL},
	    {NULL, NULL},
	};
	struct fake f;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *t;

		fake_init(&f, cases[i].header);
		t = gw_auth_bearer(&f.req);
		if (cases[i].token == NULL)
			assert_null(t);
		else
			assert_string_equal(t, cases[i].token);
	}
}

/*
 * A header name too long for the lookup's buffer finds nothing; it used
 * to be cut to 122 characters and found the header of the cut name.
 */
static void
test_long_header_name(void **state)
{
	static char cut[160], line[200];
	char name[200];
	struct fake f;

	(void)state;
	memset(name, 'A', 150);
	name[150] = '\0';
	memset(cut, 'A', 122);
	cut[122] = '\0';
	snprintf(line, sizeof(line), "HTTP_%s=cut", cut);
	fake_init(&f, NULL);
	f.env[0] = line;
	assert_null(gw_req_header(&f.req, name));
	name[122] = '\0';
	assert_string_equal(gw_req_header(&f.req, name), "cut");
}

/* x-litellm-api-key, then Authorization, then api-key (LiteLLM's order). */
static void
test_bearer_headers(void **state)
{
	static const struct {
		const char *litellm, *authz, *apikey, *token;
	} cases[] = {
	    {"sk-lite", "Bearer sk-authz", "sk-azure", "sk-lite"},
	    {"Bearer sk-lite", NULL, NULL, "sk-lite"},
	    {NULL, "Bearer sk-authz", "sk-azure", "sk-authz"},
	    {NULL, NULL, "sk-azure", "sk-azure"},
	    {NULL, "", "sk-azure", "sk-azure"}, /* empty: not sent */
	    {NULL, "Basic dXNlcjpwYXNz", "sk-azure", NULL},
	    {"", "Bearer sk-authz", NULL, NULL},
	    {NULL, NULL, NULL, NULL},
	};
	static char l1[128], l2[128], l3[128];
	struct fake f;
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *t;

		fake_init(&f, NULL);
		n = 0;
		if (cases[i].litellm != NULL) {
			snprintf(l1, sizeof(l1), "HTTP_X_LITELLM_API_KEY=%s",
			    cases[i].litellm);
			f.env[n++] = l1;
		}
		if (cases[i].authz != NULL) {
			snprintf(l2, sizeof(l2), "HTTP_AUTHORIZATION=%s",
			    cases[i].authz);
			f.env[n++] = l2;
		}
		if (cases[i].apikey != NULL) {
			snprintf(
			    l3, sizeof(l3), "HTTP_API_KEY=%s", cases[i].apikey);
			f.env[n++] = l3;
		}
		t = gw_auth_bearer(&f.req);
		if (cases[i].token == NULL)
			assert_null(t);
		else
			assert_string_equal(t, cases[i].token);
	}
}

static void
test_no_token_and_master_key(void **state)
{
	struct gw_principal who;
	struct fake f;
	char msg[256];

	(void)state;
	fake_init(&f, NULL);
	assert_int_equal(
	    gw_auth_check(&f.req, &who, msg, sizeof(msg)), GW_E_AUTH);
	assert_string_equal(who.err_type, "auth_error");
	assert_non_null(strstr(msg, "No api key passed in"));
	assert_int_equal(who.role, GW_ROLE_NONE);

	fake_init(&f, "Bearer sk-master-0123456789");
	assert_int_equal(gw_auth_check(&f.req, &who, msg, sizeof(msg)), GW_OK);
	assert_int_equal(who.role, GW_ROLE_MASTER);
	assert_true(who.admin);
	assert_int_equal(who.urole, GW_USER_PROXY_ADMIN);
	assert_null(who.rec);
	/* Not even part of the master key goes into a log line (#15, 7). */
	assert_string_equal(who.key_name, "master_key");
	gw_auth_release(&who);
	assert_int_equal(who.role, GW_ROLE_NONE);
}

static void
test_model_restrictions(void **state)
{
	struct gw_principal who = {0}, admin = {0};
	char msg[256];
	const char *type = NULL;

	(void)state;
	who.role = GW_ROLE_KEY;
	who.rec = gw_keyrec_from_json(
	    "{\"token\":\"" /* 64 hex digits */
	    "0000000000000000000000000000000000000000000000000000000000000000"
	    "\",\"models\":[\"gpt-4\",\"qwen3-30b-a3b\"],"
	    "\"team_models\":[\"gpt-4\"]}");
	assert_int_equal(
	    gw_auth_model(&who, "gpt-4", msg, sizeof(msg), &type), GW_OK);
	/* The key allows it, its team does not. */
	assert_int_equal(
	    gw_auth_model(&who, "qwen3-30b-a3b", msg, sizeof(msg), &type),
	    GW_E_AUTH);
	assert_string_equal(type, "team_model_access_denied");
	assert_non_null(strstr(msg, "'qwen3-30b-a3b'"));
	/* Neither: the key's refusal is said first. */
	assert_int_equal(
	    gw_auth_model(&who, "other", msg, sizeof(msg), &type), GW_E_AUTH);
	assert_string_equal(type, "key_model_access_denied");
	assert_string_equal(msg,
	    "key not allowed to access model. This key cannot access model "
	    "'other'");
	gw_auth_release(&who);
	assert_null(who.rec);

	/* An empty list, "*" and "all-proxy-models" allow every model. */
	who.rec =
	    gw_keyrec_from_json("{\"models\":[],\"team_models\":[\"*\"]}");
	assert_int_equal(
	    gw_auth_model(&who, "anything", msg, sizeof(msg), &type), GW_OK);
	gw_auth_release(&who);
	who.rec = gw_keyrec_from_json(
	    "{\"models\":[\"all-proxy-models\"],\"team_models\":[]}");
	assert_int_equal(
	    gw_auth_model(&who, "anything", msg, sizeof(msg), &type), GW_OK);
	gw_auth_release(&who);

	/* The master key (an admin, no record) may call every model. */
	admin.role = GW_ROLE_MASTER;
	admin.admin = 1;
	assert_int_equal(
	    gw_auth_model(&admin, "anything", msg, sizeof(msg), &type), GW_OK);
}

static void
test_wildcards_and_user_models(void **state)
{
	struct gw_principal who = {0};
	char msg[256];
	const char *type = NULL;

	(void)state;
	assert_true(gw_strlist_glob("qwen*", "qwen3-30b-a3b"));
	assert_true(gw_strlist_glob("qwen*", "qwen"));
	assert_true(gw_strlist_glob("openai/*", "openai/gpt-4o"));
	assert_false(gw_strlist_glob("openai/*", "openai"));
	assert_true(gw_strlist_glob("*-instruct", "llama-3-instruct"));
	assert_true(gw_strlist_glob("a*b*c", "aXbYbZc"));
	assert_false(gw_strlist_glob("a*b*c", "aXbYbZ"));
	assert_false(gw_strlist_glob("qwen*", "gpt-4"));
	assert_true(gw_strlist_glob("gpt-4", "gpt-4"));
	assert_false(gw_strlist_glob("gpt-4", "gpt-4o"));

	who.role = GW_ROLE_KEY;
	who.rec = gw_keyrec_from_json("{\"models\":[\"qwen*\",\"gpt-4\"],"
	                              "\"team_models\":[\"all-team-models\"],"
	                              "\"user_models\":[\"qwen3*\"]}");
	assert_int_equal(
	    gw_auth_model(&who, "qwen3-30b-a3b", msg, sizeof(msg), &type),
	    GW_OK);
	/* The key allows it, its user does not. */
	assert_int_equal(
	    gw_auth_model(&who, "gpt-4", msg, sizeof(msg), &type), GW_E_AUTH);
	assert_string_equal(type, "user_model_access_denied");
	assert_string_equal(msg,
	    "user not allowed to access model. This user cannot access "
	    "model 'gpt-4'");
	assert_int_equal(
	    gw_auth_model(&who, "llama", msg, sizeof(msg), &type), GW_E_AUTH);
	assert_string_equal(type, "key_model_access_denied");
	gw_auth_release(&who);
}

static void
test_roles(void **state)
{
	struct gw_principal who = {0};

	(void)state;
	assert_int_equal(
	    gw_auth_role_parse("proxy_admin"), GW_USER_PROXY_ADMIN);
	assert_int_equal(gw_auth_role_parse("proxy_admin_viewer"),
	    GW_USER_PROXY_ADMIN_VIEWER);
	assert_int_equal(gw_auth_role_parse("internal_user"), GW_USER_INTERNAL);
	assert_int_equal(gw_auth_role_parse("internal_user_viewer"),
	    GW_USER_INTERNAL_VIEWER);
	assert_int_equal(gw_auth_role_parse("team"), GW_USER_NONE);
	assert_int_equal(gw_auth_role_parse(NULL), GW_USER_NONE);
	assert_string_equal(
	    gw_auth_role_name(GW_USER_INTERNAL_VIEWER), "internal_user_viewer");
	assert_string_equal(gw_auth_role_name(GW_USER_NONE), "none");
	who.urole = GW_USER_PROXY_ADMIN_VIEWER;
	assert_true(gw_auth_can_read_all(&who));
	assert_false(gw_auth_is_admin(&who));
	who.urole = GW_USER_PROXY_ADMIN;
	assert_true(gw_auth_can_read_all(&who) && gw_auth_is_admin(&who));
	who.urole = GW_USER_INTERNAL;
	assert_false(gw_auth_can_read_all(&who) || gw_auth_is_admin(&who));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bearer),
	    cmocka_unit_test(test_long_header_name),
	    cmocka_unit_test(test_bearer_headers),
	    cmocka_unit_test(test_no_token_and_master_key),
	    cmocka_unit_test(test_model_restrictions),
	    cmocka_unit_test(test_wildcards_and_user_models),
	    cmocka_unit_test(test_roles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
