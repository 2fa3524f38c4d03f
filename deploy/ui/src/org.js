import {h} from './dom.js';
export async function teamsView(ctx) {
  ctx.main.append(h("div.page-head", h("h1", "Teams")), h("p.notice.notice-info", "Not built yet."));
}
export async function usersView(ctx) {
  ctx.main.append(h("div.page-head", h("h1", "Users")), h("p.notice.notice-info", "Not built yet."));
}
