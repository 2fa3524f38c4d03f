/*
 * Unit tests for lib/budget.c: budgets of keys, users and teams checked
 * against spend read from the database (fake_db.h) plus unshipped charges,
 * and the cache bounded: filled past GW_BUDGET_CACHE_MAX it keeps the most
 * recent entities, reads evicted ones again and still answers correctly,
 * and never drops an entity a charge holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "budget.h"
#include "config.h"
#include "fake_db.h"
#include "keystore.h"
#include "log.h"

static struct gw_cfg *cfg;
static struct gw_db *db;

/*
 * The database: key "key-N" has max_budget 5 and spends 10 when N is even
 * (over budget), 1 when odd; "key-free" has no budget; "key-charged" has 1
 * and spends charged_spend; "held" has 5 and spends 0; user "u-over" and
 * team "t-over" spend 3 of 2; user "u-ok" spends 0 of 2; anything else is
 * unknown (SQL NULL).
 */
static double charged_spend;

static char *
num(double v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.17g", v);
	return strdup(buf);
}

static int
answer(const char *sql, int nparams, const char *const *p, char **vals)
{
	int n;

	if (strstr(sql, "max_budget") == NULL || nparams != 3)
		return 0;
	if (p[0] != NULL && sscanf(p[0], "key-%d", &n) == 1) {
		vals[0] = num(n % 2 == 0 ? 10 : 1);
		vals[5] = num(5);
	} else if (p[0] != NULL && strcmp(p[0], "key-free") == 0) {
		vals[0] = num(0);
	} else if (p[0] != NULL && strcmp(p[0], "key-charged") == 0) {
		vals[0] = num(charged_spend);
		vals[5] = num(1);
	} else if (p[0] != NULL && strcmp(p[0], "held") == 0) {
		vals[0] = num(0);
		vals[5] = num(5);
	}
	if (p[1] != NULL && strcmp(p[1], "u-over") == 0) {
		vals[1] = num(3);
		vals[2] = num(2);
	} else if (p[1] != NULL && strcmp(p[1], "u-ok") == 0) {
		vals[1] = num(0);
		vals[2] = num(2);
	}
	if (p[2] != NULL && strcmp(p[2], "t-over") == 0) {
		vals[3] = num(3);
		vals[4] = num(2);
	}
	return 6;
}

static int
setup(void **state)
{
	char err[512];

	(void)state;
	if (gw_cfg_load("data/price/prices.conf", &cfg, err, sizeof(err)) !=
	    GW_OK)
		return -1;
	fake.answer = answer;
	db = gw_db_new("", 0, 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	gw_db_free(db);
	gw_cfg_unref(cfg);
	return 0;
}

/* A virtual key's principal: budgets as its cached record says. */
struct who {
	struct gw_keyrec k;
	struct gw_principal p;
};

static void
key_who(struct who *w, const char *token, double max_budget)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->k.token, sizeof(w->k.token), "%s", token);
	w->k.max_budget = max_budget;
	w->k.user_max_budget = -1;
	w->k.team_max_budget = -1;
	w->p.role = GW_ROLE_KEY;
	w->p.rec = &w->k;
}

static enum gw_status
check(struct who *w, char *msg, size_t len)
{
	msg[0] = '\0';
	return gw_budget_check(db, cfg, &w->p, msg, len);
}

static void
test_key_budget(void **state)
{
	struct who w;
	char msg[256];

	(void)state;
	cfg->budget_refresh_ms = 0; /* read every time */
	key_who(&w, "key-1", 5);
	assert_int_equal(check(&w, msg, sizeof(msg)), GW_OK);
	key_who(&w, "key-2", 5);
	assert_int_equal(check(&w, msg, sizeof(msg)), GW_E_INVALID);
	assert_string_equal(
	    msg, "Budget has been exceeded! Current cost: 10, Max budget: 5");
	/* Read from the database, the spend is what the key shows. */
	assert_true(gw_budget_key_spend(&w.p) == 10);
	/* No budget anywhere: no lock, no read. */
	fake_db_reset();
	key_who(&w, "key-free", -1);
	assert_int_equal(check(&w, msg, sizeof(msg)), GW_OK);
	assert_int_equal(fake.execs, 0);
	/* An admin is never refused. */
	key_who(&w, "key-4", 5);
	w.p.admin = 1;
	assert_int_equal(check(&w, msg, sizeof(msg)), GW_OK);
}

static void
test_user_and_team(void **state)
{
	struct who w;
	char msg[256];

	(void)state;
	cfg->budget_refresh_ms = 0;
	/* A user's budget is read even when the record has none (JWTs). */
	key_who(&w, "key-free", -1);
	w.k.user_id = "u-over";
	assert_int_equal(check(&w, msg, sizeof(msg)), GW_E_INVALID);
	assert_string_equal(msg, "ExceededBudget: User=u-over over budget. "
	                         "Spend=3, Budget=2");
	w.k.user_id = "u-ok";
	w.k.team_id = "t-over";
	w.k.team_max_budget = 2;
	assert_int_equal(check(&w, msg, sizeof(msg)), GW_E_INVALID);
	assert_string_equal(msg, "Budget has been exceeded! Team=t-over "
	                         "Current cost: 3, Max budget: 2");
}

static void
test_charges(void **state)
{
	struct who w;
	struct gw_budget_charge *c, *c2;
	char msg[256];

	(void)state;
	cfg->budget_refresh_ms = 60000; /* read once, then cached */
	key_who(&w, "key-charged", 1);
	w.k.spend = 0.25; /* as the key's record was read */
	charged_spend = 0.5;
	assert_null(gw_budget_charge_new(&w.p, 0));
	/* Before any read, the record's spend plus what is unshipped. */
	c = gw_budget_charge_new(&w.p, 0.125);
	assert_non_null(c);
	assert_true(gw_budget_key_spend(&w.p) == 0.25 + 0.125);
	assert_int_equal(check(&w, msg, sizeof(msg)), GW_OK); /* 0.5 + 0.125 */
	assert_true(gw_budget_key_spend(&w.p) == 0.5 + 0.125);
	c2 = gw_budget_charge_new(&w.p, 0.5);
	assert_int_equal(check(&w, msg, sizeof(msg)), GW_E_INVALID);
	assert_string_equal(msg,
	    "Budget has been exceeded! Current cost: 1.125, Max budget: 1");
	/* Not spooled after all: dropped. */
	gw_budget_charge_done(c2, 0);
	assert_int_equal(check(&w, msg, sizeof(msg)), GW_OK);
	/* Shipped: counted as read spend until the next read. */
	gw_budget_charge_done(c, 1);
	assert_true(gw_budget_key_spend(&w.p) == 0.5 + 0.125);
	gw_budget_charge_done(NULL, 1);
}

static void
test_db_down_keeps_last_known(void **state)
{
	struct who w;
	char msg[256];

	(void)state;
	cfg->budget_refresh_ms = 0;
	key_who(&w, "key-6", 5);
	assert_int_equal(check(&w, msg, sizeof(msg)), GW_E_INVALID);
	fake.down = 1;
	assert_int_equal(check(&w, msg, sizeof(msg)), GW_E_INVALID);
	/* Never read: the record's own spend. */
	key_who(&w, "key-8", 5);
	w.k.spend = 4;
	assert_int_equal(check(&w, msg, sizeof(msg)), GW_OK);
	w.k.spend = 5;
	assert_int_equal(check(&w, msg, sizeof(msg)), GW_E_INVALID);
	fake.down = 0;
}

static void
test_bounded(void **state)
{
	const int n = 3 * GW_BUDGET_CACHE_MAX;
	struct who w;
	char msg[256], token[32];
	int i, execs;

	(void)state;
	cfg->budget_refresh_ms = 60000;
	for (i = 0; i < n; i++) {
		snprintf(token, sizeof(token), "key-%d", i);
		key_who(&w, token, 5);
		assert_int_equal(check(&w, msg, sizeof(msg)),
		    i % 2 == 0 ? GW_E_INVALID : GW_OK);
		assert_true(gw_budget_cached() <= GW_BUDGET_CACHE_MAX);
	}
	assert_int_equal(gw_budget_cached(), GW_BUDGET_CACHE_MAX);
	/* The most recent are cached: answered without a read. */
	execs = fake.execs;
	for (i = n - 10; i < n; i++) {
		snprintf(token, sizeof(token), "key-%d", i);
		key_who(&w, token, 5);
		assert_int_equal(check(&w, msg, sizeof(msg)),
		    i % 2 == 0 ? GW_E_INVALID : GW_OK);
	}
	assert_int_equal(fake.execs, execs);
	/* The first were evicted: read again, answered the same. */
	for (i = 0; i < 10; i++) {
		snprintf(token, sizeof(token), "key-%d", i);
		key_who(&w, token, 5);
		assert_int_equal(check(&w, msg, sizeof(msg)),
		    i % 2 == 0 ? GW_E_INVALID : GW_OK);
	}
	assert_int_equal(fake.execs, execs + 10);
	assert_int_equal(gw_budget_cached(), GW_BUDGET_CACHE_MAX);
}

static void
test_charged_entities_stay(void **state)
{
	const int n = GW_BUDGET_CACHE_MAX + 100;
	struct gw_budget_charge **c = calloc((size_t)n, sizeof(*c));
	struct who w, held;
	char msg[256], token[32];
	int i;

	(void)state;
	cfg->budget_refresh_ms = 60000;
	/* Unshipped spend on a key the database knows nothing about. */
	key_who(&held, "held", 5);
	c[0] = gw_budget_charge_new(&held.p, 7);
	assert_int_equal(check(&held, msg, sizeof(msg)), GW_E_INVALID);
	for (i = 0; i < 2 * GW_BUDGET_CACHE_MAX; i++) {
		snprintf(token, sizeof(token), "key-%d", i);
		key_who(&w, token, 5);
		check(&w, msg, sizeof(msg));
	}
	assert_true(gw_budget_cached() <= GW_BUDGET_CACHE_MAX);
	/* Still charged, still refused. */
	assert_int_equal(check(&held, msg, sizeof(msg)), GW_E_INVALID);
	assert_string_equal(
	    msg, "Budget has been exceeded! Current cost: 7, Max budget: 5");
	gw_budget_charge_done(c[0], 0);
	assert_int_equal(check(&held, msg, sizeof(msg)), GW_OK);

	/* More charged entities than the capacity: all kept, then let go. */
	for (i = 0; i < n; i++) {
		snprintf(token, sizeof(token), "charged-%d", i);
		key_who(&w, token, -1);
		c[i] = gw_budget_charge_new(&w.p, 1);
	}
	assert_int_equal(gw_budget_cached(), n);
	for (i = 0; i < n; i++) {
		snprintf(token, sizeof(token), "charged-%d", i);
		key_who(&w, token, -1);
		assert_true(gw_budget_key_spend(&w.p) == 1);
	}
	for (i = 0; i < n; i++)
		gw_budget_charge_done(c[i], 1);
	assert_int_equal(gw_budget_cached(), GW_BUDGET_CACHE_MAX);
	free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_budget),
	    cmocka_unit_test(test_user_and_team),
	    cmocka_unit_test(test_charges),
	    cmocka_unit_test(test_db_down_keeps_last_known),
	    cmocka_unit_test(test_bounded),
	    cmocka_unit_test(test_charged_entities_stay),
	};

	gw_log_init("unit", GW_LOG_ERR, NULL);
	return cmocka_run_group_tests_name("budget", tests, setup, teardown);
}
