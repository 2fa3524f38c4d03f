// Usage: spend and requests per day, by model, key, user and team, over a
// date range, from /user/daily/activity and /team/daily/activity.
import {get} from './api.js';
import {h, clear, errorBox, emptyRow} from './dom.js';
import {num, money, moneyEl, day, daysAgo} from './fmt.js';
import {dailyChart} from './chart.js';

function add(into, m) {
  into.spend += m.spend || 0;
  into.requests += m.api_requests || 0;
  into.ok += m.successful_requests || 0;
  into.failed += m.failed_requests || 0;
  into.prompt += m.prompt_tokens || 0;
  into.completion += m.completion_tokens || 0;
}

const zero = () => ({spend: 0, requests: 0, ok: 0, failed: 0, prompt: 0, completion: 0});

// Sum one breakdown (models, api_keys, entities) over the days.
function sumBreakdown(results, which) {
  const out = new Map();
  for (const d of results) {
    for (const [name, v] of Object.entries((d.breakdown && d.breakdown[which]) || {})) {
      if (!out.has(name)) out.set(name, {name, meta: v.metadata || {}, ...zero()});
      add(out.get(name), v.metrics || {});
    }
  }
  return [...out.values()].sort((a, b) => b.spend - a.spend || b.requests - a.requests);
}

async function allDays(path, query) {
  const results = [];
  let meta = {};
  for (let page = 1; page <= 20; page++) {
    const r = await get(path, {...query, page, page_size: 1000});
    results.push(...(r.results || []));
    meta = r.metadata || {};
    if (!meta.has_more) break;
  }
  return {results, meta};
}

function kpi(label, value, sub) {
  return h('div.kpi', h('div.kpi-label', label), h('div.kpi-value', value), sub ? h('div.kpi-sub', sub) : null);
}

function breakdownTable(title, rows, first, firstCell, empty) {
  const total = rows.reduce((s, r) => s + r.spend, 0);
  return h('div.card',
    h('div.card-head', h('h2', title), h('span.muted', num(rows.length))),
    h('div.table-wrap', h('table.table',
      h('thead', h('tr', h('th', {scope: 'col'}, first), ['Requests', 'Errors', 'Tokens in', 'Tokens out', 'Spend', 'Share']
        .map((c) => h('th.r', {scope: 'col'}, c)))),
      h('tbody', rows.length ? rows.slice(0, 50).map((r) => h('tr',
        h('td', firstCell(r)),
        h('td.r.num', num(r.requests)),
        h('td.r.num', r.failed ? h('span.badge.badge-bad', num(r.failed)) : h('span.muted', '0')),
        h('td.r.num', num(r.prompt)),
        h('td.r.num', num(r.completion)),
        h('td.r', moneyEl(r.spend)),
        h('td.r.num.muted', total > 0 ? ((r.spend / total) * 100).toFixed(1) + '%' : '—'))) : emptyRow(7, empty)))));
}

export async function usageView(ctx) {
  const {main} = ctx;
  const start = h('input', {type: 'date', value: daysAgo(13), 'aria-label': 'From'});
  const end = h('input', {type: 'date', value: day(new Date()), 'aria-label': 'To'});
  const presets = [7, 14, 30, 90].map((n) => h('button.btn.btn-small', {type: 'button', onclick: () => {
    start.value = daysAgo(n - 1);
    end.value = day(new Date());
    load();
  }}, n + ' days'));
  const body = h('div');
  main.append(
    h('div.page-head', h('div', h('h1', 'Usage'), h('p.muted', 'Spend, requests and tokens per day (UTC), from the daily aggregates.')),
      h('div.range', h('label.range-field', 'From', start), h('label.range-field', 'To', end), h('div.btn-row', presets))),
    body);
  let stopChart = null;

  async function load() {
    if (stopChart) stopChart();
    stopChart = null;
    if (!start.value || !end.value) return;
    const q = {start_date: start.value, end_date: end.value};
    let users;
    let teams = null;
    try {
      users = await allDays('/user/daily/activity', q);
    } catch (e) {
      clear(body, errorBox(e));
      return;
    }
    try {
      teams = await allDays('/team/daily/activity', q);
    } catch {
      teams = null;
    }
    const byDay = new Map(users.results.map((d) => [d.date, d]));
    const days = [];
    for (let t = Date.parse(start.value + 'T00:00:00Z'); t <= Date.parse(end.value + 'T00:00:00Z'); t += 86400000) {
      const key = new Date(t).toISOString().slice(0, 10);
      const m = (byDay.get(key) || {}).metrics || {};
      days.push({date: key, spend: m.spend || 0, requests: m.api_requests || 0});
    }
    const tot = zero();
    for (const d of users.results) add(tot, d.metrics || {});
    const models = sumBreakdown(users.results, 'models');
    const keys = sumBreakdown(users.results, 'api_keys');
    const people = sumBreakdown(users.results, 'entities');
    const teamRows = teams ? sumBreakdown(teams.results, 'entities') : [];
    const chartBox = h('div.chart');
    const errRate = tot.requests ? ((tot.failed / tot.requests) * 100).toFixed(1) + '% failed' : 'no requests';
    const top = (rows, label) => h('ol.top', rows.slice(0, 5).map((r) => h('li',
      h('span.top-name', label(r)), h('span.top-bar', h('span.top-fill.js-w', {'data-w': rows[0].spend ? r.spend / rows[0].spend : 0})),
      moneyEl(r.spend))));
    clear(body,
      h('div.kpis',
        kpi('Spend', money(tot.spend), days.length + ' days'),
        kpi('Requests', num(tot.requests), errRate),
        kpi('Tokens in', num(tot.prompt), 'prompt'),
        kpi('Tokens out', num(tot.completion), 'completion'),
        kpi('Avg cost / request', tot.requests ? money(tot.spend / tot.requests) : '—', 'over the range')),
      h('div.card', h('div.card-head', h('h2', 'Spend and requests per day'), h('span.muted.small', 'UTC days; hover for figures')), chartBox),
      h('div.grid.grid-2',
        h('div.card.card-pad', h('h2', 'Top keys'), keys.length ? top(keys, (r) => r.meta.key_alias || r.name.slice(0, 10) + '…') : h('p.muted', 'No spend in this range.')),
        h('div.card.card-pad', h('h2', 'Top users'), people.length ? top(people, (r) => r.name || '(no user)') : h('p.muted', 'No spend in this range.'))),
      breakdownTable('By model', models, 'Model', (r) => h('span.cell-main', r.name), 'No requests in this range.'),
      breakdownTable('By key', keys, 'Key', (r) => h('div', h('div.cell-main', r.meta.key_alias || h('span.muted', 'no alias')),
        h('div.mono.small.muted', r.name.slice(0, 16) + '…')), 'No requests in this range.'),
      breakdownTable('By user', people, 'User', (r) => r.name || h('span.muted', '(none)'), 'No requests in this range.'),
      teams ? breakdownTable('By team', teamRows, 'Team', (r) => r.name || h('span.muted', '(no team)'), 'No requests in this range.') : null);
    for (const el of body.querySelectorAll('.js-w')) el.style.width = (Number(el.dataset.w) * 100).toFixed(1) + '%';
    stopChart = dailyChart(chartBox, days);
  }

  start.addEventListener('change', load);
  end.addEventListener('change', load);
  await load();
  return () => stopChart && stopChart();
}
