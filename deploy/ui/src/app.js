// The admin page: sign-in, the shell (top bar, navigation) and a hash router.
import {session, whoami, can, roleName, setUnauthorizedHandler} from './api.js';
import {h, clear, field, errorBox} from './dom.js';
import {keysView} from './keys.js';
import {teamsView, usersView} from './org.js';
import {usageView} from './usage.js';
import {logsView} from './logs.js';
import {modelsView} from './models.js';

const VIEWS = [
  {id: 'keys', title: 'Keys', render: keysView},
  {id: 'teams', title: 'Teams', render: teamsView},
  {id: 'users', title: 'Users', render: usersView},
  {id: 'usage', title: 'Usage', render: usageView},
  {id: 'logs', title: 'Logs', render: logsView},
  {id: 'models', title: 'Models', render: modelsView},
];

const root = document.getElementById('app');
let me = null;
let stopView = null;

function signOut() {
  session.clear();
  me = null;
  if (stopView) stopView();
  stopView = null;
  history.replaceState(null, '', location.pathname);
  signIn();
}

function signIn(message) {
  const input = h('input', {type: 'password', name: 'key', autocomplete: 'off', required: true,
    placeholder: 'sk-...', spellcheck: 'false'});
  const err = h('div.signin-error', {role: 'alert'}, message || '');
  const btn = h('button.btn.btn-primary.btn-block', {type: 'submit'}, 'Sign in');
  const form = h('form.signin-card',
    h('div.brand.brand-large', h('span.brand-mark', 'll'), h('span', 'llmgw')),
    h('p.muted', 'Sign in with the master key or a virtual key.'),
    field('API key', input, 'Kept in this tab only (sessionStorage) and sent only in the Authorization header.'),
    err, btn);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    btn.disabled = true;
    err.textContent = '';
    try {
      me = await whoami(key);
      session.set(key);
      input.value = '';
      if (!location.hash) location.hash = '#/keys';
      shell();
    } catch (e) {
      err.textContent = e.status === 401 ? 'That key was not accepted.' : String(e.message || e);
    } finally {
      btn.disabled = false;
    }
  });
  clear(root, h('main.signin', form));
  input.focus();
}

let navEl = null;
let mainEl = null;

function shell() {
  const c = can(me.role);
  navEl = h('nav.nav', {'aria-label': 'Views'},
    VIEWS.map((v) => h('a.nav-link', {href: '#/' + v.id, 'data-view': v.id}, v.title)));
  mainEl = h('main.content', {id: 'main', tabindex: '-1'});
  clear(root,
    h('header.topbar',
      h('div.topbar-inner',
        h('a.brand', {href: '#/keys'}, h('span.brand-mark', 'll'), h('span', 'llmgw')),
        navEl,
        h('div.who',
          h('span.who-name', {title: me.user ? 'user ' + me.user : ''}, me.label),
          h('span.role.role-' + me.role, roleName(me.role)),
          h('button.btn.btn-ghost.btn-small', {type: 'button', onclick: signOut}, 'Sign out')))),
    mainEl);
  root.dataset.role = me.role;
  root.dataset.write = c.writeKeys ? 'yes' : 'no';
  route();
}

async function route() {
  if (!me) return;
  const id = (location.hash.match(/^#\/([a-z]+)/) || [])[1] || 'keys';
  const view = VIEWS.find((v) => v.id === id) || VIEWS[0];
  for (const a of navEl.querySelectorAll('a')) {
    if (a.dataset.view === view.id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (stopView) stopView();
  stopView = null;
  document.title = view.title + ' · llmgw';
  clear(mainEl);
  delete mainEl.dataset.loaded;
  mainEl.dataset.view = view.id;
  const ctx = {me, can: can(me.role), main: mainEl};
  try {
    stopView = (await view.render(ctx)) || null;
  } catch (e) {
    mainEl.appendChild(errorBox(e));
  }
  // The views' first data is on the page (the browser tests wait for it).
  if (mainEl.dataset.view === view.id) mainEl.dataset.loaded = 'yes';
}

window.addEventListener('hashchange', route);
setUnauthorizedHandler(() => {
  // The key was deleted, blocked or has expired: forget it.
  session.clear();
  me = null;
  if (stopView) stopView();
  stopView = null;
  signIn('The gateway no longer accepts this key; sign in again.');
});

async function start() {
  const key = session.key;
  if (!key) return signIn();
  try {
    me = await whoami(key);
    shell();
  } catch (e) {
    session.clear();
    signIn(e.status === 401 ? 'That key is no longer accepted.' : String(e.message || e));
  }
}

start();
