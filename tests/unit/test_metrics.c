/*
 * Unit tests for lib/metrics.c: series, overflow, processes, rendering. The
 * file is included to reach its statics: a writer dying under a slot lock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/metrics.c"
#include "shm_fixture.h"

static int
setup(void **state)
{
	(void)state;
	return shm_fixture_attach("metrics");
}

static void
test_escape(void **state)
{
	char out[64], small[6];
	const char *l;

	(void)state;
	assert_int_equal(
	    gw_metrics_label_escape(out, sizeof(out), "gpt-4o"), 6);
	assert_string_equal(out, "gpt-4o");
	assert_int_equal(
	    gw_metrics_label_escape(out, sizeof(out), "a\"b\\c\nd"), 10);
	assert_string_equal(out, "a\\\"b\\\\c\\nd");
	/* invalid UTF-8 becomes '?', valid multibyte stays */
	gw_metrics_label_escape(out, sizeof(out), "\xc3\xa9\xff\xc3");
	assert_string_equal(out, "\xc3\xa9??");
	/* truncation never splits an escape */
	assert_int_equal(
	    gw_metrics_label_escape(small, sizeof(small), "abcd\"e"), 7);
	assert_string_equal(small, "abcd");
	assert_int_equal(gw_metrics_label_escape(NULL, 0, "xyz"), 3);

	l = gw_metrics_labels(
	    out, sizeof(out), "model", "m\"1", "kind", "prompt", NULL);
	assert_string_equal(l, "model=\"m\\\"1\",kind=\"prompt\"");
	assert_string_equal(gw_metrics_labels(out, sizeof(out), NULL), "");
	assert_string_equal(
	    gw_metrics_labels(out, sizeof(out), "a", NULL, NULL), "a=\"\"");
	assert_null(
	    gw_metrics_labels(small, sizeof(small), "model", "x", NULL));
	assert_non_null(
	    gw_metrics_labels(out, 14, "model", "abcde", NULL)); /* 13 + NUL */
	assert_null(gw_metrics_labels(out, 13, "model", "abcde", NULL));
}

static void
test_counters(void **state)
{
	const char *l = "route=\"chat\",model=\"gpt-4\",status=\"200\"";
	int i;

	(void)state;
	assert_true(gw_metrics_value(GW_METRIC_REQUESTS, l) == 0);
	gw_metrics_inc(GW_METRIC_REQUESTS, l, 1);
	gw_metrics_inc(GW_METRIC_REQUESTS, l, 2);
	gw_metrics_inc(GW_METRIC_REQUESTS,
	    "route=\"chat\",model=\"gpt-4\",status=\"500\"", 1);
	assert_true(gw_metrics_value(GW_METRIC_REQUESTS, l) == 3);
	for (i = 0; i < 10; i++)
		gw_metrics_add_double(
		    GW_METRIC_SPEND_USD, "model=\"gpt-4\"", 0.1);
	assert_true(
	    fabs(gw_metrics_value(GW_METRIC_SPEND_USD, "model=\"gpt-4\"") -
	         1.0) < 1e-9);
	gw_metrics_add_double(GW_METRIC_SPEND_USD, "model=\"gpt-4\"", -5);
	assert_true(
	    fabs(gw_metrics_value(GW_METRIC_SPEND_USD, "model=\"gpt-4\"") -
	         1.0) < 1e-9);
	gw_metrics_gauge_set(GW_METRIC_LANGFUSE_LAG, "", 12.5);
	gw_metrics_gauge_set(GW_METRIC_LANGFUSE_LAG, "", 3.25);
	assert_true(gw_metrics_value(GW_METRIC_LANGFUSE_LAG, "") == 3.25);
	gw_metrics_add_double(GW_METRIC_LANGFUSE_LAG, "", -1);
	assert_true(gw_metrics_value(GW_METRIC_LANGFUSE_LAG, "") == 2.25);
	assert_true(gw_metrics_value(GW_METRIC_SERIES_OVERFLOW, "") == 0);
	/* Malformed labels never make a series of their own. */
	gw_metrics_inc(GW_METRIC_UPSTREAM_ERRORS, "kind=timeout", 1);
	gw_metrics_inc(GW_METRIC_UPSTREAM_ERRORS, "kind=\"a\"x", 1);
	gw_metrics_inc(GW_METRIC_UPSTREAM_ERRORS, "kind=\"a\nb\"", 1);
	gw_metrics_inc(GW_METRIC_UPSTREAM_ERRORS, "kind=\"unterminated", 1);
	gw_metrics_inc(GW_METRIC_UPSTREAM_ERRORS, "=\"a\"", 1);
	assert_true(
	    gw_metrics_value(GW_METRIC_UPSTREAM_ERRORS, "kind=timeout") == 0);
	assert_true(
	    gw_metrics_value(GW_METRIC_UPSTREAM_ERRORS, "kind=\"other\"") == 5);
	assert_true(gw_metrics_value(GW_METRIC_SERIES_OVERFLOW, "") == 5);
	gw_metrics_inc(
	    GW_METRIC_UPSTREAM_ERRORS, "kind=\"a\\\"b\",x_1=\"\"", 1);
	assert_true(gw_metrics_value(GW_METRIC_UPSTREAM_ERRORS,
	                "kind=\"a\\\"b\",x_1=\"\"") == 1);
}

static void
test_histogram(void **state)
{
	const char *l = "model=\"m\"";
	double sum;

	(void)state;
	gw_metrics_observe(GW_HIST_UPSTREAM, l, 0.003);
	gw_metrics_observe(GW_HIST_UPSTREAM, l, 0.005); /* le is inclusive */
	gw_metrics_observe(GW_HIST_UPSTREAM, l, 0.2);
	gw_metrics_observe(GW_HIST_UPSTREAM, l, 700);
	gw_metrics_observe(GW_HIST_UPSTREAM, l, -1);  /* counts as 0 */
	gw_metrics_observe(GW_HIST_UPSTREAM, l, NAN); /* ignored */
	assert_int_equal(gw_metrics_hist_count(GW_HIST_UPSTREAM, l, &sum), 5);
	assert_true(fabs(sum - 700.208) < 1e-9);
	assert_int_equal(gw_metrics_hist_count(GW_HIST_TTFT, l, &sum), 0);
}

/* Series beyond the table fold into "other"; no update is lost. */
static void
test_overflow(void **state)
{
	enum { N = 4400 };
	char l[64];
	double total = 0, overflow, other;
	int i;

	(void)state;
	for (i = 0; i < N; i++) {
		snprintf(l, sizeof(l), "kind=\"k%d\"", i);
		gw_metrics_inc(GW_METRIC_UPSTREAM_ERRORS, l, 1);
	}
	for (i = 0; i < N; i++) {
		snprintf(l, sizeof(l), "kind=\"k%d\"", i);
		total += gw_metrics_value(GW_METRIC_UPSTREAM_ERRORS, l);
	}
	other = gw_metrics_value(GW_METRIC_UPSTREAM_ERRORS, "kind=\"other\"");
	overflow = gw_metrics_value(GW_METRIC_SERIES_OVERFLOW, "");
	/* 4096 slots hold the overflow counter and at most 4095 series */
	assert_true(other >= N - 4095);
	assert_true(total + other == N);
	assert_true(overflow == other);
	/* Unusable labels go to other too. */
	gw_metrics_inc(GW_METRIC_TOKENS, NULL, 5);
	gw_metrics_inc(GW_METRIC_TOKENS, "model=gpt", 5);
	gw_metrics_inc(GW_METRIC_TOKENS, "model=\"a\",", 5);
	gw_metrics_inc(GW_METRIC_TOKENS, "9x=\"a\"", 5);
	gw_metrics_inc(GW_METRIC_TOKENS, "x=\"a\\q\"", 5);
	{
		char big[GW_METRICS_LABELS_MAX + 10];

		memset(big, 'a', sizeof(big));
		memcpy(big, "x=\"", 3);
		memcpy(big + sizeof(big) - 2, "\"", 2);
		gw_metrics_inc(GW_METRIC_TOKENS, big, 5);
	}
	assert_true(gw_metrics_value(GW_METRIC_TOKENS,
	                "model=\"other\",kind=\"other\"") == 30);
}

/*
 * A LiteLLM series family holds at most its cap (one per key and model
 * adds up): the rest goes to its "other" series, exact in total, and
 * llmgw's own series still find room.
 */
static void
test_litellm_cap(void **state)
{
	enum { N = LL_CAP + 100 };
	char l[96];
	double total = 0, other;
	int i;

	(void)state;
	for (i = 0; i < N; i++) {
		snprintf(l, sizeof(l), "hashed_api_key=\"%064d\"", i);
		gw_metrics_inc(GW_METRIC_LL_TOTAL_TOKENS, l, 2);
	}
	for (i = 0; i < N; i++) {
		snprintf(l, sizeof(l), "hashed_api_key=\"%064d\"", i);
		total += gw_metrics_value(GW_METRIC_LL_TOTAL_TOKENS, l);
	}
	other = gw_metrics_value(GW_METRIC_LL_TOTAL_TOKENS,
	    "hashed_api_key=\"other\",api_key_alias=\"other\","
	    "model=\"other\"");
	assert_true(total == 2.0 * LL_CAP);
	assert_true(other == 2.0 * (N - LL_CAP));
	gw_metrics_inc(GW_METRIC_TOKENS, "model=\"m\",kind=\"prompt\"", 3);
	assert_true(gw_metrics_value(
	                GW_METRIC_TOKENS, "model=\"m\",kind=\"prompt\"") == 3);
}

/* Per-process gauges: summed over live processes only. */
static void
test_pid_gauges(void **state)
{
	int p[2], q[2], status;
	pid_t live, dead;
	char c;

	(void)state;
	gw_metrics_set_family("chat");
	gw_metrics_gauge_add_pid(GW_METRIC_IN_FLIGHT, 1);
	gw_metrics_gauge_add_pid(GW_METRIC_IN_FLIGHT, 1);
	gw_metrics_gauge_add_pid(GW_METRIC_IN_FLIGHT, -1);
	gw_metrics_gauge_set_pid(GW_METRIC_SPEND_BACKLOG, 7);
	assert_true(gw_metrics_value(GW_METRIC_IN_FLIGHT, NULL) == 1);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	if ((dead = fork()) == 0) {
		gw_metrics_gauge_add_pid(GW_METRIC_IN_FLIGHT, 5);
		gw_metrics_gauge_set_pid(GW_METRIC_SPEND_BACKLOG, 100);
		_exit(0);
	}
	assert_int_equal(waitpid(dead, &status, 0), dead);
	if ((live = fork()) == 0) {
		close(p[0]);
		close(q[1]);
		gw_metrics_set_family("embeddings");
		gw_metrics_gauge_add_pid(GW_METRIC_IN_FLIGHT, 3);
		gw_metrics_gauge_set_pid(GW_METRIC_SPEND_BACKLOG, 20);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		if (read(q[0], &c, 1) < 0) /* until the parent is done */
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	close(q[0]);
	assert_int_equal(read(p[0], &c, 1), 1);
	assert_true(gw_metrics_value(GW_METRIC_IN_FLIGHT, NULL) == 4);
	assert_true(gw_metrics_value(GW_METRIC_SPEND_BACKLOG, NULL) == 27);
	{
		struct gw_buf b = {0};

		gw_metrics_render(&b);
		assert_non_null(strstr(
		    b.p, "llmgw_requests_in_flight{family=\"chat\"} 1\n"));
		assert_non_null(strstr(b.p,
		    "llmgw_requests_in_flight{family=\"embeddings\"} 3\n"));
		assert_non_null(strstr(
		    b.p, "llmgw_spend_backlog_rows{family=\"chat\"} 7\n"));
		gw_buf_fini(&b);
	}
	close(q[1]);
	assert_int_equal(waitpid(live, &status, 0), live);
	assert_true(gw_metrics_value(GW_METRIC_IN_FLIGHT, NULL) == 1);
	assert_true(gw_metrics_value(GW_METRIC_SPEND_BACKLOG, NULL) == 7);
}

/* K processes update the same series: totals are exact. */
static void
test_cross_process(void **state)
{
	enum { K = 8, N = 20000 };
	const char *l = "route=\"chat\",model=\"x\",status=\"200\"";
	pid_t pids[K];
	double sum;
	int i, j, status;

	(void)state;
	for (i = 0; i < K; i++) {
		if ((pids[i] = fork()) == 0) {
			for (j = 0; j < N; j++) {
				gw_metrics_inc(GW_METRIC_REQUESTS, l, 1);
				gw_metrics_add_double(
				    GW_METRIC_SPEND_USD, "model=\"x\"", 0.5);
				gw_metrics_observe(
				    GW_HIST_REQUEST, "route=\"chat\"", 1.0);
				gw_metrics_gauge_add_pid(
				    GW_METRIC_IN_FLIGHT, 1);
				gw_metrics_gauge_add_pid(
				    GW_METRIC_IN_FLIGHT, -1);
			}
			_exit(0);
		}
	}
	for (i = 0; i < K; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_true(gw_metrics_value(GW_METRIC_REQUESTS, l) == K * N);
	assert_true(gw_metrics_value(GW_METRIC_SPEND_USD, "model=\"x\"") ==
	            K * N * 0.5);
	assert_int_equal(
	    gw_metrics_hist_count(GW_HIST_REQUEST, "route=\"chat\"", &sum),
	    K * N);
	assert_true(sum == K * N);
	assert_true(gw_metrics_value(GW_METRIC_IN_FLIGHT, NULL) == 0);
}

/*
 * A writer dies holding a slot's stripe lock, half-way through a key: the
 * slot is still free (its tag is written last), and the next writer, told
 * the holder died, writes its own key there; the lock works on.
 */
static void
test_dead_writer(void **state)
{
	const char *l = "kind=\"crash\"";
	struct m_area *a = area();
	uint64_t h;
	uint32_t i;
	struct skey *k;
	int status;
	pid_t pid;

	(void)state;
	assert_non_null(a);
	h = gw_shm_hash(l, strlen(l), GW_METRIC_UPSTREAM_ERRORS);
	i = (uint32_t)h & (M_SERIES - 1);
	k = &a->c[i].k;
	if ((pid = fork()) == 0) {
		gw_shm_lock(&a->stripe[i % M_STRIPES].lock);
		k->metric = 99;
		k->len = 7;
		memcpy(k->label, "garbage", 7);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(atomic_load(&k->tag), 0);
	assert_true(gw_metrics_value(GW_METRIC_UPSTREAM_ERRORS, l) == 0);
	gw_metrics_inc(GW_METRIC_UPSTREAM_ERRORS, l, 3);
	assert_true(gw_metrics_value(GW_METRIC_UPSTREAM_ERRORS, l) == 3);
	assert_int_equal(atomic_load(&k->tag), TAG_READY | h);
	assert_int_equal(k->metric, GW_METRIC_UPSTREAM_ERRORS);
	assert_string_equal(k->label, l);
	assert_int_equal(atomic_load(&a->c[i].v), 3);
	assert_int_equal(gw_shm_lock(&a->stripe[i % M_STRIPES].lock), 0);
	gw_shm_unlock(&a->stripe[i % M_STRIPES].lock);
	assert_true(gw_metrics_value(GW_METRIC_SERIES_OVERFLOW, "") == 0);
}

/* Write the rendering to a file and run promtool on it when installed. */
static void
promtool_check(const char *text)
{
	char file[300], cmd[700], out[4096];
	FILE *pf;
	size_t n;
	int fd, rc;

	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		print_message("promtool not installed: skipping its check\n");
		return;
	}
	snprintf(file, sizeof(file), "%s.prom", path);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", file);
	pf = popen(cmd, "r");
	assert_non_null(pf);
	n = fread(out, 1, sizeof(out) - 1, pf);
	out[n] = '\0';
	rc = pclose(pf);
	unlink(file);
	if (rc != 0 || n > 0)
		print_message("promtool: %s\n", out);
	assert_int_equal(rc, 0);
	assert_int_equal(n, 0); /* no lint findings either */
}

static void
test_render(void **state)
{
	struct gw_buf b = {0};
	char l[128], m[64];

	(void)state;
	gw_metrics_set_family("chat");
	gw_metrics_inc(GW_METRIC_REQUESTS,
	    "route=\"chat\",model=\"gpt-4\",status=\"200\"", 3);
	gw_metrics_labels(l, sizeof(l), "route", "chat", "model",
	    "we\"ird\\name\n", "status", "429", NULL);
	gw_metrics_inc(GW_METRIC_REQUESTS, l, 1);
	gw_metrics_inc(GW_METRIC_REQUESTS, NULL, 2); /* the other series */
	gw_metrics_inc(GW_METRIC_TOKENS, "model=\"gpt-4\",kind=\"prompt\"", 10);
	gw_metrics_add_double(GW_METRIC_SPEND_USD, "model=\"gpt-4\"", 0.0125);
	gw_metrics_inc(GW_METRIC_RATELIMITED, "reason=\"rpm\"", 4);
	gw_metrics_inc(GW_METRIC_UPSTREAM_ERRORS, "kind=\"timeout\"", 1);
	gw_metrics_gauge_add_pid(GW_METRIC_IN_FLIGHT, 2);
	gw_metrics_gauge_set(GW_METRIC_LANGFUSE_LAG, "", 1.5);
	gw_metrics_observe(
	    GW_HIST_REQUEST, "route=\"chat\",model=\"gpt-4\"", 0.07);
	gw_metrics_observe(
	    GW_HIST_REQUEST, "route=\"chat\",model=\"gpt-4\"", 2);
	gw_metrics_observe(GW_HIST_TTFT, "", 0.3);
	gw_metrics_labels(m, sizeof(m), "model", "gpt-4", NULL);
	gw_metrics_observe(GW_HIST_UPSTREAM, m, 1000);
	gw_metrics_render(&b);

	assert_non_null(strstr(b.p,
	    "# HELP llmgw_requests_total Requests answered, by route, model "
	    "and HTTP status.\n# TYPE llmgw_requests_total counter\n"));
	/* sorted by labels, escaped, the other series last here */
	assert_non_null(strstr(b.p,
	    "llmgw_requests_total{route=\"chat\",model=\"gpt-4\",status="
	    "\"200\"} 3\n"
	    "llmgw_requests_total{route=\"chat\",model="
	    "\"we\\\"ird\\\\name\\n\","
	    "status=\"429\"} 1\n"
	    "llmgw_requests_total{route=\"other\",model=\"other\",status="
	    "\"other\"} 2\n"));
	assert_non_null(strstr(
	    b.p, "llmgw_tokens_total{model=\"gpt-4\",kind=\"prompt\"} 10\n"));
	assert_non_null(
	    strstr(b.p, "llmgw_spend_usd_total{model=\"gpt-4\"} 0.0125\n"));
	assert_non_null(strstr(b.p,
	    "# TYPE llmgw_ratelimited_requests_total counter\n"
	    "llmgw_ratelimited_requests_total{reason=\"rpm\"} 4\n"));
	assert_non_null(strstr(b.p, "llmgw_metrics_series_overflow_total 1\n"));
	assert_non_null(
	    strstr(b.p, "# TYPE llmgw_requests_in_flight gauge\n"
	                "llmgw_requests_in_flight{family=\"chat\"} 2\n"));
	assert_non_null(
	    strstr(b.p, "llmgw_spend_backlog_rows{family=\"chat\"} 0\n"));
	assert_non_null(strstr(b.p, "llmgw_langfuse_export_lag_seconds 1.5\n"));
	assert_non_null(strstr(b.p,
	    "# TYPE llmgw_request_duration_seconds histogram\n"
	    "llmgw_request_duration_seconds_bucket{route=\"chat\",model="
	    "\"gpt-4\",le=\"0.005\"} 0\n"));
	assert_non_null(strstr(b.p,
	    "llmgw_request_duration_seconds_bucket{route=\"chat\",model="
	    "\"gpt-4\",le=\"0.1\"} 1\n"));
	assert_non_null(strstr(b.p,
	    "llmgw_request_duration_seconds_bucket{route=\"chat\",model="
	    "\"gpt-4\",le=\"2.5\"} 2\n"));
	assert_non_null(strstr(b.p,
	    "llmgw_request_duration_seconds_bucket{route=\"chat\",model="
	    "\"gpt-4\",le=\"+Inf\"} 2\n"
	    "llmgw_request_duration_seconds_sum{route=\"chat\",model="
	    "\"gpt-4\"} 2.07\n"
	    "llmgw_request_duration_seconds_count{route=\"chat\",model="
	    "\"gpt-4\"} 2\n"));
	assert_non_null(strstr(
	    b.p, "llmgw_time_to_first_token_seconds_bucket{le=\"0.5\"} 1\n"));
	assert_non_null(
	    strstr(b.p, "llmgw_time_to_first_token_seconds_sum 0.3\n"
	                "llmgw_time_to_first_token_seconds_count 1\n"));
	assert_non_null(strstr(b.p,
	    "llmgw_upstream_duration_seconds_bucket{model=\"gpt-4\",le="
	    "\"600\"} 0\n"
	    "llmgw_upstream_duration_seconds_bucket{model=\"gpt-4\",le="
	    "\"+Inf\"} 1\n"));
	/* every metric has HELP and TYPE, even without series */
	assert_non_null(
	    strstr(b.p, "# TYPE llmgw_ratelimit_fail_open_total counter\n"));
	promtool_check(b.p);
	gw_buf_fini(&b);
}

/* An empty region renders valid text too. */
static void
test_render_empty(void **state)
{
	struct gw_buf b = {0};

	(void)state;
	gw_metrics_render(&b);
	assert_non_null(strstr(b.p, "llmgw_requests_in_flight 0\n"));
	promtool_check(b.p);
	gw_buf_fini(&b);
	gw_shm_detach();
	gw_metrics_inc(GW_METRIC_REQUESTS, "", 1); /* no region: no-op */
	gw_metrics_render(&b);
	assert_non_null(strstr(b.p, "# llmgw: no shared memory"));
	gw_buf_fini(&b);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),
	    T(test_counters),
	    T(test_histogram),
	    T(test_overflow),
	    T(test_litellm_cap),
	    T(test_pid_gauges),
	    T(test_cross_process),
	    T(test_dead_writer),
	    T(test_render),
	    T(test_render_empty),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
