/*
 * Unit tests for lib/revoke.c: the registry of open streams. Notifications
 * mark the streams they concern, and only those; the re-read (through
 * fake_db.h's key table) flags a stream whose key is deleted, blocked, its
 * team blocked or expired, and otherwise moves its expiry; one read per
 * key however many streams it has; a stream registered just after a change
 * to its key is re-read; a failed read leaves streams going.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_db.h"
#include "keystore.h"
#include "revoke.h"
#include "util.h"

/* The keys table: a token's JSON as the lookup query returns it. */
#define NKEYS 64
static struct {
	char token[65];
	char json[512];
} table[NKEYS];

static void
tok(char out[65], int i)
{
	snprintf(out, 65, "%064d", i);
}

/* Set key i's row: blocked/team_blocked/expires; gone = deleted. */
static void
set_key(int i, const char *team, const char *user, int blocked,
    int team_blocked, double expires, int gone)
{
	char t[65];

	tok(t, i);
	memcpy(table[i].token, t, sizeof(t));
	if (gone) {
		table[i].json[0] = '\0';
		return;
	}
	snprintf(table[i].json, sizeof(table[i].json),
	    "{\"token\":\"%s\",\"team_id\":%s%s%s,\"user_id\":%s%s%s,"
	    "\"blocked\":%s,\"team_blocked\":%s,\"expires\":%.6f}",
	    t, team ? "\"" : "", team ? team : "null", team ? "\"" : "",
	    user ? "\"" : "", user ? user : "null", user ? "\"" : "",
	    blocked ? "true" : "false", team_blocked ? "true" : "false",
	    expires);
}

static int
answer(const char *sql, int nparams, const char *const *params, char **vals)
{
	int i;

	(void)sql;
	if (nparams != 1)
		return 0;
	for (i = 0; i < NKEYS; i++)
		if (strcmp(table[i].token, params[0]) == 0 &&
		    table[i].json[0] != '\0') {
			vals[0] = strdup(table[i].json);
			return 1;
		}
	return 0;
}

static struct gw_db the_db;

static struct gw_db *
db_handle(void)
{
	return &the_db;
}

/* The record a request holds for key i, as read now. */
static struct gw_keyrec *
rec_of(int i)
{
	return gw_keyrec_from_json(table[i].json);
}

static int
setup(void **state)
{
	(void)state;
	memset(table, 0, sizeof(table));
	fake.answer = answer;
	fake.down = 0;
	fake_db_reset();
	return 0;
}

static int
execs(void)
{
	int n;

	pthread_mutex_lock(&fake.mu);
	n = fake.execs;
	pthread_mutex_unlock(&fake.mu);
	return n;
}

static void
test_register_and_leave(void **state)
{
	struct gw_revoke a = {0}, b = {0};
	struct gw_keyrec *ra, *rb;
	int n0 = gw_revoke_count();

	(void)state;
	set_key(1, NULL, NULL, 0, 0, 0, 0);
	set_key(2, NULL, NULL, 0, 0, 0, 0);
	ra = rec_of(1);
	rb = rec_of(2);
	gw_revoke_add(&a, ra, gw_now_mono_us());
	gw_revoke_add(&b, rb, gw_now_mono_us());
	assert_int_equal(gw_revoke_count(), n0 + 2);
	assert_int_equal(gw_revoke_check(&a, gw_now_real_us()), GW_REVOKE_NONE);
	gw_revoke_remove(&a);
	gw_revoke_remove(&a); /* twice: a no-op */
	assert_int_equal(gw_revoke_count(), n0 + 1);
	gw_revoke_remove(&b);
	assert_int_equal(gw_revoke_count(), n0);
	/* Never registered: a no-op too. */
	gw_revoke_remove(&(struct gw_revoke){0});
	assert_int_equal(gw_revoke_count(), n0);
	gw_keyrec_unref(ra);
	gw_keyrec_unref(rb);
}

static void
test_block_flags_only_that_key(void **state)
{
	struct gw_revoke a1 = {0}, a2 = {0}, b = {0};
	struct gw_keyrec *ra, *rb;
	char p[80];

	(void)state;
	set_key(3, NULL, NULL, 0, 0, 0, 0);
	set_key(4, NULL, NULL, 0, 0, 0, 0);
	ra = rec_of(3);
	rb = rec_of(4);
	gw_revoke_add(&a1, ra, gw_now_mono_us());
	gw_revoke_add(&a2, ra, gw_now_mono_us());
	gw_revoke_add(&b, rb, gw_now_mono_us());
	/* Nothing suspect: no statement. */
	assert_int_equal(gw_revoke_recheck(db_handle()), GW_OK);
	assert_int_equal(execs(), 0);
	set_key(3, NULL, NULL, 1, 0, 0, 0);
	snprintf(p, sizeof(p), "key:%s", table[3].token);
	gw_revoke_note(p);
	assert_int_equal(
	    gw_revoke_check(&a1, gw_now_real_us()), GW_REVOKE_NONE);
	assert_int_equal(gw_revoke_recheck(db_handle()), GW_OK);
	/* One read for the key's two streams, none for the other key. */
	assert_int_equal(execs(), 1);
	assert_int_equal(
	    gw_revoke_check(&a1, gw_now_real_us()), GW_REVOKE_BLOCKED);
	assert_int_equal(
	    gw_revoke_check(&a2, gw_now_real_us()), GW_REVOKE_BLOCKED);
	assert_int_equal(gw_revoke_check(&b, gw_now_real_us()), GW_REVOKE_NONE);
	/* Done: a second recheck reads nothing. */
	assert_int_equal(gw_revoke_recheck(db_handle()), GW_OK);
	assert_int_equal(execs(), 1);
	gw_revoke_remove(&a1);
	gw_revoke_remove(&a2);
	gw_revoke_remove(&b);
	gw_keyrec_unref(ra);
	gw_keyrec_unref(rb);
}

static void
test_deleted_and_team_and_user(void **state)
{
	struct gw_revoke d = {0}, t = {0}, u = {0}, other = {0};
	struct gw_keyrec *rd, *rt, *ru, *ro;
	char p[80];

	(void)state;
	set_key(5, NULL, NULL, 0, 0, 0, 0);
	set_key(6, "team-a", NULL, 0, 0, 0, 0);
	set_key(7, NULL, "user-a", 0, 0, 0, 0);
	set_key(8, "team-b", "user-b", 0, 0, 0, 0);
	rd = rec_of(5);
	rt = rec_of(6);
	ru = rec_of(7);
	ro = rec_of(8);
	gw_revoke_add(&d, rd, gw_now_mono_us());
	gw_revoke_add(&t, rt, gw_now_mono_us());
	gw_revoke_add(&u, ru, gw_now_mono_us());
	gw_revoke_add(&other, ro, gw_now_mono_us());
	set_key(5, NULL, NULL, 0, 0, 0, 1);         /* deleted */
	set_key(6, "team-a", NULL, 0, 1, 0, 0);     /* its team blocked */
	set_key(7, NULL, "user-a", 0, 0, 0, 1);     /* deleted with its user */
	set_key(8, "team-b", "user-b", 1, 1, 0, 0); /* changed, not noted */
	snprintf(p, sizeof(p), "key:%s", table[5].token);
	gw_revoke_note(p);
	gw_revoke_note("team:team-a");
	gw_revoke_note("user:user-a");
	assert_int_equal(gw_revoke_recheck(db_handle()), GW_OK);
	assert_int_equal(execs(), 3);
	assert_int_equal(
	    gw_revoke_check(&d, gw_now_real_us()), GW_REVOKE_DELETED);
	assert_int_equal(
	    gw_revoke_check(&t, gw_now_real_us()), GW_REVOKE_TEAM_BLOCKED);
	assert_int_equal(
	    gw_revoke_check(&u, gw_now_real_us()), GW_REVOKE_DELETED);
	assert_int_equal(
	    gw_revoke_check(&other, gw_now_real_us()), GW_REVOKE_NONE);
	/* Anything else means everything: the other key is read too. */
	gw_revoke_note("*");
	assert_int_equal(gw_revoke_recheck(db_handle()), GW_OK);
	assert_int_equal(
	    gw_revoke_check(&other, gw_now_real_us()), GW_REVOKE_BLOCKED);
	gw_revoke_remove(&d);
	gw_revoke_remove(&t);
	gw_revoke_remove(&u);
	gw_revoke_remove(&other);
	gw_keyrec_unref(rd);
	gw_keyrec_unref(rt);
	gw_keyrec_unref(ru);
	gw_keyrec_unref(ro);
}

static void
test_expiry_by_clock_and_by_update(void **state)
{
	struct gw_revoke e = {0};
	struct gw_keyrec *r;
	double now = (double)gw_now_real_us() / 1e6;
	char p[80], msg[160];
	const char *type;

	(void)state;
	/* Expires in 100 s: good now, expired at that time, by the clock. */
	set_key(9, NULL, NULL, 0, 0, now + 100, 0);
	r = rec_of(9);
	gw_revoke_add(&e, r, gw_now_mono_us());
	assert_int_equal(gw_revoke_check(&e, gw_now_real_us()), GW_REVOKE_NONE);
	assert_int_equal(gw_revoke_check(&e, r->expires_us), GW_REVOKE_EXPIRED);
	/* Extended to 1000 s: the re-read moves the expiry. */
	set_key(9, NULL, NULL, 0, 0, now + 1000, 0);
	snprintf(p, sizeof(p), "key:%s", table[9].token);
	gw_revoke_note(p);
	assert_int_equal(gw_revoke_recheck(db_handle()), GW_OK);
	assert_int_equal(
	    gw_revoke_check(&e, r->expires_us + 1000000), GW_REVOKE_NONE);
	assert_int_equal(gw_revoke_check(&e, (int64_t)((now + 1000) * 1e6) + 1),
	    GW_REVOKE_EXPIRED);
	/* Moved into the past: flagged at the re-read. */
	set_key(9, NULL, NULL, 0, 0, now - 1, 0);
	gw_revoke_note(p);
	assert_int_equal(gw_revoke_recheck(db_handle()), GW_OK);
	assert_int_equal(
	    gw_revoke_check(&e, gw_now_real_us()), GW_REVOKE_EXPIRED);
	type = gw_revoke_describe(&e, GW_REVOKE_EXPIRED, msg, sizeof(msg));
	assert_string_equal(type, "expired_key");
	assert_non_null(strstr(msg, "Expired Key. Key Expiry time 20"));
	gw_revoke_remove(&e);
	gw_keyrec_unref(r);
}

static void
test_registered_after_the_change_is_reread(void **state)
{
	struct gw_revoke late = {0}, calm = {0}, after = {0};
	struct gw_keyrec *stale, *r2, *fresh;
	int64_t began;
	char p[80];

	(void)state;
	set_key(10, NULL, NULL, 0, 0, 0, 0);
	set_key(11, NULL, NULL, 0, 0, 0, 0);
	/* Two requests began and read their keys... */
	began = gw_now_mono_us();
	stale = rec_of(10);
	r2 = rec_of(11);
	/* ... then key 10 was blocked and noted ... */
	set_key(10, NULL, NULL, 1, 0, 0, 0);
	snprintf(p, sizeof(p), "key:%s", table[10].token);
	gw_revoke_note(p);
	assert_int_equal(gw_revoke_recheck(db_handle()), GW_OK);
	assert_int_equal(execs(), 0);
	/* ... and only then did their streams register: key 10 is re-read. */
	gw_revoke_add(&late, stale, began);
	gw_revoke_add(&calm, r2, began); /* no change concerns key 11 */
	assert_int_equal(gw_revoke_recheck(db_handle()), GW_OK);
	assert_int_equal(execs(), 1);
	assert_int_equal(
	    gw_revoke_check(&late, gw_now_real_us()), GW_REVOKE_BLOCKED);
	assert_int_equal(
	    gw_revoke_check(&calm, gw_now_real_us()), GW_REVOKE_NONE);
	/* A request that began after the change read it: nothing to re-read. */
	set_key(10, NULL, NULL, 0, 0, 0, 0);
	fresh = rec_of(10);
	gw_revoke_add(&after, fresh, gw_now_mono_us());
	assert_int_equal(gw_revoke_recheck(db_handle()), GW_OK);
	assert_int_equal(execs(), 1);
	assert_int_equal(
	    gw_revoke_check(&after, gw_now_real_us()), GW_REVOKE_NONE);
	gw_revoke_remove(&late);
	gw_revoke_remove(&calm);
	gw_revoke_remove(&after);
	gw_keyrec_unref(stale);
	gw_keyrec_unref(r2);
	gw_keyrec_unref(fresh);
}

static void
test_failed_read_keeps_streaming(void **state)
{
	struct gw_revoke e = {0};
	struct gw_keyrec *r;

	(void)state;
	set_key(12, NULL, NULL, 0, 0, 0, 0);
	r = rec_of(12);
	gw_revoke_add(&e, r, gw_now_mono_us());
	set_key(12, NULL, NULL, 1, 0, 0, 0);
	gw_revoke_note("*");
	fake.down = 1;
	assert_int_equal(gw_revoke_recheck(db_handle()), GW_E_DB);
	assert_int_equal(gw_revoke_check(&e, gw_now_real_us()), GW_REVOKE_NONE);
	/* Back: the listener notes everything again, and it is read. */
	fake.down = 0;
	gw_revoke_note("*");
	assert_int_equal(gw_revoke_recheck(db_handle()), GW_OK);
	assert_int_equal(
	    gw_revoke_check(&e, gw_now_real_us()), GW_REVOKE_BLOCKED);
	gw_revoke_remove(&e);
	gw_keyrec_unref(r);
}

/* More suspect keys than one round takes: every one is read, once. */
static void
test_many_keys_in_rounds(void **state)
{
	struct gw_revoke e[2 * 40];
	struct gw_keyrec *r[40];
	int i;

	(void)state;
	memset(e, 0, sizeof(e));
	for (i = 0; i < 40; i++) {
		set_key(20 + i, "big", NULL, 0, 0, 0, 0);
		r[i] = rec_of(20 + i);
		gw_revoke_add(&e[2 * i], r[i], gw_now_mono_us());
		gw_revoke_add(&e[2 * i + 1], r[i], gw_now_mono_us());
		set_key(20 + i, "big", NULL, 0, 1, 0, 0);
	}
	gw_revoke_note("team:big");
	assert_int_equal(gw_revoke_recheck(db_handle()), GW_OK);
	assert_int_equal(execs(), 40);
	for (i = 0; i < 80; i++) {
		assert_int_equal(gw_revoke_check(&e[i], gw_now_real_us()),
		    GW_REVOKE_TEAM_BLOCKED);
		gw_revoke_remove(&e[i]);
	}
	for (i = 0; i < 40; i++)
		gw_keyrec_unref(r[i]);
}

static void
test_verdict_and_words(void **state)
{
	struct gw_revoke e = {0};
	struct gw_keyrec *r;
	char msg[160];

	(void)state;
	assert_int_equal(gw_revoke_verdict(NULL, 0), GW_REVOKE_DELETED);
	set_key(13, NULL, NULL, 0, 0, 0, 0);
	r = rec_of(13);
	assert_int_equal(
	    gw_revoke_verdict(r, gw_now_real_us()), GW_REVOKE_NONE);
	assert_string_equal(
	    gw_revoke_describe(&e, GW_REVOKE_BLOCKED, msg, sizeof(msg)),
	    "auth_error");
	assert_string_equal(msg, "Authentication Error, Key is blocked. Update "
	                         "via /key/unblock if you're admin.");
	gw_revoke_describe(&e, GW_REVOKE_TEAM_BLOCKED, msg, sizeof(msg));
	assert_string_equal(msg, "Authentication Error, Team is blocked. "
	                         "Update via /team/unblock if you're admin.");
	assert_string_equal(
	    gw_revoke_describe(&e, GW_REVOKE_DELETED, msg, sizeof(msg)),
	    "auth_error");
	assert_string_equal(msg, "Authentication Error, the key was deleted or "
	                         "regenerated.");
	gw_keyrec_unref(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_register_and_leave, setup),
	    cmocka_unit_test_setup(test_block_flags_only_that_key, setup),
	    cmocka_unit_test_setup(test_deleted_and_team_and_user, setup),
	    cmocka_unit_test_setup(test_expiry_by_clock_and_by_update, setup),
	    cmocka_unit_test_setup(
	        test_registered_after_the_change_is_reread, setup),
	    cmocka_unit_test_setup(test_failed_read_keeps_streaming, setup),
	    cmocka_unit_test_setup(test_many_keys_in_rounds, setup),
	    cmocka_unit_test_setup(test_verdict_and_words, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
