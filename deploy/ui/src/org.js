// Teams and users: members, budgets, keys.
import {get, post} from './api.js';
import {h, clear, modal, confirmDialog, field, toast, errorBox, emptyRow} from './dom.js';
import {num, moneyEl, timeEl} from './fmt.js';
import {modelChips, spendCell, statusBadge, keyStatus, showNewKey} from './keys.js';
import {roleName} from './api.js';

function formDialog(title, fields, submitLabel, submit) {
  const err = h('div.form-error', {role: 'alert'});
  const form = h('form.form-grid', fields, err);
  form.addEventListener('submit', (e) => e.preventDefault());
  return modal(title, form, [
    {label: 'Cancel'},
    {label: submitLabel, kind: 'primary', onclick: async () => {
      err.textContent = '';
      try {
        await submit();
        return true;
      } catch (e) {
        err.textContent = String(e.message || e);
        return false;
      }
    }},
  ]);
}

const numOrUndef = (el) => (el.value === '' ? undefined : Number(el.value));
const csv = (el) => el.value.split(',').map((s) => s.trim()).filter(Boolean);

function keysMini(keys) {
  if (!keys || !keys.length) return h('p.muted.small', 'No keys.');
  return h('div.table-wrap', h('table.table.table-compact',
    h('thead', h('tr', ['Key', 'User', 'Spend', 'Status'].map((c) => h('th', {scope: 'col'}, c)))),
    h('tbody', keys.map((k) => h('tr',
      h('td', h('div.cell-main', k.key_alias || h('span.muted', 'no alias')), h('div.mono.small.muted', k.key_name)),
      h('td', k.user_id || h('span.muted', '—')),
      h('td', spendCell(k.spend, k.max_budget)),
      h('td', statusBadge(keyStatus(k))))))));
}

export async function teamsView(ctx) {
  const {main, can} = ctx;
  const list = h('div.team-list');
  const newBtn = can.writeOrg ? h('button.btn.btn-primary', {type: 'button', 'data-action': 'new-team'}, '+ New team') : null;
  main.append(h('div.page-head', h('div', h('h1', 'Teams'), h('p.muted', 'Teams group keys and users under shared models, limits and a budget.')), newBtn), list);

  async function load() {
    let teams;
    try {
      teams = await get('/team/list');
    } catch (e) {
      clear(list, errorBox(e));
      return;
    }
    if (!teams.length) {
      clear(list, h('div.card.card-pad.empty-card', h('p.muted', can.writeOrg ? 'No team yet. Create one to share models and a budget between keys.' : 'You are in no team.')));
      return;
    }
    clear(list, teams.map((t) => {
      const members = t.members_with_roles || [];
      const acts = can.writeOrg ? h('div.btn-row',
        h('button.btn.btn-small', {type: 'button', 'data-action': 'add-member', onclick: () => addMember(t)}, 'Add member'),
        h('button.btn.btn-small.btn-danger-ghost', {type: 'button', 'data-action': 'delete-team', onclick: async () => {
          if (!(await confirmDialog('Delete team', 'Delete team "' + (t.team_alias || t.team_id) + '" and its ' + num((t.keys || []).length) + ' keys?', 'Delete team'))) return;
          try {
            await post('/team/delete', {team_ids: [t.team_id]});
            toast('Deleted team ' + t.team_id);
            load();
          } catch (e) {
            toast(e.message, 'error');
          }
        }}, 'Delete')) : null;
      return h('section.card.team', {'data-team': t.team_id},
        h('div.card-head',
          h('div', h('h2', t.team_alias || t.team_id, t.blocked ? h('span.badge.badge-blocked', 'Blocked') : null),
            t.team_alias ? h('div.mono.small.muted', t.team_id) : null),
          acts),
        h('div.team-body',
          h('dl.facts',
            h('dt', 'Spend'), h('dd', spendCell(t.spend, t.max_budget)),
            h('dt', 'Models'), h('dd', modelChips(t.models)),
            h('dt', 'Limits'), h('dd', [t.rpm_limit && num(t.rpm_limit) + ' rpm', t.tpm_limit && num(t.tpm_limit) + ' tpm',
              t.max_parallel_requests && num(t.max_parallel_requests) + ' parallel'].filter(Boolean).join(' · ') || h('span.muted', 'none')),
            h('dt', 'Created'), h('dd', timeEl(t.created_at))),
          h('div',
            h('h3', 'Members ', h('span.muted', num(members.length))),
            members.length ? h('ul.members', members.map((m) => h('li',
              h('span', m.user_id || m.user_email), h('span.badge.badge-' + (m.role === 'admin' ? 'warn' : 'off'), m.role),
              can.writeOrg ? h('button.btn.btn-small.btn-ghost.btn-danger-ghost', {type: 'button', 'data-action': 'remove-member',
                'aria-label': 'Remove ' + m.user_id, onclick: async () => {
                  if (!(await confirmDialog('Remove member', 'Remove ' + m.user_id + ' from ' + t.team_id + '?', 'Remove'))) return;
                  try {
                    await post('/team/member_delete', {team_id: t.team_id, user_id: m.user_id});
                    load();
                  } catch (e) {
                    toast(e.message, 'error');
                  }
                }}, '×') : null))) : h('p.muted.small', 'No members.')),
          h('div.span2', h('h3', 'Keys ', h('span.muted', num((t.keys || []).length))), keysMini(t.keys))));
    }));
  }

  function addMember(t) {
    const user = h('input', {type: 'text', required: true, autocomplete: 'off'});
    const role = h('select', h('option', {value: 'user'}, 'user'), h('option', {value: 'admin'}, 'admin'));
    return formDialog('Add member to ' + (t.team_alias || t.team_id), [field('User id', user), field('Team role', role)], 'Add member', async () => {
      await post('/team/member_add', {team_id: t.team_id, member: {user_id: user.value.trim(), role: role.value}});
      toast('Added ' + user.value.trim());
      load();
    });
  }

  if (newBtn) {
    newBtn.addEventListener('click', () => {
      const id = h('input', {type: 'text', required: true, autocomplete: 'off', placeholder: 'e.g. ml'});
      const alias = h('input', {type: 'text', autocomplete: 'off', placeholder: 'e.g. Machine learning'});
      const models = h('input', {type: 'text', autocomplete: 'off', placeholder: 'gpt-4, qwen*'});
      const budget = h('input', {type: 'number', min: 0, step: '0.01', placeholder: 'none'});
      const rpm = h('input', {type: 'number', min: 0, step: 1, placeholder: 'none'});
      const tpm = h('input', {type: 'number', min: 0, step: 1, placeholder: 'none'});
      formDialog('New team', [field('Team id', id), field('Name', alias), h('div.span2', field('Models', models, 'Comma-separated; empty: every model')),
        field('Budget (USD)', budget), field('Requests per minute', rpm), field('Tokens per minute', tpm)], 'Create team', async () => {
        const body = {team_id: id.value.trim()};
        if (alias.value.trim()) body.team_alias = alias.value.trim();
        if (csv(models).length) body.models = csv(models);
        for (const [k, el] of [['max_budget', budget], ['rpm_limit', rpm], ['tpm_limit', tpm]]) if (numOrUndef(el) !== undefined) body[k] = numOrUndef(el);
        await post('/team/new', body);
        toast('Created team ' + body.team_id);
        load();
      });
    });
  }
  await load();
}

export async function usersView(ctx) {
  const {main, can, me} = ctx;
  const newBtn = can.writeOrg ? h('button.btn.btn-primary', {type: 'button', 'data-action': 'new-user'}, '+ New user') : null;
  main.append(h('div.page-head', h('div', h('h1', 'Users'), h('p.muted', can.readAll ? 'People and services with keys, their role, budget and spend.' : 'Your user, its keys and teams.')), newBtn));

  if (!can.readAll) {
    const box = h('div');
    main.appendChild(box);
    if (!me.user) {
      box.appendChild(h('div.card.card-pad', h('p.muted', 'This key belongs to no user.')));
      return;
    }
    try {
      const u = await get('/user/info');
      const i = u.user_info || u;
      clear(box,
        h('div.card.card-pad', h('h2', i.user_id),
          h('dl.facts',
            h('dt', 'Email'), h('dd', i.user_email || '—'),
            h('dt', 'Role'), h('dd', roleName(i.user_role)),
            h('dt', 'Spend'), h('dd', spendCell(i.spend, i.max_budget)),
            h('dt', 'Models'), h('dd', modelChips(i.models)),
            h('dt', 'Teams'), h('dd', (u.teams || []).map((t) => t.team_alias || t.team_id).join(', ') || h('span.muted', 'none')))),
        h('div.card', h('div.card-head', h('h2', 'Keys')), h('div.card-pad', keysMini(u.keys))));
    } catch (e) {
      clear(box, errorBox(e));
    }
    return;
  }

  const search = h('input', {type: 'search', placeholder: 'User id or email', 'aria-label': 'Search users'});
  const roleSel = h('select', {'aria-label': 'Role'}, h('option', {value: ''}, 'All roles'),
    ['proxy_admin', 'proxy_admin_viewer', 'internal_user', 'internal_user_viewer'].map((r) => h('option', {value: r}, roleName(r))));
  const count = h('span.muted.count');
  const tbody = h('tbody');
  const cols = can.writeOrg ? 8 : 7;
  main.appendChild(h('div.card', h('div.toolbar', search, roleSel, count),
    h('div.table-wrap', h('table.table',
      h('thead', h('tr', ['User', 'Role', 'Spend', 'Models', 'Teams', 'Keys', 'Created', can.writeOrg ? h('span.sr-only', 'Actions') : null]
        .filter((x) => x !== null).map((c) => h('th', {scope: 'col'}, c)))), tbody))));
  let users = [];
  let teamsOf = new Map();

  function render() {
    const q = search.value.trim().toLowerCase();
    const rows = users.filter((u) => (!roleSel.value || u.user_role === roleSel.value) &&
      (!q || [u.user_id, u.user_email, u.user_alias].some((v) => v && v.toLowerCase().includes(q))));
    count.textContent = rows.length === users.length ? num(users.length) + (users.length === 1 ? ' user' : ' users')
      : num(rows.length) + ' of ' + num(users.length) + ' users';
    clear(tbody, rows.length ? rows.map((u) => h('tr', {'data-user': u.user_id},
      h('td', h('div.cell-main', u.user_id), u.user_email && u.user_email !== u.user_id ? h('div.small.muted', u.user_email) : null),
      h('td', h('span.badge.badge-' + (u.user_role === 'proxy_admin' ? 'warn' : 'off'), roleName(u.user_role))),
      h('td', spendCell(u.spend, u.max_budget)),
      h('td', modelChips(u.models)),
      h('td', (teamsOf.get(u.user_id) || []).length ? h('span.chips', teamsOf.get(u.user_id).map((t) => h('span.chip', {title: 'team role: ' + t.role}, t.name)))
        : h('span.muted', 'none')),
      h('td.num', u.key_count ? h('a', {href: '#/keys?q=' + encodeURIComponent(u.user_id)}, num(u.key_count) + (u.key_count === 1 ? ' key' : ' keys')) : h('span.muted', '0')),
      h('td', timeEl(u.created_at)),
      can.writeOrg ? h('td.actions', h('button.btn.btn-small.btn-danger-ghost', {type: 'button', 'data-action': 'delete-user', onclick: async () => {
        if (!(await confirmDialog('Delete user', 'Delete user "' + u.user_id + '" and its ' + num(u.key_count) + ' keys?', 'Delete user'))) return;
        try {
          await post('/user/delete', {user_ids: [u.user_id]});
          toast('Deleted ' + u.user_id);
          load();
        } catch (e) {
          toast(e.message, 'error');
        }
      }}, 'Delete')) : null)) : emptyRow(cols, users.length ? 'No user matches.' : 'No users yet.'));
  }

  async function load() {
    try {
      users = [];
      teamsOf = new Map();
      for (const t of await get('/team/list')) {
        for (const m of t.members_with_roles || []) {
          if (!teamsOf.has(m.user_id)) teamsOf.set(m.user_id, []);
          teamsOf.get(m.user_id).push({name: t.team_alias || t.team_id, role: m.role});
        }
      }
      for (let page = 1; page <= 50; page++) {
        const r = await get('/user/list', {page, page_size: 100});
        users.push(...(r.users || []));
        if (page >= (r.total_pages || 1)) break;
      }
      render();
    } catch (e) {
      clear(tbody, h('tr', h('td', {colspan: cols}, errorBox(e))));
    }
  }

  search.addEventListener('input', render);
  roleSel.addEventListener('input', render);
  if (newBtn) {
    newBtn.addEventListener('click', () => {
      const id = h('input', {type: 'text', required: true, autocomplete: 'off'});
      const email = h('input', {type: 'email', autocomplete: 'off'});
      const role = h('select', ['internal_user', 'internal_user_viewer', 'proxy_admin_viewer', 'proxy_admin'].map((r) => h('option', {value: r}, roleName(r) + ' (' + r + ')')));
      const budget = h('input', {type: 'number', min: 0, step: '0.01', placeholder: 'none'});
      formDialog('New user', [field('User id', id), field('Email', email), field('Role', role), field('Budget (USD)', budget)], 'Create user', async () => {
        const body = {user_id: id.value.trim(), user_role: role.value};
        if (email.value.trim()) body.user_email = email.value.trim();
        if (budget.value !== '') body.max_budget = Number(budget.value);
        const r = await post('/user/new', body);
        load();
        if (r.key) setTimeout(() => showNewKey('User created', r.key, 'The user\'s first key, shown only this once.'), 0);
      });
    });
  }
  await load();
}
