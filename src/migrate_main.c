/*
 * llmgw-migrate: apply migrations/NNN_name.sql in order and record each in
 * schema_migrations. A second run is a no-op; a failing migration stops the
 * run with its name and the PostgreSQL error, earlier ones stay applied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	                "       llmgw-migrate -h | --help\n");
}

static void
help(void)
{
	printf(
	    "llmgw-migrate %s: apply the llmgw database migrations\n"
	    "\n"
	    "usage: llmgw-migrate [-c config | -d conninfo] "
	    "[-m migrations_dir] [-s]\n"
	    "\n"
	    "Applies migrations_dir/NNN_name.sql in order, each in its own "
	    "transaction,\nand records it in schema_migrations. Runs under "
	    "a PostgreSQL advisory lock:\nseveral hosts may run it at once, "
	    "each migration is applied once. A second\nrun is a no-op; a "
	    "failing migration stops the run with its name and the\n"
	    "PostgreSQL error, the earlier ones stay applied. Prints one "
	    "line per\nmigration applied and \"N migration(s) applied\".\n"
	    "\n"
	    "Options:\n"
	    "  -c FILE  the configuration whose [database] conninfo is used\n"
	    "           (default $LLMGW_CONFIG, else /etc/llmgw/llmgw.conf)\n"
	    "  -d STR   a libpq connection string instead of the "
	    "configuration's\n"
	    "  -m DIR   the migrations (default ./migrations; the package "
	    "installs\n           /usr/share/llmgw/migrations)\n"
	    "  -s       list applied and pending migrations, apply nothing\n"
	    "  -h, --help  this text\n"
	    "\n"
	    "Files:\n"
	    "  /etc/llmgw/llmgw.conf, /usr/share/llmgw/migrations/\n"
	    "\n"
	    "Environment:\n"
	    "  LLMGW_CONFIG   the configuration file\n"
	    "  PGPASSWORD, PGSSLMODE, ...  libpq's, for what conninfo "
	    "leaves out\n"
	    "\n"
	    "Exit status:\n"
	    "  0  every migration is applied (or -s listed them); -h\n"
	    "  1  bad configuration, no connection, or a migration failed\n"
	    "  2  bad usage\n",
	    GW_VERSION);
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

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		help();
		return 0;
	}
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
		case 'h':
			help();
			return 0;
		default:
			usage();
			return 2;
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
