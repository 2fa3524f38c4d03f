/*
 * spend_api.h: the spend route family (cgi-bin/llmgw-spend):
 * GET /spend/logs?start_date=&end_date=&user_id=&api_key=&request_id=
 *                 &model=&limit=&offset=
 * The body is the spec's JSON array of SpendLog rows (request_id, model,
 * tokens, cost, timestamp, user_id, and the rest of the row beside them);
 * paging goes in headers (X-Total-Count, X-Limit, X-Offset, Link). Dates
 * are UTC days, both ends included whole. A virtual key sees only its own
 * rows, a JWT user only its user's; the master key sees all. A request
 * without limit answers the whole range up to [spend] logs_max_limit rows,
 * and 400 when more match. request_id finds a row by our id or by the
 * upstream's completion id (response_id). The analytics routes of the
 * family are spend_report.h's.
 */
#ifndef GW_SPEND_API_H
#define GW_SPEND_API_H

#include "err.h"

struct gw_req;

/* Route and answer one request of the spend family; always replies. */
enum gw_status gw_spend_handle(struct gw_req *req) GW_NONNULL(1);

#endif /* GW_SPEND_API_H */
