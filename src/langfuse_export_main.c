/*
 * llmgw-langfuse-export: ship recorded requests to Langfuse, once each.
 * Run by cron every minute (deploy/cron/llmgw). Prints one summary line;
 * exits 1 when something could not be sent, so cron mails the operator.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "http_upstream.h"
#include "langfuse.h"
#include "log.h"

static void
help(void)
{
	printf(
	    "llmgw-langfuse-export %s: ship recorded requests to Langfuse\n"
	    "\n"
	    "usage: llmgw-langfuse-export [-c config] [-q]\n"
	    "\n"
	    "Sends the requests recorded in PostgreSQL that are not exported "
	    "yet to\nLangfuse ([langfuse] format = otel | legacy), each once, "
	    "in batches of\n[langfuse] batch_size, and prunes recorded "
	    "payloads older than\nretention_days. A PostgreSQL advisory lock "
	    "makes an overlapping run a\nno-op. Prints one summary line "
	    "(sent, failed, pruned, lag_s). Run by cron\nevery minute "
	    "(/etc/cron.d/llmgw).\n"
	    "\n"
	    "Options:\n"
	    "  -c FILE  the configuration (default $LLMGW_CONFIG, else "
	    "/etc/llmgw/llmgw.conf)\n"
	    "  -q       print nothing when export is disabled or nothing "
	    "was sent\n"
	    "  -h, --help  this text\n"
	    "\n"
	    "Files:\n"
	    "  /etc/llmgw/llmgw.conf   [langfuse] and [database]\n"
	    "  [langfuse] secret_key_file  the secret key, first line\n"
	    "\n"
	    "Environment:\n"
	    "  LLMGW_CONFIG   the configuration file\n"
	    "  LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY  "
	    "override\n                 [langfuse] host, public_key, "
	    "secret_key_file\n"
	    "\n"
	    "Exit status:\n"
	    "  0  everything due was sent, or export is disabled; -h\n"
	    "  1  something could not be sent (cron mails the operator), or "
	    "bad\n     configuration, or no database\n"
	    "  2  bad usage\n",
	    GW_VERSION);
}

int
main(int argc, char **argv)
{
	const char *path = getenv("LLMGW_CONFIG");
	struct gw_cfg *cfg = NULL;
	struct gw_db *db = NULL;
	struct gw_upstream *up = NULL;
	struct gw_lf_stats st;
	char err[1024];
	int opt, quiet = 0, rc = 1;
	enum gw_status s;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		help();
		return 0;
	}
	while ((opt = getopt(argc, argv, "c:qh")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			help();
			return 0;
		default:
			fprintf(stderr,
			    "usage: llmgw-langfuse-export [-c config] [-q]\n"
			    "       llmgw-langfuse-export -h | --help\n");
			return 2;
		}
	}
	if (path == NULL)
		path = "/etc/llmgw/llmgw.conf";
	gw_log_init("langfuse-export", GW_LOG_WARN, NULL);
	if (gw_cfg_load(path, &cfg, err, sizeof(err)) != GW_OK) {
		fprintf(stderr,
		    "llmgw-langfuse-export: configuration error: "
		    "%s\n",
		    err);
		return 1;
	}
	if (!cfg->langfuse_enabled) {
		if (!quiet)
			printf(
			    "langfuse-export: disabled ([langfuse] enabled = "
			    "off and no LANGFUSE_PUBLIC_KEY)\n");
		rc = 0;
		goto out;
	}
	if (cfg->langfuse_public_key[0] == '\0' ||
	    cfg->langfuse_secret_key == NULL) {
		fprintf(stderr, "llmgw-langfuse-export: set [langfuse] "
		                "public_key and secret_key_file (or "
		                "LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY)\n");
		goto out;
	}
	if (gw_upstream_global_init() != GW_OK)
		goto out;
	db = gw_db_new(cfg->db_conninfo, 5, 60000);
	up = gw_upstream_new();
	s = gw_lf_export(cfg, db, up, stderr, &st);
	if (st.locked_out) {
		printf("langfuse-export: another run holds the lock; nothing "
		       "done\n");
		rc = 0;
		goto out;
	}
	printf("langfuse-export: sent=%lld failed=%lld pruned=%lld "
	       "lag_s=%.1f format=%s%s\n",
	    (long long)st.sent, (long long)st.failed, (long long)st.pruned,
	    st.lag_s,
	    cfg->langfuse_format == GW_LANGFUSE_OTEL ? "otel" : "legacy",
	    s == GW_E_DB          ? " error=database"
	    : st.transport_failed ? " error=langfuse-unreachable"
	                          : "");
	rc = s == GW_OK && st.failed == 0 ? 0 : 1;
out:
	gw_upstream_free(up);
	gw_db_free(db);
	gw_cfg_unref(cfg);
	return rc;
}
