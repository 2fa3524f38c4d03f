/*
 * config.c: the INI parser behind struct gw_cfg. One declarative key table,
 * alphabetical within each section; defaults are strings parsed by the same
 * code as the file, so a default can never be out of range.
 */
#include "config.h"

#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

enum ctype { CT_STR, CT_PATH, CT_INT, CT_LONG, CT_BOOL, CT_ENUM };

struct enum_map {
	const char *name;
	int value;
};

/*
 * Key flags. CF_RESTART: read once when a process (or its supervisor)
 * starts, so a reload that changes it says so and it takes effect after a
 * restart (pgbouncer's CF_NO_RELOAD). Every other setting applies on
 * SIGHUP: at once, read per request, or by a background thread at its
 * next cycle (README, "What a reload (SIGHUP) applies").
 */
#define CF_RESTART 1

struct key_def {
	const char *section;
	const char *key;
	enum ctype type;
	size_t off;
	const char *def;
	long min, max;
	const struct enum_map *map;
	int flags;
};

static const struct enum_map log_levels[] = {{"err", GW_LOG_ERR},
    {"error", GW_LOG_ERR}, {"warn", GW_LOG_WARN}, {"info", GW_LOG_INFO},
    {"debug", GW_LOG_DEBUG}, {NULL, 0}};
static const struct enum_map lf_formats[] = {
    {"otel", GW_LANGFUSE_OTEL}, {"legacy", GW_LANGFUSE_LEGACY}, {NULL, 0}};
static const struct enum_map lf_records[] = {{"full", GW_LANGFUSE_RECORD_FULL},
    {"redacted", GW_LANGFUSE_RECORD_REDACTED},
    {"none", GW_LANGFUSE_RECORD_NONE}, {NULL, 0}};

#define O(f) offsetof(struct gw_cfg, f)
static const struct key_def keys[] = {
    {"auth", "jwt_admin_role", CT_STR, O(jwt_admin_role), "proxy_admin", 0, 0,
        NULL, 0},
    {"auth", "jwt_audience", CT_STR, O(jwt_audience), "", 0, 0, NULL, 0},
    {"auth", "jwt_issuer", CT_STR, O(jwt_issuer), "", 0, 0, NULL, 0},
    {"auth", "jwt_leeway_s", CT_INT, O(jwt_leeway_s), "30", 0, 3600, NULL, 0},
    {"auth", "jwt_models_claim", CT_STR, O(jwt_models_claim), "models", 0, 0,
        NULL, 0},
    {"auth", "jwt_public_key_file", CT_PATH, O(jwt_public_key_file), "", 0, 0,
        NULL, 0},
    {"auth", "jwt_require_exp", CT_BOOL, O(jwt_require_exp), "on", 0, 1, NULL,
        0},
    {"auth", "jwt_role_claim", CT_STR, O(jwt_role_claim), "role", 0, 0, NULL,
        0},
    {"auth", "jwt_secret_file", CT_PATH, O(jwt_secret_file), "", 0, 0, NULL, 0},
    {"auth", "jwt_team_id_claim", CT_STR, O(jwt_team_id_claim), "team_id", 0, 0,
        NULL, 0},
    {"auth", "jwt_user_id_claim", CT_STR, O(jwt_user_id_claim), "sub", 0, 0,
        NULL, 0},
    {"auth", "key_cache_ttl_s", CT_INT, O(key_cache_ttl_s), "60", 1, 3600, NULL,
        0},
    {"auth", "master_key_file", CT_PATH, O(master_key_file), "", 0, 0, NULL, 0},
    {"database", "conninfo", CT_STR, O(db_conninfo),
        "host=/var/run/postgresql dbname=llmgw", 0, 0, NULL, 0},
    {"database", "connect_timeout_s", CT_INT, O(db_connect_timeout_s), "3", 1,
        60, NULL, CF_RESTART},
    {"database", "statement_timeout_ms", CT_INT, O(db_statement_timeout_ms),
        "5000", 0, 600000, NULL, CF_RESTART},
    {"gateway", "access_log", CT_BOOL, O(access_log), "on", 0, 1, NULL, 0},
    {"gateway", "listen", CT_STR, O(listen), "127.0.0.1:4000", 0, 0, NULL,
        CF_RESTART},
    {"gateway", "max_audio_bytes", CT_LONG, O(max_audio_bytes), "26214400",
        1024, 1073741824L, NULL, 0},
    {"gateway", "max_body_bytes", CT_LONG, O(max_body_bytes), "8388608", 1024,
        1073741824L, NULL, 0},
    {"gateway", "max_json_values", CT_INT, O(max_json_values), "200000", 16,
        100000000, NULL, 0},
    {"gateway", "max_metadata_bytes", CT_INT, O(max_metadata_bytes), "16384", 2,
        1073741824, NULL, 0},
    {"gateway", "processes", CT_INT, O(processes), "2", 1, 64, NULL,
        CF_RESTART},
    {"gateway", "shm_path", CT_PATH, O(shm_path), "/dev/shm/llmgw", 0, 0, NULL,
        CF_RESTART},
    {"gateway", "shutdown_timeout_s", CT_INT, O(shutdown_timeout_s), "30", 0,
        3600, NULL, 0},
    {"gateway", "thread_stack_kb", CT_INT, O(thread_stack_kb), "256", 64, 8192,
        NULL, CF_RESTART},
    {"gateway", "threads", CT_INT, O(threads), "16", 1, 256, NULL, CF_RESTART},
    {"langfuse", "batch_size", CT_INT, O(langfuse_batch_size), "100", 1, 1000,
        NULL, 0},
    {"langfuse", "enabled", CT_BOOL, O(langfuse_enabled), "off", 0, 1, NULL, 0},
    {"langfuse", "environment", CT_STR, O(langfuse_environment), "", 0, 0, NULL,
        0},
    {"langfuse", "format", CT_ENUM, O(langfuse_format), "otel", 0, 0,
        lf_formats, 0},
    {"langfuse", "host", CT_STR, O(langfuse_host), "https://cloud.langfuse.com",
        0, 0, NULL, 0},
    {"langfuse", "public_key", CT_STR, O(langfuse_public_key), "", 0, 0, NULL,
        0},
    {"langfuse", "record", CT_ENUM, O(langfuse_record), "full", 0, 0,
        lf_records, 0},
    {"langfuse", "release", CT_STR, O(langfuse_release), "", 0, 0, NULL, 0},
    {"langfuse", "retention_days", CT_INT, O(langfuse_retention_days), "7", 0,
        3650, NULL, 0},
    {"langfuse", "secret_key_file", CT_PATH, O(langfuse_secret_key_file), "", 0,
        0, NULL, 0},
    {"log", "file", CT_PATH, O(log_file), "", 0, 0, NULL, CF_RESTART},
    {"log", "level", CT_ENUM, O(log_level), "info", 0, 0, log_levels, 0},
    {"log", "prompts", CT_BOOL, O(log_prompts), "off", 0, 1, NULL, 0},
    {"rate_limit", "auth_failures_burst", CT_INT, O(rl_auth_fail_burst), "20",
        1, 1000000, NULL, 0},
    {"rate_limit", "auth_failures_per_min", CT_INT, O(rl_auth_fail_per_min),
        "60", 0, 60000000, NULL, 0},
    {"rate_limit", "burst", CT_INT, O(rate_limit_burst), "200", 1, 10000000,
        NULL, 0},
    {"rate_limit", "clients", CT_INT, O(rl_clients), "65536", 8, 65536, NULL,
        0},
    {"rate_limit", "host_burst", CT_INT, O(rl_host_burst), "2000", 1, 10000000,
        NULL, 0},
    {"rate_limit", "host_rps", CT_INT, O(rl_host_rps), "0", 0, 10000000, NULL,
        0},
    {"rate_limit", "rps", CT_INT, O(rate_limit_rps), "100", 0, 10000000, NULL,
        0},
    {"rate_limit", "shared", CT_BOOL, O(rl_shared), "on", 0, 1, NULL, 0},
    {"rate_limit", "shared_hosts", CT_INT, O(rl_shared_hosts), "2", 1, 1000,
        NULL, 0},
    {"rate_limit", "shared_lease_ttl_s", CT_INT, O(rl_shared_lease_ttl_s), "10",
        2, 3600, NULL, 0},
    {"rate_limit", "shared_slice_max", CT_INT, O(rl_shared_slice_max), "100", 1,
        1000000, NULL, 0},
    {"rate_limit", "shared_sync_ms", CT_INT, O(rl_shared_sync_ms), "1000", 10,
        60000, NULL, 0},
    {"rate_limit", "trusted_proxies", CT_STR, O(rl_trusted_proxies), "", 0, 0,
        NULL, 0},
    {"scheduler", "concurrency", CT_INT, O(sched_concurrency), "0", 0, 4096,
        NULL, 0},
    {"scheduler", "enabled", CT_BOOL, O(sched_enabled), "off", 0, 1, NULL, 0},
    {"scheduler", "groups", CT_STR, O(sched_groups), "", 0, 0, NULL, 0},
    {"scheduler", "max_wait_s", CT_INT, O(sched_max_wait_s), "30", 1, 86400,
        NULL, 0},
    {"scheduler", "min_loaded_s", CT_INT, O(sched_min_loaded_s), "0", 0, 3600,
        NULL, 0},
    {"scheduler", "queue_max", CT_INT, O(sched_queue_max), "256", 1, 1000, NULL,
        0},
    {"scheduler", "running_path", CT_STR, O(sched_running_path), "/running", 0,
        0, NULL, 0},
    {"spend", "batch_rows", CT_INT, O(spend_batch_rows), "500", 1, 10000, NULL,
        0},
    {"spend", "budget_refresh_ms", CT_INT, O(budget_refresh_ms), "1000", 0,
        60000, NULL, 0},
    {"spend", "budget_reset_check_s", CT_INT, O(budget_reset_check_s), "10", 1,
        3600, NULL, 0},
    {"spend", "flush_ms", CT_INT, O(spend_flush_ms), "200", 10, 1000, NULL, 0},
    {"spend", "logs_max_limit", CT_INT, O(spend_logs_max_limit), "1000", 1,
        100000, NULL, 0},
    {"spend", "spool_dir", CT_PATH, O(spool_dir), "/var/lib/llmgw/spool", 0, 0,
        NULL, CF_RESTART},
    {"upstream", "api_key_file", CT_PATH, O(upstream_api_key_file), "", 0, 0,
        NULL, 0},
    {"upstream", "base_url", CT_STR, O(upstream_url), "http://127.0.0.1:8080",
        0, 0, NULL, 0},
    {"upstream", "connect_timeout_ms", CT_INT, O(upstream_connect_timeout_ms),
        "5000", 1, 600000, NULL, 0},
    {"upstream", "first_byte_timeout_s", CT_INT,
        O(upstream_first_byte_timeout_s), "600", 1, 86400, NULL, 0},
    {"upstream", "health_path", CT_STR, O(upstream_health_path), "/health", 0,
        0, NULL, 0},
    {"upstream", "health_timeout_ms", CT_INT, O(upstream_health_timeout_ms),
        "2000", 1, 60000, NULL, 0},
    {"upstream", "idle_timeout_s", CT_INT, O(upstream_idle_timeout_s), "120", 1,
        86400, NULL, 0},
    {"upstream", "models_cache_s", CT_INT, O(upstream_models_cache_s), "5", 0,
        3600, NULL, 0},
    {"upstream", "passthrough", CT_STR, O(upstream_passthrough), "", 0, 0, NULL,
        0},
    {"upstream", "retries", CT_INT, O(upstream_retries), "1", 0, 10, NULL, 0},
    {"upstream", "stream_keepalive_s", CT_INT, O(stream_keepalive_s), "15", 0,
        3600, NULL, 0},
};
#undef O

static const char *const map_sections[] = {"aliases", "prices"};

/* Configurations loaded by this process so far (see gw_cfg.gen). */
static unsigned loads;

struct parse {
	struct gw_cfg *cfg;
	const char *path;
	char *dir; /* directory of path, for relative paths */
	int line;
	int seen[GW_ARRAY_LEN(keys)];
	char *err;
	size_t errlen;
};

static enum gw_status GW_PRINTF(4, 5) fail(struct parse *p,
    const struct key_def *k, const char *where, const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (where != NULL)
		snprintf(p->err, p->errlen, "%s: %s", where, reason);
	else if (k != NULL)
		snprintf(p->err, p->errlen, "%s:%d: [%s] %s: %s", p->path,
		    p->line, k->section, k->key, reason);
	else
		snprintf(
		    p->err, p->errlen, "%s:%d: %s", p->path, p->line, reason);
	return GW_E_INVALID;
}

/*
 * The field k describes inside cfg. offsetof() keeps it aligned for its
 * type; going through void * says so to -Wcast-align (clang).
 */
static void *
field(struct gw_cfg *cfg, const struct key_def *k)
{
	return (char *)cfg + k->off;
}

static const void *
cfield(const struct gw_cfg *cfg, const struct key_def *k)
{
	return (const char *)cfg + k->off;
}

static char **
str_field(struct gw_cfg *cfg, const struct key_def *k)
{
	return field(cfg, k);
}

static int *
int_field(struct gw_cfg *cfg, const struct key_def *k)
{
	return field(cfg, k);
}

static enum gw_status
parse_long(const char *v, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0')
		return GW_E_INVALID;
	return GW_OK;
}

/* Store value v into k's field; where names an env var, else the line. */
static enum gw_status
set_value(
    struct parse *p, const struct key_def *k, const char *v, const char *where)
{
	struct gw_cfg *cfg = p->cfg;
	const struct enum_map *m;
	long n;
	char **s;

	switch (k->type) {
	case CT_STR:
	case CT_PATH:
		s = str_field(cfg, k);
		free(*s);
		if (k->type == CT_PATH && v[0] != '\0' && v[0] != '/' &&
		    p->dir != NULL)
			*s = gw_xasprintf("%s/%s", p->dir, v);
		else
			*s = gw_xstrdup(v);
		return GW_OK;
	case CT_INT:
	case CT_LONG:
		if (parse_long(v, &n) != GW_OK)
			return fail(p, k, where, "'%s' is not an integer", v);
		if (n < k->min || n > k->max)
			return fail(p, k, where, "%ld is out of range %ld..%ld",
			    n, k->min, k->max);
		if (k->type == CT_INT)
			*int_field(cfg, k) = (int)n;
		else
			*(long *)field(cfg, k) = n;
		return GW_OK;
	case CT_BOOL:
		if (!strcmp(v, "on") || !strcmp(v, "true") ||
		    !strcmp(v, "yes") || !strcmp(v, "1"))
			*int_field(cfg, k) = 1;
		else if (!strcmp(v, "off") || !strcmp(v, "false") ||
		         !strcmp(v, "no") || !strcmp(v, "0"))
			*int_field(cfg, k) = 0;
		else
			return fail(
			    p, k, where, "'%s' is not a boolean (on/off)", v);
		return GW_OK;
	case CT_ENUM:
		for (m = k->map; m->name != NULL; m++) {
			if (!strcmp(m->name, v)) {
				*int_field(cfg, k) = m->value;
				return GW_OK;
			}
		}
		return fail(
		    p, k, where, "'%s' is not one of the allowed values", v);
	}
	return GW_E_INTERNAL;
}

static const struct key_def *
find_key(const char *section, const char *key)
{
	size_t i;

	for (i = 0; i < GW_ARRAY_LEN(keys); i++)
		if (!strcmp(keys[i].section, section) &&
		    !strcmp(keys[i].key, key))
			return &keys[i];
	return NULL;
}

static int
known_section(const char *section)
{
	size_t i;

	for (i = 0; i < GW_ARRAY_LEN(keys); i++)
		if (!strcmp(keys[i].section, section))
			return 1;
	for (i = 0; i < GW_ARRAY_LEN(map_sections); i++)
		if (!strcmp(map_sections[i], section))
			return 1;
	return 0;
}

static enum gw_status
add_alias(struct parse *p, const char *name, const char *value)
{
	struct gw_cfg *cfg = p->cfg;
	struct gw_alias *a;
	char *copy = gw_xstrdup(value), *tok, *save = NULL;
	size_t i;

	for (i = 0; i < cfg->naliases; i++)
		if (!strcmp(cfg->aliases[i].name, name)) {
			free(copy);
			return fail(
			    p, NULL, NULL, "[aliases] %s: set twice", name);
		}
	cfg->aliases = gw_xrealloc(
	    cfg->aliases, (cfg->naliases + 1) * sizeof(*cfg->aliases));
	a = &cfg->aliases[cfg->naliases++];
	a->name = gw_xstrdup(name);
	a->targets = NULL;
	a->ntargets = 0;
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		tok = gw_strtrim(tok);
		if (tok[0] == '\0')
			continue;
		a->targets = gw_xrealloc(
		    a->targets, (a->ntargets + 1) * sizeof(*a->targets));
		a->targets[a->ntargets++] = gw_xstrdup(tok);
	}
	free(copy);
	if (a->ntargets == 0)
		return fail(
		    p, NULL, NULL, "[aliases] %s: no target model", name);
	return GW_OK;
}

static enum gw_status
parse_price(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno != 0 || end == s || !isfinite(*out) || *out < 0)
		return GW_E_INVALID;
	return *end == '\0' || isspace((unsigned char)*end) ? GW_OK
	                                                    : GW_E_INVALID;
}

/*
 * One optional unit of a [prices] line, "name=value" (LiteLLM's
 * model_prices names): GW_E_INVALID for an unknown name or a bad number.
 */
static enum gw_status
price_unit(struct gw_price *pr, const char *tok)
{
	static const struct {
		const char *name;
		size_t off;
	} units[] = {
	    {"input_cost_per_second", offsetof(struct gw_price, per_second)},
	    {"input_cost_per_character",
	        offsetof(struct gw_price, per_character)},
	    {"input_cost_per_request", offsetof(struct gw_price, per_request)},
	    {"input_cost_per_query", offsetof(struct gw_price, per_request)},
	};
	const char *eq = strchr(tok, '=');
	double *v;
	size_t i, nl;

	if (eq == NULL)
		return GW_E_INVALID;
	nl = (size_t)(eq - tok);
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strlen(units[i].name) != nl ||
		    strncmp(tok, units[i].name, nl) != 0)
			continue;
		v = (double *)(void *)((char *)pr + units[i].off);
		if (*v >= 0) /* set twice */
			return GW_E_INVALID;
		return parse_price(eq + 1, v);
	}
	return GW_E_INVALID;
}

static enum gw_status
add_price(struct parse *p, const char *model, const char *value)
{
	struct gw_cfg *cfg = p->cfg;
	struct gw_price pr = {
	    .per_second = -1, .per_character = -1, .per_request = -1};
	char *copy = gw_xstrdup(value), *in, *outp, *extra, *save = NULL;
	enum gw_status st = GW_E_INVALID;

	in = strtok_r(copy, " \t", &save);
	outp = strtok_r(NULL, " \t", &save);
	if (in == NULL || outp == NULL ||
	    parse_price(in, &pr.input_per_m) != GW_OK ||
	    parse_price(outp, &pr.output_per_m) != GW_OK) {
		st = fail(p, NULL, NULL,
		    "[prices] %s: expected '<input> <output>' USD per 1M "
		    "tokens, "
		    "two non-negative numbers",
		    model);
		goto out;
	}
	while ((extra = strtok_r(NULL, " \t", &save)) != NULL) {
		if (price_unit(&pr, extra) != GW_OK) {
			st = fail(p, NULL, NULL,
			    "[prices] %s: '%s': expected "
			    "input_cost_per_second=, input_cost_per_character= "
			    "or input_cost_per_request= "
			    "(input_cost_per_query=) "
			    "a non-negative number (USD), each once",
			    model, extra);
			goto out;
		}
	}
	if (gw_cfg_find_price(cfg, model) != NULL) {
		st = fail(p, NULL, NULL, "[prices] %s: set twice", model);
		goto out;
	}
	cfg->prices =
	    gw_xrealloc(cfg->prices, (cfg->nprices + 1) * sizeof(*cfg->prices));
	pr.model = gw_xstrdup(model);
	cfg->prices[cfg->nprices++] = pr;
	st = GW_OK;
out:
	free(copy);
	return st;
}

static enum gw_status
parse_line(struct parse *p, char *line, char *section, size_t seclen)
{
	char *s = gw_strtrim(line), *eq, *key, *val;
	const struct key_def *k;
	size_t len, idx;

	if (s[0] == '\0' || s[0] == '#' || s[0] == ';')
		return GW_OK;
	if (s[0] == '[') {
		len = strlen(s);
		if (s[len - 1] != ']')
			return fail(p, NULL, NULL, "malformed section header");
		s[len - 1] = '\0';
		s = gw_strtrim(s + 1);
		if (!known_section(s))
			return fail(p, NULL, NULL, "unknown section [%s]", s);
		snprintf(section, seclen, "%s", s);
		return GW_OK;
	}
	eq = strchr(s, '=');
	if (eq == NULL)
		return fail(p, NULL, NULL, "expected 'key = value'");
	*eq = '\0';
	key = gw_strtrim(s);
	val = gw_strtrim(eq + 1);
	len = strlen(val);
	if (len >= 2 && val[0] == '"' && val[len - 1] == '"') {
		val[len - 1] = '\0';
		val++;
	}
	if (section[0] == '\0')
		return fail(
		    p, NULL, NULL, "setting '%s' outside any section", key);
	if (key[0] == '\0')
		return fail(p, NULL, NULL, "empty key in [%s]", section);
	if (!strcmp(section, "aliases"))
		return add_alias(p, key, val);
	if (!strcmp(section, "prices"))
		return add_price(p, key, val);
	k = find_key(section, key);
	if (k == NULL)
		return fail(
		    p, NULL, NULL, "[%s] %s: unknown setting", section, key);
	idx = (size_t)(k - keys);
	if (p->seen[idx])
		return fail(
		    p, k, NULL, "set twice (first at line %d)", p->seen[idx]);
	p->seen[idx] = p->line;
	return set_value(p, k, val, NULL);
}

static enum gw_status
apply_env(struct parse *p)
{
	char name[128], *c;
	const char *v;
	size_t i;
	enum gw_status st;

	for (i = 0; i < GW_ARRAY_LEN(keys); i++) {
		snprintf(name, sizeof(name), "LLMGW_%s_%s", keys[i].section,
		    keys[i].key);
		for (c = name; *c; c++)
			*c = (char)toupper((unsigned char)*c);
		v = getenv(name);
		if (v == NULL)
			continue;
		p->seen[i] = 0; /* errors now name the environment */
		/* Relative paths from the environment are relative to cwd. */
		if (keys[i].type == CT_PATH) {
			char **s = str_field(p->cfg, &keys[i]);
			free(*s);
			*s = gw_xstrdup(v);
			continue;
		}
		if ((st = set_value(p, &keys[i], v, name)) != GW_OK)
			return st;
	}
	if ((v = getenv("LANGFUSE_HOST")) != NULL && v[0] != '\0') {
		free(p->cfg->langfuse_host);
		p->cfg->langfuse_host = gw_xstrdup(v);
	}
	if ((v = getenv("LANGFUSE_PUBLIC_KEY")) != NULL && v[0] != '\0') {
		free(p->cfg->langfuse_public_key);
		p->cfg->langfuse_public_key = gw_xstrdup(v);
	}
	return GW_OK;
}

/*
 * Open file for reading when it is a regular file that nobody but us (or
 * root) could have written: owned by this user or root, not writable by
 * every user. A FIFO or a device is refused before a read could block on
 * it. NULL with why set when refused or unreadable.
 */
static FILE *
open_trusted(const char *file, char *why, size_t whylen)
{
	struct stat sb;
	int fd, flags;
	FILE *fp;

	fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) != 0)
		snprintf(why, whylen, "%s", strerror(errno));
	else if (!S_ISREG(sb.st_mode))
		snprintf(why, whylen, "not a regular file");
	else if (sb.st_uid != geteuid() && sb.st_uid != 0)
		snprintf(why, whylen,
		    "owned by uid %u, neither this user nor root",
		    (unsigned)sb.st_uid);
	else if (sb.st_mode & S_IWOTH)
		snprintf(why, whylen, "writable by every user (mode %04o)",
		    (unsigned)(sb.st_mode & 07777));
	else if ((flags = fcntl(fd, F_GETFL)) < 0 ||
	         fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
		snprintf(why, whylen, "%s", strerror(errno));
	else if ((fp = fdopen(fd, "r")) != NULL)
		return fp;
	else
		snprintf(why, whylen, "%s", strerror(errno));
	close(fd);
	return NULL;
}

/* Read the first line of k's secret file into *out (caller frees). */
static enum gw_status
read_secret(struct parse *p, const char *section, const char *key,
    const char *file, char **out)
{
	const struct key_def *k = find_key(section, key);
	char where[160];
	const char *w = NULL;
	FILE *fp = NULL;
	char *line = NULL, why[96];
	size_t cap = 0;
	enum gw_status st = GW_E_INVALID;

	GW_ASSERT(k != NULL);
	/* Name the line that set it, or the environment / default. */
	p->line = p->seen[k - keys];
	if (p->line == 0) {
		snprintf(where, sizeof(where),
		    "[%s] %s (from the environment or the default)", section,
		    key);
		w = where;
	}
	fp = open_trusted(file, why, sizeof(why));
	if (fp == NULL) {
		st = fail(p, k, w, "cannot read '%s': %s", file, why);
		goto out;
	}
	if (getline(&line, &cap, fp) < 0 || gw_strtrim(line)[0] == '\0') {
		st = fail(p, k, w, "'%s' is empty", file);
		goto out;
	}
	*out = gw_xstrdup(gw_strtrim(line));
	st = GW_OK;
out:
	if (line != NULL) {
		explicit_bzero(line, cap);
		free(line);
	}
	if (fp != NULL)
		fclose(fp);
	return st;
}

/* Read a whole (PEM) file into *out (caller frees). */
static enum gw_status
read_whole(struct parse *p, const char *section, const char *key,
    const char *file, char **out)
{
	const struct key_def *k = find_key(section, key);
	struct gw_buf b = {0};
	char chunk[4096], why[96];
	size_t n;
	FILE *fp;

	GW_ASSERT(k != NULL);
	p->line = p->seen[k - keys];
	fp = open_trusted(file, why, sizeof(why));
	if (fp == NULL)
		return fail(p, k, p->line ? NULL : key, "cannot read '%s': %s",
		    file, why);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0 && b.len < 65536)
		gw_buf_append(&b, chunk, n);
	fclose(fp);
	if (b.len == 0) {
		gw_buf_fini(&b);
		return fail(p, k, p->line ? NULL : key, "'%s' is empty", file);
	}
	*out = b.p;
	return GW_OK;
}

static enum gw_status
load_secrets(struct parse *p)
{
	struct gw_cfg *cfg = p->cfg;
	const char *v;
	enum gw_status st;

	if ((v = getenv("LLMGW_MASTER_KEY")) != NULL && v[0] != '\0')
		cfg->master_key = gw_xstrdup(v);
	else if (cfg->master_key_file[0] != '\0' &&
	         (st = read_secret(p, "auth", "master_key_file",
	              cfg->master_key_file, &cfg->master_key)) != GW_OK)
		return st;
	if (cfg->upstream_api_key_file[0] != '\0' &&
	    (st = read_secret(p, "upstream", "api_key_file",
	         cfg->upstream_api_key_file, &cfg->upstream_api_key)) != GW_OK)
		return st;
	if (cfg->jwt_secret_file[0] != '\0' &&
	    (st = read_secret(p, "auth", "jwt_secret_file",
	         cfg->jwt_secret_file, &cfg->jwt_secret)) != GW_OK)
		return st;
	if (cfg->jwt_public_key_file[0] != '\0' &&
	    (st = read_whole(p, "auth", "jwt_public_key_file",
	         cfg->jwt_public_key_file, &cfg->jwt_public_key)) != GW_OK)
		return st;
	if ((v = getenv("LANGFUSE_SECRET_KEY")) != NULL && v[0] != '\0')
		cfg->langfuse_secret_key = gw_xstrdup(v);
	else if (cfg->langfuse_secret_key_file[0] != '\0' &&
	         (st = read_secret(p, "langfuse", "secret_key_file",
	              cfg->langfuse_secret_key_file,
	              &cfg->langfuse_secret_key)) != GW_OK)
		return st;
	return GW_OK;
}

/*
 * "10.0.0.0/8 ::1, 192.168.1.7" into nets: addresses with an optional
 * prefix length, IPv4 or IPv6, separated by spaces or commas. 0, or -1
 * with the bad word in bad.
 */
static int
parse_nets(const char *s, struct gw_net *nets, int *n, char *bad, size_t badlen)
{
	char word[128], *slash, *end;
	size_t len;
	long prefix;

	*n = 0;
	while (*s != '\0') {
		while (*s == ' ' || *s == ',' || *s == '\t')
			s++;
		len = strcspn(s, " ,\t");
		if (len == 0)
			break;
		snprintf(bad, badlen, "%.*s", (int)len, s);
		if (len >= sizeof(word) || *n >= GW_CFG_MAX_NETS)
			return -1;
		memcpy(word, s, len);
		word[len] = '\0';
		s += len;
		prefix = -1;
		if ((slash = strchr(word, '/')) != NULL) {
			*slash = '\0';
			prefix = strtol(slash + 1, &end, 10);
			if (slash[1] == '\0' || *end != '\0' || prefix < 0)
				return -1;
		}
		memset(&nets[*n], 0, sizeof(nets[*n]));
		if (inet_pton(AF_INET, word, nets[*n].addr) == 1) {
			nets[*n].v6 = 0;
			nets[*n].prefix = prefix < 0 ? 32 : (int)prefix;
			if (prefix > 32)
				return -1;
		} else if (inet_pton(AF_INET6, word, nets[*n].addr) == 1) {
			nets[*n].v6 = 1;
			nets[*n].prefix = prefix < 0 ? 128 : (int)prefix;
			if (prefix > 128)
				return -1;
		} else {
			return -1;
		}
		(*n)++;
	}
	return 0;
}

static int
count_char(const char *s, char c)
{
	int n = 0;

	for (; *s != '\0'; s++)
		n += *s == c;
	return n;
}

/*
 * The first path segments the gateway's own families serve: a passthrough
 * path may not shadow them (nor anything under /v1/, the OpenAI API the
 * gateway checks before relaying).
 */
static const char *const own_segments[] = {"v1", "chat", "completions",
    "models", "model", "model_group", "embeddings", "rerank", "reranking",
    "responses", "audio", "key", "user", "team", "global", "spend", "health",
    "metrics", "ui", "organization"};

/* Passthrough paths at most, and bytes of one. */
#define PASSTHRU_MAX 32
#define PASSTHRU_LEN 128

/*
 * [upstream] passthrough: a comma-separated list of paths, each "/" then
 * [A-Za-z0-9_.-/] without "//" or "..", none of the gateway's own; into
 * cfg->passthru (trailing slashes dropped, as the dispatcher drops them).
 */
static enum gw_status
parse_passthrough(struct parse *p)
{
	struct gw_cfg *cfg = p->cfg;
	char *copy = gw_xstrdup(cfg->upstream_passthrough), *tok, *save = NULL;
	enum gw_status st = GW_OK;
	size_t n, i, seg;

	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		tok = gw_strtrim(tok);
		n = strlen(tok);
		while (n > 1 && tok[n - 1] == '/')
			tok[--n] = '\0';
		if (n == 0)
			continue;
		if (tok[0] != '/' || n < 2 || n > PASSTHRU_LEN ||
		    strspn(tok,
		        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
		        "VWXYZ0123456789_.-/") != n ||
		    strstr(tok, "//") != NULL || strstr(tok, "..") != NULL) {
			st = fail(p, NULL, "[upstream] passthrough",
			    "'%s' must be a path: '/' then letters, digits, "
			    "'_' '.' '-' '/', at most %d bytes",
			    tok, PASSTHRU_LEN);
			goto out;
		}
		seg = strcspn(tok + 1, "/");
		for (i = 0; i < GW_ARRAY_LEN(own_segments); i++)
			if (strlen(own_segments[i]) == seg &&
			    strncmp(tok + 1, own_segments[i], seg) == 0) {
				st = fail(p, NULL, "[upstream] passthrough",
				    "'%s' is under /%s, which the gateway "
				    "serves itself",
				    tok, own_segments[i]);
				goto out;
			}
		if (cfg->npassthru == PASSTHRU_MAX) {
			st = fail(p, NULL, "[upstream] passthrough",
			    "at most %d paths", PASSTHRU_MAX);
			goto out;
		}
		if (gw_cfg_find_passthrough(cfg, tok) != NULL)
			continue;
		cfg->passthru = gw_xrealloc(cfg->passthru,
		    (cfg->npassthru + 1) * sizeof(*cfg->passthru));
		cfg->passthru[cfg->npassthru++] = gw_xstrdup(tok);
	}
out:
	free(copy);
	return st;
}

static enum gw_status
validate(struct parse *p)
{
	struct gw_cfg *cfg = p->cfg;
	const char *colon;
	char bad[128];

	if (strncmp(cfg->upstream_url, "http://", 7) != 0 &&
	    strncmp(cfg->upstream_url, "https://", 8) != 0)
		return fail(p, NULL, "[upstream] base_url",
		    "'%s' must start with http:// or https://",
		    cfg->upstream_url);
	if (cfg->upstream_health_path[0] != '/')
		return fail(p, NULL, "[upstream] health_path",
		    "'%s' must start with /", cfg->upstream_health_path);
	/* scheduler.h's GW_SCHEDULER_GROUPS_MAX, the default group aside. */
	if (count_char(cfg->sched_groups, ';') + 1 > 15)
		return fail(p, NULL, "[scheduler] groups",
		    "at most 15 groups (separated by ';')");
	if (parse_passthrough(p) != GW_OK)
		return GW_E_INVALID;
	colon = strrchr(cfg->listen, ':');
	if (colon == NULL || colon == cfg->listen || atoi(colon + 1) <= 0 ||
	    atoi(colon + 1) > 65535)
		return fail(p, NULL, "[gateway] listen",
		    "'%s' must be host:port", cfg->listen);
	if (parse_nets(cfg->rl_trusted_proxies, cfg->rl_trusted,
	        &cfg->rl_ntrusted, bad, sizeof(bad)) != 0)
		return fail(p, NULL, "[rate_limit] trusted_proxies",
		    "'%s' is not an address or address/prefix (at most %d)",
		    bad, GW_CFG_MAX_NETS);
	/* Langfuse's own rule for environments; a release is an attribute. */
	if (strlen(cfg->langfuse_environment) > 40 ||
	    strspn(cfg->langfuse_environment,
	        "abcdefghijklmnopqrstuvwxyz0123456789-_") !=
	        strlen(cfg->langfuse_environment) ||
	    strncmp(cfg->langfuse_environment, "langfuse", 8) == 0)
		return fail(p, NULL, "[langfuse] environment",
		    "'%s' must be at most 40 of a-z 0-9 - _, not starting "
		    "with 'langfuse'",
		    cfg->langfuse_environment);
	if (strlen(cfg->langfuse_release) > 200)
		return fail(
		    p, NULL, "[langfuse] release", "must be at most 200 bytes");
	if (cfg->langfuse_enabled == 0 && cfg->langfuse_public_key[0] != '\0' &&
	    getenv("LANGFUSE_PUBLIC_KEY") != NULL)
		cfg->langfuse_enabled = 1;
	return GW_OK;
}

enum gw_status
gw_cfg_load(const char *path, struct gw_cfg **out, char *err, size_t errlen)
{
	char why[96];
	FILE *fp = open_trusted(path, why, sizeof(why));
	enum gw_status st;

	if (fp == NULL) {
		*out = NULL;
		snprintf(err, errlen, "%s: cannot open: %s", path, why);
		return GW_E_INVALID;
	}
	st = gw_cfg_load_fp(fp, path, out, err, errlen);
	fclose(fp);
	return st;
}

enum gw_status
gw_cfg_load_fp(
    FILE *fp, const char *path, struct gw_cfg **out, char *err, size_t errlen)
{
	struct parse p = {0};
	struct gw_cfg *cfg = gw_xcalloc(1, sizeof(*cfg));
	char *line = NULL, section[64] = "", *slash;
	size_t cap = 0, i;
	enum gw_status st = GW_OK;

	*out = NULL;
	cfg->refs = 1;
	cfg->path = gw_xstrdup(path);
	p.cfg = cfg;
	p.path = path;
	p.err = err;
	p.errlen = errlen;
	p.dir = gw_xstrdup(path);
	slash = strrchr(p.dir, '/');
	if (slash != NULL)
		*slash = '\0';
	else {
		free(p.dir);
		p.dir = NULL;
	}
	for (i = 0; i < GW_ARRAY_LEN(keys) && st == GW_OK; i++)
		st = set_value(&p, &keys[i], keys[i].def, "default");
	GW_ASSERT(st == GW_OK);

	while (getline(&line, &cap, fp) >= 0) {
		p.line++;
		if ((st = parse_line(&p, line, section, sizeof(section))) !=
		    GW_OK)
			goto out;
	}
	if ((st = apply_env(&p)) != GW_OK)
		goto out;
	if ((st = validate(&p)) != GW_OK)
		goto out;
	st = load_secrets(&p);
out:
	free(line);
	free(p.dir);
	if (st != GW_OK) {
		gw_cfg_unref(cfg);
	} else {
		cfg->gen = __atomic_add_fetch(&loads, 1, __ATOMIC_RELAXED);
		*out = cfg;
	}
	return st;
}

struct gw_cfg *
gw_cfg_ref(struct gw_cfg *cfg)
{
	if (cfg != NULL)
		__atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
	return cfg;
}

static void
free_secret(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
gw_cfg_unref(struct gw_cfg *cfg)
{
	size_t i, j;

	if (cfg == NULL || __atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL))
		return;
	for (i = 0; i < GW_ARRAY_LEN(keys); i++)
		if (keys[i].type == CT_STR || keys[i].type == CT_PATH)
			free(*str_field(cfg, &keys[i]));
	for (i = 0; i < cfg->naliases; i++) {
		for (j = 0; j < cfg->aliases[i].ntargets; j++)
			free(cfg->aliases[i].targets[j]);
		free(cfg->aliases[i].targets);
		free(cfg->aliases[i].name);
	}
	free(cfg->aliases);
	for (i = 0; i < cfg->nprices; i++)
		free(cfg->prices[i].model);
	free(cfg->prices);
	for (i = 0; i < cfg->npassthru; i++)
		free(cfg->passthru[i]);
	free(cfg->passthru);
	free_secret(cfg->master_key);
	free_secret(cfg->upstream_api_key);
	free_secret(cfg->langfuse_secret_key);
	free_secret(cfg->jwt_secret);
	free(cfg->jwt_public_key);
	free(cfg->path);
	free(cfg);
}

/* 1 when k has the same value in a and b. */
static int
same_value(
    const struct gw_cfg *a, const struct gw_cfg *b, const struct key_def *k)
{
	const void *pa = cfield(a, k), *pb = cfield(b, k);

	switch (k->type) {
	case CT_STR:
	case CT_PATH:
		return strcmp(*(char *const *)pa, *(char *const *)pb) == 0;
	case CT_LONG:
		return *(const long *)pa == *(const long *)pb;
	case CT_INT:
	case CT_BOOL:
	case CT_ENUM:
		break;
	}
	return *(const int *)pa == *(const int *)pb;
}

int
gw_cfg_reload_report(const struct gw_cfg *old, const struct gw_cfg *cfg)
{
	size_t i;
	int n = 0;

	for (i = 0; i < GW_ARRAY_LEN(keys); i++) {
		if (!(keys[i].flags & CF_RESTART) ||
		    same_value(old, cfg, &keys[i]))
			continue;
		gw_log_warn(NULL, "config",
		    "reload: [%s] %s changed; takes effect after a restart",
		    keys[i].section, keys[i].key);
		n++;
	}
	return n;
}

const struct gw_alias *
gw_cfg_find_alias(const struct gw_cfg *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->naliases; i++)
		if (!strcmp(cfg->aliases[i].name, name))
			return &cfg->aliases[i];
	return NULL;
}

const struct gw_price *
gw_cfg_find_price(const struct gw_cfg *cfg, const char *model)
{
	size_t i;

	for (i = 0; i < cfg->nprices; i++)
		if (!strcmp(cfg->prices[i].model, model))
			return &cfg->prices[i];
	return NULL;
}

const char *
gw_cfg_find_passthrough(const struct gw_cfg *cfg, const char *path)
{
	size_t i;

	for (i = 0; i < cfg->npassthru; i++)
		if (!strcmp(cfg->passthru[i], path))
			return cfg->passthru[i];
	return NULL;
}

enum gw_status
gw_cfg_print_value(const struct gw_cfg *cfg, const char *name, FILE *fp)
{
	const struct key_def *k;
	const struct enum_map *m;
	char section[64];
	const char *dot = strchr(name, '.');
	int v;

	if (dot == NULL || (size_t)(dot - name) >= sizeof(section))
		return GW_E_NOTFOUND;
	memcpy(section, name, (size_t)(dot - name));
	section[dot - name] = '\0';
	if ((k = find_key(section, dot + 1)) == NULL)
		return GW_E_NOTFOUND;
	switch (k->type) {
	case CT_STR:
	case CT_PATH:
		fprintf(fp, "%s\n", *(char *const *)cfield(cfg, k));
		break;
	case CT_INT:
	case CT_BOOL:
		fprintf(fp, "%d\n", *(const int *)cfield(cfg, k));
		break;
	case CT_LONG:
		fprintf(fp, "%ld\n", *(const long *)cfield(cfg, k));
		break;
	case CT_ENUM:
		v = *(const int *)cfield(cfg, k);
		for (m = k->map; m->name != NULL; m++)
			if (m->value == v) {
				fprintf(fp, "%s\n", m->name);
				break;
			}
		break;
	}
	return GW_OK;
}
