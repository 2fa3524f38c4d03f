/* health.c: liveness, readiness, the /health report and /metrics. */
#include "health.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "db.h"
#include "http_upstream.h"
#include "langfuse.h"
#include "log.h"
#include "metrics.h"
#include "req.h"
#include "route.h"
#include "scheduler.h"
#include "util.h"

#include "migrations.h" /* generated: gw_migrations[] */

#ifndef GW_VERSION
#define GW_VERSION "dev"
#endif

const char *const *
gw_health_expected_migrations(size_t *n)
{
	*n = GW_ARRAY_LEN(gw_migrations);
	return gw_migrations;
}

/* Milliseconds since t0 as a JSON number with three decimals. */
static json_object *
ms_since(int64_t t0)
{
	char s[32];
	double ms = (double)(gw_now_mono_us() - t0) / 1000.0;

	snprintf(s, sizeof(s), "%.3f", ms);
	return json_object_new_double_s(ms, s);
}

/* {"status":"ok","latency_ms":..} or {"status":"error","error":..}. */
static json_object *
check_db(struct gw_req *req, int *ok, int details)
{
	json_object *o = json_object_new_object();
	char err[512] = "";
	int64_t t0 = gw_now_mono_us();

	*ok = gw_db_exec(req->ctx->db, "SELECT 1", 0, NULL, 1, NULL, err,
	          sizeof(err)) == GW_OK;
	json_object_object_add(
	    o, "status", json_object_new_string(*ok ? "ok" : "error"));
	if (!details)
		return o;
	json_object_object_add(o, "latency_ms", ms_since(t0));
	if (!*ok)
		json_object_object_add(o, "error", json_object_new_string(err));
	return o;
}

/* GET {base_url}{health_path}: llama-swap's /health, never a completion. */
static json_object *
check_upstream(struct gw_req *req, int *ok, int details)
{
	const struct gw_cfg *cfg = req->cfg;
	json_object *o = json_object_new_object();
	char url[2048], err[512] = "";
	size_t blen = strlen(cfg->upstream_url);
	int status = 0;
	int64_t t0 = gw_now_mono_us();
	enum gw_status st;

	while (blen > 0 && cfg->upstream_url[blen - 1] == '/')
		blen--;
	snprintf(url, sizeof(url), "%.*s%s", (int)blen, cfg->upstream_url,
	    cfg->upstream_health_path);
	st = gw_upstream_get(req->ctx->up, url,
	    cfg->upstream_connect_timeout_ms, cfg->upstream_health_timeout_ms,
	    &status, NULL, 0, err, sizeof(err));
	*ok = st == GW_OK && status >= 200 && status < 300;
	json_object_object_add(
	    o, "status", json_object_new_string(*ok ? "ok" : "error"));
	if (!details)
		return o;
	json_object_object_add(o, "url", json_object_new_string(url));
	json_object_object_add(o, "latency_ms", ms_since(t0));
	if (status != 0)
		json_object_object_add(
		    o, "http_status", json_object_new_int(status));
	if (st != GW_OK)
		json_object_object_add(o, "error", json_object_new_string(err));
	return o;
}

static void
add_common(json_object *o, const char *status)
{
	char ts[32];

	gw_time_rfc3339(gw_now_real_us(), ts);
	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(
	    o, "version", json_object_new_string(GW_VERSION));
	json_object_object_add(o, "timestamp", json_object_new_string(ts));
}

/*
 * Details (the upstream's URL, latencies, libpq's and libcurl's errors) go
 * to an admin only: the routes are public, and what an error says about
 * the network behind the gateway is not. A caller that sends no key, or a
 * key that is not an admin's, gets the statuses alone (never a 401).
 */
static int
caller_is_admin(struct gw_req *req)
{
	struct gw_principal who;
	char msg[256];
	int admin;

	if (gw_auth_bearer(req) == NULL ||
	    gw_auth_check(req, &who, msg, sizeof(msg)) != GW_OK)
		return 0;
	admin = who.admin;
	gw_auth_release(&who);
	return admin;
}

/*
 * /health: 200 "healthy" when the database and the upstream answer, 200
 * "degraded" when only the upstream is down (requests would fail but the
 * gateway runs), 503 "unhealthy" when the database is down.
 */
static enum gw_status
handle_health(struct gw_req *req, struct gw_route_call *c GW_UNUSED)
{
	json_object *o = json_object_new_object(), *checks;
	int db_ok, up_ok, details = caller_is_admin(req);
	const char *status;

	checks = json_object_new_object();
	json_object_object_add(
	    checks, "database", check_db(req, &db_ok, details));
	json_object_object_add(
	    checks, "upstream", check_upstream(req, &up_ok, details));
	status = !db_ok ? "unhealthy" : !up_ok ? "degraded" : "healthy";
	add_common(o, status);
	json_object_object_add(o, "checks", checks);
	gw_reply_json(req, db_ok ? 200 : 503, o);
	json_object_put(o);
	return GW_OK;
}

static enum gw_status
handle_liveliness(struct gw_req *req, struct gw_route_call *c GW_UNUSED)
{
	static const char body[] = "{\"status\":\"healthy\"}";

	gw_reply(req, 200, "application/json", body, sizeof(body) - 1);
	return GW_OK;
}

/* Build the array literal '{001_init,002_x}' from the expected names. */
static char *
migrations_literal(void)
{
	struct gw_buf b = {0};
	size_t i, n;
	const char *const *names = gw_health_expected_migrations(&n);

	gw_buf_puts(&b, "{");
	for (i = 0; i < n; i++) {
		if (i)
			gw_buf_puts(&b, ",");
		gw_buf_puts(&b, names[i]);
	}
	gw_buf_puts(&b, "}");
	return b.p;
}

/* 200 only when PostgreSQL answers and every migration is applied. */
static enum gw_status
handle_readiness(struct gw_req *req, struct gw_route_call *c GW_UNUSED)
{
	struct gw_db *db = req->ctx->db;
	struct gw_db_rows *rows = NULL;
	json_object *o = json_object_new_object();
	char err[512] = "", reason[700];
	char *lit = migrations_literal();
	const char *params[1] = {lit};
	size_t expected;
	long applied = 0;
	enum gw_status st;

	gw_health_expected_migrations(&expected);
	st = gw_db_exec(db,
	    "SELECT count(*) FROM schema_migrations WHERE name = "
	    "ANY($1::text[])",
	    1, params, 1, &rows, err, sizeof(err));
	if (st == GW_OK)
		applied = atol(gw_db_rows_get(rows, 0, 0));
	if (st != GW_OK && strcmp(gw_db_last_sqlstate(db), "42P01") == 0) {
		/* undefined_table: the server answers, no migration ran yet. */
		st = GW_OK;
		applied = 0;
	}
	if (st != GW_OK) {
		/* libpq's words are a detail: an admin's only. */
		int admin = caller_is_admin(req);

		snprintf(reason, sizeof(reason), "database unreachable%s%s",
		    admin ? ": " : "", admin ? err : "");
	} else if ((size_t)applied < expected) {
		snprintf(reason, sizeof(reason),
		    "migrations pending: %ld of %zu applied", applied,
		    expected);
	} else {
		reason[0] = '\0';
	}
	add_common(o, reason[0] ? "not_ready" : "ready");
	json_object_object_add(o, "database",
	    json_object_new_string(st == GW_OK ? "connected" : "unreachable"));
	if (st == GW_OK) {
		json_object *m = json_object_new_object();

		json_object_object_add(
		    m, "applied", json_object_new_int64(applied));
		json_object_object_add(
		    m, "expected", json_object_new_int64((int64_t)expected));
		json_object_object_add(o, "migrations", m);
	}
	if (reason[0])
		json_object_object_add(
		    o, "reason", json_object_new_string(reason));
	gw_reply_json(req, reason[0] ? 503 : 200, o);
	json_object_put(o);
	gw_db_rows_free(rows);
	free(lit);
	return GW_OK;
}

/*
 * /metrics, Prometheus text. Process facts, and the Langfuse export lag
 * read from PostgreSQL (the age of the oldest request not exported yet;
 * 0 when none waits or export is off).
 */
static enum gw_status
handle_metrics(struct gw_req *req, struct gw_route_call *c GW_UNUSED)
{
	struct gw_buf b = {0};
	double lag;

	gw_buf_printf(&b,
	    "# HELP llmgw_build_info Build information.\n"
	    "# TYPE llmgw_build_info gauge\n"
	    "llmgw_build_info{version=\"%s\"} 1\n",
	    GW_VERSION);
	if (gw_lf_lag(req->ctx->db, &lag) == GW_OK)
		gw_metrics_gauge_set(GW_METRIC_LANGFUSE_LAG, "", lag);
	/* Everything else lives in shared memory, summed over processes. */
	gw_metrics_render(&b);
	if (req->cfg->sched_enabled)
		gw_scheduler_render_metrics(&b);
	gw_reply(
	    req, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
	gw_buf_fini(&b);
	return GW_OK;
}

/* GET /scheduler/status (admin): swap groups, active models, queues. */
static enum gw_status
handle_scheduler_status(struct gw_req *req, struct gw_route_call *c GW_UNUSED)
{
	struct gw_buf b = {0};

	gw_scheduler_status(&b, req->cfg, gw_now_mono_us());
	gw_reply(req, 200, "application/json", b.p, b.len);
	gw_buf_fini(&b);
	return GW_OK;
}

static const struct gw_route routes[] = {
    {"GET", "/health", GW_ACCESS_PUBLIC, handle_health, "health", 0, 0},
    {"GET", "/health/liveliness", GW_ACCESS_PUBLIC, handle_liveliness,
        "liveliness", 0, 0},
    {"GET", "/health/liveness", GW_ACCESS_PUBLIC, handle_liveliness,
        "liveliness", 0, 0},
    {"GET", "/health/readiness", GW_ACCESS_PUBLIC, handle_readiness,
        "readiness", 0, 0},
    {"GET", "/metrics", GW_ACCESS_PUBLIC, handle_metrics, "metrics", 0, 0},
    {"GET", "/scheduler/status", GW_ACCESS_ADMIN_READ, handle_scheduler_status,
        "scheduler_status", 0, 0},
};

static const struct gw_router router = {NULL, routes, GW_ARRAY_LEN(routes), 0};

enum gw_status
gw_health_handle(struct gw_req *req)
{
	return gw_dispatch(req, &router);
}
