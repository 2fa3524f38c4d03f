/* Unit tests for lib/price.c: cost from the [prices] table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "price.h"

/* cmocka 1.1 has no floating-point assertion. */
#define assert_near(a, b, eps) assert_true(fabs((a) - (b)) <= (eps))

static struct gw_cfg *
load(void)
{
	struct gw_cfg *cfg = NULL;
	char err[512];

	if (gw_cfg_load("data/price/prices.conf", &cfg, err, sizeof(err)) !=
	    GW_OK)
		fail_msg("%s", err);
	return cfg;
}

static void
test_listed(void **state)
{
	struct gw_cfg *cfg = load();

	(void)state;
	/* 3 prompt and 5 completion tokens at 1.5 and 2.5 USD per 1M. */
	assert_near(gw_price_cost(cfg, "qwen3-30b-a3b", 3, 5),
	    (3 * 1.5 + 5 * 2.5) / 1e6, 1e-18);
	assert_near(
	    gw_price_cost(cfg, "qwen3-30b-a3b", 1000000, 0), 1.5, 1e-12);
	assert_near(
	    gw_price_cost(cfg, "qwen3-30b-a3b", 0, 1000000), 2.5, 1e-12);
	assert_near(gw_price_cost(cfg, "input-only", 2000000, 7), 6.0, 1e-12);
	assert_true(gw_price_cost(cfg, "free-model", 123, 456) == 0);
	assert_true(gw_price_cost(cfg, "qwen3-30b-a3b", 0, 0) == 0);
	/* Large counts stay exact enough (no integer overflow). */
	assert_near(
	    gw_price_cost(cfg, "qwen3-30b-a3b", INT64_C(4000000000000), 0),
	    6000000.0, 1e-3);
	gw_cfg_unref(cfg);
}

/* A price per request (rerank's per query) comes on top of the tokens. */
static void
test_per_request(void **state)
{
	struct gw_cfg *cfg = load();

	(void)state;
	assert_near(gw_price_cost(cfg, "rerank-model", 10, 0),
	    10 * 1.0 / 1e6 + 0.002, 1e-15);
	assert_near(gw_price_cost(cfg, "rerank-model", 0, 0), 0.002, 1e-15);
	assert_near(gw_price_cost(cfg, "per-request", 99, 99), 0.5, 1e-15);
	gw_cfg_unref(cfg);
}

static void
test_unlisted(void **state)
{
	struct gw_cfg *cfg = load();

	(void)state;
	assert_true(gw_price_cost(cfg, "other", 1000, 1000) == 0);
	/* The actual model, not a prefix or a case variant. */
	assert_true(gw_price_cost(cfg, "qwen3", 1000, 1000) == 0);
	assert_true(gw_price_cost(cfg, "QWEN3-30B-A3B", 1000, 1000) == 0);
	/* No upstream reached: no actual model, no cost. */
	assert_true(gw_price_cost(cfg, NULL, 1000, 1000) == 0);
	gw_cfg_unref(cfg);
}

/* The units of audio calls: per second, per character, per request. */
static void
test_units(void **state)
{
	struct gw_cfg *cfg = load();

	(void)state;
	/* 12.5 s of audio at 0.0001 USD a second. */
	assert_near(
	    gw_price_cost_units(cfg, "whisper-large", GW_PRICE_SECONDS, 12.5),
	    0.00125, 1e-15);
	/* Duration unknown: its per-request price. */
	assert_near(
	    gw_price_cost_units(cfg, "whisper-large", GW_PRICE_SECONDS, -1),
	    0.002, 1e-15);
	/* No per-character price there: per request too. */
	assert_near(
	    gw_price_cost_units(cfg, "whisper-large", GW_PRICE_CHARACTERS, 100),
	    0.002, 1e-15);
	assert_near(
	    gw_price_cost_units(cfg, "tts-kokoro", GW_PRICE_CHARACTERS, 1000),
	    0.015, 1e-15);
	/* No unit price, no request price: 0. */
	assert_true(
	    gw_price_cost_units(cfg, "tts-kokoro", GW_PRICE_SECONDS, 10) == 0);
	assert_near(
	    gw_price_cost_units(cfg, "per-request-only", GW_PRICE_SECONDS, 10),
	    0.01, 1e-15);
	/*
	 * Token prices stay as they were, the per-request price added;
	 * unlisted models cost nothing.
	 */
	assert_near(
	    gw_price_cost(cfg, "whisper-large", 1000, 1000), 0.002, 1e-15);
	assert_true(gw_price_cost_units(
	                cfg, "qwen3-30b-a3b", GW_PRICE_SECONDS, 10) == 0);
	assert_true(
	    gw_price_cost_units(cfg, "other", GW_PRICE_SECONDS, 10) == 0);
	assert_true(
	    gw_price_cost_units(cfg, NULL, GW_PRICE_CHARACTERS, 10) == 0);
	gw_cfg_unref(cfg);
}

/* An unknown unit, a unit set twice, a negative price: refused. */
static void
test_bad_units(void **state)
{
	static const char *const files[] = {"data/price/bad-unit.conf",
	    "data/price/twice-unit.conf", "data/price/neg-unit.conf"};
	struct gw_cfg *cfg = NULL;
	char err[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		assert_int_equal(gw_cfg_load(files[i], &cfg, err, sizeof(err)),
		    GW_E_INVALID);
		assert_null(cfg);
		assert_non_null(strstr(err, "[prices] m"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_listed),
	    cmocka_unit_test(test_per_request),
	    cmocka_unit_test(test_unlisted),
	    cmocka_unit_test(test_units),
	    cmocka_unit_test(test_bad_units),
	};

	gw_log_init("unit", GW_LOG_ERR, NULL);
	return cmocka_run_group_tests_name("price", tests, NULL, NULL);
}
