/* admit.c: key, user and team rate limits of a request, host-wide. */
#include "admit.h"

#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "req.h"
#include "rlshare.h"
#include "util.h"

static const char *const limit_names[] = {
    "", "rpm_limit", "tpm_limit", "max_parallel_requests"};
static const char *const limit_words[] = {
    "", "requests per minute", "tokens per minute", "requests at once"};

/* The limit a verdict names, from lim. */
static int64_t
limit_of(const struct gw_rl_limits *lim, enum gw_rl_verdict v)
{
	return v == GW_RL_RPM   ? lim->rpm
	       : v == GW_RL_TPM ? lim->tpm
	                        : lim->parallel;
}

enum gw_rl_verdict
gw_admit_take(const struct gw_principal *who, int64_t now_ns,
    struct gw_admit_tickets *t, struct gw_admit_refusal *why,
    const struct gw_rl_share *sh)
{
	const struct gw_keyrec *k = who->rec;
	struct gw_rl_limits lim;
	enum gw_rl_verdict v = GW_RL_OK;
	char ent[300];

	memset(t, 0, sizeof(*t));
	memset(why, 0, sizeof(*why));
	why->left_requests = why->left_tokens = -1;
	if (k == NULL || who->admin)
		return GW_RL_OK;
	if (who->role == GW_ROLE_KEY) {
		lim = (struct gw_rl_limits){
		    k->rpm_limit, k->tpm_limit, k->max_parallel};
		snprintf(ent, sizeof(ent), "k:%s", k->token);
		v = gw_rl_admit_shared(ent, &lim, now_ns, &t->key,
		    &why->retry_after_s, &why->left_requests, &why->left_tokens,
		    sh);
		why->level = GW_ADMIT_KEY;
	}
	if (v == GW_RL_OK && k->user_id != NULL) {
		lim = (struct gw_rl_limits){
		    k->user_rpm_limit, k->user_tpm_limit, k->user_max_parallel};
		snprintf(ent, sizeof(ent), "u:%s", k->user_id);
		v = gw_rl_admit_shared(ent, &lim, now_ns, &t->user,
		    &why->retry_after_s, NULL, NULL, sh);
		why->level = GW_ADMIT_USER;
	}
	if (v == GW_RL_OK && k->team_id != NULL) {
		lim = (struct gw_rl_limits){
		    k->team_rpm_limit, k->team_tpm_limit, k->team_max_parallel};
		snprintf(ent, sizeof(ent), "t:%s", k->team_id);
		v = gw_rl_admit_shared(ent, &lim, now_ns, &t->team,
		    &why->retry_after_s, NULL, NULL, sh);
		why->level = GW_ADMIT_TEAM;
	}
	if (v == GW_RL_OK)
		return GW_RL_OK;
	/* What the levels before the refusing one took goes back. */
	gw_rl_undo(&t->key, now_ns);
	gw_rl_undo(&t->user, now_ns);
	why->verdict = v;
	why->limit = limit_of(&lim, v);
	if (why->retry_after_s < 1)
		why->retry_after_s = 1;
	return v;
}

void
gw_admit_message(const struct gw_principal *who,
    const struct gw_admit_refusal *why, char *msg, size_t msglen)
{
	static const char *const level_names[] = {"key", "user", "team"};
	const struct gw_keyrec *k = who->rec;
	const char *name = why->level == GW_ADMIT_KEY    ? who->key_name
	                   : why->level == GW_ADMIT_USER ? k->user_id
	                                                 : k->team_id;

	snprintf(msg, msglen,
	    "Rate limit exceeded for %s %.200s: %s %lld (%s) reached. Retry "
	    "in %d s.",
	    level_names[why->level], name, limit_names[why->verdict],
	    (long long)why->limit, limit_words[why->verdict],
	    why->retry_after_s);
}

/* x-ratelimit-{limit,remaining,reset}-<what>, "12s" as OpenAI sends. */
static void
limit_headers(struct gw_req *req, const char *what, int64_t limit, int64_t left,
    int64_t reset_s)
{
	char name[48];

	snprintf(name, sizeof(name), "x-ratelimit-limit-%s", what);
	gw_req_add_header(req, name, "%lld", (long long)limit);
	snprintf(name, sizeof(name), "x-ratelimit-remaining-%s", what);
	gw_req_add_header(req, name, "%lld", (long long)(left < 0 ? 0 : left));
	snprintf(name, sizeof(name), "x-ratelimit-reset-%s", what);
	gw_req_add_header(req, name, "%llds", (long long)reset_s);
}

int
gw_admit_request(struct gw_req *req, const struct gw_principal *who,
    struct gw_admit_tickets *t)
{
	const struct gw_keyrec *k = who->rec;
	struct gw_admit_refusal why;
	struct gw_rl_share sh;
	struct gw_rlshare_arg arg;
	int64_t now = gw_now_real_us() * 1000, reset_s;
	char msg[400];

	if (gw_admit_take(who, now, t, &why,
	        gw_rlshare_get(&sh, &arg, req->cfg,
	            req->ctx != NULL ? req->ctx->db : NULL)) == GW_RL_OK) {
		if (k == NULL || who->admin || who->role != GW_ROLE_KEY)
			return 0;
		reset_s = (gw_rl_reset_ms(now) + 999) / 1000;
		if (k->rpm_limit >= 0)
			limit_headers(req, "requests", k->rpm_limit,
			    why.left_requests, reset_s);
		if (k->tpm_limit >= 0)
			limit_headers(req, "tokens", k->tpm_limit,
			    why.left_tokens, reset_s);
		return 0;
	}
	gw_admit_message(who, &why, msg, sizeof(msg));
	gw_req_add_header(req, "Retry-After", "%d", why.retry_after_s);
	gw_reply_error_ex(req, 429, "rate_limit_error", NULL, msg);
	return -1;
}

void
gw_admit_done(struct gw_admit_tickets *t, int64_t tokens, int64_t now_ns)
{
	gw_rl_done(&t->key, tokens, now_ns);
	gw_rl_done(&t->user, tokens, now_ns);
	gw_rl_done(&t->team, tokens, now_ns);
}
