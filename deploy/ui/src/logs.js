import {h} from './dom.js';
export async function logsView(ctx) {
  ctx.main.append(h("div.page-head", h("h1", "Logs")), h("p.notice.notice-info", "Not built yet."));
}
