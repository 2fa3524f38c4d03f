/*
 * metrics.c: shared counters, gauges and histograms in the area
 * GW_SHM_AREA_METRICS, and their Prometheus text rendering.
 *
 * Series live in two open-addressing tables (counters and gauges;
 * histograms) keyed by (metric, label string). A slot's tag is 0 while
 * free and TAG_READY|hash once its key is published (release); keys never
 * change after that, so a lookup is a hash, a few tag loads and a memcmp,
 * with no lock. A new key is written under the gw_shm_lock of the slot's
 * stripe (slot % M_STRIPES), so one writer takes a free slot and the
 * others wait for its key; the tag is written last, so a writer that dies
 * half-way leaves a free slot whose key the next writer writes again.
 * Each metric also has a reserved "other" slot for what the tables cannot
 * hold. LiteLLM's series (per key) may claim at most their cap of slots
 * each (a count in the area, checked only when a slot is claimed), so they
 * never crowd llmgw's own series out of the tables. Per-process gauges live in
 * rows owned by one pid each and are summed over live pids when read.
 */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "shm.h"

#define M_SERIES 4096
#define M_HSERIES 2048
#define M_PROCS 256
#define M_MAXPROBE 128
#define M_BUCKETS 16
#define M_NPID 2
#define M_FAMILY_MAX 24
#define M_STRIPES 64
#define TAG_READY (UINT64_C(1) << 63)

enum kind {
	K_COUNTER,   /* uint64 */
	K_COUNTER_F, /* double */
	K_GAUGE_F,   /* double, shared */
	K_PID,       /* int64 per process row */
};

struct mdef {
	const char *name;
	const char *help;
	const char *other; /* labels of the "other" series */
	enum kind kind;
	int pidx;     /* K_PID: index in prow.v */
	int zero;     /* render "name 0" while the metric has no series */
	uint32_t cap; /* at most this many series (0: the table's size) */
};

/* LiteLLM's label names for the "other" series and the caps. */
#define LL_KEY "hashed_api_key=\"other\",api_key_alias=\"other\""
#define LL_CAP 256

static const struct mdef mdefs[GW_METRIC_COUNT] = {
    [GW_METRIC_REQUESTS] = {"llmgw_requests_total",
        "Requests answered, by route, model and HTTP status.",
        "route=\"other\",model=\"other\",status=\"other\"", K_COUNTER, 0, 0, 0},
    [GW_METRIC_TOKENS] = {"llmgw_tokens_total",
        "Tokens used, by model and kind (prompt or completion).",
        "model=\"other\",kind=\"other\"", K_COUNTER, 0, 0, 0},
    [GW_METRIC_SPEND_USD] = {"llmgw_spend_usd_total",
        "Spend in US dollars, by model.", "model=\"other\"", K_COUNTER_F, 0, 0,
        0},
    [GW_METRIC_RATELIMITED] = {"llmgw_ratelimited_requests_total",
        "Requests refused by a rate limit, by reason (global, rpm, tpm, "
        "parallel).",
        "reason=\"other\"", K_COUNTER, 0, 0, 0},
    [GW_METRIC_RATELIMIT_FAILOPEN] = {"llmgw_ratelimit_fail_open_total",
        "Requests admitted without a per-key limit because a shared table "
        "was full, by reason.",
        "reason=\"other\"", K_COUNTER, 0, 0, 0},
    [GW_METRIC_RATELIMIT_CLIENT_EVICTIONS] =
        {"llmgw_ratelimit_client_evictions_total",
            "Client sources whose bucket was given to another source, least "
            "recently used first ([rate_limit] clients is full).",
            "", K_COUNTER, 0, 1, 0},
    [GW_METRIC_UPSTREAM_ERRORS] = {"llmgw_upstream_errors_total",
        "Upstream failures, by kind (connect, timeout, status_4xx, "
        "status_5xx, midstream, ...).",
        "kind=\"other\"", K_COUNTER, 0, 0, 0},
    [GW_METRIC_SERIES_OVERFLOW] = {"llmgw_metrics_series_overflow_total",
        "Metric updates folded into an \"other\" series because the shared "
        "series table was full or the labels were unusable.",
        "", K_COUNTER, 0, 1, 0},
    [GW_METRIC_SLOW_CLIENT_PAUSES] = {"llmgw_slow_client_pauses_total",
        "Times a stream's upstream was paused because its client fell "
        "256 KiB behind.",
        "", K_COUNTER, 0, 1, 0},
    [GW_METRIC_IN_FLIGHT] = {"llmgw_requests_in_flight",
        "Requests being answered, by route family.", "family=\"other\"", K_PID,
        0, 1, 0},
    [GW_METRIC_SPEND_BACKLOG] = {"llmgw_spend_backlog_rows",
        "Spend rows spooled but not yet written to PostgreSQL, by route "
        "family.",
        "family=\"other\"", K_PID, 1, 1, 0},
    [GW_METRIC_LANGFUSE_LAG] = {"llmgw_langfuse_export_lag_seconds",
        "Age of the oldest request not yet exported to Langfuse.", "",
        K_GAUGE_F, 0, 0, 0},
    [GW_METRIC_LL_REQUESTS] = {"litellm_proxy_total_requests_metric_total",
        "LiteLLM's name: requests answered, by key, requested model, "
        "status_code and route.",
        LL_KEY ",requested_model=\"other\",status_code=\"other\"", K_COUNTER, 0,
        0, LL_CAP},
    [GW_METRIC_LL_FAILED] = {"litellm_proxy_failed_requests_metric_total",
        "LiteLLM's name: requests answered with an error, by key, "
        "requested model, exception_status and exception_class.",
        LL_KEY ",requested_model=\"other\",exception_status=\"other\"",
        K_COUNTER, 0, 0, LL_CAP / 2},
    [GW_METRIC_LL_SPEND] = {"litellm_spend_metric_total",
        "LiteLLM's name: spend in US dollars, by key and model.",
        LL_KEY ",model=\"other\"", K_COUNTER_F, 0, 0, LL_CAP},
    [GW_METRIC_LL_TOTAL_TOKENS] = {"litellm_total_tokens_total",
        "LiteLLM's name: input + output tokens, by key and model.",
        LL_KEY ",model=\"other\"", K_COUNTER, 0, 0, LL_CAP},
    [GW_METRIC_LL_INPUT_TOKENS] = {"litellm_input_tokens_total",
        "LiteLLM's name: input (prompt) tokens, by key and model.",
        LL_KEY ",model=\"other\"", K_COUNTER, 0, 0, LL_CAP},
    [GW_METRIC_LL_OUTPUT_TOKENS] = {"litellm_output_tokens_total",
        "LiteLLM's name: output (completion) tokens, by key and model.",
        LL_KEY ",model=\"other\"", K_COUNTER, 0, 0, LL_CAP},
    [GW_METRIC_LL_KEY_BUDGET_LEFT] = {"litellm_remaining_api_key_budget_metric",
        "LiteLLM's name: a key's max_budget minus its spend, in US "
        "dollars, for keys with a budget.",
        LL_KEY, K_GAUGE_F, 0, 0, LL_CAP},
    [GW_METRIC_LL_KEY_MAX_BUDGET] = {"litellm_api_key_max_budget_metric",
        "LiteLLM's name: a key's max_budget in US dollars.", LL_KEY, K_GAUGE_F,
        0, 0, LL_CAP},
};

struct hdef {
	const char *name;
	const char *help;
	const char *other;
	uint32_t cap; /* as mdef.cap */
};

static const struct hdef hdefs[GW_HIST_COUNT] = {
    [GW_HIST_REQUEST] = {"llmgw_request_duration_seconds",
        "Time from request start to the last byte of the answer.",
        "route=\"other\",model=\"other\"", 0},
    [GW_HIST_UPSTREAM] = {"llmgw_upstream_duration_seconds",
        "Time spent on the upstream call.", "model=\"other\"", 0},
    [GW_HIST_TTFT] = {"llmgw_time_to_first_token_seconds",
        "Time from request start to the first streamed token.",
        "model=\"other\"", 0},
    [GW_HIST_LL_REQUEST] = {"litellm_request_total_latency_metric",
        "LiteLLM's name: seconds from request start to the end of the "
        "answer, by key, requested model and model.",
        LL_KEY ",requested_model=\"other\",model=\"other\"", LL_CAP},
    [GW_HIST_LL_API] = {"litellm_llm_api_latency_metric",
        "LiteLLM's name: seconds spent on the upstream call, by key, "
        "requested model and model.",
        LL_KEY ",requested_model=\"other\",model=\"other\"", LL_CAP},
};

static const double bounds[M_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
static const char *const bound_str[M_BUCKETS] = {"0.005", "0.01", "0.025",
    "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "120",
    "300", "600"};

struct skey {
	_Atomic uint64_t tag;
	uint32_t metric;
	uint32_t len;
	char label[GW_METRICS_LABELS_MAX];
};

struct cslot {
	struct skey k;
	_Atomic uint64_t v; /* uint64, or a double's bits */
};

struct hslot {
	struct skey k;
	_Atomic uint64_t sum; /* a double's bits */
	_Atomic uint64_t b[M_BUCKETS + 1];
	uint64_t pad[7];
};

/* pid: 0 free, the owner's pid, or -pid while that process resets it. */
struct prow {
	_Atomic int64_t pid;
	char family[M_FAMILY_MAX];
	_Atomic int64_t v[M_NPID];
	uint64_t pad[2];
};

/* The lock of slots i % M_STRIPES of either table, and of other slot i. */
struct mstripe {
	_Alignas(64) struct gw_shm_lock lock;
};

struct m_area {
	struct mstripe stripe[M_STRIPES];
	/* Series claimed per capped metric (histograms after counters). */
	_Atomic uint32_t claimed[GW_METRIC_COUNT + GW_HIST_COUNT];
	struct cslot other[GW_METRIC_COUNT];
	struct hslot hother[GW_HIST_COUNT];
	struct cslot c[M_SERIES];
	struct hslot h[M_HSERIES];
	struct prow proc[M_PROCS];
};

static char my_family[M_FAMILY_MAX];
static _Atomic(struct prow *) my_row_cache;
static int warned_noshm, warned_labels, warned_rows;

/* gw_shm_area's init: the area is zeroed, its locks are not yet. */
static void
area_init(void *p)
{
	struct m_area *a = p;
	int i;

	for (i = 0; i < M_STRIPES; i++)
		gw_shm_lock_init(&a->stripe[i].lock);
}

static struct m_area *
area(void)
{
	struct gw_shm *s = gw_shm_get();
	struct m_area *a = NULL;

	if (s != NULL)
		a = gw_shm_area(s, GW_SHM_AREA_METRICS, sizeof(*a), area_init);
	if (a == NULL)
		gw_log_warn_once(&warned_noshm, "metrics",
		    "no shared memory region: metrics are not recorded");
	return a;
}

static double
bits_dbl(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

static uint64_t
dbl_bits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static void
dbl_add(_Atomic uint64_t *p, double v)
{
	uint64_t o = atomic_load_explicit(p, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(p, &o,
	    dbl_bits(bits_dbl(o) + v), memory_order_relaxed,
	    memory_order_relaxed))
		;
}

/* Length of the valid UTF-8 sequence at p, or 0. */
static size_t
utf8_len(const unsigned char *p)
{
	size_t n, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
		return 0; /* overlong, surrogate or beyond U+10FFFF */
	return n;
}

size_t
gw_metrics_label_escape(char *out, size_t outlen, const char *value)
{
	const unsigned char *p = (const unsigned char *)value;
	const char *piece;
	size_t need = 0, n, pos = 0;
	int full = 0;
	char one[4];

	while (*p) {
		if (*p < 0x80 && *p != '\\' && *p != '"' && *p != '\n') {
			/* A run of plain ASCII: copied as far as it fits. */
			const unsigned char *q = p + 1;
			size_t fit = outlen > pos + 1 ? outlen - pos - 1 : 0;

			while (*q && *q < 0x80 && *q != '\\' && *q != '"' &&
			       *q != '\n')
				q++;
			n = (size_t)(q - p);
			need += n;
			if (!full) {
				size_t c = n < fit ? n : fit;

				if (c > 0)
					memcpy(out + pos, p, c);
				pos += c;
				full = n > fit;
			}
			p = q;
			continue;
		}
		if (*p == '\\' || *p == '"' || *p == '\n') {
			one[0] = '\\';
			one[1] = *p == '\n' ? 'n' : (char)*p;
			piece = one;
			n = 2;
			p++;
		} else if ((n = utf8_len(p)) == 0) {
			piece = "?";
			n = 1;
			p++;
		} else {
			piece = (const char *)p;
			p += n;
		}
		need += n;
		if (!full && pos + n < outlen) {
			memcpy(out + pos, piece, n);
			pos += n;
		} else {
			full = 1;
		}
	}
	if (outlen > 0)
		out[pos] = '\0';
	return need;
}

const char *
gw_metrics_labels(char *buf, size_t len, ...)
{
	const char *name, *value;
	size_t pos = 0, n, room;
	va_list ap;
	char *res = buf;

	va_start(ap, len);
	while ((name = va_arg(ap, const char *)) != NULL) {
		value = va_arg(ap, const char *);
		n = strlen(name);
		/* separator, name, =" and at least the closing " and NUL */
		if (pos + (pos > 0) + n + 4 > len) {
			res = NULL;
			break;
		}
		if (pos > 0)
			buf[pos++] = ',';
		memcpy(buf + pos, name, n);
		pos += n;
		buf[pos++] = '=';
		buf[pos++] = '"';
		room = len - pos - 1; /* keeps a byte for the closing quote */
		if (gw_metrics_label_escape(
		        buf + pos, room, value != NULL ? value : "") >= room) {
			res = NULL;
			break;
		}
		pos += strlen(buf + pos);
		buf[pos++] = '"';
	}
	va_end(ap);
	if (res != NULL)
		buf[pos] = '\0';
	return res;
}

/* name="value"(,name="value")* with the exposition format's escapes. */
static int
labels_valid(const char *s, size_t len)
{
	const char *e = s + len;

	if (len == 0)
		return 1;
	for (;;) {
		if (s == e || !(*s == '_' || (*s >= 'a' && *s <= 'z') ||
		                  (*s >= 'A' && *s <= 'Z')))
			return 0;
		while (s < e && (*s == '_' || (*s >= 'a' && *s <= 'z') ||
		                    (*s >= 'A' && *s <= 'Z') ||
		                    (*s >= '0' && *s <= '9')))
			s++;
		if (e - s < 2 || s[0] != '=' || s[1] != '"')
			return 0;
		for (s += 2; s < e && *s != '"'; s++) {
			if (*s == '\n')
				return 0;
			if (*s == '\\' &&
			    (s + 1 == e ||
			        (s[1] != '\\' && s[1] != '"' && s[1] != 'n')))
				return 0;
			if (*s == '\\')
				s++;
		}
		if (s == e)
			return 0;
		if (++s == e)
			return 1;
		if (*s++ != ',')
			return 0;
	}
}

/*
 * Publish key (metric, labels) with tag in slot k unless a key is there
 * already, under the slot's stripe lock l; returns k's tag. Nothing to
 * repair after a holder that died: its key was not published (the tag is
 * written last, with release) and is written again here from the start.
 */
static uint64_t
key_claim(struct skey *k, struct gw_shm_lock *l, uint32_t metric,
    const char *labels, size_t len, uint64_t tag)
{
	uint64_t t;

	gw_shm_lock(l);
	t = atomic_load_explicit(&k->tag, memory_order_acquire);
	if (t == 0) {
		k->metric = metric;
		k->len = (uint32_t)len;
		memcpy(k->label, labels, len);
		k->label[len] = '\0';
		atomic_store_explicit(&k->tag, tag, memory_order_release);
		t = tag;
	}
	gw_shm_unlock(l);
	return t;
}

/*
 * The slot of (metric, labels) in a table of n slots of stride bytes,
 * claimed when missing and create is set; NULL when absent, when the table
 * (probe window) is full or when the labels are malformed.
 */
static struct skey *
find(struct m_area *a, char *base, size_t stride, uint32_t n, uint32_t metric,
    const char *labels, size_t len, int create, _Atomic uint32_t *claimed,
    uint32_t cap)
{
	uint64_t h = gw_shm_hash(labels, len, metric), want, tag;
	uint32_t i = (uint32_t)h & (n - 1);
	struct skey *k;
	int probe;

	want = TAG_READY | h;
	for (probe = 0; probe < M_MAXPROBE; probe++, i = (i + 1) & (n - 1)) {
		k = (struct skey *)(void *)(base + (size_t)i * stride);
		tag = atomic_load_explicit(&k->tag, memory_order_acquire);
		if (tag == 0) {
			if (!create)
				return NULL;
			if (!labels_valid(labels, len)) {
				gw_log_warn_once(&warned_labels, "metrics",
				    "malformed metric labels; using the other "
				    "series");
				return NULL;
			}
			/* A soft cap: racing claimers may pass it by a few. */
			if (cap != 0 && atomic_load_explicit(claimed,
			                    memory_order_relaxed) >= cap)
				return NULL;
			tag = key_claim(k, &a->stripe[i % M_STRIPES].lock,
			    metric, labels, len, want);
			if (cap != 0 && tag == want)
				atomic_fetch_add_explicit(
				    claimed, 1, memory_order_relaxed);
		}
		if (tag == want && k->metric == metric && k->len == len &&
		    memcmp(k->label, labels, len) == 0)
			return k;
	}
	return NULL;
}

/* The reserved "other" slot, its key written on first use. */
static struct skey *
other_slot(
    struct m_area *a, struct skey *k, uint32_t metric, const char *labels)
{
	if (atomic_load_explicit(&k->tag, memory_order_acquire) == 0)
		key_claim(k, &a->stripe[metric % M_STRIPES].lock, metric,
		    labels, strlen(labels), TAG_READY);
	return k;
}

static struct cslot *
cseries(struct m_area *a, enum gw_metric m, const char *labels, int create)
{
	struct skey *k = NULL;
	size_t len;

	if (labels != NULL && (len = strlen(labels)) < GW_METRICS_LABELS_MAX)
		k = find(a, (char *)a->c, sizeof(a->c[0]), M_SERIES,
		    (uint32_t)m, labels, len, create, &a->claimed[m],
		    mdefs[m].cap);
	if (k == NULL && create) {
		k = other_slot(a, &a->other[m].k, (uint32_t)m, mdefs[m].other);
		if (m != GW_METRIC_SERIES_OVERFLOW)
			gw_metrics_inc(GW_METRIC_SERIES_OVERFLOW, "", 1);
	}
	return (struct cslot *)k;
}

static struct hslot *
hseries(struct m_area *a, enum gw_hist h, const char *labels, int create)
{
	struct skey *k = NULL;
	size_t len;

	if (labels != NULL && (len = strlen(labels)) < GW_METRICS_LABELS_MAX)
		k = find(a, (char *)a->h, sizeof(a->h[0]), M_HSERIES,
		    (uint32_t)h | 0x100, labels, len, create,
		    &a->claimed[GW_METRIC_COUNT + h], hdefs[h].cap);
	if (k == NULL && create) {
		k = other_slot(
		    a, &a->hother[h].k, (uint32_t)h | 0x100, hdefs[h].other);
		gw_metrics_inc(GW_METRIC_SERIES_OVERFLOW, "", 1);
	}
	return (struct hslot *)k;
}

void
gw_metrics_inc(enum gw_metric m, const char *labels, uint64_t n)
{
	struct m_area *a;

	GW_ASSERT((unsigned)m < GW_METRIC_COUNT && mdefs[m].kind == K_COUNTER);
	if ((a = area()) == NULL)
		return;
	atomic_fetch_add_explicit(
	    &cseries(a, m, labels, 1)->v, n, memory_order_relaxed);
}

void
gw_metrics_add_double(enum gw_metric m, const char *labels, double v)
{
	struct m_area *a;

	GW_ASSERT((unsigned)m < GW_METRIC_COUNT &&
	          (mdefs[m].kind == K_COUNTER_F || mdefs[m].kind == K_GAUGE_F));
	if (isnan(v) || (mdefs[m].kind == K_COUNTER_F && v < 0))
		return;
	if ((a = area()) == NULL)
		return;
	dbl_add(&cseries(a, m, labels, 1)->v, v);
}

void
gw_metrics_gauge_set(enum gw_metric m, const char *labels, double v)
{
	struct m_area *a;

	GW_ASSERT((unsigned)m < GW_METRIC_COUNT && mdefs[m].kind == K_GAUGE_F);
	if ((a = area()) == NULL)
		return;
	atomic_store_explicit(
	    &cseries(a, m, labels, 1)->v, dbl_bits(v), memory_order_relaxed);
}

void
gw_metrics_observe(enum gw_hist h, const char *labels, double v)
{
	struct m_area *a;
	struct hslot *s;
	int i;

	GW_ASSERT((unsigned)h < GW_HIST_COUNT);
	if (isnan(v) || (a = area()) == NULL)
		return;
	if (v < 0)
		v = 0;
	for (i = 0; i < M_BUCKETS && v > bounds[i]; i++)
		;
	s = hseries(a, h, labels, 1);
	atomic_fetch_add_explicit(&s->b[i], 1, memory_order_relaxed);
	dbl_add(&s->sum, v);
}

/* Row owner pid that is gone: free to reset. */
static int
row_dead(int64_t p)
{
	return p != 0 && gw_shm_pid_dead((pid_t)(p < 0 ? -p : p));
}

/*
 * Take row r whose pid field read p (0 or a dead pid) for pid me: returns
 * 1 when it is ours, values zeroed and family set.
 */
static int
row_take(struct prow *r, int64_t p, int64_t me)
{
	int i;

	if (!atomic_compare_exchange_strong(&r->pid, &p, -me))
		return 0;
	for (i = 0; i < M_NPID; i++)
		atomic_store(&r->v[i], 0);
	memcpy(r->family, my_family, sizeof(r->family));
	atomic_store_explicit(&r->pid, me, memory_order_release);
	return 1;
}

static void
row_free(struct prow *r)
{
	int i;

	for (i = 0; i < M_NPID; i++)
		atomic_store(&r->v[i], 0);
	atomic_store_explicit(&r->pid, 0, memory_order_release);
}

/* This process's row: cached; claimed on first use or after fork. */
static struct prow *
my_row(struct m_area *a)
{
	struct prow *r =
	    atomic_load_explicit(&my_row_cache, memory_order_acquire);
	struct prow *cur;
	int64_t me = gw_shm_pid(), p;
	int i;

	if (r >= a->proc && r < a->proc + M_PROCS &&
	    atomic_load_explicit(&r->pid, memory_order_relaxed) == me)
		return r;
	r = NULL;
	for (i = 0; i < M_PROCS && r == NULL; i++)
		if (atomic_load(&a->proc[i].pid) == me)
			r = &a->proc[i];
	for (i = 0; i < M_PROCS && r == NULL; i++) {
		p = atomic_load(&a->proc[i].pid);
		if (p == 0 && row_take(&a->proc[i], p, me))
			r = &a->proc[i];
	}
	/* Only when every row is taken: one kill(pid, 0) a row. */
	for (i = 0; i < M_PROCS && r == NULL; i++) {
		p = atomic_load(&a->proc[i].pid);
		if (row_dead(p) && row_take(&a->proc[i], p, me))
			r = &a->proc[i];
	}
	if (r == NULL) {
		gw_log_warn_once(
		    &warned_rows, "metrics", "per-process metric rows full");
		return NULL;
	}
	/* Two threads may claim at once: keep one row per process. */
	cur = atomic_load(&my_row_cache);
	for (;;) {
		if (cur != r && cur >= a->proc && cur < a->proc + M_PROCS &&
		    atomic_load(&cur->pid) == me) {
			row_free(r);
			return cur;
		}
		if (atomic_compare_exchange_strong(&my_row_cache, &cur, r))
			return r;
	}
}

void
gw_metrics_set_family(const char *family)
{
	struct gw_shm *s = gw_shm_get();
	struct prow *r = atomic_load(&my_row_cache);
	struct m_area *a;

	snprintf(my_family, sizeof(my_family), "%s", family);
	if (s == NULL || (a = gw_shm_area(s, GW_SHM_AREA_METRICS, sizeof(*a),
	                      area_init)) == NULL)
		return;
	if (r >= a->proc && r < a->proc + M_PROCS &&
	    atomic_load(&r->pid) == gw_shm_pid())
		memcpy(r->family, my_family, sizeof(r->family));
}

void
gw_metrics_gauge_add_pid(enum gw_metric m, int64_t delta)
{
	struct m_area *a;
	struct prow *r;

	GW_ASSERT((unsigned)m < GW_METRIC_COUNT && mdefs[m].kind == K_PID);
	if ((a = area()) == NULL || (r = my_row(a)) == NULL)
		return;
	atomic_fetch_add_explicit(
	    &r->v[mdefs[m].pidx], delta, memory_order_relaxed);
}

void
gw_metrics_gauge_set_pid(enum gw_metric m, int64_t value)
{
	struct m_area *a;
	struct prow *r;

	GW_ASSERT((unsigned)m < GW_METRIC_COUNT && mdefs[m].kind == K_PID);
	if ((a = area()) == NULL || (r = my_row(a)) == NULL)
		return;
	atomic_store_explicit(
	    &r->v[mdefs[m].pidx], value, memory_order_relaxed);
}

/*
 * Live rows, after freeing those of dead processes: fills live[] with the
 * rows to count and returns how many.
 */
static int
live_rows(struct m_area *a, struct prow **live)
{
	struct prow *r;
	int64_t p, me = gw_shm_pid();
	int i, n = 0;

	for (i = 0; i < M_PROCS; i++) {
		r = &a->proc[i];
		p = atomic_load_explicit(&r->pid, memory_order_acquire);
		if (p == 0)
			continue;
		if (p != me && row_dead(p)) {
			if (atomic_compare_exchange_strong(&r->pid, &p, -me))
				row_free(r);
			continue;
		}
		if (p > 0)
			live[n++] = r;
	}
	return n;
}

double
gw_metrics_value(enum gw_metric m, const char *labels)
{
	struct prow *live[M_PROCS];
	struct m_area *a;
	struct cslot *s, *o;
	uint64_t v = 0;
	double d = 0;
	int i, n, dbl;

	GW_ASSERT((unsigned)m < GW_METRIC_COUNT);
	if ((a = area()) == NULL)
		return 0;
	if (mdefs[m].kind == K_PID) {
		n = live_rows(a, live);
		for (i = 0; i < n; i++)
			d += (double)atomic_load(&live[i]->v[mdefs[m].pidx]);
		return d;
	}
	dbl = mdefs[m].kind != K_COUNTER;
	if (labels != NULL && (s = cseries(a, m, labels, 0)) != NULL) {
		v = atomic_load(&s->v);
		d = dbl ? bits_dbl(v) : (double)v;
	}
	o = &a->other[m];
	if (labels != NULL && (atomic_load(&o->k.tag) & TAG_READY) &&
	    strcmp(o->k.label, labels) == 0) {
		v = atomic_load(&o->v);
		d += dbl ? bits_dbl(v) : (double)v;
	}
	return d;
}

uint64_t
gw_metrics_hist_count(enum gw_hist h, const char *labels, double *sum)
{
	struct m_area *a;
	struct hslot *s;
	uint64_t n = 0;
	int i;

	GW_ASSERT((unsigned)h < GW_HIST_COUNT);
	if (sum != NULL)
		*sum = 0;
	if ((a = area()) == NULL || labels == NULL ||
	    (s = hseries(a, h, labels, 0)) == NULL)
		return 0;
	for (i = 0; i <= M_BUCKETS; i++)
		n += atomic_load(&s->b[i]);
	if (sum != NULL)
		*sum = bits_dbl(atomic_load(&s->sum));
	return n;
}

/* Shortest of %.15g and %.17g that reads back exactly; +Inf, NaN. */
static void
put_double(struct gw_buf *b, double v)
{
	char tmp[40];

	if (isnan(v)) {
		gw_buf_puts(b, "NaN");
		return;
	}
	if (isinf(v)) {
		gw_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	snprintf(tmp, sizeof(tmp), "%.15g", v);
	if (strtod(tmp, NULL) != v)
		snprintf(tmp, sizeof(tmp), "%.17g", v);
	gw_buf_puts(b, tmp);
}

/* name{labels,extra} with braces only when there is a label. */
static void
put_name(struct gw_buf *b, const char *name, const char *suffix,
    const char *labels, const char *extra)
{
	gw_buf_puts(b, name);
	gw_buf_puts(b, suffix);
	if (labels[0] == '\0' && extra == NULL) {
		gw_buf_puts(b, " ");
		return;
	}
	gw_buf_puts(b, "{");
	gw_buf_puts(b, labels);
	if (extra != NULL) {
		if (labels[0] != '\0')
			gw_buf_puts(b, ",");
		gw_buf_puts(b, extra);
	}
	gw_buf_puts(b, "} ");
}

static int
cmp_key(const void *x, const void *y)
{
	const struct skey *a = *(struct skey *const *)x;
	const struct skey *b = *(struct skey *const *)y;

	return strcmp(a->label, b->label);
}

/*
 * The ready slots of metric id in a table plus its other slot, sorted by
 * labels; returns how many (keys[] has room for n + 1).
 */
static int
collect(char *base, size_t stride, uint32_t n, uint32_t id, struct skey *other,
    struct skey **keys)
{
	struct skey *k;
	uint32_t i;
	int c = 0;

	for (i = 0; i < n; i++) {
		k = (struct skey *)(void *)(base + (size_t)i * stride);
		if ((atomic_load_explicit(&k->tag, memory_order_acquire) &
		        TAG_READY) &&
		    k->metric == id)
			keys[c++] = k;
	}
	if (atomic_load_explicit(&other->tag, memory_order_acquire) & TAG_READY)
		keys[c++] = other;
	qsort(keys, (size_t)c, sizeof(keys[0]), cmp_key);
	return c;
}

static void
render_counter(
    struct gw_buf *b, struct m_area *a, enum gw_metric m, struct skey **keys)
{
	const struct mdef *d = &mdefs[m];
	uint64_t u = 0;
	double f = 0;
	int n, i;

	n = collect((char *)a->c, sizeof(a->c[0]), M_SERIES, (uint32_t)m,
	    &a->other[m].k, keys);
	if (n == 0 && d->zero) {
		gw_buf_printf(b, "%s 0\n", d->name);
		return;
	}
	for (i = 0; i < n; i++) {
		/* Same labels twice (an "other" spelled out): one line. */
		u += atomic_load(&((struct cslot *)keys[i])->v);
		f += bits_dbl(atomic_load(&((struct cslot *)keys[i])->v));
		if (i + 1 < n &&
		    strcmp(keys[i]->label, keys[i + 1]->label) == 0)
			continue;
		put_name(b, d->name, "", keys[i]->label, NULL);
		if (d->kind == K_COUNTER)
			gw_buf_printf(b, "%llu\n", (unsigned long long)u);
		else {
			put_double(b, f);
			gw_buf_puts(b, "\n");
		}
		u = 0;
		f = 0;
	}
}

static void
render_pid(struct gw_buf *b, enum gw_metric m, struct prow **live, int nlive)
{
	const struct mdef *d = &mdefs[m];
	const char *fam[M_PROCS];
	int64_t sum[M_PROCS];
	char esc[M_FAMILY_MAX * 2 + 16];
	int nf = 0, i, j;

	for (i = 0; i < nlive; i++) {
		for (j = 0; j < nf &&
		            strncmp(fam[j], live[i]->family, M_FAMILY_MAX) != 0;
		     j++)
			;
		if (j == nf) {
			fam[nf] = live[i]->family;
			sum[nf++] = 0;
		}
		sum[j] += atomic_load(&live[i]->v[d->pidx]);
	}
	if (nf == 0)
		gw_buf_printf(b, "%s 0\n", d->name);
	for (j = 0; j < nf; j++) {
		char f[M_FAMILY_MAX + 1];

		memcpy(f, fam[j], M_FAMILY_MAX);
		f[M_FAMILY_MAX] = '\0';
		gw_metrics_label_escape(esc, sizeof(esc), f);
		gw_buf_printf(b, "%s{family=\"%s\"} %lld\n", d->name, esc,
		    (long long)sum[j]);
	}
}

static void
render_hist(
    struct gw_buf *b, struct m_area *a, enum gw_hist h, struct skey **keys)
{
	const struct hdef *d = &hdefs[h];
	uint64_t cnt[M_BUCKETS + 1], cum;
	struct hslot *s;
	double sum = 0;
	char le[32];
	int n, i, j;

	n = collect((char *)a->h, sizeof(a->h[0]), M_HSERIES,
	    (uint32_t)h | 0x100, &a->hother[h].k, keys);
	memset(cnt, 0, sizeof(cnt));
	for (i = 0; i < n; i++) {
		s = (struct hslot *)keys[i];
		for (j = 0; j <= M_BUCKETS; j++)
			cnt[j] += atomic_load(&s->b[j]);
		sum += bits_dbl(atomic_load(&s->sum));
		if (i + 1 < n &&
		    strcmp(keys[i]->label, keys[i + 1]->label) == 0)
			continue;
		for (cum = 0, j = 0; j <= M_BUCKETS; j++) {
			cum += cnt[j];
			snprintf(le, sizeof(le), "le=\"%s\"",
			    j < M_BUCKETS ? bound_str[j] : "+Inf");
			put_name(b, d->name, "_bucket", keys[i]->label, le);
			gw_buf_printf(b, "%llu\n", (unsigned long long)cum);
		}
		put_name(b, d->name, "_sum", keys[i]->label, NULL);
		put_double(b, sum);
		gw_buf_puts(b, "\n");
		put_name(b, d->name, "_count", keys[i]->label, NULL);
		gw_buf_printf(b, "%llu\n", (unsigned long long)cum);
		memset(cnt, 0, sizeof(cnt));
		sum = 0;
	}
}

void
gw_metrics_render(struct gw_buf *out)
{
	static const char *const types[] = {[K_COUNTER] = "counter",
	    [K_COUNTER_F] = "counter",
	    [K_GAUGE_F] = "gauge",
	    [K_PID] = "gauge"};
	struct skey **keys;
	struct prow **live;
	struct m_area *a;
	int m, nlive;

	if ((a = area()) == NULL) {
		gw_buf_puts(
		    out, "# llmgw: no shared memory region, no metrics\n");
		return;
	}
	keys = gw_xmalloc(sizeof(*keys) * (M_SERIES + 1));
	live = gw_xmalloc(sizeof(*live) * M_PROCS);
	nlive = live_rows(a, live);
	for (m = 0; m < GW_METRIC_COUNT; m++) {
		gw_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
		    mdefs[m].name, mdefs[m].help, mdefs[m].name,
		    types[mdefs[m].kind]);
		if (mdefs[m].kind == K_PID)
			render_pid(out, (enum gw_metric)m, live, nlive);
		else
			render_counter(out, a, (enum gw_metric)m, keys);
	}
	for (m = 0; m < GW_HIST_COUNT; m++) {
		gw_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n",
		    hdefs[m].name, hdefs[m].help, hdefs[m].name);
		render_hist(out, a, (enum gw_hist)m, keys);
	}
	free(keys);
	free(live);
}
