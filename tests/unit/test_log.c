/* Unit tests for lib/log.c: logfmt quoting and the line written to fd 2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static void
check_value(const char *in, const char *want)
{
	struct gw_buf b = {0};

	gw_log_append_value(&b, in);
	assert_string_equal(b.p, want);
	gw_buf_fini(&b);
}

static void
test_values(void **state)
{
	(void)state;
	check_value("plain", "plain");
	check_value("two words", "\"two words\"");
	check_value("", "\"\"");
	check_value("a=b", "\"a=b\"");
	check_value("say \"hi\"", "\"say \\\"hi\\\"\"");
	check_value("back\\slash", "\"back\\\\slash\"");
	check_value("line\nbreak", "\"line\\nbreak\"");
	check_value("bell\a", "\"bell\\x07\"");
}

/* Capture what one log call writes to fd 2. */
static void
test_line(void **state)
{
	char path[] = "/tmp/llmgw-test-log-XXXXXX", line[1024] = "";
	int fd = mkstemp(path), saved = dup(2), once = 0;
	FILE *fp;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(gw_log_init("unit", GW_LOG_INFO, path), 0);
	gw_log_debug(NULL, "db", "not written %d", 1);
	gw_log_warn(NULL, "db", "insert failed: %s", "boom");
	gw_log_warn_once(&once, "shm", "once");
	gw_log_warn_once(&once, "shm", "once");
	fp = fopen(path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(line, sizeof(line), fp));
	assert_null(strstr(line, "not written"));
	assert_non_null(strstr(line, " lvl=warn prog=unit pid="));
	assert_non_null(strstr(line, " mod=db msg=\"insert failed: boom\"\n"));
	assert_int_equal(strncmp(line, "ts=", 3), 0);
	/* gw_log_warn_once: one line for two calls. */
	assert_non_null(fgets(line, sizeof(line), fp));
	assert_non_null(strstr(line, " mod=shm msg=once\n"));
	assert_int_equal(once, 1);
	assert_null(fgets(line, sizeof(line), fp));
	fclose(fp);
	unlink(path);
	dup2(saved, 2); /* cmocka reports on stderr */
	close(saved);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_line),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
