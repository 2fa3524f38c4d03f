// The gateway's API, same origin. The key lives in sessionStorage only
// and goes only in the Authorization header: never in a URL, never logged.
const STORE = 'llmgw.key';

export const session = {
  get key() {
    return sessionStorage.getItem(STORE);
  },
  set(k) {
    sessionStorage.setItem(STORE, k);
  },
  clear() {
    sessionStorage.removeItem(STORE);
  },
};

export class ApiError extends Error {
  constructor(status, message, type) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

let onUnauthorized = null;
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

// api('GET', '/key/list', {page: 1}) or api('POST', '/key/generate', null, body).
// Resolves {data, headers, status}; rejects with ApiError carrying the
// OpenAI error's message. opts.quiet404: a 404 resolves with data null.
export async function api(method, path, query, body, opts = {}) {
  const key = opts.key || session.key;
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== null && v !== undefined && v !== '') q.set(k, v);
    }
    const s = q.toString();
    if (s) url += '?' + s;
  }
  const headers = {};
  if (key) headers.Authorization = 'Bearer ' + key;
  const init = {method, headers, cache: 'no-store', credentials: 'omit'};
  if (body !== undefined && body !== null) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(url, init);
  const text = await r.text();
  let data = null;
  if (text && (r.headers.get('content-type') || '').includes('json')) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  } else {
    data = text;
  }
  if (r.status === 404 && opts.quiet404) return {data: null, headers: r.headers, status: 404};
  if (!r.ok) {
    const e = data && data.error ? data.error : {};
    if (r.status === 401 && onUnauthorized && !opts.key) onUnauthorized();
    throw new ApiError(r.status, e.message || r.status + ' ' + r.statusText, e.type);
  }
  return {data, headers: r.headers, status: r.status};
}

export const get = (path, query, opts) => api('GET', path, query, null, opts).then((r) => r.data);
export const post = (path, body) => api('POST', path, null, body || {}).then((r) => r.data);

// Who is this key? The master key (or an admin JWT) is a proxy_admin; a
// virtual key has its user's role, or internal_user_viewer without a user.
// Only calls that succeed for the caller are made: /v1/models checks the
// key, /health says more to an admin, /key/info and /user/info give a
// virtual key's own record.
export async function whoami(key) {
  const models = await get('/v1/models', null, {key});
  const health = await get('/health', null, {key});
  const c = (health && health.checks) || {};
  if (c.database && c.database.latency_ms !== undefined) {
    return {role: 'proxy_admin', label: 'Master key', user: null, key: null, models};
  }
  const info = await get('/key/info', null, {key});
  const me = info.info || info;
  let role = 'internal_user_viewer';
  if (me.user_id) {
    try {
      const u = await get('/user/info', null, {key});
      role = (u.user_info && u.user_info.user_role) || u.user_role || role;
    } catch {
      /* keep the viewer role */
    }
  }
  return {role, label: me.key_alias || me.key_name || 'virtual key', user: me.user_id || null,
    team: me.team_id || null, key: me, models};
}

// What a role may do in the page (the gateway decides anyway; the page
// only leaves out buttons that would fail).
export function can(role) {
  const admin = role === 'proxy_admin';
  const self = admin || role === 'internal_user';
  return {
    admin,
    readAll: admin || role === 'proxy_admin_viewer',
    writeKeys: self,
    blockKeys: admin,
    writeOrg: admin,
    chooseUser: admin,
  };
}

export function roleName(role) {
  return {
    proxy_admin: 'Admin',
    proxy_admin_viewer: 'Admin viewer',
    internal_user: 'User',
    internal_user_viewer: 'Viewer',
  }[role] || role;
}
