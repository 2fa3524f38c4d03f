/*
 * sha256.h: SHA-256 (FIPS 180-4), for hashing API keys the way LiteLLM
 * does: the lowercase hex digest of the whole raw key.
 */
#ifndef GW_SHA256_H
#define GW_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct gw_sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes hashed so far */
	unsigned char buf[64];
	size_t nbuf;
};

void gw_sha256_init(struct gw_sha256 *c) GW_NONNULL(1);
void gw_sha256_update(struct gw_sha256 *c, const void *p, size_t n)
    GW_NONNULL(1);
void gw_sha256_final(struct gw_sha256 *c, unsigned char out[32])
    GW_NONNULL(1, 2);
/* Lowercase hex digest of n bytes at p into out (65 bytes, NUL-ended). */
void gw_sha256_hex(const void *p, size_t n, char out[65]) GW_NONNULL(3);

#endif /* GW_SHA256_H */
