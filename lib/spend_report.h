/*
 * spend_report.h: spend analytics of the spend family, answered from the
 * daily aggregates (spend_daily, spend_daily_tags) that the shipper keeps
 * up to date in the statement that ships each batch: a report reads one
 * row per day x key x model x user x team x end user, never spend_logs.
 *
 *   GET
 * /global/spend/report?start_date=&end_date=&group_by=team|customer|api_key GET
 * /user/daily/activity?start_date=&end_date=&user_id=&model=&api_key=
 *                            &page=&page_size=
 *   GET /team/daily/activity?start_date=&end_date=&team_ids=a,b
 *                            &exclude_team_ids=&model=&api_key=&page=&page_size=
 *   GET /spend/tags, /global/spend/tags?start_date=&end_date=&tags=a,b
 *   GET /global/spend/keys?limit=, /global/spend/models?limit=,
 *       /global/spend/teams (each with optional start_date, end_date)
 *
 * Shapes follow LiteLLM's. Dates are UTC days, both ends included. The
 * master key and admin JWTs see everything; a virtual key sees only its
 * own rows, a JWT user only its user's (as /spend/logs).
 */
#ifndef GW_SPEND_REPORT_H
#define GW_SPEND_REPORT_H

#include "err.h"

struct gw_req;
struct gw_route_call;

/* 1 when s is a real calendar date written YYYY-MM-DD. */
int gw_spend_report_valid_date(const char *s) GW_NONNULL(1);

/* Route handlers (route.h); each replies and returns GW_OK. */
enum gw_status gw_spend_report_global(
    struct gw_req *req, struct gw_route_call *c) GW_NONNULL(1, 2);
/* c->route->arg: 0 /user/daily/activity, 1 /team/daily/activity. */
enum gw_status gw_spend_report_daily(
    struct gw_req *req, struct gw_route_call *c) GW_NONNULL(1, 2);
enum gw_status gw_spend_report_tags(struct gw_req *req, struct gw_route_call *c)
    GW_NONNULL(1, 2);
/* c->route->arg: 0 keys, 1 models, 2 teams. */
enum gw_status gw_spend_report_top(struct gw_req *req, struct gw_route_call *c)
    GW_NONNULL(1, 2);

#endif /* GW_SPEND_REPORT_H */
