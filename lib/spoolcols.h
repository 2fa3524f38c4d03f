/*
 * spoolcols.h: spooled spend lines as PostgreSQL binary arrays, one per
 * spend_logs column (and the Langfuse payload's), for the shipper's
 * unnest() statement: the server then takes fixed-width values instead of
 * parsing JSON text, which was half of its CPU per shipped row.
 *
 * Only lines shaped as spend.c writes them are taken: one object, known
 * keys (each once), no whitespace, each value of its column's JSON type
 * (times as gw_time_rfc3339 writes them, integers within int4, strings
 * with simple escapes). Anything else makes gw_spoolcols_build refuse the
 * batch, and the shipper sends it as JSON for PostgreSQL to read (and
 * refuse, when it must) as before: a value is never read differently.
 */
#ifndef GW_SPOOLCOLS_H
#define GW_SPOOLCOLS_H

#include <stddef.h>

#include "err.h"
#include "util.h"

#define GW_SPOOLCOLS_N 29

/*
 * The statement's row source, in the columns' order: unnest() of the
 * arrays gw_spoolcols_build makes, as parameters $1..$29.
 */
#define GW_SPOOLCOLS_SQL                                                       \
	"unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "  \
	"$6::text[], $7::text[], $8::text[], $9::int4[], $10::int4[], "        \
	"$11::int4[], $12::float8[], $13::bool[], $14::timestamptz[], "        \
	"$15::timestamptz[], $16::timestamptz[], $17::float8[], $18::int4[], " \
	"$19::text[], $20::bool[], $21::bool[], $22::jsonb[], $23::text[], "   \
	"$24::jsonb[], $25::text[], $26::jsonb[], $27::jsonb[], $28::text[], " \
	"$29::jsonb[]) AS r(request_id, api_key, key_alias, user_id, "         \
	"team_id, model, actual_model, call_type, prompt_tokens, "             \
	"completion_tokens, total_tokens, spend, usage_estimated, "            \
	"start_time, end_time, completion_start_time, ttft_ms, status, "       \
	"error_type, stream, client_disconnected, metadata, response_id, "     \
	"request_tags, session_id, lf_input, lf_output, lf_mode, lf_trace)"

/* A batch's columns: params for PQexecParams in binary format. */
struct gw_spoolcols {
	struct gw_buf col[GW_SPOOLCOLS_N];
	const char *values[GW_SPOOLCOLS_N];
	int lengths[GW_SPOOLCOLS_N];
	int formats[GW_SPOOLCOLS_N];
	int rows;
};

/*
 * Build c from len bytes of spooled lines ("\n"-separated; empty lines
 * skipped). GW_E_INVALID when a line is not of the shape above (c is then
 * of no use). Either way, gw_spoolcols_fini(c) after.
 */
enum gw_status gw_spoolcols_build(
    struct gw_spoolcols *c, const char *lines, size_t len) GW_NONNULL(1, 2);
/* Free what gw_spoolcols_build allocated (c may be all zeroes). */
void gw_spoolcols_fini(struct gw_spoolcols *c) GW_NONNULL(1);

#endif /* GW_SPOOLCOLS_H */
