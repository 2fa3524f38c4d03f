/*
 * sha256.h: SHA-256 hex digests, for hashing API keys the way LiteLLM
 * does (the lowercase hex digest of the whole raw key) and for ids derived
 * from a request id. The only caller of OpenSSL's libcrypto.
 */
#ifndef GW_SHA256_H
#define GW_SHA256_H

#include <stddef.h>

#include "err.h"
#include "util.h"

/*
 * Fetch libcrypto's SHA-256 now (once per process; later calls are no-ops),
 * so that a broken libcrypto stops a worker before it accepts and the first
 * request does not pay the provider's setup. GW_E_INTERNAL, logged, if none.
 */
enum gw_status gw_sha256_init(void);
/*
 * Lowercase hex SHA-256 of the n bytes at p into out (64 digits and a NUL).
 * p may be NULL when n is 0. Calls gw_sha256_init if nobody did; aborts if
 * libcrypto has no SHA-256.
 */
void gw_sha256_hex(const void *p, size_t n, char out[65]) GW_NONNULL(3);

#endif /* GW_SHA256_H */
