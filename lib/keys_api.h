/*
 * keys_api.h: the keys route family (cgi-bin/llmgw-keys), LiteLLM's key
 * management API as operators script it with curl:
 *   POST /key/generate /key/update /key/delete /key/block /key/unblock
 *        /key/regenerate (also /key/{key}/regenerate)
 *   GET  /key/info /key/list
 *   POST /user/new /user/update /user/delete   GET /user/info
 *   POST /team/new /team/update /team/delete   GET /team/info
 * Admin routes take the master key or an admin JWT (others: 403). Keys are
 * given back raw exactly once, by generate and regenerate; the database
 * holds only their SHA-256.
 */
#ifndef GW_KEYS_API_H
#define GW_KEYS_API_H

#include "err.h"

struct gw_req;

/* Route and answer one request of the keys family; always replies. */
enum gw_status gw_keys_handle(struct gw_req *req) GW_NONNULL(1);

/*
 * "30s", "15m", "1h", "30d", "2w", "1mo" as a PostgreSQL interval
 * ("30 seconds"...). GW_E_INVALID for anything else.
 */
enum gw_status gw_keys_duration(const char *in, char *out, size_t outlen)
    GW_NONNULL(1, 2);

#endif /* GW_KEYS_API_H */
