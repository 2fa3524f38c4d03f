// Logs: the recent requests from /spend/logs, filtered and paged.
import {api} from './api.js';
import {h, clear, errorBox, emptyRow} from './dom.js';
import {num, moneyEl, ms, timeEl, day, daysAgo} from './fmt.js';
import {keysFor} from './keys.js';

const PAGE = 50;

function statusBadge(s) {
  const kind = s >= 200 && s < 300 ? 'ok' : s === 429 || (s >= 400 && s < 500) ? 'warn' : 'bad';
  return h('span.badge.badge-' + kind, String(s));
}

export async function logsView(ctx) {
  const {main, can} = ctx;
  const start = h('input', {type: 'date', value: daysAgo(6), 'aria-label': 'From'});
  const end = h('input', {type: 'date', value: day(new Date()), 'aria-label': 'To'});
  const model = h('input', {type: 'search', placeholder: 'Model (requested or actual)', 'aria-label': 'Model'});
  const keySel = h('select', {'aria-label': 'Key'}, h('option', {value: ''}, 'All keys'));
  const user = can.readAll ? h('input', {type: 'search', placeholder: 'User id', 'aria-label': 'User'}) : null;
  const reqId = h('input', {type: 'search', placeholder: 'Request or completion id', 'aria-label': 'Request id'});
  const tbody = h('tbody');
  const pager = h('div.pager');
  main.append(
    h('div.page-head', h('div', h('h1', 'Logs'), h('p.muted', 'Every request that passed authentication, newest first. Prompts and answers are never stored.'))),
    h('div.card',
      h('form.toolbar', {role: 'search'}, h('label.range-field', 'From', start), h('label.range-field', 'To', end), model, keySel, user, reqId),
      h('div.table-wrap', h('table.table.logs-table',
        h('thead', h('tr', ['Time', 'Key', 'Model', 'Status', 'Latency', 'TTFT', 'Tokens in / out', 'Cost', 'Error']
          .map((c, i) => h('th' + (i >= 4 && i <= 7 ? '.r' : ''), {scope: 'col'}, c)))),
        tbody)),
      pager));

  let offset = 0;
  let timer = null;

  async function load() {
    const q = {start_date: start.value, end_date: end.value, limit: PAGE, offset,
      model: model.value.trim(), api_key: keySel.value, request_id: reqId.value.trim(),
      user_id: user ? user.value.trim() : ''};
    let r;
    try {
      r = await api('GET', '/spend/logs', q);
    } catch (e) {
      clear(tbody, h('tr', h('td', {colspan: 9}, errorBox(e))));
      clear(pager);
      return;
    }
    const rows = Array.isArray(r.data) ? r.data : [];
    const total = Number(r.headers.get('X-Total-Count') || rows.length);
    clear(tbody, rows.length ? rows.map((x) => {
      const lat = x.startTime && x.endTime ? Date.parse(x.endTime) - Date.parse(x.startTime) : null;
      const actual = x.actual_model && x.actual_model !== x.model ? x.actual_model : null;
      return h('tr', {'data-request': x.request_id},
        h('td', timeEl(x.startTime || x.timestamp)),
        h('td', x.key_alias || (x.metadata && x.metadata.user_api_key_alias) || h('span.mono.small.muted', (x.api_key || '').slice(0, 10) || '—')),
        h('td', h('span.cell-main', x.model || '—'), actual ? h('span.muted', ' → ' + actual) : null,
          x.stream ? h('span.chip.chip-stream', 'stream') : null),
        h('td', statusBadge(x.status)),
        h('td.r.num', ms(lat)),
        h('td.r.num', x.ttft_ms === null || x.ttft_ms === undefined ? h('span.muted', '—') : ms(x.ttft_ms)),
        h('td.r.num', num(x.prompt_tokens) + ' / ' + num(x.completion_tokens), x.usage_estimated ? h('span.muted', {title: 'estimated'}, ' ≈') : null),
        h('td.r', moneyEl(x.spend)),
        h('td', x.error_type ? h('span.err-type', x.error_type) : h('span.muted', '—')));
    }) : emptyRow(9, 'No request matches.'));
    const from = total ? offset + 1 : 0;
    const to = Math.min(offset + rows.length, total);
    const prev = h('button.btn.btn-small', {type: 'button', disabled: offset === 0, onclick: () => {
      offset = Math.max(0, offset - PAGE);
      load();
    }}, '‹ Newer');
    const next = h('button.btn.btn-small', {type: 'button', disabled: to >= total, onclick: () => {
      offset += PAGE;
      load();
    }}, 'Older ›');
    clear(pager, h('span.muted', num(from) + '–' + num(to) + ' of ' + num(total)), h('div.btn-row', prev, next));
  }

  const reload = () => {
    offset = 0;
    clearTimeout(timer);
    timer = setTimeout(load, 250);
  };
  for (const el of [start, end, keySel]) el.addEventListener('change', reload);
  for (const el of [model, reqId, user].filter(Boolean)) el.addEventListener('input', reload);
  main.querySelector('form').addEventListener('submit', (e) => e.preventDefault());
  try {
    const keys = await keysFor(ctx);
    for (const k of keys) keySel.appendChild(h('option', {value: k.token}, k.key_alias || k.key_name));
  } catch {
    /* the key filter stays "All keys" */
  }
  await load();
  return () => clearTimeout(timer);
}
