/* migrate.c: the migration runner behind bin/llmgw-migrate. */
#include "migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "util.h"

/* Arbitrary, fixed: the advisory lock key every llmgw host agrees on. */
#define MIGRATE_LOCK "7412902"

struct mig {
	long version;
	char *name; /* file name without .sql */
	char *path;
};

static void
migs_free(struct mig *m, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(m[i].name);
		free(m[i].path);
	}
	free(m);
}

static int
mig_cmp(const void *a, const void *b)
{
	const struct mig *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

/* NNN_name.sql with NNN digits and name in [a-z0-9_]. */
static int
valid_name(const char *f, long *version)
{
	const char *p = f;
	size_t len = strlen(f);

	if (len < 6 || strcmp(f + len - 4, ".sql") != 0)
		return 0;
	while (isdigit((unsigned char)*p))
		p++;
	if (p == f || *p != '_')
		return 0;
	*version = strtol(f, NULL, 10);
	for (p++; p < f + len - 4; p++)
		if (!(islower((unsigned char)*p) ||
		        isdigit((unsigned char)*p) || *p == '_'))
			return 0;
	return 1;
}

static enum gw_status
list_dir(const char *dir, struct mig **out, size_t *n, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct mig *m = NULL;
	size_t cnt = 0, i;
	long v;

	*out = NULL;
	*n = 0;
	if (d == NULL) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return GW_E_INVALID;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || !valid_name(e->d_name, &v))
			continue;
		m = gw_xrealloc(m, (cnt + 1) * sizeof(*m));
		m[cnt].version = v;
		m[cnt].name = gw_xstrndup(e->d_name, strlen(e->d_name) - 4);
		m[cnt].path = gw_xasprintf("%s/%s", dir, e->d_name);
		cnt++;
	}
	closedir(d);
	qsort(m, cnt, sizeof(*m), mig_cmp);
	for (i = 1; i < cnt; i++) {
		if (m[i].version == m[i - 1].version) {
			snprintf(err, errlen, "%s and %s share version %ld",
			    m[i - 1].name, m[i].name, m[i].version);
			migs_free(m, cnt);
			return GW_E_INVALID;
		}
	}
	*out = m;
	*n = cnt;
	return GW_OK;
}

static char *
read_file(const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");
	struct gw_buf b = {0};
	char chunk[8192];
	size_t n;

	if (fp == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		gw_buf_append(&b, chunk, n);
	fclose(fp);
	if (b.p == NULL)
		gw_buf_append(&b, "", 0);
	return b.p;
}

static const char create_table[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL UNIQUE,"
    " checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

/* The recorded checksum of version v, or NULL when not applied. */
static const char *
recorded(const struct gw_db_rows *rows, long v)
{
	int i, n = gw_db_rows_count(rows);

	for (i = 0; i < n; i++)
		if (atol(gw_db_rows_get(rows, i, 0)) == v)
			return gw_db_rows_get(rows, i, 2);
	return NULL;
}

static enum gw_status
apply_one(struct gw_db *db, const struct mig *m, const char *sql, char *err,
    size_t errlen)
{
	char ver[32], pgerr[1024] = "";
	const char *params[3] = {ver, m->name, sql};

	snprintf(ver, sizeof(ver), "%ld", m->version);
	if (gw_db_begin(db, pgerr, sizeof(pgerr)) != GW_OK ||
	    gw_db_exec_script(db, sql, pgerr, sizeof(pgerr)) != GW_OK ||
	    gw_db_exec(db,
	        "INSERT INTO schema_migrations (version, name, checksum) "
	        "VALUES ($1::integer, $2, md5($3))",
	        3, params, 0, NULL, pgerr, sizeof(pgerr)) != GW_OK ||
	    gw_db_commit(db, pgerr, sizeof(pgerr)) != GW_OK) {
		snprintf(err, errlen, "%s.sql: %s", m->name, pgerr);
		gw_db_rollback(db);
		return GW_E_DB;
	}
	return GW_OK;
}

/* Same text as when applied? Compared by md5 computed by the server. */
static int
checksum_matches(struct gw_db *db, const char *sql, const char *sum)
{
	struct gw_db_rows *rows = NULL;
	const char *params[2] = {sql, sum};
	int same = 1;

	if (gw_db_exec(db, "SELECT md5($1) = $2", 2, params, 0, &rows, NULL,
	        0) == GW_OK)
		same = strcmp(gw_db_rows_get(rows, 0, 0), "t") == 0;
	gw_db_rows_free(rows);
	return same;
}

static enum gw_status
run(struct gw_db *db, const char *dir, FILE *out, int apply, int *applied,
    char *err, size_t errlen)
{
	struct mig *m = NULL;
	struct gw_db_rows *rows = NULL;
	size_t n = 0, i;
	char *sql = NULL;
	const char *sum;
	enum gw_status st;
	int locked = 0;

	*applied = 0;
	if ((st = list_dir(dir, &m, &n, err, errlen)) != GW_OK)
		goto out;
	if ((st = gw_db_exec(db, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", 0,
	         NULL, 0, NULL, err, errlen)) != GW_OK)
		goto out;
	locked = 1;
	if ((st = gw_db_exec(
	         db, create_table, 0, NULL, 0, NULL, err, errlen)) != GW_OK)
		goto out;
	if ((st = gw_db_exec(db,
	         "SELECT version, name, checksum FROM schema_migrations", 0,
	         NULL, 0, &rows, err, errlen)) != GW_OK)
		goto out;
	for (i = 0; i < n; i++) {
		free(sql);
		if ((sql = read_file(m[i].path, err, errlen)) == NULL) {
			st = GW_E_INVALID;
			goto out;
		}
		sum = recorded(rows, m[i].version);
		if (sum != NULL) {
			if (!checksum_matches(db, sql, sum) && out != NULL)
				fprintf(out,
				    "warning: %s.sql changed after it "
				    "was applied\n",
				    m[i].name);
			if (!apply && out != NULL)
				fprintf(out, "applied  %s\n", m[i].name);
			continue;
		}
		if (!apply) {
			if (out != NULL)
				fprintf(out, "pending  %s\n", m[i].name);
			continue;
		}
		if ((st = apply_one(db, &m[i], sql, err, errlen)) != GW_OK)
			goto out;
		(*applied)++;
		if (out != NULL)
			fprintf(out, "applied %s\n", m[i].name);
	}
	st = GW_OK;
out:
	if (locked)
		gw_db_exec(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")", 0,
		    NULL, 0, NULL, NULL, 0);
	gw_db_rows_free(rows);
	free(sql);
	migs_free(m, n);
	return st;
}

enum gw_status
gw_migrate_apply(struct gw_db *db, const char *dir, FILE *out, int *applied,
    char *err, size_t errlen)
{
	return run(db, dir, out, 1, applied, err, errlen);
}

enum gw_status
gw_migrate_status(
    struct gw_db *db, const char *dir, FILE *out, char *err, size_t errlen)
{
	int dummy;

	return run(db, dir, out, 0, &dummy, err, errlen);
}
