/*
 * keygen.h: a new virtual key: its raw secret ("sk-" and 43 URL-safe
 * base64 characters: 32 random bytes), the name it is shown by
 * ("sk-...abcd") and its row, made by /key/generate and by /user/new.
 * Only the SHA-256 of the raw key is stored.
 */
#ifndef GW_KEYGEN_H
#define GW_KEYGEN_H

#include <json-c/json.h>

#include "err.h"

struct gw_mgmt_fail;
struct gw_req;

/* Buffer sizes: a raw key ("sk-" + 43 and NUL fit) and its name. */
#define GW_KEYGEN_RAW_SIZE 48
#define GW_KEYGEN_NAME_SIZE 24

/* The raw key of 32 bytes: "sk-" and their unpadded base64url. */
void gw_keygen_encode(const unsigned char bytes[32],
    char out[GW_KEYGEN_RAW_SIZE]) GW_NONNULL(1, 2);
/* A new raw key from 32 random bytes (caller wipes it after use). */
void gw_keygen_raw(char out[GW_KEYGEN_RAW_SIZE]) GW_NONNULL(1);
/* The name a raw key is shown by: "sk-..." and its last 4 characters. */
void gw_keygen_name(const char *raw, char out[GW_KEYGEN_NAME_SIZE])
    GW_NONNULL(1, 2);

/*
 * Insert a key for body's key fields, in the caller's transaction, its
 * user created and its team required first. *row gets the new row (a new
 * object), raw the raw key (shown this once). Otherwise f.
 */
enum gw_status gw_keygen_insert(struct gw_req *req, json_object *body,
    const char *created_by, char raw[GW_KEYGEN_RAW_SIZE], json_object **row,
    struct gw_mgmt_fail *f) GW_NONNULL(1, 2, 3, 4, 5, 6);

#endif /* GW_KEYGEN_H */
