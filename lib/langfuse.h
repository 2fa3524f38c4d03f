/*
 * langfuse.h: the export behind bin/llmgw-langfuse-export, run by cron.
 *
 * Reads requests not yet exported (request_payloads joined with their
 * spend_logs rows), sends them to Langfuse and marks them exported only
 * once Langfuse accepted them:
 *   - OpenTelemetry (default): OTLP/HTTP JSON to
 *     {host}/api/public/otel/v1/traces with x-langfuse-ingestion-version: 4,
 *     one trace with one generation span per request. OTLP's partial
 *     success does not say which spans were refused, so each request goes
 *     in its own call (on one kept-alive connection): every answer is
 *     unambiguous and nothing is sent twice.
 *   - Legacy batch ingestion: POST {host}/api/public/ingestion with a
 *     trace-create and a generation-create event per request, in batches
 *     below Langfuse's 3.5 MB limit; a 207 answer marks the accepted
 *     events, and only the refused ones are sent again.
 * Trace, span and event ids derive from the request id, so a resend updates
 * the same objects; a request naming its own trace_id / existing_trace_id /
 * generation_id (capture.h) gets those instead, so that several calls
 * share one trace. Names, user, session, tags, version, release,
 * environment and model parameters go in Langfuse's own attributes. 429, 5xx
 * and timeouts back off (three tries) and leave the rest for the next run. A
 * PostgreSQL advisory lock keeps two runs from overlapping. Exported rows are
 * pruned after [langfuse] retention_days.
 */
#ifndef GW_LANGFUSE_H
#define GW_LANGFUSE_H

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "err.h"

struct gw_db;
struct gw_upstream;

struct gw_lf_stats {
	int64_t sent;         /* requests Langfuse accepted this run */
	int64_t failed;       /* requests refused or not sent this run */
	int64_t pruned;       /* exported rows removed (retention) */
	double lag_s;         /* age of the oldest request still pending */
	int locked_out;       /* another run held the lock */
	int transport_failed; /* Langfuse unreachable, 429 or 5xx */
};

/*
 * One export run. GW_OK when it completed (failed may still be > 0);
 * GW_E_DB / GW_E_UPSTREAM when it could not. Progress lines go to log
 * (may be NULL).
 */
enum gw_status gw_lf_export(const struct gw_cfg *cfg, struct gw_db *db,
    struct gw_upstream *up, FILE *log, struct gw_lf_stats *st)
    GW_NONNULL(1, 2, 3, 5);

/*
 * Seconds since the oldest request still waiting for export started (0
 * when none waits). GW_E_DB when the database cannot say.
 */
enum gw_status gw_lf_lag(struct gw_db *db, double *lag_s) GW_NONNULL(1, 2);

/*
 * The OTLP JSON (ExportTraceServiceRequest) for one exported row, as the
 * queue query returns it. Caller frees. (Exposed for the unit tests.)
 */
char *gw_lf_otlp_body(json_object *row) GW_NONNULL(1);
/*
 * The legacy ingestion events for a row, skipping kinds listed in its
 * "accepted_events": appended to events.
 */
void gw_lf_legacy_events(json_object *row, json_object *events)
    GW_NONNULL(1, 2);

#endif /* GW_LANGFUSE_H */
