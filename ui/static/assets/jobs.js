// The jobs list: filters, per-state counts, cursor paging, auto-refresh and
// bulk manual actions.
import { get, post, qs, listOf, ApiError } from './api.js';
import { h, badge, timeEl, fmtSecs, shortId, STATES, STATE_LABEL, ACTIONS, toast, errorBox, armed, progressBar } from './util.js';

const REFRESH_MS = 5000;
const PAUSE_KEY = 'wasmq.autorefresh.paused';
const FILTERS = ['state', 'channel', 'func', 'tenant', 'q', 'user_id', 'model_name', 'created_after', 'created_before', 'ended_after', 'ended_before', 'args', 'kwargs'];
// MORE are the filters under "More filters", open when one is set.
const MORE = FILTERS.slice(5);

// normalizeCounts accepts the shapes a stats endpoint may take:
// {"states": {state: n}}, {"counts": {...}}, {state: n} or [{state, count}].
export function normalizeCounts(data) {
  if (!data) return null;
  if (Array.isArray(data)) {
    const out = {};
    for (const r of data) if (r && r.state) out[r.state] = (out[r.state] || 0) + (r.count ?? r.n ?? 0);
    return out;
  }
  for (const k of ['states', 'counts', 'by_state', 'jobs']) {
    if (data[k] && typeof data[k] === 'object' && !Array.isArray(data[k])) return normalizeCounts(data[k]);
  }
  if (STATES.some((s) => typeof data[s] === 'number')) return data;
  return null;
}

export function jobsView(root, params, nav) {
  const filter = {};
  for (const k of FILTERS) filter[k] = params.get(k) || '';
  const cursors = [''];    // cursors[i] opens page i; the last is the page shown
  let nextCursor = '';
  let jobs = [];
  const selected = new Set();
  let paused = localStorage.getItem(PAUSE_KEY) === '1';
  let timer = null;
  let busy = false;
  let countsMissing = false;

  const countsEl = h('div', { class: 'counts', role: 'group', 'aria-label': 'Jobs per state' });
  const field = (name, label, attrs) => h('div', { class: 'field' },
    h('label', { for: 'f-' + name }, label),
    h('input', Object.assign({ id: 'f-' + name, name, value: filter[name], spellcheck: 'false' }, attrs || {})));
  const stateSel = h('select', { id: 'f-state', name: 'state' },
    h('option', { value: '' }, 'any state'),
    STATES.map((s) => h('option', { value: s, selected: filter.state === s }, STATE_LABEL[s])));
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter jobs' },
    h('div', { class: 'field' }, h('label', { for: 'f-state' }, 'State'), stateSel),
    field('channel', 'Channel', { placeholder: 'root.mail, root.mail.*' }),
    field('func', 'Function', { placeholder: 'module.function' }),
    field('tenant', 'Tenant', { placeholder: 'admin only' }),
    field('q', 'Search', { placeholder: 'uuid, text…', type: 'search', class: 'wide' }),
    h('details', { class: 'more-filters', open: MORE.some((k) => filter[k]) },
      h('summary', {}, 'More filters'),
      h('div', { class: 'filters-more' },
        field('user_id', 'User', { placeholder: 'user_id' }),
        field('model_name', 'Model', { placeholder: 'sale.order' }),
        field('created_after', 'Created from', { type: 'date' }),
        field('created_before', 'Created before', { type: 'date' }),
        field('ended_after', 'Ended from', { type: 'date' }),
        field('ended_before', 'Ended before', { type: 'date' }),
        field('args', 'An argument', { placeholder: '42 or "SO042"', title: 'a JSON value one of the args equals' }),
        field('kwargs', 'Keyword arguments', { placeholder: '{"partner_id": 7}', class: 'wide', title: 'a JSON object of values the kwargs hold' }))),
    h('div', { class: 'field buttons' },
      h('button', { type: 'submit', class: 'btn primary' }, 'Filter'),
      h('button', { type: 'button', class: 'btn', onclick: clearFilters }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const next = {};
    for (const k of FILTERS) next[k] = (fd.get(k) || '').trim();
    nav(next);
  });
  stateSel.addEventListener('change', () => form.requestSubmit());

  const btn = {};
  for (const [act, def] of Object.entries(ACTIONS)) {
    btn[act] = h('button', { type: 'button', class: 'btn' + (act === 'cancel' ? ' danger' : ''), disabled: true,
      'data-action': act,
      onclick: (e) => (act === 'cancel' || allMatching ? armed(e.currentTarget, 'Confirm ' + def.label.toLowerCase() + (allMatching ? ' of ' + matchingLabel() : ''), () => bulk(act)) : bulk(act)) }, def.label);
  }
  const selInfo = h('span', { class: 'muted sel-info' }, '');
  // allMatching: the actions apply to every job the filters match, on
  // every page (POST /v1/jobs:<action> with the same filters).
  let allMatching = false;
  let stateCounts = null;
  const allLink = h('button', { type: 'button', class: 'btn ghost all-matching', hidden: true, onclick: () => { allMatching = !allMatching; renderSelection(); } });
  const pauseBtn = h('button', { type: 'button', class: 'btn ghost', 'aria-pressed': String(!paused), onclick: togglePause });
  const refreshBtn = h('button', { type: 'button', class: 'btn ghost', onclick: () => load(), title: 'Refresh now' }, '↻ Refresh');
  const updated = h('span', { class: 'muted small updated' });
  const toolbar = h('div', { class: 'toolbar' },
    h('div', { class: 'bulk', role: 'group', 'aria-label': 'Actions on selected jobs' }, selInfo, allLink, btn.requeue, btn.done, btn.cancel),
    h('div', { class: 'spacer' }), updated, refreshBtn, pauseBtn);

  const allBox = h('input', { type: 'checkbox', 'aria-label': 'Select all jobs on this page', onchange: selectAll });
  const tbody = h('tbody');
  const table = h('table', { class: 'jobs-table' },
    h('thead', {}, h('tr', {},
      h('th', { class: 'c-sel' }, allBox), h('th', {}, 'State'), h('th', {}, 'Job'), h('th', {}, 'Channel'),
      h('th', { class: 'num' }, 'Prio'), h('th', {}, 'Created'), h('th', {}, 'ETA · took'), h('th', { class: 'num' }, 'Tries'))),
    tbody);
  const newerBtn = h('button', { type: 'button', class: 'btn', onclick: newer }, '← Newer');
  const olderBtn = h('button', { type: 'button', class: 'btn', onclick: older }, 'Older →');
  const pageInfo = h('span', { class: 'muted small' });
  const msg = h('div', { class: 'msg' });

  root.replaceChildren(
    h('div', { class: 'page-head' }, h('h1', {}, 'Jobs'), countsEl),
    form, toolbar, msg, h('div', { class: 'table-wrap' }, table),
    h('div', { class: 'pager' }, newerBtn, pageInfo, olderBtn));

  function clearFilters() { nav({}); }

  function togglePause() {
    paused = !paused;
    localStorage.setItem(PAUSE_KEY, paused ? '1' : '0');
    renderPause();
    schedule();
  }
  function renderPause() {
    pauseBtn.replaceChildren(h('span', { class: 'live' + (paused ? ' off' : ''), 'aria-hidden': 'true' }), paused ? 'Auto-refresh paused' : 'Auto-refresh on');
    pauseBtn.setAttribute('aria-pressed', String(!paused));
    pauseBtn.title = paused ? 'Resume refreshing every 5 s' : 'Pause refreshing every 5 s';
  }

  function schedule() {
    clearTimeout(timer);
    if (!paused) timer = setTimeout(() => { if (document.hidden) schedule(); else load(true); }, REFRESH_MS);
  }

  async function loadCounts() {
    if (countsMissing) return;
    try {
      const q = filter.tenant ? qs({ tenant: filter.tenant }) : '';
      const c = normalizeCounts(await get('/v1/stats' + q));
      stateCounts = c;
      renderCounts(c);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 405)) countsMissing = true;
      renderCounts(null);
    }
  }
  function renderCounts(c) {
    if (!c) { countsEl.replaceChildren(); return; }
    countsEl.replaceChildren(...STATES.map((s) => {
      const active = filter.state === s;
      return h('button', { type: 'button', class: 'count s-' + s + (active ? ' active' : ''), 'aria-pressed': String(active),
        'data-state': s, title: active ? 'Show every state' : 'Show only ' + STATE_LABEL[s] + ' jobs',
        onclick: () => nav(Object.assign({}, filter, { state: active ? '' : s })) },
        h('span', { class: 'dot', 'aria-hidden': 'true' }), STATE_LABEL[s], h('b', {}, String(c[s] || 0)));
    }));
  }

  async function load(auto) {
    if (busy) return;
    busy = true;
    try {
      const q = qs(Object.assign({}, filter, { limit: 50, cursor: cursors[cursors.length - 1] }));
      const [data] = await Promise.all([get('/v1/jobs' + q), loadCounts()]);
      jobs = listOf(data, 'jobs');
      nextCursor = (data && data.next_cursor) || '';
      msg.replaceChildren();
      render();
      updated.textContent = 'updated ' + new Date().toLocaleTimeString();
    } catch (e) {
      if (!auto || !jobs.length) { jobs = []; render(); }
      msg.replaceChildren(errorBox(e));
    } finally {
      busy = false;
      schedule();
    }
  }

  function render() {
    const present = new Set(jobs.map((j) => j.uuid));
    for (const u of [...selected]) if (!present.has(u)) selected.delete(u);
    if (!jobs.length) {
      tbody.replaceChildren(h('tr', {}, h('td', { colspan: 8, class: 'empty' },
        Object.values(filter).some(Boolean) ? 'No job matches these filters.' : 'No jobs yet.')));
    } else {
      tbody.replaceChildren(...jobs.map(row));
    }
    newerBtn.disabled = cursors.length <= 1;
    olderBtn.disabled = !nextCursor;
    pageInfo.textContent = `page ${cursors.length}` + (jobs.length ? ` · ${jobs.length} jobs` : '');
    renderSelection();
  }

  function row(j) {
    const box = h('input', { type: 'checkbox', 'aria-label': 'Select job ' + shortId(j.uuid), checked: selected.has(j.uuid),
      onchange: (e) => { if (e.target.checked) selected.add(j.uuid); else selected.delete(j.uuid); allMatching = false; renderSelection(); } });
    const ran = j.state === 'done' || j.state === 'failed'
      ? h('span', { title: 'execution time' }, fmtSecs(j.exec_time))
      : (j.eta ? timeEl(j.eta) : h('span', { class: 'muted' }, '—'));
    const exc = j.state === 'failed' && (j.exc_name || j.exc_message)
      ? h('div', { class: 'exc' }, [j.exc_name, j.exc_message].filter(Boolean).join(': ')) : null;
    return h('tr', { class: selected.has(j.uuid) ? 'selected' : '', dataset: { uuid: j.uuid, state: j.state } },
      h('td', { class: 'c-sel' }, box),
      h('td', {}, badge(j.state), j.late ? h('span', { class: 'late', title: 'finished after expected_at' }, 'late') : null,
        j.state === 'started' ? progressBar(j.progress) : null),
      h('td', { class: 'c-job' },
        h('a', { href: '#/jobs/' + j.uuid, class: 'job-link' }, j.description && j.description !== j.func ? j.description : j.func),
        h('div', { class: 'sub' }, h('code', {}, j.func_string || j.func), ' ',
          h('span', { class: 'muted mono' }, shortId(j.uuid)), j.tenant && j.tenant !== 'default' ? h('span', { class: 'tenant' }, j.tenant) : null),
        exc),
      h('td', { class: 'mono small' }, j.channel),
      h('td', { class: 'num' }, String(j.priority)),
      h('td', {}, timeEl(j.date_created)),
      h('td', {}, ran),
      h('td', { class: 'num', title: `retry ${j.retry} of max ${j.max_retries || '∞'}; ${j.attempt} starts in all` },
        `${j.retry}/${j.max_retries || '∞'}`));
  }

  // matchingCount is how many jobs the filters match, when the state
  // counts tell (no filter but the state and tenant); else null.
  function matchingCount() {
    if (!stateCounts || FILTERS.some((k) => k !== 'state' && k !== 'tenant' && filter[k])) return null;
    if (filter.state) return stateCounts[filter.state] || 0;
    return STATES.reduce((n, s) => n + (stateCounts[s] || 0), 0);
  }
  function matchingLabel() {
    const n = matchingCount();
    return n === null ? 'all matching jobs' : `all ${n} matching`;
  }

  function renderSelection() {
    const sel = jobs.filter((j) => selected.has(j.uuid));
    for (const tr of tbody.querySelectorAll('tr[data-uuid]')) tr.classList.toggle('selected', selected.has(tr.dataset.uuid));
    // The whole page is selected and more pages exist: offer every match.
    const pageAll = jobs.length > 0 && sel.length === jobs.length && (nextCursor || cursors.length > 1);
    if (!pageAll) allMatching = false;
    allLink.hidden = !pageAll;
    allLink.textContent = allMatching ? 'Only this page' : 'Select ' + matchingLabel();
    allLink.setAttribute('aria-pressed', String(allMatching));
    selInfo.textContent = allMatching ? `${matchingLabel()} selected` : sel.length ? `${sel.length} selected` : 'Select jobs to act on them';
    if (allMatching) {
      // Each job is moved only if the action applies to its state; the
      // others are skipped and counted.
      for (const [act, def] of Object.entries(ACTIONS)) {
        btn[act].disabled = false;
        btn[act].title = `${def.label} every job the filters match (those it applies to)`;
      }
      allBox.checked = true;
      allBox.indeterminate = false;
      return;
    }
    for (const [act, def] of Object.entries(ACTIONS)) {
      const ok = sel.filter((j) => def.from.includes(j.state)).length;
      btn[act].disabled = !sel.length || ok !== sel.length;
      btn[act].title = !sel.length ? '' : ok === sel.length ? `${def.label} ${sel.length} job(s)`
        : `${sel.length - ok} selected job(s) are in a state where ${def.label.toLowerCase()} does not apply`;
    }
    allBox.checked = jobs.length > 0 && sel.length === jobs.length;
    allBox.indeterminate = sel.length > 0 && sel.length < jobs.length;
  }

  function selectAll() {
    if (allBox.checked) jobs.forEach((j) => selected.add(j.uuid));
    else { selected.clear(); allMatching = false; }
    tbody.querySelectorAll('input[type=checkbox]').forEach((b) => { b.checked = allBox.checked; });
    renderSelection();
  }

  async function bulk(act) {
    if (allMatching) {
      for (const b of Object.values(btn)) b.disabled = true;
      try {
        const r = await post('/v1/jobs:' + act + qs(filter));
        toast(`${ACTIONS[act].label}: ${r.changed} of ${r.matched} matching job(s)` + (r.skipped ? `, ${r.skipped} skipped (not in a state it applies to)` : ''), 'ok');
      } catch (e) {
        toast(`${ACTIONS[act].label} refused: ${e.message}`, 'bad');
      }
      allMatching = false;
      selected.clear();
      load();
      return;
    }
    const uuids = jobs.filter((j) => selected.has(j.uuid)).map((j) => j.uuid);
    if (!uuids.length) return;
    for (const b of Object.values(btn)) b.disabled = true;
    const results = await Promise.allSettled(uuids.map((u) => post(`/v1/jobs/${u}/${act}`)));
    const failed = results.filter((r) => r.status === 'rejected');
    if (failed.length) toast(`${ACTIONS[act].label}: ${uuids.length - failed.length} ok, ${failed.length} refused — ${failed[0].reason.message}`, 'bad');
    else toast(`${ACTIONS[act].label}: ${uuids.length} job(s)`, 'ok');
    selected.clear();
    load();
  }

  function older() { if (nextCursor) { cursors.push(nextCursor); load(); } }
  function newer() { if (cursors.length > 1) { cursors.pop(); load(); } }

  renderPause();
  renderCounts(null);
  load();
  return { destroy() { clearTimeout(timer); paused = true; } };
}
