/*
 * keys_api.h: the keys route family (cgi-bin/llmgw-keys), LiteLLM's key
 * management API as operators script it with curl (one route table, in
 * keys_api.c; /user/... and /team/... are org_api.c's handlers):
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

#endif /* GW_KEYS_API_H */
