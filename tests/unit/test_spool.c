/*
 * Unit tests for lib/spool.c: lines appended and read back as batches,
 * tags handed back in order once shipped, the backlog, a file replaced
 * once big and shipped (and removed by its reader), orphan files, refused
 * rows. The spool is process-wide: every test uses the one directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"

static char top[200], dir[300];
static struct gw_spool_reader rd = GW_SPOOL_READER_INIT;

/* Tags handed back by gw_spool_shipped, in order. */
static int done_tags[64], ndone;

static void
on_done(void *tag)
{
	done_tags[ndone++] = *(int *)tag;
}

static int
setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	(void)state;
	snprintf(top, sizeof(top), "%s/llmgw-test-spool-XXXXXX",
	    tmp != NULL && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(top) == NULL)
		return -1;
	/* A directory that does not exist yet: gw_spool_init makes it. */
	snprintf(dir, sizeof(dir), "%s/spool", top);
	return gw_spool_init(dir) == GW_OK ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[400];

	(void)state;
	if (rd.fd >= 0)
		close(rd.fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	return system(cmd) == 0 ? 0 : -1;
}

/* A file of the given content, opened for reading; unlinked already. */
static int
file_of(const char *content)
{
	char path[400];
	int fd;

	snprintf(path, sizeof(path), "%s/read-XXXXXX", top);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), strlen(content));
	unlink(path);
	return fd;
}

static void
test_init_and_dir(void **state)
{
	struct stat st;

	(void)state;
	assert_string_equal(gw_spool_dir(), dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* The first directory stays: spool_dir needs a restart. */
	assert_int_equal(gw_spool_init("/nonexistent/other"), GW_OK);
	assert_string_equal(gw_spool_dir(), dir);
}

static void
test_read_lines(void **state)
{
	struct gw_spool_batch b;
	int fd = file_of("{\"a\":1}\n\n{\"b\":2}\n{\"c\":3}\n{\"d\":");

	(void)state;
	/* Empty lines are skipped; at most max_rows lines. */
	gw_spool_read(fd, 0, 2, &b);
	assert_int_equal(b.rows, 2);
	assert_string_equal(b.json.p, "[{\"a\":1},{\"b\":2}]");
	assert_int_equal(b.used, strlen("{\"a\":1}\n\n{\"b\":2}\n"));
	assert_memory_equal(b.raw, "{\"a\":1}\n", 8);
	gw_spool_batch_fini(&b);
	/* The incomplete last line is left for later. */
	gw_spool_read(fd, 17, 500, &b);
	assert_int_equal(b.rows, 1);
	assert_string_equal(b.json.p, "[{\"c\":3}]");
	assert_int_equal(b.used, 8);
	gw_spool_batch_fini(&b);
	gw_spool_read(fd, 25, 500, &b);
	assert_int_equal(b.rows, 0);
	assert_int_equal(b.used, 0);
	gw_spool_batch_fini(&b);
	/* Past the end. */
	gw_spool_read(fd, 1000, 500, &b);
	assert_int_equal(b.used, 0);
	gw_spool_batch_fini(&b);
	close(fd);
}

static void
test_read_long_line(void **state)
{
	size_t n = 3 * 1024 * 1024 + 17;
	char *s = malloc(n + 20);
	struct gw_spool_batch b;
	int fd;

	(void)state;
	/* {"x":"xxxx..."}\n{"y":1}\n, the first line three chunks long */
	memcpy(s, "{\"x\":\"", 6);
	memset(s + 6, 'x', n - 8);
	memcpy(s + n - 2, "\"}", 2);
	strcpy(s + n, "\n{\"y\":1}\n");
	fd = file_of(s);
	gw_spool_read(fd, 0, 500, &b);
	assert_int_equal(b.rows, 2);
	assert_int_equal(b.used, n + 9);
	assert_int_equal(b.json.len, n + 10);
	assert_memory_equal(b.json.p + 1, s, n);
	assert_string_equal(b.json.p + n + 1, ",{\"y\":1}]");
	gw_spool_batch_fini(&b);
	close(fd);
	free(s);
}

static void
test_append_ship_tags(void **state)
{
	static int tags[3] = {1, 2, 3};
	const char *lines[3] = {"{\"n\":1}\n", "{\"n\":22}\n", "{\"n\":333}\n"};
	struct gw_spool_batch b;
	int i;

	(void)state;
	assert_int_equal(gw_spool_backlog(), 0);
	gw_spool_follow(&rd);
	assert_int_equal(rd.fd, -1); /* nothing appended yet */
	for (i = 0; i < 3; i++)
		assert_int_equal(gw_spool_append(lines[i], strlen(lines[i]),
		                     i == 1 ? NULL : &tags[i]),
		    GW_OK);
	assert_int_equal(gw_spool_backlog(), 8 + 9 + 10);
	gw_spool_follow(&rd);
	assert_true(rd.fd >= 0);
	assert_int_equal(strncmp(rd.path, dir, strlen(dir)), 0);
	assert_non_null(strstr(rd.path, ".spool"));

	gw_spool_read(rd.fd, rd.off, 2, &b);
	assert_string_equal(b.json.p, "[{\"n\":1},{\"n\":22}]");
	rd.off += b.used;
	gw_spool_batch_fini(&b);
	ndone = 0;
	gw_spool_shipped(&rd, 2, on_done);
	/* The untagged line has nothing to hand back. */
	assert_int_equal(ndone, 1);
	assert_int_equal(done_tags[0], 1);
	assert_int_equal(gw_spool_backlog(), 10);

	gw_spool_read(rd.fd, rd.off, 500, &b);
	assert_string_equal(b.json.p, "[{\"n\":333}]");
	rd.off += b.used;
	gw_spool_batch_fini(&b);
	gw_spool_shipped(&rd, 1, on_done);
	assert_int_equal(ndone, 2);
	assert_int_equal(done_tags[1], 3);
	assert_int_equal(gw_spool_backlog(), 0);
	/* Still the same file: nothing to follow. */
	gw_spool_follow(&rd);
	assert_int_equal(rd.off, 27);
}

/* Orphans offered, in any order: their names and what to answer. */
static char offered[8][64];
static int noffered, answer;

static int
on_orphan(void *arg, int fd)
{
	char buf[64] = "";

	(void)arg;
	assert_true(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
	snprintf(offered[noffered++], sizeof(offered[0]), "%s", buf);
	return answer;
}

static void
test_rotation(void **state)
{
	size_t n = 1024 * 1024 + 100;
	char *line = malloc(n + 1), old[4096];
	struct gw_spool_batch b;
	int i, rows = 0;

	(void)state;
	memcpy(line, "{\"big\":\"", 8);
	memset(line + 8, 'b', n - 10);
	memcpy(line + n - 2, "\"}", 2);
	line[n] = '\n';
	/* Nine lines of 1 MiB: the file is over 8 MiB. */
	for (i = 0; i < 9; i++)
		assert_int_equal(gw_spool_append(line, n + 1, NULL), GW_OK);
	gw_spool_follow(&rd);
	snprintf(old, sizeof(old), "%s", rd.path);
	while (rows < 9) {
		int got;

		gw_spool_read(rd.fd, rd.off, 500, &b);
		got = b.rows;
		assert_true(got > 0);
		rows += got;
		rd.off += b.used;
		gw_spool_batch_fini(&b);
		gw_spool_shipped(&rd, got, on_done);
	}
	assert_int_equal(gw_spool_backlog(), 0);
	/*
	 * Shipped to its end and big: the file was replaced, and removed at
	 * once (left unlocked on disk it would be shipped again as an
	 * orphan); the next line goes to the new file.
	 */
	assert_int_equal(access(old, F_OK), -1);
	noffered = 0;
	gw_spool_orphans(on_orphan, NULL);
	assert_int_equal(noffered, 0);
	assert_int_equal(gw_spool_append("{\"after\":1}\n", 12, NULL), GW_OK);
	gw_spool_follow(&rd);
	assert_string_not_equal(rd.path, old);
	assert_int_equal(rd.off, 0);
	gw_spool_read(rd.fd, rd.off, 500, &b);
	assert_string_equal(b.json.p, "[{\"after\":1}]");
	rd.off += b.used;
	gw_spool_batch_fini(&b);
	gw_spool_shipped(&rd, 1, on_done);
	assert_int_equal(gw_spool_backlog(), 0);
	free(line);
}

static void
put_file(const char *name, const char *content)
{
	char path[400];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(content, fp);
	fclose(fp);
}

static int
exists(const char *name)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static void
test_orphans(void **state)
{
	char path[400];
	int live;

	(void)state;
	put_file("111-1-1.spool", "dead\n");
	put_file("222-1-1.spool", "alive\n");
	put_file("notes.txt", "not a spool\n");
	/* A live process holds its file's lock. */
	snprintf(path, sizeof(path), "%s/222-1-1.spool", dir);
	live = open(path, O_RDONLY);
	assert_int_equal(flock(live, LOCK_EX | LOCK_NB), 0);

	/* Not done with it: the orphan stays. */
	noffered = 0;
	answer = 1;
	gw_spool_orphans(on_orphan, NULL);
	assert_int_equal(noffered, 1); /* not ours, not the live one */
	assert_string_equal(offered[0], "dead\n");
	assert_true(exists("111-1-1.spool"));
	/* The database is down: the scan stops, the file stays. */
	noffered = 0;
	answer = -1;
	gw_spool_orphans(on_orphan, NULL);
	assert_int_equal(noffered, 1);
	assert_true(exists("111-1-1.spool"));
	/* Shipped to its end: removed. */
	noffered = 0;
	answer = 0;
	gw_spool_orphans(on_orphan, NULL);
	assert_int_equal(noffered, 1);
	assert_false(exists("111-1-1.spool"));
	assert_true(exists("222-1-1.spool"));
	assert_true(exists("notes.txt"));
	/* Its process gone, the other one is an orphan too. */
	close(live);
	noffered = 0;
	gw_spool_orphans(on_orphan, NULL);
	assert_int_equal(noffered, 1);
	assert_string_equal(offered[0], "alive\n");
	assert_false(exists("222-1-1.spool"));
}

/* #15, 6: only this user's regular files are its spend. */
static void
test_orphans_not_ours(void **state)
{
	char path[400], target[400];

	(void)state;
	put_file("333-1-1.spool", "planted link\n");
	snprintf(target, sizeof(target), "%s/333-1-1.spool", dir);
	snprintf(path, sizeof(path), "%s/444-1-1.spool", dir);
	assert_int_equal(rename(target, path), 0);
	snprintf(target, sizeof(target), "%s/elsewhere", top);
	assert_int_equal(rename(path, target), 0);
	assert_int_equal(symlink(target, path), 0);
	if (geteuid() == 0) {
		put_file("555-1-1.spool", "another user's\n");
		snprintf(path, sizeof(path), "%s/555-1-1.spool", dir);
		assert_int_equal(chown(path, 65534, 65534), 0);
	}
	noffered = 0;
	answer = 0;
	gw_spool_orphans(on_orphan, NULL);
	assert_int_equal(noffered, 0);
	assert_true(exists("444-1-1.spool"));
	if (geteuid() == 0)
		assert_true(exists("555-1-1.spool"));
	snprintf(path, sizeof(path), "%s/444-1-1.spool", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/555-1-1.spool", dir);
	unlink(path);
}

static void
test_reject(void **state)
{
	char path[400], buf[256] = "";
	FILE *fp;

	(void)state;
	gw_spool_reject("{\"bad\":1}\n", 10, "invalid input (SQLSTATE 22P02)");
	gw_spool_reject("{\"bad\":2}\n", 10, "again");
	snprintf(path, sizeof(path), "%s/rejected.jsonl", dir);
	fp = fopen(path, "r");
	assert_non_null(fp);
	assert_int_equal(fread(buf, 1, sizeof(buf) - 1, fp), 20);
	fclose(fp);
	assert_string_equal(buf, "{\"bad\":1}\n{\"bad\":2}\n");
}

/*
 * A process's end (gw_spool_retire): its file goes once every line is
 * shipped, so the next start finds no orphan to send again; with a line
 * not yet shipped it stays for that start.
 */
static void
test_retire(void **state)
{
	struct gw_spool_batch b;
	char path[4096];

	(void)state;
	assert_int_equal(gw_spool_append("{\"r\":1}\n", 8, NULL), GW_OK);
	gw_spool_follow(&rd);
	snprintf(path, sizeof(path), "%s", rd.path);
	/* Not shipped yet: kept. */
	assert_int_equal(gw_spool_retire(), 0);
	assert_int_equal(access(path, F_OK), 0);
	gw_spool_read(rd.fd, rd.off, 500, &b);
	rd.off += b.used;
	gw_spool_batch_fini(&b);
	gw_spool_shipped(&rd, 1, on_done);
	assert_int_equal(gw_spool_backlog(), 0);
	assert_int_equal(gw_spool_retire(), 1);
	assert_int_equal(access(path, F_OK), -1);
	noffered = 0;
	gw_spool_orphans(on_orphan, NULL);
	assert_int_equal(noffered, 0);
	/* A line after it opens a new file, followed as before. */
	assert_int_equal(gw_spool_append("{\"r\":2}\n", 8, NULL), GW_OK);
	gw_spool_follow(&rd);
	assert_string_not_equal(rd.path, path);
	assert_int_equal(rd.off, 0);
	gw_spool_read(rd.fd, rd.off, 500, &b);
	assert_string_equal(b.json.p, "[{\"r\":2}]");
	rd.off += b.used;
	gw_spool_batch_fini(&b);
	gw_spool_shipped(&rd, 1, on_done);
	assert_int_equal(gw_spool_backlog(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_and_dir),
	    cmocka_unit_test(test_orphans_not_ours),
	    cmocka_unit_test(test_read_lines),
	    cmocka_unit_test(test_read_long_line),
	    cmocka_unit_test(test_append_ship_tags),
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_orphans),
	    cmocka_unit_test(test_reject),
	    cmocka_unit_test(test_retire),
	};

	gw_log_init("unit", GW_LOG_ERR, NULL);
	return cmocka_run_group_tests_name("spool", tests, setup, teardown);
}
