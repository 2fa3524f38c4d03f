// Keys: the table, filters, create, block/unblock, regenerate, delete.
import {get, post} from './api.js';
import {h, clear, bar, modal, confirmDialog, field, toast, errorBox, emptyRow, iconButton} from './dom.js';
import {num, money, moneyEl, timeEl} from './fmt.js';

// Every key the caller may list (/key/list pages hold at most 100).
export async function listKeys(query = {}) {
  const out = [];
  for (let page = 1; page <= 50; page++) {
    const r = await get('/key/list', {...query, return_full_object: 'true', page, size: 100});
    out.push(...(r.keys || []));
    if (page >= (r.total_pages || 1)) break;
  }
  return out;
}

// The keys a caller may see: /key/list for admins and users who manage
// their keys; a viewer's own (its user's keys, or the key itself), which
// /key/list does not give it.
export async function keysFor(ctx) {
  if (ctx.can.readAll || ctx.can.writeKeys) return listKeys();
  if (ctx.me.user) {
    const u = await get('/user/info');
    return u.keys || [];
  }
  return ctx.me.key ? [ctx.me.key] : [];
}

export function keyStatus(k) {
  if (k.blocked) return 'blocked';
  if (k.expires && new Date(k.expires).getTime() < Date.now()) return 'expired';
  return 'active';
}

export function statusBadge(s) {
  return h('span.badge.badge-' + s, {'data-status': s}, s[0].toUpperCase() + s.slice(1));
}

export function modelChips(models, empty = 'All models') {
  if (!models || !models.length) return h('span.muted', empty);
  const shown = models.slice(0, 3).map((m) => h('span.chip', m));
  if (models.length > 3) shown.push(h('span.chip.chip-more', {title: models.slice(3).join(', ')}, '+' + (models.length - 3)));
  return h('span.chips', shown);
}

export function spendCell(spend, budget) {
  return h('div.spend',
    h('div.spend-figures', moneyEl(spend), h('span.muted', budget ? ' / ' + money(budget) : ' · no budget')),
    budget ? bar(spend || 0, budget) : null);
}

function limits(k) {
  const parts = [];
  if (k.rpm_limit) parts.push(num(k.rpm_limit) + ' rpm');
  if (k.tpm_limit) parts.push(num(k.tpm_limit) + ' tpm');
  if (k.max_parallel_requests) parts.push(num(k.max_parallel_requests) + ' parallel');
  return parts.length ? h('span.limits', parts.join(' · ')) : h('span.muted', 'none');
}

// The raw key, shown once, with a copy button.
export function showNewKey(title, key, note) {
  const out = h('input.mono.newkey', {type: 'text', readonly: true, value: key, 'aria-label': 'New key', spellcheck: 'false'});
  const copy = h('button.btn.btn-primary', {type: 'button'}, 'Copy');
  copy.addEventListener('click', async () => {
    out.select();
    try {
      await navigator.clipboard.writeText(key);
      copy.textContent = 'Copied';
    } catch {
      copy.textContent = 'Press Ctrl+C';
    }
  });
  return modal(title, h('div',
    h('p', note || 'Copy the key now: it is shown only this once. The gateway keeps only its hash.'),
    h('div.copyrow', out, copy)), [{label: 'Done', kind: 'primary'}]);
}

function parseJSONField(text, name) {
  if (!text.trim()) return undefined;
  let v;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error(name + ' is not valid JSON');
  }
  if (typeof v !== 'object' || Array.isArray(v) || v === null) throw new Error(name + ' must be a JSON object');
  return v;
}

async function createKeyDialog(ctx, teams, onDone) {
  let models = [];
  try {
    const r = await get('/v1/models');
    models = (r.data || []).map((m) => m.id);
  } catch {
    /* the list stays empty: every model */
  }
  const alias = h('input', {type: 'text', name: 'key_alias', autocomplete: 'off', maxlength: 255});
  const user = h('input', {type: 'text', name: 'user_id', autocomplete: 'off', placeholder: 'e.g. alice@example.com'});
  const team = h('select', {name: 'team_id'}, h('option', {value: ''}, 'No team'),
    teams.map((t) => h('option', {value: t.team_id}, t.team_alias ? t.team_alias + ' (' + t.team_id + ')' : t.team_id)));
  const boxes = models.map((m) => h('label.check', h('input', {type: 'checkbox', name: 'models', value: m}), h('span', m)));
  const budget = h('input', {type: 'number', name: 'max_budget', min: 0, step: '0.01', inputmode: 'decimal', placeholder: 'none'});
  const budgetDur = h('select', {name: 'budget_duration'},
    ['', '1d', '7d', '30d', '1mo'].map((d) => h('option', {value: d}, d ? 'every ' + d : 'never resets')));
  const duration = h('select', {name: 'duration'},
    [['', 'never expires'], ['1h', '1 hour'], ['1d', '1 day'], ['7d', '7 days'], ['30d', '30 days'], ['90d', '90 days']]
      .map(([v, t]) => h('option', {value: v}, t)));
  const rpm = h('input', {type: 'number', name: 'rpm_limit', min: 0, step: 1, placeholder: 'none'});
  const tpm = h('input', {type: 'number', name: 'tpm_limit', min: 0, step: 1, placeholder: 'none'});
  const par = h('input', {type: 'number', name: 'max_parallel_requests', min: 0, step: 1, placeholder: 'none'});
  const meta = h('textarea.mono', {name: 'metadata', rows: 2, placeholder: '{"env": "dev"}'});
  const err = h('div.form-error', {role: 'alert'});
  const form = h('form.form-grid', {id: 'create-key-form'},
    field('Alias', alias, 'A name people recognise, unique'),
    ctx.can.chooseUser ? field('User', user, 'Created on the spot when unknown') : null,
    ctx.can.chooseUser || teams.length ? field('Team', team) : null,
    h('fieldset.field.span2', h('legend', 'Models'),
      boxes.length ? h('div.checks', boxes) : h('span.muted', 'No model listed'),
      h('small.hint', 'None ticked: every model the key\'s user and team allow')),
    field('Budget (USD)', budget), field('Budget resets', budgetDur),
    field('Expires', duration), field('Requests per minute', rpm),
    field('Tokens per minute', tpm), field('Parallel requests', par),
    h('div.span2', field('Metadata (JSON)', meta)), err);
  form.addEventListener('submit', (e) => e.preventDefault());
  const intOf = (el) => (el.value === '' ? undefined : Number(el.value));
  await modal('Create key', form, [
    {label: 'Cancel'},
    {label: 'Create key', kind: 'primary', onclick: async () => {
      err.textContent = '';
      const body = {};
      try {
        if (alias.value.trim()) body.key_alias = alias.value.trim();
        if (ctx.can.chooseUser && user.value.trim()) body.user_id = user.value.trim();
        if (team.value) body.team_id = team.value;
        const picked = boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
        if (picked.length) body.models = picked;
        if (budget.value !== '') body.max_budget = Number(budget.value);
        if (budgetDur.value) body.budget_duration = budgetDur.value;
        if (duration.value) body.duration = duration.value;
        for (const [k, el] of [['rpm_limit', rpm], ['tpm_limit', tpm], ['max_parallel_requests', par]]) {
          if (intOf(el) !== undefined) body[k] = intOf(el);
        }
        const m = parseJSONField(meta.value, 'Metadata');
        if (m) body.metadata = m;
        const r = await post('/key/generate', body);
        setTimeout(() => showNewKey('Key created', r.key).then(onDone), 0);
        return true;
      } catch (e) {
        err.textContent = String(e.message || e);
        return false;
      }
    }},
  ]);
}

export async function keysView(ctx) {
  const {main, can} = ctx;
  const search = h('input', {type: 'search', placeholder: 'Alias, user, team or key', 'aria-label': 'Search keys'});
  const status = h('select', {'aria-label': 'Status'},
    [['', 'All statuses'], ['active', 'Active'], ['blocked', 'Blocked'], ['expired', 'Expired']].map(([v, t]) => h('option', {value: v}, t)));
  const teamSel = h('select', {'aria-label': 'Team'}, h('option', {value: ''}, 'All teams'));
  const count = h('span.muted.count');
  const tbody = h('tbody');
  const createBtn = can.writeKeys ? h('button.btn.btn-primary', {type: 'button', 'data-action': 'create-key'}, '+ Create key') : null;
  main.append(
    h('div.page-head', h('div', h('h1', 'Keys'), h('p.muted', 'Virtual keys, what they may call and what they spent.')), createBtn),
    h('div.card',
      h('div.toolbar', search, status, teamSel, count),
      h('div.table-wrap', h('table.table.keys-table',
        h('thead', h('tr', ['Alias', 'User', 'Team', 'Models', 'Spend', 'Limits', 'Expires', 'Status', can.writeKeys ? h('span.sr-only', 'Actions') : null]
          .filter((x) => x !== null).map((c) => h('th', {scope: 'col'}, c)))),
        tbody))));

  let keys = [];
  let teams = [];
  const cols = can.writeKeys ? 9 : 8;

  function rowActions(k) {
    const s = keyStatus(k);
    const name = k.key_alias || k.key_name;
    const acts = [];
    const run = (fn) => async () => {
      try {
        await fn();
      } catch (e) {
        toast(e.message, 'error');
      }
    };
    if (can.blockKeys) {
      const un = s === 'blocked';
      acts.push(iconButton(un ? 'unblock' : 'block', (un ? 'Unblock ' : 'Block ') + name, run(async () => {
        await post(un ? '/key/unblock' : '/key/block', {key: k.token});
        toast((un ? 'Unblocked ' : 'Blocked ') + name);
        load();
      })));
    }
    acts.push(iconButton('regenerate', 'Regenerate ' + name, run(async () => {
      if (!(await confirmDialog('Regenerate key', 'Regenerate "' + name + '"? The current key stops working at once.', 'Regenerate', 'primary'))) return;
      const r = await post('/key/regenerate', {key: k.token});
      await showNewKey('Key regenerated', r.key);
      load();
    })));
    acts.push(iconButton('delete', 'Delete ' + name, run(async () => {
      if (!(await confirmDialog('Delete key', 'Delete "' + name + '"? Requests with it are refused from now on.', 'Delete key'))) return;
      await post('/key/delete', {keys: [k.token]});
      toast('Deleted ' + name);
      load();
    }), '.btn-danger-ghost'));
    return h('td.actions', h('div.btn-row', acts));
  }

  function render() {
    const q = search.value.trim().toLowerCase();
    const rows = keys.filter((k) => {
      if (status.value && keyStatus(k) !== status.value) return false;
      if (teamSel.value && k.team_id !== teamSel.value) return false;
      if (!q) return true;
      return [k.key_alias, k.key_name, k.user_id, k.team_id, k.token].some((v) => v && String(v).toLowerCase().includes(q));
    });
    const n = (x) => num(x) + (x === 1 ? ' key' : ' keys');
    count.textContent = rows.length === keys.length ? n(keys.length) : num(rows.length) + ' of ' + n(keys.length);
    clear(tbody, rows.length ? rows.map((k) => h('tr', {'data-key': k.token},
      h('td', h('div.cell-main', k.key_alias || h('span.muted', 'no alias')), h('div.mono.small.muted', k.key_name)),
      h('td.user-cell', k.user_id ? h('span.ellipsis', {title: k.user_id}, k.user_id) : h('span.muted', '—')),
      h('td', k.team_id || h('span.muted', '—')),
      h('td', modelChips(k.models)),
      h('td', spendCell(k.spend, k.max_budget)),
      h('td', limits(k)),
      h('td.nowrap', timeEl(k.expires, 'never')),
      h('td', statusBadge(keyStatus(k))),
      can.writeKeys ? rowActions(k) : null)) : emptyRow(cols, keys.length ? 'No key matches.' : 'No keys yet.'));
  }

  async function load() {
    try {
      [keys, teams] = await Promise.all([keysFor(ctx), get('/team/list').catch(() => [])]);
      teams = Array.isArray(teams) ? teams : [];
      const cur = teamSel.value;
      clear(teamSel, h('option', {value: ''}, 'All teams'),
        teams.map((t) => h('option', {value: t.team_id}, t.team_alias || t.team_id)));
      teamSel.value = cur;
      render();
    } catch (e) {
      clear(tbody, h('tr', h('td', {colspan: cols}, errorBox(e))));
    }
  }

  // #/keys?q=alice (the users view links here) fills the search.
  const q = new URLSearchParams(location.hash.split('?')[1] || '').get('q');
  if (q) search.value = q;
  for (const el of [search, status, teamSel]) el.addEventListener('input', render);
  if (createBtn) createBtn.addEventListener('click', () => createKeyDialog(ctx, teams, load));
  await load();
}
