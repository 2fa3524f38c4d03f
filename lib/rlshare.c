/* rlshare.c: shared limits' round trips to PostgreSQL (rlshare.h). */
#include "rlshare.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/*
 * After a failure every thread of the process fails open for a second,
 * doubled at each failure in a row up to 8 s: an unreachable server (no
 * refusal, a connect timeout) delays one request per process that often.
 */
#define DOWN_US (1000 * 1000)
#define DOWN_MAX_US (8 * DOWN_US)
/* Entities one heartbeat reports at most (the rest wait for the next). */
#define BEAT_MAX 4096

static _Atomic int64_t down_until_us;
static _Atomic int down_logged;
static _Atomic int64_t down_us = DOWN_US;

const struct gw_rl_share *
gw_rlshare_get(struct gw_rl_share *sh, struct gw_rlshare_arg *arg,
    const struct gw_cfg *cfg, struct gw_db *db)
{
	if (!cfg->rl_shared || db == NULL)
		return NULL;
	arg->db = db;
	arg->cfg = cfg;
	sh->sync = gw_rlshare_sync;
	sh->arg = arg;
	sh->slice_max = cfg->rl_shared_slice_max;
	sh->div = 2 * (int64_t)cfg->rl_shared_hosts;
	sh->sync_ns = (int64_t)cfg->rl_shared_sync_ms * 1000000;
	sh->deny_ns = 200 * INT64_C(1000000);
	return sh;
}

/* PostgreSQL failed (err says why): fail open for DOWN_US. */
static void
went_down(const char *err)
{
	int64_t d = atomic_load(&down_us);

	atomic_store(&down_until_us, gw_now_mono_us() + d);
	atomic_store(&down_us, d * 2 > DOWN_MAX_US ? DOWN_MAX_US : d * 2);
	if (atomic_exchange(&down_logged, 1) == 0)
		gw_log_warn(NULL, "rlshare",
		    "shared limits unavailable, each host limits alone: %s",
		    err);
}

static void
came_back(void)
{
	atomic_store(&down_us, DOWN_US);
	if (atomic_load(&down_logged) && atomic_exchange(&down_logged, 0))
		gw_log_info(NULL, "rlshare", "shared limits available again");
}

static void
fmt_i64(char *buf, size_t n, int64_t v)
{
	snprintf(buf, n, "%lld", (long long)v);
}

int
gw_rlshare_sync(void *arg, struct gw_rl_sync *s)
{
	static const char sql[] =
	    "SELECT t.got, t.tokens, CASE WHEN $8::int > 0 THEN "
	    "llmgw_rl_par_take($1, $2, $9, $10::int, $8::int, $11::int, "
	    "$6::int, $12::int) ELSE 0 END "
	    "FROM llmgw_rl_take($1, $2, $3, $4, $5, $6, $7) t";
	struct gw_rlshare_arg *a = arg;
	struct gw_db_rows *rows = NULL;
	char v[12][24], host[17], err[256];
	const char *p[12];
	const char *g;
	int i, rc = -1;

	if (gw_now_mono_us() < atomic_load(&down_until_us))
		return -1;
	snprintf(err, sizeof(err), "no row");
	gw_rl_host_id(host);
	fmt_i64(v[0], sizeof(v[0]), (int64_t)s->h1);
	fmt_i64(v[1], sizeof(v[1]), (int64_t)s->h2);
	fmt_i64(v[2], sizeof(v[2]), s->win);
	fmt_i64(v[3], sizeof(v[3]), s->rpm);
	fmt_i64(v[4], sizeof(v[4]), s->slice);
	fmt_i64(v[5], sizeof(v[5]), 2 * (int64_t)a->cfg->rl_shared_hosts);
	fmt_i64(v[6], sizeof(v[6]), s->tokens);
	fmt_i64(v[7], sizeof(v[7]), s->need);
	snprintf(v[8], sizeof(v[8]), "%s", host);
	fmt_i64(v[9], sizeof(v[9]), s->keep);
	fmt_i64(v[10], sizeof(v[10]),
	    s->parallel < 0           ? 0
	    : s->parallel > INT32_MAX ? INT32_MAX
	                              : s->parallel);
	fmt_i64(v[11], sizeof(v[11]), a->cfg->rl_shared_lease_ttl_s);
	for (i = 0; i < 12; i++)
		p[i] = v[i];
	/*
	 * Tried again on a fresh connection (after a PostgreSQL restart each
	 * thread's is broken): should the first have run after all, the
	 * slice is granted twice (fewer admitted) and the tokens counted
	 * twice (refused sooner), both on the safe side.
	 */
	if (gw_db_exec(a->db, sql, 12, p, 1, &rows, err, sizeof(err)) !=
	        GW_OK ||
	    gw_db_rows_count(rows) != 1) {
		went_down(err);
		goto out;
	}
	s->got = (g = gw_db_rows_get(rows, 0, 0)) != NULL ? atoll(g) : 0;
	s->win_tokens = (g = gw_db_rows_get(rows, 0, 1)) != NULL ? atoll(g) : 0;
	s->held = (g = gw_db_rows_get(rows, 0, 2)) != NULL ? atoll(g) : 0;
	came_back();
	rc = 0;
out:
	gw_db_rows_free(rows);
	return rc;
}

/* Append "v," to an array literal being built in b. */
static void
arr_add(struct gw_buf *b, int64_t v)
{
	char n[24];

	fmt_i64(n, sizeof(n), v);
	gw_buf_append(b, n, strlen(n));
	gw_buf_append(b, ",", 1);
}

/* Close an array literal: "{1,2,3}". */
static const char *
arr_end(struct gw_buf *b)
{
	if (b->len > 1 && b->p[b->len - 1] == ',')
		b->len--;
	gw_buf_append(b, "}", 1);
	return b->p;
}

void
gw_rlshare_beat(struct gw_db **db, const struct gw_cfg *cfg)
{
	static struct gw_rl_beat *b;
	static int idle = 1; /* nothing said yet: no connection made */
	struct gw_buf arr[8];
	const char *p[10];
	char host[17], ttl[24], win[24], err[256];
	int64_t now = gw_now_real_us() * 1000;
	int n, i, j;

	if (!cfg->rl_shared || !gw_rl_beat_due(now, INT64_C(900000000)))
		return;
	if (gw_now_mono_us() < atomic_load(&down_until_us))
		return;
	if (b == NULL)
		b = gw_xcalloc(BEAT_MAX, sizeof(*b));
	if ((n = gw_rl_beat_collect(now, b, BEAT_MAX)) == 0 && idle)
		return;
	idle = n == 0;
	if (*db == NULL)
		*db = gw_db_new(cfg->db_conninfo, cfg->db_connect_timeout_s,
		    cfg->db_statement_timeout_ms);
	for (j = 0; j < 8; j++) {
		memset(&arr[j], 0, sizeof(arr[j]));
		gw_buf_append(&arr[j], "{", 1);
	}
	for (i = 0; i < n; i++) {
		arr_add(&arr[0], (int64_t)b[i].h1);
		arr_add(&arr[1], (int64_t)b[i].h2);
		arr_add(&arr[2], b[i].held);
		if (b[i].tokens > 0) {
			arr_add(&arr[3], (int64_t)b[i].h1);
			arr_add(&arr[4], (int64_t)b[i].h2);
			arr_add(&arr[5], b[i].win);
			arr_add(&arr[6], b[i].tokens);
		}
	}
	gw_rl_host_id(host);
	fmt_i64(ttl, sizeof(ttl), cfg->rl_shared_lease_ttl_s);
	fmt_i64(win, sizeof(win), now / INT64_C(60000000000));
	p[0] = host;
	p[1] = arr_end(&arr[0]);
	p[2] = arr_end(&arr[1]);
	p[3] = arr_end(&arr[2]);
	p[4] = ttl;
	p[5] = arr_end(&arr[3]);
	p[6] = arr_end(&arr[4]);
	p[7] = arr_end(&arr[5]);
	p[8] = arr_end(&arr[6]);
	p[9] = win;
	if (gw_db_exec(*db,
	        "SELECT llmgw_rl_beat($1, $2::bigint[], $3::bigint[], "
	        "$4::int[], $5::int, $6::bigint[], $7::bigint[], "
	        "$8::bigint[], $9::bigint[], $10::bigint)",
	        10, p, 1, NULL, err, sizeof(err)) != GW_OK) {
		gw_rl_beat_unsent(b, n);
		went_down(err);
		idle = 0;
	} else {
		came_back();
	}
	for (j = 0; j < 8; j++)
		gw_buf_fini(&arr[j]);
}
