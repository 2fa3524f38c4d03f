/*
 * health.h: the health route family: /health, /health/liveliness,
 * /health/readiness and /metrics. No authentication (the spec sets
 * security: []), never a completion call upstream.
 */
#ifndef GW_HEALTH_H
#define GW_HEALTH_H

#include "err.h"

struct gw_req;

/* Route and answer one request of the family; always replies. */
enum gw_status gw_health_handle(struct gw_req *req);

/*
 * The migrations this build expects, from migrations/NNN_name.sql at build
 * time, borrowed; *n receives the count.
 */
const char *const *gw_health_expected_migrations(size_t *n);

#endif /* GW_HEALTH_H */
