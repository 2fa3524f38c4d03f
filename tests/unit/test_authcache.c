/*
 * test_authcache.c: the key cache's bounds. The Makefile links this test
 * with -Wl,--wrap for the database calls authcache.c makes (AUTHCACHE_WRAP):
 * lookups answer from here, and the listener never connects (so records
 * are trusted for 1 s, as with a listener down).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "authcache.h"
#include "config.h"
#include "db.h"
#include "keystore.h"
#include "util.h"

static unsigned lookups; /* gw_keystore_lookup calls */
static const char *known = "known";

static char dummy_db; /* the listener's handle: never dereferenced */

struct gw_db *__wrap_gw_db_new(const char *conninfo, int timeout_s, int flags);
struct gw_db *
__wrap_gw_db_new(const char *conninfo, int timeout_s, int flags)
{
	(void)conninfo;
	(void)timeout_s;
	(void)flags;
	return (struct gw_db *)(void *)&dummy_db;
}

void __wrap_gw_db_free(struct gw_db *db);
void
__wrap_gw_db_free(struct gw_db *db)
{
	(void)db;
}

enum gw_status __wrap_gw_db_listen(
    struct gw_db *db, const char *channel, char *err, size_t errlen);
enum gw_status
__wrap_gw_db_listen(
    struct gw_db *db, const char *channel, char *err, size_t errlen)
{
	(void)db;
	(void)channel;
	(void)err;
	(void)errlen;
	return GW_E_DB;
}

/* Every token is unknown but "known". */
enum gw_status __wrap_gw_keystore_lookup(
    struct gw_db *db, const char *token, struct gw_keyrec **out);
enum gw_status
__wrap_gw_keystore_lookup(
    struct gw_db *db, const char *token, struct gw_keyrec **out)
{
	struct gw_keyrec *r = calloc(1, sizeof(*r));

	(void)db;
	lookups++;
	r->refs = 1;
	r->found = strcmp(token, known) == 0;
	snprintf(r->token, sizeof(r->token), "%s", token);
	r->fetched_us = gw_now_mono_us();
	*out = r;
	return GW_OK;
}

static struct gw_cfg cfg;
static struct gw_db *nodb = (struct gw_db *)&cfg; /* never dereferenced */

static void
ask(const char *token, int want_found)
{
	struct gw_keyrec *r = NULL;

	assert_int_equal(gw_authcache_get(nodb, &cfg, token, &r), GW_OK);
	assert_non_null(r);
	assert_int_equal(r->found, want_found);
	gw_keyrec_unref(r);
}

static void
ask_unknown(unsigned i)
{
	char tok[65];

	snprintf(tok, sizeof(tok), "unknown-%u", i);
	ask(tok, 0);
}

static int
setup(void **state)
{
	(void)state;
	cfg.gen = 1;
	cfg.key_cache_ttl_s = 1;
	cfg.db_conninfo = "dbname=none";
	gw_authcache_invalidate("*");
	return 0;
}

/* A flood of unknown tokens keeps at most 4,096 "no such key" records. */
static void
test_missing_capped(void **state)
{
	size_t entries, missing;
	unsigned i, before;

	(void)state;
	ask(known, 1);
	for (i = 0; i < 10000; i++)
		ask_unknown(i);
	gw_authcache_stats(&entries, &missing);
	assert_true(missing <= 4096);
	assert_true(missing > 0);
	/* The key itself stayed: asked again, no new lookup. */
	assert_int_equal(entries, missing + 1);
	before = lookups;
	ask(known, 1);
	assert_int_equal(lookups, before);
	/* A recent unknown token is still answered from the cache. */
	ask_unknown(9999);
	assert_int_equal(lookups, before);
}

/* "No such key" records older than the TTL are swept by later inserts. */
static void
test_missing_swept(void **state)
{
	struct timespec pause = {1, 100 * 1000 * 1000};
	size_t entries, missing;
	unsigned i;

	(void)state;
	for (i = 0; i < 1000; i++)
		ask_unknown(20000 + i);
	gw_authcache_stats(&entries, &missing);
	assert_int_equal(missing, 1000);
	nanosleep(&pause, NULL);
	/* 300 inserts sweep 300 * 16 buckets: the whole table once. */
	for (i = 0; i < 300; i++)
		ask_unknown(30000 + i);
	gw_authcache_stats(&entries, &missing);
	assert_int_equal(missing, 300);
	assert_int_equal(entries, 300);
}

/* An invalidation takes the token's record, found or not. */
static void
test_invalidate_counts(void **state)
{
	size_t entries, missing;

	(void)state;
	ask(known, 1);
	ask_unknown(1);
	gw_authcache_stats(&entries, &missing);
	assert_int_equal(entries, 2);
	assert_int_equal(missing, 1);
	gw_authcache_invalidate("key:unknown-1");
	gw_authcache_stats(&entries, &missing);
	assert_int_equal(entries, 1);
	assert_int_equal(missing, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_missing_capped, setup),
	    cmocka_unit_test_setup(test_missing_swept, setup),
	    cmocka_unit_test_setup(test_invalidate_counts, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
