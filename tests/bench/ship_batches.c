/*
 * ship_batches: ship a spool file to PostgreSQL through the writer's own
 * statement (gw_shipper_ship), batch_rows lines a batch, and print the
 * milliseconds each batch took: "rows batches mean_ms p50_ms p90_ms".
 * Built by tests/bench/spend_analytics.py against a libllmgw.a (this
 * tree's, or a base commit's for the comparison).
 *
 *   ship_batches CONNINFO SPOOL_FILE BATCH_ROWS
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "shipper.h"

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct gw_db *db;
	uint64_t off = 0;
	double *ms, t, sum = 0;
	int fd, n, rows = 0, batches = 0, max, cap = 1 << 16;

	if (argc != 4) {
		fprintf(stderr, "usage: ship_batches CONNINFO FILE BATCH_ROWS\n");
		return 2;
	}
	gw_log_init("ship_batches", GW_LOG_WARN, NULL);
	max = atoi(argv[3]);
	if ((fd = open(argv[2], O_RDONLY)) < 0) {
		perror(argv[2]);
		return 1;
	}
	db = gw_db_new(argv[1], 5, 0);
	ms = calloc((size_t)cap, sizeof(*ms));
	for (;;) {
		t = now_ms();
		n = gw_shipper_ship(db, fd, &off, max);
		t = now_ms() - t;
		if (n < 0) {
			fprintf(stderr, "ship failed\n");
			return 1;
		}
		if (n == 0)
			break;
		rows += n;
		if (batches < cap)
			ms[batches] = t;
		batches++;
		sum += t;
	}
	if (batches == 0)
		return 1;
	n = batches < cap ? batches : cap;
	qsort(ms, (size_t)n, sizeof(*ms), cmp);
	printf("%d %d %.3f %.3f %.3f\n", rows, batches, sum / batches,
	    ms[n / 2], ms[n * 9 / 10]);
	free(ms);
	gw_db_free(db);
	close(fd);
	return 0;
}
