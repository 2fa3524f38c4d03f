/*
 * mgmt.h: what the management handlers (keys_api.c, org_api.c) share:
 * the error a handler answers (struct gw_mgmt_fail), the request body and
 * query, the table of fields a key, user or team body may hold and their
 * checks, the statement those fields build (INSERT columns or UPDATE
 * assignments, text parameters), and SQL run with its failure mapped to
 * an answer (503, 500, or a 400 for a duplicate or a missing reference).
 *
 * A handler fills one struct gw_mgmt_fail where it fails and answers it
 * once, at its out: label, with gw_mgmt_reply_fail.
 */
#ifndef GW_MGMT_H
#define GW_MGMT_H

#include <json-c/json.h>
#include <stddef.h>

#include "err.h"
#include "util.h"

struct gw_db_rows;
struct gw_principal;
struct gw_req;

/* Parameters of one statement, at most. */
#define GW_MGMT_MAX_PARAMS 40

/* The JSON of one key row k as every answer shows it (no raw key, ever). */
#define GW_MGMT_KEY_JSON "(to_jsonb(k))::text"

/*
 * The JSON of one team row x as every answer shows it: its columns and
 * LiteLLM's members_with_roles ([{"user_id", "role"}], oldest first).
 */
#define GW_MGMT_TEAM_JSON                                                      \
	"(to_jsonb(x) || jsonb_build_object('members_with_roles', (SELECT "    \
	"COALESCE(jsonb_agg(jsonb_build_object('user_id', m.user_id, 'role', " \
	"m.role) ORDER BY m.created_at, m.user_id), '[]'::jsonb) FROM "        \
	"team_members m WHERE m.team_id = x.team_id)))::text"

/* An error for the client: HTTP status, OpenAI type, param and message. */
struct gw_mgmt_fail {
	int status;
	const char *type; /* static */
	char param[64];   /* "" for none */
	char msg[400];
};

/*
 * Fill f; param may be NULL (none). Returns GW_E_DB for a 503, else
 * GW_E_INVALID: what a handler returns to its out: label.
 */
enum gw_status gw_mgmt_set_fail(struct gw_mgmt_fail *f, int status,
    const char *type, const char *param, const char *fmt, ...) GW_PRINTF(5, 6)
    GW_NONNULL(1, 3, 5);
/* A 403 permission_error for param (may be NULL). */
enum gw_status gw_mgmt_forbidden(struct gw_mgmt_fail *f, const char *param,
    const char *fmt, ...) GW_PRINTF(3, 4) GW_NONNULL(1, 3);
/* A 400 invalid_request_error for param (may be NULL). */
enum gw_status gw_mgmt_invalid(struct gw_mgmt_fail *f, const char *param,
    const char *fmt, ...) GW_PRINTF(3, 4) GW_NONNULL(1, 3);
/* Answer f in OpenAI's error shape. Returns GW_OK (req has its answer). */
enum gw_status gw_mgmt_reply_fail(
    struct gw_req *req, const struct gw_mgmt_fail *f) GW_NONNULL(1, 2);

/*
 * The request body as a new JSON object ({} when empty or blank; caller
 * puts it). Otherwise f: the body's read error, unparsable JSON, or not
 * an object.
 */
enum gw_status gw_mgmt_read_object(struct gw_req *req, json_object **out,
    struct gw_mgmt_fail *f) GW_NONNULL(1, 2, 3);
/* ?name= URL-decoded into out; absent leaves out "". Malformed: f. */
enum gw_status gw_mgmt_query_opt(struct gw_req *req, const char *name,
    char *out, size_t len, struct gw_mgmt_fail *f) GW_NONNULL(1, 2, 3, 5);
/* ?name= as an integer within [1, max], or dflt when absent; else f. */
enum gw_status gw_mgmt_query_int(struct gw_req *req, const char *name,
    long dflt, long max, long *out, struct gw_mgmt_fail *f)
    GW_NONNULL(1, 2, 5, 6);

/*
 * Run sql on the request's database (rows as gw_db_exec; may be NULL).
 * A statement on its own is tried again on a fresh connection after a
 * PostgreSQL restart, one inside a transaction is not (db.c). A failure
 * becomes f: a unique violation a 400 (param key_alias when it is the
 * alias), a foreign key a 400 (param team_id), a lost or unreachable
 * database a 503, anything else a 500 (logged).
 */
enum gw_status gw_mgmt_run(struct gw_req *req, const char *sql, int n,
    const char *const *params, struct gw_db_rows **rows, struct gw_mgmt_fail *f)
    GW_NONNULL(1, 2, 6);
/* BEGIN; a failure becomes f as in gw_mgmt_run. */
enum gw_status gw_mgmt_begin(struct gw_req *req, struct gw_mgmt_fail *f)
    GW_NONNULL(1, 2);
/*
 * End the transaction of gw_mgmt_begin: COMMIT when st is GW_OK, else
 * ROLLBACK. Returns st, or COMMIT's failure (in f).
 */
enum gw_status gw_mgmt_end(struct gw_req *req, enum gw_status st,
    struct gw_mgmt_fail *f) GW_NONNULL(1, 3);

/*
 * A statement under construction (zero it to start; gw_mgmt_stmt_fini):
 * for INSERT "cols" and "vals", for UPDATE "sets", and the n parameters.
 */
struct gw_mgmt_stmt {
	struct gw_buf cols; /* "a, b" */
	struct gw_buf vals; /* "$1, now() + $2::interval" */
	struct gw_buf sets; /* "a = $1, b = now() + $2::interval" */
	const char *params[GW_MGMT_MAX_PARAMS];
	char *owned[GW_MGMT_MAX_PARAMS];
	int n;
};

/* Free what s holds; s can be used again zeroed. */
void gw_mgmt_stmt_fini(struct gw_mgmt_stmt *s) GW_NONNULL(1);
/* Add a parameter (copied; NULL is SQL NULL); returns its number ($n). */
int gw_mgmt_stmt_param(struct gw_mgmt_stmt *s, const char *v) GW_NONNULL(1);
/*
 * Add column = tmpl, where "$?" in tmpl (exactly once) stands for value's
 * parameter: ("expires", "now() + $?::interval", "30 days").
 */
void gw_mgmt_stmt_set(struct gw_mgmt_stmt *s, const char *column,
    const char *tmpl, const char *value) GW_NONNULL(1, 2, 3);

/* Whose fields a body holds. */
enum gw_mgmt_entity {
	GW_MGMT_KEY,
	GW_MGMT_USER,
	GW_MGMT_TEAM,
};

/*
 * Check every field of entity's table present in body (in table order)
 * and add it to s; fields not in the table are ignored (LiteLLM scripts
 * send many). A bad value: f with the field as param ("'max_budget' must
 * be a number >= 0").
 */
enum gw_status gw_mgmt_take_fields(json_object *body,
    enum gw_mgmt_entity entity, struct gw_mgmt_stmt *s, struct gw_mgmt_fail *f)
    GW_NONNULL(1, 3, 4);

/*
 * "spend" of an update body (a number >= 0; absent: nothing) into s:
 * update routes only, and only for an admin (the handler's check).
 */
enum gw_status gw_mgmt_take_spend(json_object *body, struct gw_mgmt_stmt *s,
    struct gw_mgmt_fail *f) GW_NONNULL(1, 2, 3);

/*
 * "30s", "15m", "1h", "30d", "2w", "1mo" (1 to 6 digits, > 0) as a
 * PostgreSQL interval ("30 seconds", ...). GW_E_INVALID for anything else.
 */
enum gw_status gw_mgmt_duration(const char *in, char *out, size_t outlen)
    GW_NONNULL(1, 2);

/*
 * Who acts, for created_by and deleted_by: "master_key", the caller's
 * user_id, else "jwt" or "key"; never a fragment of a secret (borrowed).
 */
const char *gw_mgmt_caller_name(const struct gw_principal *who) GW_NONNULL(1);
/* The caller's own user_id (a key's user, a JWT's subject), or NULL. */
const char *gw_mgmt_caller_user(const struct gw_principal *who) GW_NONNULL(1);
/*
 * The longest user or team id (bytes): OpenID Connect's bound on a "sub"
 * claim. Query buffers of GW_MGMT_ID_MAX + 1 hold any id.
 */
#define GW_MGMT_ID_MAX 255

/* A 400 (param, "'user_id' must be at most 255 bytes") for a longer id. */
enum gw_status gw_mgmt_check_id(const char *param, const char *id,
    struct gw_mgmt_fail *f) GW_NONNULL(1, 2, 3);

/*
 * Make sure user_id exists: created on the spot, as LiteLLM does, as an
 * internal_user_viewer. A 400 for an id over GW_MGMT_ID_MAX.
 */
enum gw_status gw_mgmt_ensure_user(struct gw_req *req, const char *user_id,
    struct gw_mgmt_fail *f) GW_NONNULL(1, 2, 3);
/* A 400 (param team_id) unless team_id exists. */
enum gw_status gw_mgmt_require_team(struct gw_req *req, const char *team_id,
    struct gw_mgmt_fail *f) GW_NONNULL(1, 2, 3);

/*
 * Before an admin sets the spend of a key (id its hash), user or team by
 * hand: its spend so far into budget_resets, as a scheduled reset records
 * it, in the caller's transaction. No row, nothing recorded.
 */
enum gw_status gw_mgmt_record_reset(struct gw_req *req,
    enum gw_mgmt_entity entity, const char *id, struct gw_mgmt_fail *f)
    GW_NONNULL(1, 3, 4);

/*
 * Rows to JSON, built by our own SQL: one row's JSON text parsed (a new
 * object; {} when NULL), every row's (a new array), or every row's text
 * in col as strings (a new array).
 */
json_object *gw_mgmt_row_json(const struct gw_db_rows *rows, int row, int col)
    GW_NONNULL(1);
json_object *gw_mgmt_rows_json(const struct gw_db_rows *rows, int col)
    GW_NONNULL(1);
json_object *gw_mgmt_rows_strings(const struct gw_db_rows *rows, int col)
    GW_NONNULL(1);

/*
 * The answer of an info route, LiteLLM's shape: {id_name: id, the top
 * fields of info copied, info_name: info} (a new object; info is only
 * referenced). top may be NULL when ntop is 0.
 */
json_object *gw_mgmt_info_new(const char *id_name, const char *id,
    const char *const *top, size_t ntop, const char *info_name,
    json_object *info) GW_NONNULL(1, 2, 5, 6);

#endif /* GW_MGMT_H */
