// DOM and formatting helpers shared by the views.

// h builds an element: h('a', {href, class}, child...). Strings become
// text nodes, so job data is never parsed as HTML.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export const STATES = ['wait_dependencies', 'pending', 'enqueued', 'started', 'done', 'cancelled', 'failed'];

export const STATE_LABEL = {
  wait_dependencies: 'waiting',
  pending: 'pending',
  enqueued: 'enqueued',
  started: 'started',
  done: 'done',
  cancelled: 'cancelled',
  failed: 'failed',
};

// The manual actions of docs/semantics.md §2 and the states they apply to.
export const ACTIONS = {
  requeue: { label: 'Requeue', from: ['pending', 'enqueued', 'started', 'done', 'cancelled', 'failed'] },
  done: { label: 'Set done', from: ['wait_dependencies', 'pending', 'enqueued', 'failed'] },
  cancel: { label: 'Cancel', from: ['wait_dependencies', 'pending', 'enqueued', 'started', 'failed'] },
};

export function badge(state) {
  return h('span', { class: 'badge s-' + state, title: state }, STATE_LABEL[state] || state);
}

export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function relTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  const s = Math.round((d.getTime() - Date.now()) / 1000);
  const a = Math.abs(s);
  let v;
  if (a < 5) return 'now';
  if (a < 60) v = a + 's';
  else if (a < 3600) v = Math.round(a / 60) + 'm';
  else if (a < 86400) v = Math.round(a / 3600) + 'h';
  else v = Math.round(a / 86400) + 'd';
  return s < 0 ? v + ' ago' : 'in ' + v;
}

// timeEl shows a relative time with the exact local time on hover.
export function timeEl(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: fmtTime(iso) + ' (' + iso + ')' }, relTime(iso));
}

export function fmtSecs(s) {
  if (s === null || s === undefined) return '';
  if (s < 1) return Math.round(s * 1000) + ' ms';
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
  const m = Math.floor(s / 60);
  return m + ' m ' + Math.round(s % 60) + ' s';
}

export function fmtBytes(n) {
  if (!n && n !== 0) return '';
  if (n < 1024) return n + ' B';
  if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
  return (n / 1048576).toFixed(1) + ' MiB';
}

export function pretty(v) {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  return JSON.stringify(v, null, 2);
}

export function shortId(u) {
  return u ? u.slice(0, 8) : '';
}

let toastTimer;
export function toast(msg, kind) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = 'toast show' + (kind ? ' ' + kind : '');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.className = 'toast'; }, 4000);
}

export function errorBox(err) {
  return h('div', { class: 'error-box', role: 'alert' },
    h('strong', {}, err.status ? `Error ${err.status}` : 'Error'), ' ', err.message || String(err),
    err.status === 401 ? h('span', {}, ' — enter a tenant or admin token in the ', h('label', { for: 'token', class: 'linkish' }, 'Token field'), ' above.') : null);
}

// armed implements a two-step confirmation for destructive buttons without
// a modal dialog: the first click arms the button for a few seconds and
// changes its label, the second runs fn.
export function armed(button, confirmLabel, fn) {
  if (button.dataset.armed === '1') {
    button.dataset.armed = '';
    button.textContent = button.dataset.label;
    clearTimeout(Number(button.dataset.timer));
    fn();
    return;
  }
  button.dataset.label = button.textContent;
  button.dataset.armed = '1';
  button.textContent = confirmLabel;
  button.dataset.timer = String(setTimeout(() => {
    button.dataset.armed = '';
    button.textContent = button.dataset.label;
  }, 4000));
}

// progressBar draws a job's last reported progress (wasmq_progress_v1).
export function progressBar(p, wide) {
  if (!p) return null;
  const pct = Math.max(0, Math.min(100, p.percent | 0));
  return h('div', { class: 'progress' + (wide ? ' wide' : ''), title: `${pct}%` + (p.message ? ' — ' + p.message : '') },
    h('div', { class: 'meter', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct,
      'aria-label': 'progress' }, h('div', { class: 'meter-fill w' + Math.round(pct / 5) * 5 })),
    h('span', { class: 'small progress-text' }, `${pct}%`, p.message ? ' · ' + p.message : ''));
}
