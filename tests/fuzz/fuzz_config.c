/*
 * fuzz_config: the INI parser and validator (lib/config.c gw_cfg_load).
 * It reads only a path, so the input is written to one file in an empty
 * temporary directory (relative *_file names are looked up beside the
 * config), rewritten for every run. A loaded config is looked at
 * (aliases, prices, every printable value it names) and released. A
 * finding besides crashes and leaks: GW_OK without a config, a refusal
 * that leaves *out set or err not NUL-ended, or a reload report that
 * sees changes between a config and itself.
 *
 * Inputs naming anything under proc/, dev/ or sys/ are skipped: *_file
 * keys are read with getline, and "master_key_file = /proc/self/fd/5"
 * reads the pipe from libFuzzer's llvm-symbolizer and waits for ever
 * (the first runs loaded the input as /proc/self/fd/N, where
 * "master_key_file = 5" did the same).
 */
#define _GNU_SOURCE /* memmem */
#include "fuzz.h"

#include <fcntl.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

static int fd = -1;
static char dir[] = "/tmp/llmgw-fuzz-config-XXXXXX", path[64];
static FILE *devnull;

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
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/llmgw.conf", dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) < 0 ||
	    (devnull = fopen("/dev/null", "w")) == NULL)
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
	size_t i;

	if (memmem(data, size, "proc/", 5) != NULL ||
	    memmem(data, size, "dev/", 4) != NULL ||
	    memmem(data, size, "sys/", 4) != NULL)
		return 0;
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	memset(err, 'x', sizeof(err));
	if (gw_cfg_load(path, &cfg, err, sizeof(err)) != GW_OK) {
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
