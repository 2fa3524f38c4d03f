/*
 * Unit tests for lib/admit.c: the key, user and team levels of a
 * request's rate limits, on a fresh shared-memory region, and the
 * refusal message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "admit.h"
#include "auth.h"
#include "keystore.h"
#include "shm_fixture.h"

#define SEC INT64_C(1000000000)
/* A fake clock 15 s into a minute window. */
#define T0 (INT64_C(1000) * 60 * SEC + 15 * SEC)

static int
setup(void **state)
{
	(void)state;
	return shm_fixture_attach("admit");
}

static void
key_of(struct gw_principal *who, const char *json)
{
	memset(who, 0, sizeof(*who));
	who->role = GW_ROLE_KEY;
	who->rec = gw_keyrec_from_json(json);
	snprintf(who->key_name, sizeof(who->key_name), "sk-...%.4s",
	    who->rec->token);
}

/* A user's rpm counts the requests of all its keys. */
static void
test_user_rpm_across_keys(void **state)
{
	struct gw_principal a, b;
	struct gw_admit_tickets t;
	struct gw_admit_refusal why;
	char msg[300];

	(void)state;
	key_of(&a, "{\"token\":\"aaaa\",\"user_id\":\"alice\","
	           "\"rpm_limit\":10,\"user_rpm_limit\":2}");
	key_of(&b, "{\"token\":\"bbbb\",\"user_id\":\"alice\"}");
	assert_int_equal(gw_admit_take(&a, T0, &t, &why, NULL), GW_RL_OK);
	assert_int_equal(why.left_requests, 9);
	gw_admit_done(&t, 0, T0);
	b.rec->user_rpm_limit = 2; /* as the database would read it */
	assert_int_equal(gw_admit_take(&b, T0, &t, &why, NULL), GW_RL_OK);
	gw_admit_done(&t, 0, T0);
	assert_int_equal(gw_admit_take(&a, T0, &t, &why, NULL), GW_RL_RPM);
	assert_int_equal(why.level, GW_ADMIT_USER);
	assert_int_equal(why.limit, 2);
	assert_true(why.retry_after_s >= 1 && why.retry_after_s <= 45);
	gw_admit_message(&a, &why, msg, sizeof(msg));
	assert_string_equal(msg, "Rate limit exceeded for user alice: "
	                         "rpm_limit 2 (requests per minute) reached. "
	                         "Retry in 45 s.");
	/* The key's request was given back: 9 left of its 10 still. */
	a.rec->user_rpm_limit = -1;
	assert_int_equal(gw_admit_take(&a, T0, &t, &why, NULL), GW_RL_OK);
	assert_int_equal(why.left_requests, 8);
	gw_admit_done(&t, 0, T0);
	gw_auth_release(&a);
	gw_auth_release(&b);
}

/* A team refusing gives back what the key and the user took. */
static void
test_team_refusal_undoes_key_and_user(void **state)
{
	struct gw_principal w;
	struct gw_admit_tickets held, t;
	struct gw_admit_refusal why;
	char msg[300];

	(void)state;
	key_of(&w,
	    "{\"token\":\"cccc\",\"user_id\":\"bob\",\"team_id\":\"t1\","
	    "\"max_parallel_requests\":1,\"user_max_parallel_requests\":1,"
	    "\"team_max_parallel_requests\":0}");
	assert_int_equal(gw_admit_take(&w, T0, &t, &why, NULL), GW_RL_PARALLEL);
	assert_int_equal(why.level, GW_ADMIT_TEAM);
	assert_int_equal(why.retry_after_s, 1);
	gw_admit_message(&w, &why, msg, sizeof(msg));
	assert_string_equal(msg, "Rate limit exceeded for team t1: "
	                         "max_parallel_requests 0 (requests at once) "
	                         "reached. Retry in 1 s.");
	gw_admit_done(&t, 0, T0); /* nothing held: a no-op */
	/* The key's and the user's one slot each are free again. */
	w.rec->team_max_parallel = -1;
	assert_int_equal(gw_admit_take(&w, T0, &held, &why, NULL), GW_RL_OK);
	assert_int_equal(gw_admit_take(&w, T0, &t, &why, NULL), GW_RL_PARALLEL);
	assert_int_equal(why.level, GW_ADMIT_KEY);
	gw_admit_message(&w, &why, msg, sizeof(msg));
	assert_non_null(strstr(msg, "for key sk-...cccc: max_parallel"));
	gw_admit_done(&held, 0, T0);
	gw_admit_done(&held, 0, T0); /* idempotent */
	assert_int_equal(gw_admit_take(&w, T0, &t, &why, NULL), GW_RL_OK);
	gw_admit_done(&t, 0, T0);
	gw_auth_release(&w);
}

/* tpm: a user's tokens are counted by gw_admit_done. */
static void
test_user_tpm(void **state)
{
	struct gw_principal w;
	struct gw_admit_tickets t;
	struct gw_admit_refusal why;

	(void)state;
	key_of(&w, "{\"token\":\"dddd\",\"user_id\":\"carol\","
	           "\"user_tpm_limit\":10}");
	assert_int_equal(gw_admit_take(&w, T0, &t, &why, NULL), GW_RL_OK);
	gw_admit_done(&t, 12, T0);
	assert_int_equal(gw_admit_take(&w, T0, &t, &why, NULL), GW_RL_TPM);
	assert_int_equal(why.level, GW_ADMIT_USER);
	assert_int_equal(why.limit, 10);
	gw_auth_release(&w);
}

/* A JWT caller has no key level; admins hold nothing. */
static void
test_jwt_and_admin(void **state)
{
	struct gw_principal w;
	struct gw_admit_tickets t;
	struct gw_admit_refusal why;

	(void)state;
	key_of(&w, "{\"token\":\"eeee\",\"user_id\":\"dan\",\"team_id\":\"t2\","
	           "\"rpm_limit\":0,\"team_rpm_limit\":1}");
	w.role = GW_ROLE_JWT;
	assert_int_equal(gw_admit_take(&w, T0, &t, &why, NULL), GW_RL_OK);
	gw_admit_done(&t, 0, T0);
	assert_int_equal(gw_admit_take(&w, T0, &t, &why, NULL), GW_RL_RPM);
	assert_int_equal(why.level, GW_ADMIT_TEAM);
	w.admin = 1;
	assert_int_equal(gw_admit_take(&w, T0, &t, &why, NULL), GW_RL_OK);
	gw_auth_release(&w);
}

/* The database's word on a JWT's team and user, merged into its claims. */
static void
test_merge_jwt(void **state)
{
	struct gw_keyrec *claims, *db;
	char t1[65], t2[65], t3[65];

	(void)state;
	claims = gw_keyrec_from_json("{\"team_id\":\"t\",\"user_id\":\"u\","
	                             "\"models\":[\"gpt-4\"]}");
	db = gw_keyrec_from_json(
	    "{\"team_models\":[\"gpt-4\",\"x\"],\"team_blocked\":true,"
	    "\"team_rpm_limit\":3,\"user_models\":[\"y\"],"
	    "\"user_max_parallel_requests\":2,\"user_max_budget\":5}");
	gw_keyrec_merge_jwt(claims, db);
	gw_keyrec_unref(db);
	assert_int_equal(claims->models.n, 1);
	assert_int_equal(claims->team_models.n, 2);
	assert_string_equal(claims->team_models.v[1], "x");
	assert_string_equal(claims->user_models.v[0], "y");
	assert_true(claims->team_blocked);
	assert_false(claims->team_missing);
	assert_int_equal(claims->team_rpm_limit, 3);
	assert_int_equal(claims->team_tpm_limit, -1);
	assert_int_equal(claims->user_max_parallel, 2);
	assert_true(claims->user_max_budget == 5);
	gw_keyrec_unref(claims);
	/* NULL and "" are different pairs; the tokens are 64 hex digits. */
	gw_keystore_jwt_token("t", NULL, t1);
	gw_keystore_jwt_token("t", "", t2);
	gw_keystore_jwt_token(NULL, "t", t3);
	assert_int_equal(strlen(t1), 64);
	assert_string_not_equal(t1, t2);
	assert_string_not_equal(t1, t3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_user_rpm_across_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_team_refusal_undoes_key_and_user, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_user_tpm, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_jwt_and_admin, setup, teardown),
	    cmocka_unit_test(test_merge_jwt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
