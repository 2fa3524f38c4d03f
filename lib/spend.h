/*
 * spend.h: every relayed request becomes one spend_logs row, without a
 * database round trip on the hot path and without losing a row.
 *
 * A finished request's row is appended to this worker process's spool
 * (spool.h) with one write(2), one JSON line, before its answer is
 * complete, so the row survives a kill -9 of the worker; the process's
 * writer thread (shipper.h) ships it to PostgreSQL. Until then its cost is
 * a charge on the key's, user's and team's budgets (budget.h).
 */
#ifndef GW_SPEND_H
#define GW_SPEND_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

struct gw_principal;
struct gw_db;

/* What one request amounted to. */
struct gw_spend_rec {
	const char *request_id;
	const struct gw_principal *who;
	const char *model;        /* as the client asked */
	const char *actual_model; /* served by the upstream; may be NULL */
	const char *call_type;    /* "chat", "completion", "embedding" */
	int64_t prompt_tokens;
	int64_t completion_tokens;
	int64_t total_tokens;
	int usage_estimated;
	double cost;      /* USD, from gw_price_cost */
	int64_t start_us; /* realtime microseconds */
	int64_t end_us;
	int64_t first_token_us; /* 0: none */
	int status;             /* HTTP status answered */
	const char *error_type; /* NULL on success */
	int stream;
	int client_disconnected;
	json_object *metadata;    /* the request's "metadata", may be NULL */
	const char *response_id;  /* the answer's "id"; may be NULL */
	const char *request_tags; /* a JSON array of strings; NULL: [] */
	const char *session_id;   /* metadata.session_id; may be NULL */
	/* For Langfuse export (lf_mode NULL: not recorded). */
	const char *lf_mode;    /* "full", "redacted" or "none" */
	json_object *lf_input;  /* may be NULL */
	json_object *lf_output; /* may be NULL */
	json_object *lf_trace;  /* gw_capture_trace; may be NULL */
};

/*
 * Append r to this process's spool: one write, no database. Starts the
 * writer (shipper.h) on first use. GW_E_INTERNAL when the spool cannot be
 * written (logged).
 */
enum gw_status gw_spend_record(
    const struct gw_cfg *cfg, const struct gw_spend_rec *r) GW_NONNULL(1, 2);

/* server.h process hooks: start the writer; drain it for 2 s at exit. */
void gw_spend_process_init(const struct gw_cfg *cfg) GW_NONNULL(1);
void gw_spend_process_fini(void);

#endif /* GW_SPEND_H */
