/*
 * Unit tests for lib/shipper.c: batches shipped from a spool file, a row
 * PostgreSQL refuses as data found by shipping its batch row by row and
 * kept aside, a database that is down leaving the spool where it was.
 * The database is fake_db.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_db.h"
#include "log.h"
#include "shipper.h"
#include "spool.h"

/* The request_id of spend row i the fake database took. */
static const char *
shipped(int i)
{
	static char id[64];
	json_object *o = json_tokener_parse(fake.rows[i]), *v;

	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "request_id", &v));
	snprintf(id, sizeof(id), "%s", json_object_get_string(v));
	json_object_put(o);
	return id;
}

static char top[200], logpath[300];

static int
setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	char dir[300];

	(void)state;
	snprintf(top, sizeof(top), "%s/llmgw-test-shipper-XXXXXX",
	    tmp != NULL && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(top) == NULL)
		return -1;
	snprintf(dir, sizeof(dir), "%s/spool", top);
	snprintf(logpath, sizeof(logpath), "%s/log", top);
	return gw_spool_init(dir) == GW_OK ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	return system(cmd) == 0 ? 0 : -1;
}

/* A spool file holding content, open for reading and appending. */
static int
spool_of(const char *content)
{
	char path[300];
	int fd;

	snprintf(path, sizeof(path), "%s/file-XXXXXX", top);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), strlen(content));
	return fd;
}

/* The whole of a file under top ("" when missing). */
static char *
slurp(const char *name)
{
	static char buf[8192];
	char path[400];
	FILE *fp;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/%s", top, name);
	buf[0] = '\0';
	if ((fp = fopen(path, "r")) != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, fp);
		fclose(fp);
	}
	buf[n] = '\0';
	return buf;
}

/* Log lines go to a fresh file (fd 2) until capture_end. */
static int saved_fd = -1;

static void
capture_begin(void)
{
	unlink(logpath);
	saved_fd = dup(2);
	assert_int_equal(gw_log_init("unit", GW_LOG_WARN, logpath), 0);
}

static const char *
capture_end(void)
{
	dup2(saved_fd, 2);
	close(saved_fd);
	gw_log_init("unit", GW_LOG_ERR, NULL);
	return slurp("log");
}

static void
test_batches(void **state)
{
	struct gw_db *db = gw_db_new("", 0, 0);
	const char *five =
	    "{\"request_id\":\"r1\"}\n{\"request_id\":\"r2\"}\n\n"
	    "{\"request_id\":\"r3\"}\n{\"request_id\":\"r4\"}\n"
	    "{\"request_id\":\"r5\"}\n";
	int fd = spool_of(five);
	uint64_t off = 0;

	(void)state;
	fake_db_reset();
	/* At most max_rows rows per statement; empty lines are skipped. */
	assert_int_equal(gw_shipper_ship(db, fd, &off, 2), 2);
	assert_int_equal(off, 40);
	assert_int_equal(gw_shipper_ship(db, fd, &off, 2), 2);
	assert_int_equal(gw_shipper_ship(db, fd, &off, 2), 1);
	assert_int_equal(off, strlen(five));
	assert_int_equal(fake.execs, 3);
	assert_int_equal(fake.nrows, 5);
	assert_string_equal(shipped(4), "r5");
	/* Nothing more: no statement. */
	assert_int_equal(gw_shipper_ship(db, fd, &off, 2), 0);
	assert_int_equal(fake.execs, 3);
	close(fd);
	gw_db_free(db);
}

static void
test_refused_row_kept_aside(void **state)
{
	struct gw_db *db = gw_db_new("", 0, 0);
	const char *lines = "{\"request_id\":\"a\"}\n{\"request_id\":\"b\"}\n"
	                    "{\"request_id\":\"bad1\",\"bad\":1}\n"
	                    "{\"request_id\":\"c\"}\n";
	int fd = spool_of(lines);
	uint64_t off = 0;
	char log[8192];
	int n;

	(void)state;
	fake_db_reset();
	/* The batch of four is refused; row by row, three ship. */
	capture_begin();
	n = gw_shipper_ship(db, fd, &off, 500);
	snprintf(log, sizeof(log), "%s", capture_end());
	assert_int_equal(n, 4);
	assert_int_equal(off, strlen(lines));
	assert_int_equal(fake.execs, 1 + 4);
	assert_int_equal(fake.nrows, 3);
	assert_string_equal(shipped(0), "a");
	assert_string_equal(shipped(1), "b");
	assert_string_equal(shipped(2), "c");
	assert_string_equal(slurp("spool/rejected.jsonl"),
	    "{\"request_id\":\"bad1\",\"bad\":1}\n");
	/* Logged without the row data PostgreSQL's CONTEXT quotes. */
	assert_non_null(strstr(log, "refused a spooled row"));
	assert_non_null(strstr(log, "(SQLSTATE 22P02)"));
	assert_null(strstr(log, "secret-row-data"));
	close(fd);
	gw_db_free(db);
}

static void
test_all_refused(void **state)
{
	struct gw_db *db = gw_db_new("", 0, 0);
	const char *lines = "{\"request_id\":\"x\",\"bad\":1}\n"
	                    "{\"request_id\":\"y\",\"bad\":1}\n";
	int fd = spool_of(lines);
	uint64_t off = 0;

	(void)state;
	fake_db_reset();
	assert_int_equal(gw_shipper_ship(db, fd, &off, 500), 2);
	assert_int_equal(off, strlen(lines));
	assert_int_equal(fake.nrows, 0);
	assert_non_null(
	    strstr(slurp("spool/rejected.jsonl"), "\"x\",\"bad\":1}\n{"));
	close(fd);
	gw_db_free(db);
}

static void
test_down_keeps_the_spool(void **state)
{
	struct gw_db *db = gw_db_new("", 0, 0);
	int fd = spool_of("{\"request_id\":\"p\"}\n{\"request_id\":\"q\"");
	uint64_t off = 0;
	int n;

	(void)state;
	fake_db_reset();
	fake.down = 1;
	capture_begin();
	n = gw_shipper_ship(db, fd, &off, 500);
	assert_non_null(strstr(capture_end(), "will retry"));
	assert_int_equal(n, -1);
	assert_int_equal(off, 0);
	fake.down = 0;
	/* Back: the complete line ships, the one being written waits. */
	assert_int_equal(gw_shipper_ship(db, fd, &off, 500), 1);
	assert_int_equal(off, strlen("{\"request_id\":\"p\"}\n"));
	assert_int_equal(gw_shipper_ship(db, fd, &off, 500), 0);
	assert_int_equal(write(fd, "}\n", 2), 2);
	assert_int_equal(gw_shipper_ship(db, fd, &off, 500), 1);
	assert_int_equal(fake.nrows, 2);
	assert_string_equal(shipped(1), "q");
	close(fd);
	gw_db_free(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_batches),
	    cmocka_unit_test(test_refused_row_kept_aside),
	    cmocka_unit_test(test_all_refused),
	    cmocka_unit_test(test_down_keeps_the_spool),
	};

	gw_log_init("unit", GW_LOG_ERR, NULL);
	return cmocka_run_group_tests_name("shipper", tests, setup, teardown);
}
