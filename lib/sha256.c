/*
 * sha256.c: SHA-256 through OpenSSL's libcrypto, which libcurl and libjwt
 * already load into the process, plus the hex formatting every caller
 * wants.
 */
#include "sha256.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

#include "log.h"

/*
 * The digest fetched once: EVP_sha256() would make EVP_Digest look the
 * implementation up in the provider store on every call (OpenSSL 3), about
 * 2,300 instructions more per key hashed.
 */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	char e[256];

	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (sha256_md == NULL) {
		ERR_error_string_n(ERR_get_error(), e, sizeof(e));
		gw_log_err(NULL, "sha256", "libcrypto has no SHA-256: %s", e);
	}
}

enum gw_status
gw_sha256_init(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md != NULL ? GW_OK : GW_E_INTERNAL;
}

void
gw_sha256_hex(const void *p, size_t n, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0, i;
	int ok;

	GW_ASSERT(gw_sha256_init() == GW_OK);
	ok = EVP_Digest(n > 0 ? p : "", n, d, &dlen, sha256_md, NULL) == 1;
	GW_ASSERT(ok && dlen == 32);
	for (i = 0; i < 32; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
	/* The digest of a key is what the database matches it by. */
	explicit_bzero(d, sizeof(d));
}
