/*
 * fuzz_config: the INI parser and validator (lib/config.c
 * gw_cfg_load_fp, which gw_cfg_load calls with the opened file). The
 * input is read through fmemopen under the name of a file in a
 * temporary directory, so no file is written per run. Relative *_file
 * names are looked up beside it, where there are two: master.key.txt
 * (one line, the name full.conf of test_config uses) and empty. A loaded
 * config is looked at (aliases, prices, every printable value it names)
 * and released. A finding besides crashes and leaks: GW_OK without a
 * config, a refusal that leaves *out set or err not NUL-ended, or a
 * reload report that sees changes between a config and itself.
 *
 * Inputs naming anything under proc/, dev/ or sys/ are skipped: *_file
 * keys are read with getline, and "master_key_file = /proc/self/fd/5"
 * reads the pipe from libFuzzer's llvm-symbolizer and waits for ever
 * (the first runs loaded the input as /proc/self/fd/N, where
 * "master_key_file = 5" did the same).
 */
#define _GNU_SOURCE /* memmem */
#include "fuzz.h"

#include <unistd.h>

#include "config.h"
#include "log.h"

static char dir[] = "/tmp/llmgw-fuzz-config-XXXXXX", path[64];
static FILE *devnull;
static const char *const files[][2] = {
    {"master.key.txt", "sk-fuzz-master\n"}, {"empty", ""}};

static void
remove_dir(void)
{
	char name[96];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(name, sizeof(name), "%s/%s", dir, files[i][0]);
		(void)unlink(name);
	}
	(void)rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const env[] = {"LLMGW_MASTER_KEY", "LANGFUSE_HOST",
	    "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"};
	size_t i;

	(void)argc;
	(void)argv;
	for (i = 0; i < sizeof(env) / sizeof(env[0]); i++)
		unsetenv(env[i]);
	gw_log_set_level(GW_LOG_ERR);
	if (mkdtemp(dir) == NULL || atexit(remove_dir) != 0)
		abort();
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char name[96];
		FILE *fp;

		snprintf(name, sizeof(name), "%s/%s", dir, files[i][0]);
		if ((fp = fopen(name, "w")) == NULL ||
		    fputs(files[i][1], fp) < 0 || fclose(fp) != 0)
			abort();
	}
	snprintf(path, sizeof(path), "%s/llmgw.conf", dir);
	if ((devnull = fopen("/dev/null", "w")) == NULL)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"gateway.listen", "database.dsn",
	    "auth.master_key", "upstream.base_url", "log.level", "nosuch.key",
	    "gateway"};
	static struct gw_cfg sentinel;
	struct gw_cfg *cfg = &sentinel;
	char err[512];
	enum gw_status st;
	size_t i;
	FILE *fp;

	if (memmem(data, size, "proc/", 5) != NULL ||
	    memmem(data, size, "dev/", 4) != NULL ||
	    memmem(data, size, "sys/", 4) != NULL)
		return 0;
	/* Read only ("r"); glibc takes a size of 0 (an empty file). */
	if ((fp = fmemopen(size > 0 ? (void *)data : "", size, "r")) == NULL)
		abort();
	memset(err, 'x', sizeof(err));
	st = gw_cfg_load_fp(fp, path, &cfg, err, sizeof(err));
	fclose(fp);
	if (st != GW_OK) {
		fuzz_check_msg("gw_cfg_load", err, sizeof(err));
		if (cfg != NULL)
			FUZZ_FINDING("refused, but *out was set");
		return 0;
	}
	if (cfg == NULL)
		FUZZ_FINDING("GW_OK without a config");
	for (i = 0; i < cfg->naliases; i++)
		(void)gw_cfg_find_alias(cfg, cfg->aliases[i].name);
	for (i = 0; i < cfg->nprices; i++)
		(void)gw_cfg_find_price(cfg, cfg->prices[i].model);
	(void)gw_cfg_find_alias(cfg, "gpt-4o");
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		(void)gw_cfg_print_value(cfg, names[i], devnull);
	if (gw_cfg_reload_report(cfg, cfg) != 0)
		FUZZ_FINDING("a config differs from itself");
	gw_cfg_unref(cfg);
	return 0;
}
