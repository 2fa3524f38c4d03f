import {h} from './dom.js';
export async function usageView(ctx) {
  ctx.main.append(h("div.page-head", h("h1", "Usage")), h("p.notice.notice-info", "Not built yet."));
}
