/*
 * llmgw-migrate: apply migrations/NNN_name.sql in order and record each in
 * schema_migrations. A second run is a no-op; a failing migration stops the
 * run with its name and the PostgreSQL error, earlier ones stay applied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "migrate.h"

static void
usage(void)
{
	fprintf(stderr, "usage: llmgw-migrate [-c config | -d conninfo] "
	                "[-m migrations_dir] [-s]\n"
	                "  -s  show applied and pending migrations only\n");
}

int
main(int argc, char **argv)
{
	const char *path = getenv("LLMGW_CONFIG"), *conninfo = NULL;
	const char *dir = "migrations";
	struct gw_cfg *cfg = NULL;
	struct gw_db *db = NULL;
	char err[2048];
	int opt, status_only = 0, applied = 0, rc = 1;
	enum gw_status st;

	while ((opt = getopt(argc, argv, "c:d:m:sh")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			conninfo = optarg;
			break;
		case 'm':
			dir = optarg;
			break;
		case 's':
			status_only = 1;
			break;
		default:
			usage();
			return opt == 'h' ? 0 : 2;
		}
	}
	gw_log_init("migrate", GW_LOG_WARN, NULL);
	if (conninfo == NULL) {
		if (path == NULL)
			path = "/etc/llmgw/llmgw.conf";
		if (gw_cfg_load(path, &cfg, err, sizeof(err)) != GW_OK) {
			fprintf(stderr,
			    "llmgw-migrate: configuration error: "
			    "%s\n",
			    err);
			return 1;
		}
		conninfo = cfg->db_conninfo;
	}
	db = gw_db_new(conninfo, 5, 0);
	if (gw_db_ensure(db, err, sizeof(err)) != GW_OK) {
		fprintf(stderr, "llmgw-migrate: cannot connect: %s\n", err);
		goto out;
	}
	if (status_only)
		st = gw_migrate_status(db, dir, stdout, err, sizeof(err));
	else
		st = gw_migrate_apply(
		    db, dir, stdout, &applied, err, sizeof(err));
	if (st != GW_OK) {
		fprintf(stderr, "llmgw-migrate: %s\n", err);
		goto out;
	}
	if (!status_only)
		printf("%d migration(s) applied\n", applied);
	rc = 0;
out:
	gw_db_free(db);
	gw_cfg_unref(cfg);
	return rc;
}
