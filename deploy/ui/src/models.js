// Models and health: aliases, targets, fallbacks and prices; what
// llama-swap has loaded; the swap-aware scheduler; readiness; live figures
// from /metrics, refreshed every few seconds.
import {api, get} from './api.js';
import {h, clear, errorBox, emptyRow} from './dom.js';
import {num, timeEl} from './fmt.js';
import {sparkline} from './chart.js';

const REFRESH_MS = 4000;
// Routes whose requests are the page's own polling, left out of the rates.
const OWN = new Set(['metrics', 'health', 'readiness', 'liveliness', 'scheduler_status', 'upstream_running']);

const perM = (x) => (x === null || x === undefined ? '—' : '$' + (x * 1e6).toFixed(x * 1e6 >= 10 ? 2 : 3).replace(/\.?0+$/, (m) => (m.startsWith('.') ? '' : m)));

// Prometheus text → [{name, labels, value}].
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({name: m[1], labels, value: Number(m[4])});
  }
  return out;
}

function totals(series) {
  let req = 0;
  let err = 0;
  let tokens = 0;
  let inflight = 0;
  for (const s of series) {
    if (s.name === 'llmgw_requests_total' && !OWN.has(s.labels.route)) {
      req += s.value;
      if (Number(s.labels.status) >= 500 || s.labels.status === '429') err += s.value;
    } else if (s.name === 'llmgw_tokens_total') {
      tokens += s.value;
    } else if (s.name === 'llmgw_requests_in_flight') {
      inflight += s.value;
    }
  }
  // The scrape itself is in flight in the health family.
  return {req, err, tokens, inflight: Math.max(0, inflight - 1)};
}

function stat(label, id, sub) {
  return h('div.kpi', h('div.kpi-label', label), h('div.kpi-value', {'data-stat': id}, '—'), h('div.kpi-sub', sub));
}

function unavailable(what) {
  return h('div.notice.notice-info', h('strong', 'Not available. '), what);
}

export async function modelsView(ctx) {
  const {main, can} = ctx;
  const live = h('div.kpis',
    stat('Requests / s', 'rps', 'over the last few seconds'),
    stat('In flight', 'inflight', 'requests now, all families'),
    stat('Error rate', 'errors', '5xx and 429, last few seconds'),
    stat('Tokens / s', 'tps', 'prompt + completion'));
  const spark = h('div.chart.chart-small');
  const ready = h('div');
  const sched = h('div');
  const running = h('div');
  const aliases = h('tbody');
  const updated = h('span.muted.small');
  main.append(
    h('div.page-head', h('div', h('h1', 'Models & health'), h('p.muted', 'What the gateway routes to, what is loaded, and how it is doing.')), updated),
    live,
    h('div.grid.grid-2',
      h('div.card', h('div.card-head', h('h2', 'Requests per second'), h('span.muted.small', 'the last 4 minutes, one point per refresh')), spark),
      h('div.card.card-pad', h('h2', 'Gateway'), ready)),
    h('div.grid.grid-2',
      h('div.card.card-pad', h('h2', 'Loaded in llama-swap'), running),
      h('div.card.card-pad', h('h2', 'Swap-aware scheduler'), sched)),
    h('div.card', h('div.card-head', h('h2', 'Models and aliases')),
      h('div.table-wrap', h('table.table',
        h('thead', h('tr', ['Name', 'Target', 'Fallbacks', 'Mode', 'Input / 1M', 'Output / 1M'].map((c, i) => h('th' + (i >= 4 ? '.r' : ''), {scope: 'col'}, c)))),
        aliases))));

  // Aliases: once.
  try {
    const r = await get('/model/info');
    const rows = (r.data || []).slice().sort((a, b) => {
      const aa = a.model_name !== a.litellm_params.model;
      const bb = b.model_name !== b.litellm_params.model;
      return aa === bb ? a.model_name.localeCompare(b.model_name) : aa ? -1 : 1;
    });
    clear(aliases, rows.length ? rows.map((m) => {
      const i = m.model_info || {};
      const target = (m.litellm_params || {}).model;
      const alias = target && target !== m.model_name;
      return h('tr',
        h('td', h('span.cell-main', m.model_name), alias ? h('span.chip.chip-alias', 'alias') : null),
        h('td', alias ? target : h('span.muted', 'itself')),
        h('td', i.fallbacks && i.fallbacks.length ? h('span.chips', i.fallbacks.map((f) => h('span.chip', typeof f === 'string' ? f : JSON.stringify(f)))) : h('span.muted', 'none')),
        h('td', i.mode || '—'),
        h('td.r.num', perM(i.input_cost_per_token)),
        h('td.r.num', perM(i.output_cost_per_token)));
    }) : emptyRow(6, 'No model.'));
  } catch (e) {
    clear(aliases, h('tr', h('td', {colspan: 6}, errorBox(e))));
  }

  const line = sparkline(spark, 'req/s', (v) => (v >= 10 ? num(Math.round(v)) : v.toFixed(1)));
  let last = null;
  let timer = null;
  let stopped = false;

  async function tick() {
    const now = Date.now();
    // Readiness and health (an admin sees the latencies).
    // /metrics first, alone: its in-flight figure is then only the scrape.
    const [mt] = await Promise.allSettled([api('GET', '/metrics').then((r) => r.data)]);
    const [rd, hl, sc, rn] = await Promise.allSettled([
      api('GET', '/health/readiness').then((r) => r.data),
      get('/health'),
      can.readAll ? api('GET', '/scheduler/status', null, null, {quiet404: true}) : Promise.resolve(null),
      can.readAll ? api('GET', '/upstream/running', null, null, {quiet404: true}) : Promise.resolve(null),
    ]);
    if (stopped) return;
    const facts = [];
    if (rd.status === 'fulfilled') {
      const v = rd.value;
      facts.push(['Readiness', h('span.badge.badge-' + (v.status === 'ready' ? 'ok' : 'bad'), v.status)],
        ['Version', v.version], ['Database', v.database],
        ['Migrations', num(v.migrations && v.migrations.applied) + ' of ' + num(v.migrations && v.migrations.expected)]);
    } else {
      facts.push(['Readiness', h('span.badge.badge-bad', 'not ready')], ['Reason', rd.reason.message]);
    }
    if (hl.status === 'fulfilled') {
      const c = hl.value.checks || {};
      facts.push(['Health', h('span.badge.badge-' + (hl.value.status === 'healthy' ? 'ok' : hl.value.status === 'degraded' ? 'warn' : 'bad'), hl.value.status)]);
      for (const [name, v] of Object.entries(c)) {
        facts.push([name[0].toUpperCase() + name.slice(1),
          h('span', h('span.badge.badge-' + (v.status === 'ok' ? 'ok' : 'bad'), v.status),
            v.latency_ms !== undefined ? h('span.muted', ' ' + v.latency_ms.toFixed(1) + ' ms') : null,
            v.url ? h('span.mono.small.muted', ' ' + v.url) : null,
            v.error ? h('span.small', ' ' + v.error) : null)]);
      }
    }
    facts.push(['Checked', timeEl(new Date(now).toISOString())]);
    clear(ready, h('dl.facts', facts.map(([k, v]) => [h('dt', k), h('dd', v)])));

    if (!can.readAll) {
      clear(sched, unavailable('The scheduler\'s state is for admins.'));
      clear(running, unavailable('What is loaded is for admins.'));
    } else {
      if (sc.status === 'fulfilled' && sc.value && sc.value.data) {
        const s = sc.value.data;
        const groups = s.groups || [];
        clear(sched, !s.enabled ? h('p', h('span.badge.badge-off', 'off'), ' The scheduler is disabled ([scheduler] in llmgw.conf).') : null,
          groups.length ? h('div.table-wrap', h('table.table.table-compact',
            h('thead', h('tr', ['Group', 'Active model', 'Model', 'In flight', 'Waiting', 'Oldest wait'].map((c) => h('th', {scope: 'col'}, c)))),
            h('tbody', groups.flatMap((g) => (g.models && g.models.length ? g.models : [{}]).map((m, i) => h('tr',
              i === 0 ? h('td', String(g.group)) : h('td'),
              i === 0 ? h('td', g.active ? h('span.cell-main', g.active) : h('span.muted', 'none'),
                g.active_for_s ? h('span.muted', ' for ' + num(Math.round(g.active_for_s)) + ' s') : null,
                g.draining ? h('span.badge.badge-warn', 'draining') : null) : h('td'),
              h('td', m.model || '—'),
              h('td.num', num(m.in_flight || 0)),
              h('td.num', m.waiting ? h('span.badge.badge-warn', num(m.waiting)) : '0'),
              h('td.num', m.oldest_wait_s ? m.oldest_wait_s.toFixed(1) + ' s' : '—')))))))
            : s.enabled ? h('p.muted', 'No swap group has seen a request yet.') : null);
      } else if (sc.status === 'fulfilled' && sc.value && sc.value.status === 404) {
        clear(sched, unavailable('This gateway has no GET /scheduler/status.'));
      } else if (sc.status === 'rejected') {
        clear(sched, errorBox(sc.reason));
      }
      if (rn.status === 'fulfilled' && rn.value && rn.value.data) {
        const list = rn.value.data.running || [];
        clear(running, list.length ? h('ul.loaded', list.map((m) => h('li',
          h('span.cell-main', m.model), h('span.badge.badge-' + (m.state === 'ready' ? 'ok' : 'warn'), m.state || '?'))))
          : h('p.muted', 'No model loaded right now.'));
      } else if (rn.status === 'fulfilled' && rn.value && rn.value.status === 404) {
        clear(running, unavailable('The gateway has no route to llama-swap\'s /running (GET /upstream/running).'));
      } else if (rn.status === 'rejected') {
        clear(running, errorBox(rn.reason));
      }
    }

    if (mt.status === 'fulfilled') {
      const t = totals(parseMetrics(String(mt.value)));
      const set = (id, v) => (main.querySelector(`[data-stat="${id}"]`).textContent = v);
      set('inflight', num(t.inflight));
      if (last) {
        const dt = (now - last.at) / 1000;
        const dr = Math.max(0, t.req - last.req);
        const rps = dr / dt;
        set('rps', rps >= 10 ? num(Math.round(rps)) : rps.toFixed(1));
        set('errors', dr ? ((Math.max(0, t.err - last.err) / dr) * 100).toFixed(1) + '%' : '0%');
        const tps = Math.max(0, t.tokens - last.tokens) / dt;
        set('tps', tps >= 10 ? num(Math.round(tps)) : tps.toFixed(1));
        line.push(now / 1000, rps);
      }
      last = {...t, at: now};
    }
    updated.textContent = 'Refreshed every ' + REFRESH_MS / 1000 + ' s';
  }

  async function loop() {
    try {
      await tick();
    } catch (e) {
      /* the next tick tries again */
    }
    if (!stopped) timer = setTimeout(loop, REFRESH_MS);
  }
  await tick();
  // A first rate after a second, then every REFRESH_MS.
  timer = setTimeout(loop, 1000);
  return () => {
    stopped = true;
    clearTimeout(timer);
    line.stop();
  };
}
