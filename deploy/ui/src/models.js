import {h} from './dom.js';
export async function modelsView(ctx) {
  ctx.main.append(h("div.page-head", h("h1", "Models")), h("p.notice.notice-info", "Not built yet."));
}
