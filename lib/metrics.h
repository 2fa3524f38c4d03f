/*
 * metrics.h: Prometheus metrics summed over every process and thread of a
 * host, kept in the shared memory area GW_SHM_AREA_METRICS (shm.h).
 * Updates are a label hash, a table probe and one or two atomic operations,
 * with no lock and no system call (only a series' first update takes a
 * lock, to write its key); gw_metrics_render writes the text exposition
 * format (version 0.0.4) for /metrics.
 *
 * A series is (metric, label string). Label strings are preformatted, e.g.
 * route="chat",model="gpt-4o",status="200" (names [a-zA-Z_][a-zA-Z0-9_]*,
 * values escaped with gw_metrics_label_escape or built with
 * gw_metrics_labels), "" for none, at most GW_METRICS_LABELS_MAX - 1 bytes.
 * Series are claimed on first use in fixed-size tables (4096 counter and
 * gauge series, 2048 histogram series); when a table is full, or a label
 * string is NULL, too long or malformed, the update goes to the metric's
 * "other" series (every label value "other") and
 * llmgw_metrics_series_overflow_total counts it, so totals stay exact.
 *
 * Without an attached region every update is a no-op.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdint.h>

#include "util.h"

#define GW_METRICS_LABELS_MAX 360

/* Counters and gauges; the suggested labels are what "other" uses. */
enum gw_metric {
	/* counter llmgw_requests_total{route,model,status} */
	GW_METRIC_REQUESTS = 0,
	/* counter llmgw_tokens_total{model,kind}; kind prompt|completion */
	GW_METRIC_TOKENS,
	/* counter (double) llmgw_spend_usd_total{model} */
	GW_METRIC_SPEND_USD,
	/* counter llmgw_ratelimited_requests_total{reason};
	 * reason global|rpm|tpm|parallel, counted by ratelimit.c */
	GW_METRIC_RATELIMITED,
	/* counter llmgw_ratelimit_fail_open_total{reason}, by ratelimit.c */
	GW_METRIC_RATELIMIT_FAILOPEN,
	/* counter llmgw_ratelimit_client_evictions_total: a client source's
	 * bucket taken over by another (the table is full), by ratelimit.c */
	GW_METRIC_RATELIMIT_CLIENT_EVICTIONS,
	/* counter llmgw_upstream_errors_total{kind}; kind connect|timeout|
	 * status_4xx|status_5xx|midstream|... */
	GW_METRIC_UPSTREAM_ERRORS,
	/* counter llmgw_metrics_series_overflow_total, by metrics.c */
	GW_METRIC_SERIES_OVERFLOW,
	/* counter llmgw_slow_client_pauses_total: a stream's upstream paused
	 * because its client fell behind */
	GW_METRIC_SLOW_CLIENT_PAUSES,
	/* per-process gauge llmgw_requests_in_flight{family} */
	GW_METRIC_IN_FLIGHT,
	/* per-process gauge llmgw_spend_backlog_rows{family}: spend rows
	 * spooled but not yet in PostgreSQL */
	GW_METRIC_SPEND_BACKLOG,
	/* gauge llmgw_langfuse_export_lag_seconds */
	GW_METRIC_LANGFUSE_LAG,
	/*
	 * LiteLLM's names and label names (litellm/integrations/
	 * prometheus.py), so its dashboards keep working. Labels with an
	 * empty value are left out (Prometheus reads them as absent); the
	 * key labels are hashed_api_key, api_key_alias, team, user. Each
	 * holds at most a few hundred series (see metrics.c), then "other".
	 */
	/* litellm_proxy_total_requests_metric_total{key labels,
	 * requested_model,status_code,route} */
	GW_METRIC_LL_REQUESTS,
	/* litellm_proxy_failed_requests_metric_total{key labels,
	 * requested_model,exception_status,exception_class,route} */
	GW_METRIC_LL_FAILED,
	/* (double) litellm_spend_metric_total{key labels,model} */
	GW_METRIC_LL_SPEND,
	/* litellm_{total,input,output}_tokens_total{key labels,model,
	 * requested_model} */
	GW_METRIC_LL_TOTAL_TOKENS,
	GW_METRIC_LL_INPUT_TOKENS,
	GW_METRIC_LL_OUTPUT_TOKENS,
	/* gauges litellm_remaining_api_key_budget_metric and
	 * litellm_api_key_max_budget_metric{hashed_api_key,api_key_alias} */
	GW_METRIC_LL_KEY_BUDGET_LEFT,
	GW_METRIC_LL_KEY_MAX_BUDGET,
	GW_METRIC_COUNT
};

/* Histograms in seconds, buckets 0.005 .. 600 and +Inf. */
enum gw_hist {
	/* llmgw_request_duration_seconds{route,model} */
	GW_HIST_REQUEST = 0,
	/* llmgw_upstream_duration_seconds{model} */
	GW_HIST_UPSTREAM,
	/* llmgw_time_to_first_token_seconds{model}, streams only */
	GW_HIST_TTFT,
	/* litellm_request_total_latency_metric{key labels,requested_model,
	 * model} */
	GW_HIST_LL_REQUEST,
	/* litellm_llm_api_latency_metric{key labels,requested_model,model} */
	GW_HIST_LL_API,
	GW_HIST_COUNT
};

/* Add n to a counter (not GW_METRIC_SPEND_USD: see add_double). */
void gw_metrics_inc(enum gw_metric m, const char *labels, uint64_t n);
/*
 * Add v to a double counter (GW_METRIC_SPEND_USD, GW_METRIC_LL_SPEND;
 * v >= 0) or to a shared gauge (GW_METRIC_LANGFUSE_LAG). A CAS loop on
 * the value's bits.
 */
void gw_metrics_add_double(enum gw_metric m, const char *labels, double v);
/* Set a shared gauge (GW_METRIC_LANGFUSE_LAG, GW_METRIC_LL_KEY_*); it
 * outlives the process. */
void gw_metrics_gauge_set(enum gw_metric m, const char *labels, double v);

/*
 * Per-process gauges (GW_METRIC_IN_FLIGHT, GW_METRIC_SPEND_BACKLOG): each
 * process has its own row (256 rows per host), rendered summed over live
 * processes by family, so a killed process's requests in flight or backlog
 * vanish with it. add_pid adds delta (+1 at request start, -1 at its end);
 * set_pid replaces this process's value.
 */
void gw_metrics_gauge_add_pid(enum gw_metric m, int64_t delta);
void gw_metrics_gauge_set_pid(enum gw_metric m, int64_t value);
/*
 * The family label of this process's per-process gauges ("chat", ...; at
 * most 23 bytes, copied). Call once at start; inherited over fork.
 */
void gw_metrics_set_family(const char *family) GW_NONNULL(1);

/* Count one observation of v seconds (negative counts as 0, NaN ignored). */
void gw_metrics_observe(enum gw_hist h, const char *labels, double v);

/*
 * Append every metric to out in the Prometheus text format: # HELP and
 * # TYPE lines, series sorted by labels, histograms as cumulative
 * _bucket{le=...}, _sum and _count. Reaps the per-process rows of dead
 * processes (one kill(pid, 0) per row).
 */
void gw_metrics_render(struct gw_buf *out) GW_NONNULL(1);

/*
 * Escape value for use inside a label's double quotes: \ " and newline
 * become \\ \" \n, invalid UTF-8 bytes become '?'. Writes at most
 * outlen - 1 bytes and a NUL, never half an escape (out may be NULL when
 * outlen is 0). Returns the length the whole escaped value needs.
 */
size_t gw_metrics_label_escape(char *out, size_t outlen, const char *value)
    GW_NONNULL(3);
/*
 * Build a label string in buf from NULL-terminated name, value pairs, e.g.
 * gw_metrics_labels(buf, sizeof(buf), "model", m, "kind", "prompt", NULL)
 * gives model="...",kind="prompt". A NULL value is written as "". Returns
 * buf, or NULL when it does not fit (metrics given NULL use "other").
 */
const char *gw_metrics_labels(char *buf, size_t len, ...)
    __attribute__((sentinel)) GW_NONNULL(1);

/*
 * The current value of a counter or gauge series (for per-process gauges,
 * labels are ignored and the sum over live processes is returned); 0 when
 * the series does not exist. For tests and health reports.
 */
double gw_metrics_value(enum gw_metric m, const char *labels);
/* A histogram series' count, and its sum in *sum (NULL-ok). */
uint64_t gw_metrics_hist_count(enum gw_hist h, const char *labels, double *sum);

#endif /* GW_METRICS_H */
