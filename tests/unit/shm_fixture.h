/*
 * shm_fixture.h: a fresh temporary file per test for the shared-memory
 * tests (test_shm, test_metrics, test_ratelimit), in $TMPDIR or /tmp.
 */
#ifndef GW_TEST_SHM_FIXTURE_H
#define GW_TEST_SHM_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shm.h"

static char path[256];

/* Make a new empty file at path, named after tag; 0 or -1. */
static inline int
shm_fixture_file(const char *tag)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	snprintf(path, sizeof(path), "%s/llmgw-test-%s-XXXXXX",
	    dir != NULL && dir[0] ? dir : "/tmp", tag);
	if ((fd = mkstemp(path)) < 0)
		return -1;
	close(fd);
	return 0;
}

/* The process attached to a new file: a cmocka setup's body. */
static inline int
shm_fixture_attach(const char *tag)
{
	if (shm_fixture_file(tag) != 0)
		return -1;
	return gw_shm_attach(path) == GW_OK ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	gw_shm_detach();
	unlink(path);
	return 0;
}

#endif
