/*
 * config.h: llmgw.conf, an INI file with sections [gateway] [database]
 * [upstream] [auth] [rate_limit] [langfuse] [log] [aliases] [prices].
 * Parsed and validated once per process (and again on SIGHUP); never per
 * request. Every setting may be overridden from the environment as
 * LLMGW_<SECTION>_<KEY> (e.g. LLMGW_UPSTREAM_BASE_URL); LLMGW_MASTER_KEY
 * and the LANGFUSE_* variables are honoured as well.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

/* An alias: requests for name go to targets[0], then fallbacks in order. */
struct gw_alias {
	char *name;
	char **targets;
	size_t ntargets;
};

/*
 * Price of one actual model in USD per 1M tokens, and the optional units
 * of the calls not counted in tokens (LiteLLM's model_prices names; a
 * negative value: not set).
 */
struct gw_price {
	char *model;
	double input_per_m;
	double output_per_m;
	double per_second;    /* input_cost_per_second: audio transcribed */
	double per_character; /* input_cost_per_character: text spoken */
	/*
	 * input_cost_per_request (input_cost_per_query, rerank's name): added
	 * to a call's token cost; an audio call's cost when no unit applies.
	 */
	double per_request;
};

enum gw_langfuse_format { GW_LANGFUSE_OTEL = 0, GW_LANGFUSE_LEGACY };
enum gw_langfuse_record {
	GW_LANGFUSE_RECORD_FULL = 0,
	GW_LANGFUSE_RECORD_REDACTED,
	GW_LANGFUSE_RECORD_NONE,
};

/* A plain value struct: fields are read directly. */
/* An address and prefix length ([rate_limit] trusted_proxies). */
#define GW_CFG_MAX_NETS 32
struct gw_net {
	unsigned char addr[16]; /* network byte order; IPv4 in the first 4 */
	int v6;
	int prefix;
};

struct gw_cfg {
	char *path; /* the file this was loaded from */
	/* [gateway] */
	char *listen;  /* host:port lighttpd listens on */
	int processes; /* worker processes per route family */
	int threads;   /* FastCGI threads per process */
	long max_body_bytes;
	long max_audio_bytes;   /* an audio upload's body (multipart) */
	int max_json_values;    /* values a request body may hold */
	int max_metadata_bytes; /* a request's "metadata", as JSON */
	int shutdown_timeout_s;
	int access_log;
	int thread_stack_kb;
	char *shm_path; /* host-wide rate limits and metrics */
	/* [database] */
	char *db_conninfo;
	int db_connect_timeout_s;
	int db_statement_timeout_ms;
	/* [upstream] */
	char *upstream_url;
	char *upstream_health_path;
	char *upstream_api_key_file;
	char *upstream_api_key; /* loaded from the file, or NULL */
	int upstream_connect_timeout_ms;
	int upstream_first_byte_timeout_s;
	int upstream_idle_timeout_s;
	int upstream_health_timeout_ms;
	int upstream_retries;
	int upstream_models_cache_s;
	int stream_keepalive_s;
	/*
	 * "/infill, /tokenize": more upstream paths relayed as they are by
	 * the chat family (passthrough.*), parsed at load into passthru.
	 */
	char *upstream_passthrough;
	char **passthru;
	size_t npassthru;
	/* [auth] */
	char *master_key_file;
	char *master_key; /* the secret itself; LLMGW_MASTER_KEY wins */
	int key_cache_ttl_s;
	char *jwt_secret_file; /* HS256/384/512 shared secret */
	char *jwt_secret;
	char *jwt_public_key_file; /* PEM for RS256/ES256 */
	char *jwt_public_key;
	char *jwt_issuer;   /* checked when non-empty */
	char *jwt_audience; /* checked when non-empty */
	char *jwt_user_id_claim;
	char *jwt_team_id_claim;
	char *jwt_models_claim;
	char *jwt_role_claim;
	char *jwt_admin_role;
	int jwt_leeway_s;
	int jwt_require_exp; /* refuse JWTs without exp */
	/* [rate_limit] */
	int rate_limit_rps; /* per client source */
	int rate_limit_burst;
	int rl_host_rps; /* every client of the host together; 0: off */
	int rl_host_burst;
	int rl_clients; /* slots of the per-client table */
	int rl_auth_fail_per_min;
	int rl_auth_fail_burst;
	/* Key, user and team limits held across hosts (rlshare.h). */
	int rl_shared;
	int rl_shared_hosts;       /* hosts expected: slices are 1/(2 hosts) */
	int rl_shared_slice_max;   /* requests per slice at most */
	int rl_shared_sync_ms;     /* tokens are sent at least this often */
	int rl_shared_lease_ttl_s; /* a silent host's parallel slots expire */
	char *rl_trusted_proxies;
	struct gw_net rl_trusted[GW_CFG_MAX_NETS]; /* parsed from the above */
	int rl_ntrusted;
	/* [scheduler] (scheduler.h) */
	int sched_enabled;
	int sched_concurrency; /* in flight per model; 0: no cap */
	char *sched_groups;    /* "a, b; c": swap groups */
	int sched_max_wait_s;
	int sched_min_loaded_s;
	int sched_queue_max;      /* waiting requests per group and host */
	char *sched_running_path; /* llama-swap's /running, or "" */
	/* [langfuse] */
	int langfuse_enabled;
	char *langfuse_host;
	char *langfuse_public_key;
	char *langfuse_secret_key_file;
	char *langfuse_secret_key;
	int langfuse_format; /* enum gw_langfuse_format */
	int langfuse_record; /* enum gw_langfuse_record */
	int langfuse_batch_size;
	int langfuse_retention_days;
	char *langfuse_environment; /* "" or Langfuse's [a-z0-9_-]{1,40} */
	char *langfuse_release;     /* "" or up to 200 bytes */
	/* [spend] */
	char *spool_dir;
	int spend_flush_ms;
	int spend_batch_rows;
	int budget_refresh_ms;
	int budget_reset_check_s;
	int spend_logs_max_limit;
	/* [log] */
	int log_level; /* enum gw_log_level */
	char *log_file;
	int log_prompts;
	/* [aliases] and [prices] */
	struct gw_alias *aliases;
	size_t naliases;
	struct gw_price *prices;
	size_t nprices;

	int refs;     /* see gw_cfg_ref */
	unsigned gen; /* load order in this process: higher is newer */
};

/*
 * Load and validate path. On success *out is a new config with one
 * reference (release with gw_cfg_unref). On failure *out is NULL and err
 * holds "FILE:LINE: [section] key: reason".
 */
enum gw_status gw_cfg_load(const char *path, struct gw_cfg **out, char *err,
    size_t errlen) GW_NONNULL(1, 2, 3);
/*
 * The same from an open stream (a file, fmemopen, a pipe), read to its
 * end and left open: path is only its name, for messages and cfg->path,
 * and relative *_file names are looked up beside it.
 */
enum gw_status gw_cfg_load_fp(FILE *fp, const char *path, struct gw_cfg **out,
    char *err, size_t errlen) GW_NONNULL(1, 2, 3, 4);
/*
 * After a reload from old to cfg: log at warn, one line per setting, each
 * setting read only at start ([gateway] threads, [spend] spool_dir, ...)
 * whose value differs: "reload: [section] key changed; takes effect after
 * a restart". Returns how many there were.
 */
int gw_cfg_reload_report(const struct gw_cfg *old, const struct gw_cfg *cfg)
    GW_NONNULL(1, 2);
/* Take / drop a reference; the last unref frees. Both NULL-safe. */
struct gw_cfg *gw_cfg_ref(struct gw_cfg *cfg);
void gw_cfg_unref(struct gw_cfg *cfg);

/* Borrowed alias for name, or NULL when the name passes through. */
const struct gw_alias *gw_cfg_find_alias(
    const struct gw_cfg *cfg, const char *name) GW_NONNULL(1, 2);
/* Borrowed price for an actual model, or NULL (cost 0). */
const struct gw_price *gw_cfg_find_price(
    const struct gw_cfg *cfg, const char *model) GW_NONNULL(1, 2);
/*
 * The [upstream] passthrough entry equal to path (borrowed; it lives as
 * long as cfg), or NULL when path is not listed.
 */
const char *gw_cfg_find_passthrough(const struct gw_cfg *cfg, const char *path)
    GW_NONNULL(1, 2);

/*
 * Print the effective value of "section.key" (secrets print as "(set)")
 * followed by a newline. GW_E_NOTFOUND for an unknown name.
 */
enum gw_status gw_cfg_print_value(
    const struct gw_cfg *cfg, const char *name, FILE *fp) GW_NONNULL(1, 2, 3);

#endif /* GW_CONFIG_H */
