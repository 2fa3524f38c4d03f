/*
 * Unit tests for lib/config.c. Data-driven cases live in data/config/NAME.conf:
 * the first line says "# expect: ok" or "# expect-error: <text>", the text
 * the error message must contain (file, line, section and key).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

static void
test_data_files(void **state)
{
	DIR *d = opendir("data/config");
	struct dirent *e;
	int cases = 0;

	(void)state;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[512], first[512] = "", err[1024] = "";
		struct gw_cfg *cfg = NULL;
		enum gw_status st;
		FILE *fp;
		size_t n = strlen(e->d_name);

		if (n < 6 || strcmp(e->d_name + n - 5, ".conf") != 0)
			continue;
		snprintf(path, sizeof(path), "data/config/%s", e->d_name);
		fp = fopen(path, "r");
		assert_non_null(fp);
		assert_non_null(fgets(first, sizeof(first), fp));
		fclose(fp);
		first[strcspn(first, "\n")] = '\0';
		st = gw_cfg_load(path, &cfg, err, sizeof(err));
		if (strcmp(first, "# expect: ok") == 0) {
			if (st != GW_OK)
				fail_msg("%s: unexpected error: %s", path, err);
			assert_non_null(cfg);
		} else {
			const char *want = strstr(first, "expect-error: ");

			assert_non_null(want);
			want += strlen("expect-error: ");
			assert_int_equal(st, GW_E_INVALID);
			assert_null(cfg);
			if (strstr(err, want) == NULL)
				fail_msg("%s: error '%s' lacks '%s'", path, err,
				    want);
		}
		gw_cfg_unref(cfg);
		cases++;
	}
	closedir(d);
	assert_true(cases >= 10);
}

static void
test_defaults_and_values(void **state)
{
	struct gw_cfg *cfg = NULL;
	const struct gw_alias *a;
	const struct gw_price *p;
	char err[512];

	(void)state;
	unsetenv("LLMGW_MASTER_KEY");
	assert_int_equal(
	    gw_cfg_load("data/config/full.conf", &cfg, err, sizeof(err)),
	    GW_OK);
	assert_int_equal(cfg->threads, 8);
	assert_int_equal(cfg->processes, 2);              /* default */
	assert_int_equal(cfg->max_body_bytes, 8388608);   /* default */
	assert_int_equal(cfg->max_audio_bytes, 26214400); /* 25 MiB */
	assert_int_equal(cfg->max_metadata_bytes, 16384); /* default */
	assert_int_equal(cfg->upstream_first_byte_timeout_s, 600);
	assert_int_equal(cfg->upstream_connect_timeout_ms, 5000);
	assert_string_equal(cfg->upstream_url, "http://127.0.0.1:9999");
	assert_string_equal(cfg->db_conninfo, "host=/tmp dbname=llmgw");
	assert_int_equal(cfg->rate_limit_rps, 100);
	assert_int_equal(cfg->rate_limit_burst, 200);
	assert_int_equal(cfg->log_level, GW_LOG_DEBUG);
	assert_int_equal(cfg->langfuse_format, GW_LANGFUSE_LEGACY);
	/* Relative secret path resolved against the file's directory. */
	assert_string_equal(cfg->master_key_file, "data/config/master.key.txt");
	assert_string_equal(cfg->master_key, "sk-test-master");

	a = gw_cfg_find_alias(cfg, "gpt-4");
	assert_non_null(a);
	assert_int_equal(a->ntargets, 2);
	assert_string_equal(a->targets[0], "qwen3-30b-a3b");
	assert_string_equal(a->targets[1], "qwen2.5-14b-instruct");
	a = gw_cfg_find_alias(cfg, "gpt-3.5-turbo");
	assert_non_null(a);
	assert_int_equal(a->ntargets, 1);
	assert_null(gw_cfg_find_alias(cfg, "qwen3-30b-a3b"));

	p = gw_cfg_find_price(cfg, "qwen3-30b-a3b");
	assert_non_null(p);
	assert_true(p->input_per_m == 0.15);
	assert_true(p->output_per_m == 0.6);
	assert_null(gw_cfg_find_price(cfg, "other"));
	gw_cfg_unref(cfg);
}

static void
test_env_overrides(void **state)
{
	struct gw_cfg *cfg = NULL;
	char err[512];

	(void)state;
	setenv("LLMGW_MASTER_KEY", "sk-from-env", 1);
	setenv("LLMGW_GATEWAY_THREADS", "3", 1);
	setenv("LLMGW_RATE_LIMIT_RPS", "0", 1);
	assert_int_equal(
	    gw_cfg_load("data/config/full.conf", &cfg, err, sizeof(err)),
	    GW_OK);
	assert_string_equal(cfg->master_key, "sk-from-env");
	assert_int_equal(cfg->threads, 3);
	assert_int_equal(cfg->rate_limit_rps, 0);
	gw_cfg_unref(cfg);

	setenv("LLMGW_GATEWAY_THREADS", "zero", 1);
	assert_int_equal(
	    gw_cfg_load("data/config/full.conf", &cfg, err, sizeof(err)),
	    GW_E_INVALID);
	assert_non_null(strstr(err, "LLMGW_GATEWAY_THREADS"));
	unsetenv("LLMGW_GATEWAY_THREADS");
	unsetenv("LLMGW_RATE_LIMIT_RPS");
	unsetenv("LLMGW_MASTER_KEY");
}

static void
test_print_and_refs(void **state)
{
	struct gw_cfg *cfg = NULL;
	char err[512], *out = NULL;
	size_t len = 0;
	FILE *fp;

	(void)state;
	assert_int_equal(
	    gw_cfg_load("data/config/full.conf", &cfg, err, sizeof(err)),
	    GW_OK);
	fp = open_memstream(&out, &len);
	assert_int_equal(gw_cfg_print_value(cfg, "gateway.threads", fp), GW_OK);
	assert_int_equal(gw_cfg_print_value(cfg, "log.level", fp), GW_OK);
	assert_int_equal(gw_cfg_print_value(cfg, "nope.x", fp), GW_E_NOTFOUND);
	assert_int_equal(gw_cfg_print_value(cfg, "nodot", fp), GW_E_NOTFOUND);
	fclose(fp);
	assert_string_equal(out, "8\ndebug\n");
	free(out);
	/* A second reference keeps it alive after the first is dropped. */
	assert_ptr_equal(gw_cfg_ref(cfg), cfg);
	gw_cfg_unref(cfg);
	assert_int_equal(cfg->threads, 8);
	gw_cfg_unref(cfg);
	gw_cfg_unref(NULL);
}

static void
test_missing_file(void **state)
{
	struct gw_cfg *cfg = NULL;
	char err[512];

	(void)state;
	assert_int_equal(
	    gw_cfg_load("data/config/none-such", &cfg, err, sizeof(err)),
	    GW_E_INVALID);
	assert_non_null(strstr(err, "none-such"));
	assert_non_null(strstr(err, "No such file"));
}

/*
 * A secret or config file that is a FIFO is refused at once (the load
 * blocked on it), and so is one every user may write.
 */
static void
test_untrusted_files(void **state)
{
	char dir[] = "/tmp/llmgw-test-trust-XXXXXX", conf[128], key[128],
	     err[512];
	struct gw_cfg *cfg = NULL;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/gw.conf", dir);
	snprintf(key, sizeof(key), "%s/master.key", dir);
	assert_int_equal(mkfifo(key, 0600), 0);
	assert_non_null(fp = fopen(conf, "w"));
	fprintf(fp, "[auth]\nmaster_key_file = master.key\n");
	fclose(fp);
	assert_int_equal(
	    gw_cfg_load(conf, &cfg, err, sizeof(err)), GW_E_INVALID);
	assert_null(cfg);
	assert_non_null(strstr(err, "not a regular file"));

	unlink(key);
	assert_non_null(fp = fopen(key, "w"));
	fprintf(fp, "sk-master-0123456789\n");
	fclose(fp);
	assert_int_equal(chmod(key, 0666), 0);
	assert_int_equal(
	    gw_cfg_load(conf, &cfg, err, sizeof(err)), GW_E_INVALID);
	assert_non_null(strstr(err, "writable by every user (mode 0666)"));
	assert_int_equal(chmod(key, 0600), 0);
	assert_int_equal(gw_cfg_load(conf, &cfg, err, sizeof(err)), GW_OK);
	assert_string_equal(cfg->master_key, "sk-master-0123456789");
	gw_cfg_unref(cfg);

	assert_int_equal(chmod(conf, 0646), 0);
	assert_int_equal(
	    gw_cfg_load(conf, &cfg, err, sizeof(err)), GW_E_INVALID);
	assert_non_null(strstr(err, "writable by every user"));
	unlink(key);
	unlink(conf);
	assert_int_equal(mkfifo(conf, 0600), 0);
	assert_int_equal(
	    gw_cfg_load(conf, &cfg, err, sizeof(err)), GW_E_INVALID);
	assert_non_null(strstr(err, "not a regular file"));
	unlink(conf);
	rmdir(dir);
}

/* From a stream: full.conf's text in memory loads as the file does. */
static void
test_load_fp(void **state)
{
	static const char bad[] = "[gateway]\nthreads = 8\nthreads = x\n";
	static struct gw_cfg sentinel;
	struct gw_cfg *cfg = NULL;
	char text[4096], err[512];
	size_t n;
	FILE *fp;

	(void)state;
	unsetenv("LLMGW_MASTER_KEY");
	fp = fopen("data/config/full.conf", "r");
	assert_non_null(fp);
	n = fread(text, 1, sizeof(text), fp);
	fclose(fp);
	assert_true(n > 0 && n < sizeof(text));
	fp = fmemopen(text, n, "r");
	assert_non_null(fp);
	assert_int_equal(gw_cfg_load_fp(fp, "data/config/in-memory.conf", &cfg,
	                     err, sizeof(err)),
	    GW_OK);
	/* Read to its end, left open. */
	assert_int_equal(fgetc(fp), EOF);
	fclose(fp);
	assert_string_equal(cfg->path, "data/config/in-memory.conf");
	assert_int_equal(cfg->threads, 8);
	assert_string_equal(cfg->upstream_url, "http://127.0.0.1:9999");
	/* The relative secret file is looked up beside the name. */
	assert_string_equal(cfg->master_key_file, "data/config/master.key.txt");
	assert_string_equal(cfg->master_key, "sk-test-master");
	assert_non_null(gw_cfg_find_alias(cfg, "gpt-4"));
	gw_cfg_unref(cfg);

	/* A refusal names the stream and its line. */
	cfg = &sentinel; /* a refusal sets *out to NULL */
	fp = fmemopen((void *)bad, sizeof(bad) - 1, "r");
	assert_non_null(fp);
	assert_int_equal(gw_cfg_load_fp(fp, "mem.conf", &cfg, err, sizeof(err)),
	    GW_E_INVALID);
	fclose(fp);
	assert_null(cfg);
	assert_non_null(strstr(err, "mem.conf:3: [gateway] threads: "));
}

/* Load full.conf with name=value from the environment (NULL: none). */
static struct gw_cfg *
load_with(const char *const *env)
{
	struct gw_cfg *cfg = NULL;
	char err[512];
	int i;

	for (i = 0; env != NULL && env[i] != NULL; i += 2)
		setenv(env[i], env[i + 1], 1);
	if (gw_cfg_load("data/config/full.conf", &cfg, err, sizeof(err)) !=
	    GW_OK)
		fail_msg("%s", err);
	for (i = 0; env != NULL && env[i] != NULL; i += 2)
		unsetenv(env[i]);
	return cfg;
}

/* What gw_cfg_reload_report logs for old -> cfg, in buf; the count. */
static int
report(
    const struct gw_cfg *old, const struct gw_cfg *cfg, char *buf, size_t len)
{
	char path[] = "/tmp/llmgw-test-reload-XXXXXX";
	int fd = mkstemp(path), saved = dup(2), n;
	ssize_t got;

	assert_true(fd >= 0);
	assert_int_equal(gw_log_init("unit", GW_LOG_INFO, path), 0);
	n = gw_cfg_reload_report(old, cfg);
	dup2(saved, 2); /* cmocka reports on stderr */
	close(saved);
	gw_log_init("unit", GW_LOG_ERR, NULL);
	got = pread(fd, buf, len - 1, 0);
	buf[got > 0 ? got : 0] = '\0';
	close(fd);
	unlink(path);
	return n;
}

static void
test_reload_report(void **state)
{
	static const char *const changed[] = {
	    /* restart-only */
	    "LLMGW_GATEWAY_THREADS",
	    "3",
	    "LLMGW_SPEND_SPOOL_DIR",
	    "/elsewhere/spool",
	    "LLMGW_DATABASE_STATEMENT_TIMEOUT_MS",
	    "100",
	    /* applied by a reload */
	    "LLMGW_LOG_LEVEL",
	    "info",
	    "LLMGW_UPSTREAM_BASE_URL",
	    "http://127.0.0.1:1",
	    "LLMGW_SPEND_FLUSH_MS",
	    "50",
	    "LLMGW_DATABASE_CONNINFO",
	    "host=/elsewhere dbname=llmgw",
	    NULL,
	};
	struct gw_cfg *old = load_with(NULL), *same = load_with(NULL);
	struct gw_cfg *cfg = load_with(changed);
	char out[4096];
	const char *line;

	(void)state;
	/* Each load is newer than the one before it. */
	assert_true(same->gen > old->gen);
	assert_true(cfg->gen > same->gen);
	assert_int_equal(report(old, same, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(report(old, cfg, out, sizeof(out)), 3);
	/* One warn line per setting, in table order. */
	line = strstr(out, "msg=\"reload: [database] statement_timeout_ms "
	                   "changed; takes effect after a restart\"\n");
	assert_non_null(line);
	line = strstr(line, "msg=\"reload: [gateway] threads changed; takes "
	                    "effect after a restart\"\n");
	assert_non_null(line);
	line = strstr(line, "msg=\"reload: [spend] spool_dir changed; takes "
	                    "effect after a restart\"\n");
	assert_non_null(line);
	assert_non_null(strstr(out, " lvl=warn prog=unit "));
	assert_non_null(strstr(out, " mod=config "));
	assert_null(strstr(out, "level"));
	assert_null(strstr(out, "base_url"));
	assert_null(strstr(out, "flush_ms"));
	assert_null(strstr(out, "conninfo"));
	/* And back. */
	assert_int_equal(report(cfg, old, out, sizeof(out)), 3);
	gw_cfg_unref(old);
	gw_cfg_unref(same);
	gw_cfg_unref(cfg);
}

/* [upstream] passthrough: the list parsed once, exact paths only. */
static void
test_passthrough_list(void **state)
{
	struct gw_cfg *cfg = NULL;
	char err[512];

	(void)state;
	if (gw_cfg_load("data/config/passthrough-ok.conf", &cfg, err,
	        sizeof(err)) != GW_OK)
		fail_msg("%s", err);
	assert_int_equal(cfg->npassthru, 4);
	assert_string_equal(gw_cfg_find_passthrough(cfg, "/infill"), "/infill");
	/* Trailing slashes and spaces dropped, as the dispatcher drops them. */
	assert_non_null(gw_cfg_find_passthrough(cfg, "/tokenize"));
	assert_non_null(gw_cfg_find_passthrough(cfg, "/detokenize"));
	assert_non_null(gw_cfg_find_passthrough(cfg, "/slots/save"));
	assert_null(gw_cfg_find_passthrough(cfg, "/slots"));
	assert_null(gw_cfg_find_passthrough(cfg, "/v1/infill"));
	assert_null(gw_cfg_find_passthrough(cfg, "/infill/x"));
	/* input_cost_per_query is rerank's name of the per-request price. */
	assert_true(gw_cfg_find_price(cfg, "m")->per_request == 0.2);
	gw_cfg_unref(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_data_files),
	    cmocka_unit_test(test_defaults_and_values),
	    cmocka_unit_test(test_env_overrides),
	    cmocka_unit_test(test_print_and_refs),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_untrusted_files),
	    cmocka_unit_test(test_load_fp),
	    cmocka_unit_test(test_reload_report),
	    cmocka_unit_test(test_passthrough_list),
	};

	gw_log_init("unit", GW_LOG_ERR, NULL);
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
