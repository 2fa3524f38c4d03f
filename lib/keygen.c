/* keygen.c: new virtual keys, their names and their rows. */
#include "keygen.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "json_util.h"
#include "mgmt.h"
#include "sha256.h"
#include "util.h"

void
gw_keygen_encode(const unsigned char r[32], char out[GW_KEYGEN_RAW_SIZE])
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
	                          "opqrstuvwxyz0123456789-_";
	uint32_t v;
	int i, o = 3;

	memcpy(out, "sk-", 3);
	/* Three bytes make four characters; the last two make three. */
	for (i = 0; i < 32; i += 3) {
		v = (uint32_t)r[i] << 16;
		if (i + 1 < 32)
			v |= (uint32_t)r[i + 1] << 8;
		if (i + 2 < 32)
			v |= r[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		if (i + 1 < 32)
			out[o++] = b64[(v >> 6) & 63];
		if (i + 2 < 32)
			out[o++] = b64[v & 63];
	}
	out[o] = '\0';
}

void
gw_keygen_raw(char out[GW_KEYGEN_RAW_SIZE])
{
	unsigned char r[32];

	gw_random_bytes(r, sizeof(r));
	gw_keygen_encode(r, out);
	explicit_bzero(r, sizeof(r));
}

void
gw_keygen_name(const char *raw, char out[GW_KEYGEN_NAME_SIZE])
{
	size_t n = strlen(raw);

	snprintf(
	    out, GW_KEYGEN_NAME_SIZE, "sk-...%s", raw + (n > 4 ? n - 4 : 0));
}

enum gw_status
gw_keygen_insert(struct gw_req *req, json_object *body, const char *created_by,
    char raw[GW_KEYGEN_RAW_SIZE], json_object **row, struct gw_mgmt_fail *f)
{
	struct gw_mgmt_stmt s = {0};
	struct gw_db_rows *rows = NULL;
	struct gw_buf sql = {0};
	char hash[65], name[GW_KEYGEN_NAME_SIZE];
	const char *uid, *tid;
	enum gw_status st;

	if ((st = gw_mgmt_take_fields(body, GW_MGMT_KEY, &s, f)) != GW_OK)
		goto out;
	uid = gw_json_get_str(body, "user_id");
	tid = gw_json_get_str(body, "team_id");
	if ((uid != NULL && (st = gw_mgmt_ensure_user(req, uid, f)) != GW_OK) ||
	    (tid != NULL && (st = gw_mgmt_require_team(req, tid, f)) != GW_OK))
		goto out;
	gw_keygen_raw(raw);
	gw_sha256_hex(raw, strlen(raw), hash);
	gw_keygen_name(raw, name);
	gw_mgmt_stmt_set(&s, "token", "$?", hash);
	gw_mgmt_stmt_set(&s, "key_name", "$?", name);
	gw_mgmt_stmt_set(&s, "created_by", "$?", created_by);
	gw_buf_printf(&sql,
	    "INSERT INTO keys AS k (%s) VALUES (%s) "
	    "RETURNING " GW_MGMT_KEY_JSON,
	    s.cols.p, s.vals.p);
	if ((st = gw_mgmt_run(req, sql.p, s.n, s.params, &rows, f)) != GW_OK)
		goto out;
	*row = gw_mgmt_row_json(rows, 0, 0);
out:
	gw_db_rows_free(rows);
	gw_buf_fini(&sql);
	gw_mgmt_stmt_fini(&s);
	return st;
}
