/*
 * fuzz_jwt: JWT verification and claim mapping (lib/jwtauth.c
 * gw_jwt_verify) with an HS256/384/512 shared secret. The first byte is
 * the mode:
 *   bit 0 clear: the rest is the token, as sent (header_alg, libjwt's
 *     decoding and the refusals on the way);
 *   bit 0 set: the rest is the claims (or, with bit 3, "header\nclaims")
 *     and the target signs them with the configured secret, so the
 *     fuzzer reaches the claim checks and mapping; bits 1-2 pick the
 *     algorithm of the fixed header (HS256, HS384, HS512, RS256);
 *   bit 4: iss and aud are required ("fuzz-iss", "fuzz-aud").
 * Findings besides crashes and leaks: GW_OK without a record or with one
 * that has neither a user nor the admin role, or a refusal that leaves a
 * record or a message not NUL-ended.
 */
#include "fuzz.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "config.h"
#include "jwtauth.h"
#include "keystore.h"
#include "log.h"
#include "util.h"

#define SECRET "jwt-fuzz-secret-0123456789abcdef0123456789"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	gw_log_set_level(GW_LOG_ERR);
	return 0;
}

static void
b64url(struct gw_buf *b, const unsigned char *p, size_t n)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
	    "tuvwxyz0123456789-_";
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		unsigned v =
		    (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		char q[4] = {abc[v >> 18], abc[(v >> 12) & 63],
		    abc[(v >> 6) & 63], abc[v & 63]};

		gw_buf_append(b, q, 4);
	}
	if (n - i == 1) {
		unsigned v = (unsigned)p[i] << 16;
		char q[2] = {abc[v >> 18], abc[(v >> 12) & 63]};

		gw_buf_append(b, q, 2);
	} else if (n - i == 2) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		char q[3] = {
		    abc[v >> 18], abc[(v >> 12) & 63], abc[(v >> 6) & 63]};

		gw_buf_append(b, q, 3);
	}
}

/* header.claims.signature, signed with SECRET by the header's family. */
static char *
sign(
    const char *header, size_t hlen, const char *claims, size_t clen, int which)
{
	static const EVP_MD *(*const mds[])(void) = {
	    EVP_sha256, EVP_sha384, EVP_sha512, EVP_sha256};
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	struct gw_buf b = {0};

	b64url(&b, (const unsigned char *)header, hlen);
	gw_buf_append(&b, ".", 1);
	b64url(&b, (const unsigned char *)claims, clen);
	if (HMAC(mds[which](), SECRET, (int)strlen(SECRET),
	        (const unsigned char *)b.p, b.len, mac, &maclen) == NULL)
		abort();
	gw_buf_append(&b, ".", 1);
	b64url(&b, mac, maclen);
	gw_buf_append(&b, "", 1);
	return b.p;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const headers[] = {
	    "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"alg\":\"HS384\"}",
	    "{\"typ\":\"JWT\",\"alg\":\"HS512\"}", "{\"alg\":\"RS256\"}"};
	struct gw_cfg cfg;
	static struct gw_keyrec sentinel;
	struct gw_keyrec *rec = &sentinel;
	char *token, msg[256];
	int admin = -1, mode;
	enum gw_status st;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	memset(&cfg, 0, sizeof(cfg));
	cfg.jwt_secret = SECRET;
	cfg.jwt_issuer = mode & 16 ? "fuzz-iss" : "";
	cfg.jwt_audience = mode & 16 ? "fuzz-aud" : "";
	cfg.jwt_user_id_claim = "sub";
	cfg.jwt_team_id_claim = "team_id";
	cfg.jwt_models_claim = "models";
	cfg.jwt_role_claim = "role";
	cfg.jwt_admin_role = "proxy_admin";
	cfg.jwt_leeway_s = 30;
	if (!(mode & 1)) {
		token = fuzz_str(data, size);
	} else {
		const char *nl = mode & 8 ? memchr(data, '\n', size) : NULL;
		int which = (mode >> 1) & 3;

		if (nl != NULL)
			token = sign((const char *)data,
			    (size_t)(nl - (const char *)data), nl + 1,
			    size - (size_t)(nl + 1 - (const char *)data),
			    which);
		else
			token = sign(headers[which], strlen(headers[which]),
			    (const char *)data, size, which);
	}
	memset(msg, 'x', sizeof(msg));
	st = gw_jwt_verify(&cfg, token, &rec, &admin, msg, sizeof(msg));
	if (st == GW_OK) {
		if (rec == NULL)
			FUZZ_FINDING("GW_OK without a record");
		if (rec->user_id == NULL && !admin)
			FUZZ_FINDING("a record with no user, not admin");
	} else {
		fuzz_check_msg("gw_jwt_verify", msg, sizeof(msg));
		if (rec != NULL || admin != 0)
			FUZZ_FINDING("refused, but a record was set");
	}
	gw_keyrec_unref(rec);
	(void)gw_jwt_looks_like(token);
	free(token);
	return 0;
}
