/*
 * http_upstream.h: the only libcurl user. One struct gw_upstream per worker
 * thread holds one CURL easy handle that is reused request after request,
 * so connections to the upstream stay alive (no per-request connect).
 */
#ifndef GW_HTTP_UPSTREAM_H
#define GW_HTTP_UPSTREAM_H

#include <stddef.h>

#include "err.h"
#include "util.h"

struct gw_upstream;

/* Call once per process before any thread starts; GW_OK or GW_E_INTERNAL. */
enum gw_status gw_upstream_global_init(void);

/* A handle for one thread; caller frees with gw_upstream_free. */
struct gw_upstream *gw_upstream_new(void);
void gw_upstream_free(struct gw_upstream *up);

/*
 * GET url with the given timeouts. *http_status receives the answer's
 * status (0 when none came). When body is non-NULL, up to cap bytes of the
 * answer are kept there. Errors: GW_E_UPSTREAM (refused, reset, DNS...)
 * or GW_E_TIMEOUT, with curl's own words in err.
 */
enum gw_status gw_upstream_get(struct gw_upstream *up, const char *url,
    int connect_timeout_ms, int timeout_ms, int *http_status,
    struct gw_buf *body, size_t cap, char *err, size_t errlen)
    GW_NONNULL(1, 2, 5);

#endif /* GW_HTTP_UPSTREAM_H */
