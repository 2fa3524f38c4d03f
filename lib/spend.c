/*
 * spend.c: what a request amounted to, as one spooled spend_logs row and
 * a budget charge (prices: price.c, the spool: spool.c, shipping it:
 * shipper.c, budgets: budget.c).
 */
#include "spend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "budget.h"
#include "json_util.h"
#include "keystore.h"
#include "log.h"
#include "shipper.h"
#include "spool.h"
#include "util.h"

static void
jw_time(struct gw_buf *b, const char *key, int64_t us)
{
	char ts[32];

	if (us == 0) {
		gw_jw_null(b, key);
		return;
	}
	gw_time_rfc3339(us, ts);
	gw_jw_str(b, key, ts);
}

/*
 * The spend_logs row for r, as one JSON line, written directly (this runs
 * for every request). Caller frees.
 */
static char *
row_line(const struct gw_spend_rec *r)
{
	const struct gw_keyrec *k = r->who->rec;
	struct gw_buf b = {0};

	/* A chat's row is ~700 bytes: one allocation, not three. */
	gw_buf_reserve(&b, 1024);
	gw_jw_begin(&b);
	gw_jw_str(&b, "request_id", r->request_id);
	gw_jw_str(&b, "api_key",
	    r->who->role == GW_ROLE_KEY && k != NULL ? k->token : "");
	gw_jw_str(&b, "key_alias", k ? k->key_alias : NULL);
	gw_jw_str(&b, "user_id", k ? k->user_id : NULL);
	gw_jw_str(&b, "team_id", k ? k->team_id : NULL);
	gw_jw_str(&b, "model", r->model ? r->model : "");
	gw_jw_str(&b, "actual_model", r->actual_model);
	gw_jw_str(&b, "call_type", r->call_type);
	gw_jw_int(&b, "prompt_tokens", r->prompt_tokens);
	gw_jw_int(&b, "completion_tokens", r->completion_tokens);
	gw_jw_int(&b, "total_tokens", r->total_tokens);
	gw_jw_num(&b, "spend", r->cost);
	gw_jw_bool(&b, "usage_estimated", r->usage_estimated);
	jw_time(&b, "start_time", r->start_us);
	jw_time(&b, "end_time", r->end_us);
	jw_time(&b, "completion_start_time", r->first_token_us);
	if (r->first_token_us)
		gw_jw_num(&b, "ttft_ms",
		    (double)(r->first_token_us - r->start_us) / 1000.0);
	else
		gw_jw_null(&b, "ttft_ms");
	gw_jw_int(&b, "status", r->status);
	gw_jw_str(&b, "error_type", r->error_type);
	gw_jw_bool(&b, "stream", r->stream);
	gw_jw_bool(&b, "client_disconnected", r->client_disconnected);
	gw_jw_raw(&b, "metadata",
	    r->metadata ? gw_json_str(r->metadata, NULL) : "{}");
	gw_jw_str(&b, "response_id", r->response_id);
	gw_jw_raw(&b, "request_tags", r->request_tags ? r->request_tags : "[]");
	if (r->session_id != NULL)
		gw_jw_str(&b, "session_id", r->session_id);
	if (r->lf_mode != NULL) {
		gw_jw_str(&b, "lf_mode", r->lf_mode);
		gw_jw_raw(&b, "lf_input",
		    r->lf_input ? gw_json_str(r->lf_input, NULL) : "null");
		gw_jw_raw(&b, "lf_output",
		    r->lf_output ? gw_json_str(r->lf_output, NULL) : "null");
		gw_jw_raw(&b, "lf_trace",
		    r->lf_trace ? gw_json_str(r->lf_trace, NULL) : "{}");
	}
	gw_jw_end(&b);
	gw_buf_append(&b, "\n", 1);
	return b.p;
}

enum gw_status
gw_spend_record(const struct gw_cfg *cfg, const struct gw_spend_rec *r)
{
	struct gw_budget_charge *c;
	char *line = row_line(r);
	enum gw_status st;

	gw_shipper_start(cfg);
	/* The cost goes with the row: the spool hands it back once shipped. */
	c = gw_budget_charge_new(r->who, r->cost);
	st = gw_spool_append(line, strlen(line), c);
	if (st != GW_OK) {
		gw_log_errno(NULL, "spend", "cannot spool request %s in %s",
		    r->request_id, gw_spool_dir());
		gw_budget_charge_done(c, 0);
	}
	free(line);
	return st;
}

void
gw_spend_process_init(const struct gw_cfg *cfg)
{
	gw_shipper_start(cfg);
}

void
gw_spend_process_fini(void)
{
	gw_shipper_drain(2000);
}
