// Building the page: every string goes in as a text node or an attribute
// value, never as markup (no innerHTML anywhere), so what the API returns
// (a key alias, a model name, an error message) always shows as text.

// h('tag.class1.class2', {attr: value, onclick: fn}, child, ...)
// children: strings and numbers become text nodes; null, undefined and
// false are skipped; arrays are flattened.
export function h(spec, props, ...kids) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (props && (typeof props !== 'object' || props instanceof Node || Array.isArray(props))) {
    kids.unshift(props);
    props = null;
  }
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'required') el[k] = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids) {
    if (k === null || k === undefined || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else if (k instanceof Node) el.appendChild(k);
    else el.appendChild(document.createTextNode(String(k)));
  }
}

export function clear(el, ...kids) {
  el.replaceChildren();
  append(el, kids);
  return el;
}

// A bar of value against limit: width set through the CSSOM (allowed by
// the page's CSP, unlike a style attribute).
export function bar(value, limit) {
  const track = h('span.bar');
  const fill = h('span.bar-fill');
  let pct = 0;
  if (limit > 0) pct = Math.min(100, (value / limit) * 100);
  fill.style.width = pct.toFixed(1) + '%';
  if (limit > 0 && value >= limit) fill.classList.add('over');
  else if (pct >= 80) fill.classList.add('warn');
  track.appendChild(fill);
  return track;
}

let dialogSeq = 0;

// A modal dialog (native <dialog>: focus trap, Escape closes). body is a
// node; actions are [{label, kind, onclick}] where onclick returns false
// to keep the dialog open. Resolves when it closes.
export function modal(title, body, actions) {
  return new Promise((resolve) => {
    const id = 'dlg-title-' + ++dialogSeq;
    const dlg = h('dialog.modal', {'aria-labelledby': id});
    const foot = h('div.modal-actions');
    // A form's primary action is its submit button: Enter in a field runs it.
    const form = body instanceof HTMLFormElement ? body : body.querySelector && body.querySelector('form');
    if (form) {
      if (!form.id) form.id = 'dlg-form-' + dialogSeq;
      form.addEventListener('submit', (e) => e.preventDefault());
    }
    let result = null;
    for (const a of actions) {
      const submit = form && a.kind === 'primary';
      const b = h('button.btn' + (a.kind ? '.btn-' + a.kind : ''),
        {type: submit ? 'submit' : 'button', form: submit ? form.id : null}, a.label);
      b.addEventListener('click', async () => {
        if (a.onclick) {
          b.disabled = true;
          let keep;
          try {
            keep = (await a.onclick()) === false;
          } finally {
            b.disabled = false;
          }
          if (keep) return;
        }
        result = a.value === undefined ? a.label : a.value;
        dlg.close();
      });
      foot.appendChild(b);
    }
    dlg.append(h('h2.modal-title', {id}, title), h('div.modal-body', body), foot);
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(result);
    });
    document.body.appendChild(dlg);
    dlg.showModal();
  });
}

export function confirmDialog(title, text, label, kind = 'danger') {
  return modal(title, h('p', text), [
    {label: 'Cancel', value: false},
    {label, kind, value: true},
  ]).then((v) => v === true);
}

// A form field: label, control, optional hint. Returns the wrapper.
export function field(label, control, hint) {
  const id = control.id || 'f-' + Math.random().toString(36).slice(2, 9);
  control.id = id;
  return h('div.field', h('label', {for: id}, label), control, hint ? h('small.hint', hint) : null);
}

let toastBox = null;

export function toast(text, kind = 'ok') {
  if (!toastBox) {
    toastBox = h('div.toasts', {role: 'status', 'aria-live': 'polite'});
    document.body.appendChild(toastBox);
  }
  const t = h('div.toast.toast-' + kind, text);
  toastBox.appendChild(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 3500);
}

export function errorBox(err) {
  return h('div.notice.notice-error', {role: 'alert'}, String(err && err.message ? err.message : err));
}

export function emptyRow(cols, text) {
  return h('tr.empty', h('td', {colspan: cols}, text));
}

const SVG = 'http://www.w3.org/2000/svg';
const ICONS = {
  block: [['circle', {cx: 12, cy: 12, r: 8.5}], ['line', {x1: 6, y1: 6, x2: 18, y2: 18}]],
  unblock: [['circle', {cx: 12, cy: 12, r: 8.5}], ['polyline', {points: '8 12.5 11 15.5 16.5 9'}]],
  regenerate: [['path', {d: 'M19.5 12a7.5 7.5 0 1 1-2.2-5.3'}], ['polyline', {points: '19.5 4.5 19.5 9 15 9'}]],
  delete: [['polyline', {points: '4.5 7 19.5 7'}], ['path', {d: 'M6.5 7l1 12.5h9l1-12.5'}], ['path', {d: 'M9.5 7V4.5h5V7'}]],
};

// An icon (built as SVG elements, no markup string), aria-hidden: the
// button that holds it carries the name.
export function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  for (const [k, v] of Object.entries({viewBox: '0 0 24 24', width: 16, height: 16, fill: 'none', stroke: 'currentColor',
    'stroke-width': 2, 'stroke-linecap': 'round', 'stroke-linejoin': 'round', 'aria-hidden': 'true', focusable: 'false'})) {
    svg.setAttribute(k, String(v));
  }
  for (const [tag, attrs] of ICONS[name] || []) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    svg.appendChild(el);
  }
  return svg;
}

// A square button with an icon; label is its accessible name and tooltip.
export function iconButton(name, label, onclick, extra = '') {
  return h('button.btn.btn-icon' + extra, {type: 'button', 'aria-label': label, title: label, 'data-action': name, onclick}, icon(name));
}
