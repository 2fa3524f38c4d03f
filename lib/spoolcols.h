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
 * A metadata of {} and request_tags of [] (what spend_logs stores for
 * none) go as NULL, which the statement's coalesce turns back into them:
 * PostgreSQL then parses no JSON for a row that has neither.
 */
#ifndef GW_SPOOLCOLS_H
#define GW_SPOOLCOLS_H

#include <stddef.h>

#include "err.h"
#include "util.h"

#define GW_SPOOLCOLS_N 29

/*
 * The statement's row source, in the columns' order: unnest() of the
 * arrays gw_spoolcols_build makes, as parameters $1..$29. In the select
 * list, so that PostgreSQL takes one element of each per row as it goes
 * (as FROM unnest(...), it would first copy every array into a
 * tuplestore). The arrays are of one length: no NULL padding.
 */
#define GW_SPOOLCOLS_SQL                                                       \
	"(SELECT unnest($1::text[]) AS request_id, unnest($2::text[]) AS "     \
	"api_key, unnest($3::text[]) AS key_alias, unnest($4::text[]) AS "     \
	"user_id, unnest($5::text[]) AS team_id, unnest($6::text[]) AS "       \
	"model, unnest($7::text[]) AS actual_model, unnest($8::text[]) AS "    \
	"call_type, unnest($9::int4[]) AS prompt_tokens, unnest($10::int4[]) " \
	"AS completion_tokens, unnest($11::int4[]) AS total_tokens, "          \
	"unnest($12::float8[]) AS spend, unnest($13::bool[]) AS "              \
	"usage_estimated, unnest($14::timestamptz[]) AS start_time, "          \
	"unnest($15::timestamptz[]) AS end_time, unnest($16::timestamptz[]) "  \
	"AS completion_start_time, unnest($17::float8[]) AS ttft_ms, "         \
	"unnest($18::int4[]) AS status, unnest($19::text[]) AS error_type, "   \
	"unnest($20::bool[]) AS stream, unnest($21::bool[]) AS "               \
	"client_disconnected, unnest($22::jsonb[]) AS metadata, "              \
	"unnest($23::text[]) AS response_id, unnest($24::jsonb[]) AS "         \
	"request_tags, unnest($25::text[]) AS session_id, "                    \
	"unnest($26::jsonb[]) AS lf_input, unnest($27::jsonb[]) AS "           \
	"lf_output, unnest($28::text[]) AS lf_mode, unnest($29::jsonb[]) AS "  \
	"lf_trace) r"

/* A batch's columns: params for PQexecParams in binary format. */
struct gw_spoolcols {
	struct gw_buf col[GW_SPOOLCOLS_N];
	const char *values[GW_SPOOLCOLS_N];
	int lengths[GW_SPOOLCOLS_N];
	int formats[GW_SPOOLCOLS_N];
	int rows;
	int payloads; /* rows with a Langfuse payload (lf_mode not null) */
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

/*
 * A batch's roll-ups, summed by the writer when every row of the batch is
 * inserted (the statement then moves the totals and aggregates by these,
 * instead of grouping the rows it inserted), as binary arrays in this
 * order, $30..$60 after the columns:
 *   keys: token text[], spend float8[] (api_key not '')
 *   users: user_id, spend; teams: team_id, spend (not NULL)
 *   spend_daily: day date[], api_key, model, user_id, team_id, end_user
 *     (text[]: coalesce(x, '')), then the 7 sums below
 *   spend_daily_tags: day, tag, api_key, user_id, team_id, the 7 sums
 *   sums: prompt_tokens, completion_tokens, total_tokens int8[], spend
 *     float8[], api_requests, successful_requests, failed_requests int8[]
 * Each as the statement's SQL computes it: day of start_time in UTC,
 * end_user coalesce(metadata->>'end_user', ''), distinct tags of an
 * array request_tags, status 200-299 successful, spend summed in row
 * order (float8 addition as sum()).
 */
#define GW_SPOOLCOLS_ROLLUPS_N 31

struct gw_spoolcols_rollups {
	struct gw_buf col[GW_SPOOLCOLS_ROLLUPS_N];
	const char *values[GW_SPOOLCOLS_ROLLUPS_N];
	int lengths[GW_SPOOLCOLS_ROLLUPS_N];
	int formats[GW_SPOOLCOLS_ROLLUPS_N];
};

/*
 * Sum the roll-ups of c (built by gw_spoolcols_build) into a. GW_E_INVALID
 * when a value would need PostgreSQL's own reading to sum as it does (an
 * end_user that is not a string, a tag that is not one, an escape other
 * than put_string's, a NULL start_time or status): the statement's own
 * grouping is then the way. Either way, gw_spoolcols_rollups_fini(a).
 */
enum gw_status gw_spoolcols_rollups(struct gw_spoolcols_rollups *a,
    const struct gw_spoolcols *c) GW_NONNULL(1, 2);
/* Free what gw_spoolcols_rollups allocated (a may be all zeroes). */
void gw_spoolcols_rollups_fini(struct gw_spoolcols_rollups *a) GW_NONNULL(1);

#endif /* GW_SPOOLCOLS_H */
