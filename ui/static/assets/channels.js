// Channels (a tree with live counts) and plugins (modules, exports,
// per-function config, load errors).
import { get, post, api, listOf, plugins } from './api.js';
import { h, fmtBytes, errorBox, toast } from './util.js';

// sortTree orders channels so each follows its parent, siblings by name,
// and returns the depth of each.
export function sortTree(chs) {
  const byName = new Map(chs.map((c) => [c.name, c]));
  const kids = new Map();
  const roots = [];
  for (const c of chs) {
    const i = c.name.lastIndexOf('.');
    const parent = i > 0 ? c.name.slice(0, i) : null;
    if (parent && byName.has(parent)) {
      if (!kids.has(parent)) kids.set(parent, []);
      kids.get(parent).push(c);
    } else roots.push(c);
  }
  const out = [];
  const walk = (c, d) => {
    out.push([c, d]);
    (kids.get(c.name) || []).sort((a, b) => a.name.localeCompare(b.name)).forEach((k) => walk(k, d + 1));
  };
  roots.sort((a, b) => a.name.localeCompare(b.name)).forEach((c) => walk(c, 0));
  return out;
}

export function channelsView(root) {
  let timer = null;
  let gone = false;
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  root.replaceChildren(h('div', { class: 'page-head' }, h('h1', {}, 'Channels'),
    h('p', { class: 'muted small' }, 'Capacities nest: a job runs only when its channel and every ancestor have room. Refreshed every 5 s. ',
      'Pausing, resuming and editing a channel here (admin token) holds on every node and across restarts, over the configuration.')), body);

  async function load() {
    try {
      const chs = listOf(await get('/v1/channels'), 'channels');
      if (gone) return;
      // An editor being filled in is not swept away by the refresh.
      if (!body.querySelector('details.ch-edit[open]')) body.replaceChildren(table(chs));
    } catch (e) {
      body.replaceChildren(errorBox(e));
    }
    if (!gone) timer = setTimeout(load, 5000);
  }

  function table(chs) {
    if (!chs.length) return h('p', { class: 'muted' }, 'No channels.');
    return h('div', { class: 'table-wrap' }, h('table', { class: 'channels-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Channel'), h('th', {}, 'Load'), h('th', { class: 'num' }, 'Capacity'),
        h('th', { class: 'num' }, 'Running'), h('th', { class: 'num' }, 'Pending'), h('th', { class: 'num' }, 'Failed'),
        h('th', { class: 'num' }, 'Throttle'), h('th', {}, 'Flags'), h('th', {}, 'Control'))),
      h('tbody', {}, sortTree(chs).map(([c, depth]) => {
        const short = depth ? c.name.slice(c.name.lastIndexOf('.') + 1) : c.name;
        const cap = c.capacity || 0;
        const pct = cap ? Math.min(100, Math.round((c.running / cap) * 100)) : 0;
        const flags = [
          c.sequential ? h('span', { class: 'flag' }, 'sequential') : null,
          c.paused ? h('span', { class: 'flag warn' }, 'paused') : null,
          c.blocked ? h('span', { class: 'flag bad', title: 'a failed job blocks this sequential channel' }, 'blocked by failed job') : null,
          c.configured === false ? h('span', { class: 'flag muted', title: 'limited by its nearest configured ancestor' }, 'unconfigured') : null,
          c.override ? h('span', { class: 'flag override', title: 'set at run time, over the configuration: ' + overridden(c.override) }, 'set at run time') : null,
        ];
        const jobsLink = (state, n, cls) => n
          ? h('a', { href: `#/jobs?state=${state}&channel=${encodeURIComponent(c.name)}`, class: cls }, String(n))
          : h('span', { class: 'muted' }, '0');
        return h('tr', { dataset: { channel: c.name } },
          h('td', { class: 'tree', style: undefined }, h('span', { class: 'indent d' + Math.min(depth, 6) }, depth ? '└' : ''),
            h('a', { href: `#/jobs?channel=${encodeURIComponent(c.name)}`, class: 'mono', title: c.name }, short)),
          h('td', {}, h('div', { class: 'meter', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': cap, 'aria-valuenow': c.running,
            'aria-label': `${c.running} of ${cap} running`, title: `${c.running} of ${cap} running` },
            h('div', { class: 'meter-fill w' + Math.round(pct / 5) * 5 }))),
          h('td', { class: 'num' }, c.configured === false ? h('span', { class: 'muted' }, '—') : String(cap)),
          h('td', { class: 'num' }, jobsLink('started', c.running)),
          h('td', { class: 'num' }, jobsLink('pending', c.pending)),
          h('td', { class: 'num' }, jobsLink('failed', c.failed, c.failed ? 'bad-text' : '')),
          h('td', { class: 'num' }, c.throttle ? c.throttle + ' s' : h('span', { class: 'muted' }, '—')),
          h('td', {}, flags),
          h('td', { class: 'ch-control' }, controls(c)));
      }))));
  }

  function overridden(o) {
    return [o.paused !== undefined ? (o.paused ? 'paused' : 'running') : null,
      o.capacity !== undefined ? 'capacity ' + o.capacity : null,
      o.throttle !== undefined ? 'throttle ' + o.throttle + ' s' : null].filter(Boolean).join(', ');
  }

  // change sends one channel change and shows the channel as it is now.
  async function change(what, fn) {
    try {
      const st = await fn();
      toast(`${st.name}: ${what}`, 'ok');
    } catch (e) {
      toast(`${what} refused: ${e.message}`, 'bad');
    }
    for (const d of body.querySelectorAll('details.ch-edit[open]')) d.open = false;
    clearTimeout(timer);
    load();
  }

  function controls(c) {
    const path = '/v1/channels/' + encodeURIComponent(c.name);
    const toggle = h('button', { type: 'button', class: 'btn small', dataset: { channelAction: c.paused ? 'resume' : 'pause' },
      onclick: () => change(c.paused ? 'resumed' : 'paused', () => post(path + (c.paused ? ':resume' : ':pause'))) },
    c.paused ? 'Resume' : 'Pause');
    const cap = h('input', { type: 'number', min: 1, step: 1, name: 'capacity', value: c.capacity || '', 'aria-label': 'capacity of ' + c.name });
    const thr = h('input', { type: 'number', min: 0, step: 'any', name: 'throttle', value: c.throttle || 0, 'aria-label': 'seconds between starts in ' + c.name });
    const form = h('form', { class: 'ch-form' },
      h('label', {}, 'Capacity ', cap), h('label', {}, 'Throttle (s) ', thr),
      h('button', { type: 'submit', class: 'btn small primary' }, 'Save'),
      c.override ? h('button', { type: 'button', class: 'btn small', dataset: { reset: '1' }, title: 'Drop every run-time setting of this channel',
        onclick: () => change('back to its configuration', () => api('PATCH', path, { capacity: null, throttle: null, paused: null })) }, 'Back to config') : null);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const body = {};
      if (cap.value !== '' && Number(cap.value) !== c.capacity) body.capacity = Number(cap.value);
      if (thr.value !== '' && Number(thr.value) !== c.throttle) body.throttle = Number(thr.value);
      form.closest('details').open = false;
      if (Object.keys(body).length) change('saved', () => api('PATCH', path, body));
    });
    return h('div', { class: 'ch-controls' }, toggle, h('details', { class: 'ch-edit' }, h('summary', { class: 'btn small' }, 'Edit'), form));
  }

  load();
  return { destroy() { gone = true; clearTimeout(timer); } };
}

// pluginErrors extracts load errors from the shapes a server may use:
// a per-plugin "error"/"load_error"/"errors", or a top-level "errors" list.
function pluginErrors(p) {
  const e = p.load_error || p.error || p.errors;
  if (!e) return [];
  return (Array.isArray(e) ? e : [e]).map((x) => (typeof x === 'string' ? x : x.message || JSON.stringify(x)));
}

export function pluginsView(root) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  root.replaceChildren(h('div', { class: 'page-head' }, h('h1', {}, 'Plugins')), body);
  (async () => {
    try {
      const data = await plugins(true);
      const list = listOf(data, 'plugins');
      const top = data && !Array.isArray(data) ? (data.errors || data.load_errors || []) : [];
      const parts = [];
      if (top.length) {
        parts.push(h('section', { class: 'card failure' }, h('h2', {}, 'Load errors'),
          h('ul', {}, top.map((e) => h('li', {}, typeof e === 'string' ? e : [e.name || e.path || e.plugin, ': ', e.message || e.error].filter(Boolean).join(''))))));
      }
      if (!list.length) parts.push(h('p', { class: 'muted' }, 'No plugins loaded.'));
      for (const p of [...list].sort((a, b) => a.name.localeCompare(b.name))) parts.push(pluginCard(p));
      body.replaceChildren(...parts);
    } catch (e) {
      body.replaceChildren(errorBox(e));
    }
  })();
  return { destroy() {} };
}

function pluginCard(p) {
  const errs = pluginErrors(p);
  const fns = p.functions || {};
  const exports = p.exports || [];
  const names = [...new Set([...exports, ...Object.keys(fns)])].sort();
  return h('section', { class: 'card plugin' + (errs.length ? ' has-error' : ''), dataset: { plugin: p.name } },
    h('h2', {}, h('code', {}, p.name), ' ',
      p.tenant ? h('span', { class: 'tenant' }, p.tenant) : h('span', { class: 'flag muted' }, 'shared'),
      h('span', { class: 'muted small' }, ' ', fmtBytes(p.size))),
    p.sha256 ? h('p', { class: 'small' }, 'sha256 ', h('code', { class: 'sel' }, p.sha256)) : null,
    errs.length ? h('div', { class: 'error-box' }, h('strong', {}, 'Load error'), ' ', errs.join('; ')) : null,
    names.length ? h('table', { class: 'fn-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Function'), h('th', {}, 'Channel'), h('th', {}, 'Retries'), h('th', {}, 'Timeout'),
        h('th', {}, 'Memory'), h('th', {}, 'Other'))),
      h('tbody', {}, names.map((n) => {
        const c = fns[n] || {};
        const other = [];
        if (c.description) other.push(c.description);
        if (c.retry_pattern && Object.keys(c.retry_pattern).length) other.push('retry ' + JSON.stringify(c.retry_pattern));
        if (c.related_action) other.push('related: ' + c.related_action);
        if (c.allowed_hosts && c.allowed_hosts.length) other.push('hosts: ' + c.allowed_hosts.join(', '));
        if (c.retry_on && c.retry_on.length) other.push('retry on: ' + c.retry_on.join(', '));
        return h('tr', {}, h('td', {}, h('code', {}, n), exports.length && !exports.includes(n) ? h('span', { class: 'flag bad' }, 'not exported') : null),
          h('td', { class: 'mono small' }, c.channel || h('span', { class: 'muted' }, 'root')),
          h('td', {}, c.max_retries ?? h('span', { class: 'muted' }, 'default')),
          h('td', {}, c.timeout && c.timeout !== '0s' ? c.timeout : h('span', { class: 'muted' }, 'default')),
          h('td', {}, c.memory_limit || h('span', { class: 'muted' }, 'default')),
          h('td', { class: 'small' }, other.length ? other.map((o) => h('div', {}, o)) : h('span', { class: 'muted' }, '—')));
      }))) : h('p', { class: 'muted' }, 'No exports.'));
}
