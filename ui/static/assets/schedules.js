// Schedules: periodic jobs with their next due times, the last job each
// created (with its state now) and the operator's controls: pause, resume
// and run now. A page at a time (100, by name), as the API serves them.
import { get, post, listOf, qs } from './api.js';
import { h, badge, timeEl, fmtTime, toast, errorBox, shortId } from './util.js';

export function schedulesView(root) {
  let timer = null;
  let gone = false;
  const cursors = ['']; // cursors[i] opens page i; the last is the page shown
  let nextCursor = '';
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const prevBtn = h('button', { type: 'button', class: 'btn', onclick: () => { if (cursors.length > 1) { cursors.pop(); load(); } } }, '← Previous');
  const nextBtn = h('button', { type: 'button', class: 'btn', onclick: () => { if (nextCursor) { cursors.push(nextCursor); load(); } } }, 'Next →');
  const pageInfo = h('span', { class: 'muted small' });
  const pager = h('div', { class: 'pager schedules-pager', hidden: true }, prevBtn, pageInfo, nextBtn);
  root.replaceChildren(h('div', { class: 'page-head' }, h('h1', {}, 'Schedules'),
    h('p', { class: 'muted small' }, 'Each due time creates one job, on the leading node. Times are shown in your browser\'s zone. Refreshed every 5 s.')), body, pager);

  async function load() {
    clearTimeout(timer);
    try {
      const data = await get('/v1/schedules' + qs({ cursor: cursors[cursors.length - 1] }));
      if (gone) return;
      const ss = listOf(data, 'schedules');
      nextCursor = (data && data.next_cursor) || '';
      body.replaceChildren(table(ss));
      prevBtn.disabled = cursors.length <= 1;
      nextBtn.disabled = !nextCursor;
      pageInfo.textContent = `page ${cursors.length}`;
      pager.hidden = cursors.length <= 1 && !nextCursor;
    } catch (e) {
      body.replaceChildren(errorBox(e));
    }
    if (!gone) timer = setTimeout(load, 5000);
  }

  async function act(s, action, button) {
    button.disabled = true;
    const q = s.tenant ? '?tenant=' + encodeURIComponent(s.tenant) : '';
    try {
      const out = await post(`/v1/schedules/${encodeURIComponent(s.name)}:${action}${q}`);
      toast(action === 'run' ? `Created job ${shortId(out.uuid)} from ${s.name}` : `${s.name} ${action === 'pause' ? 'paused' : 'resumed'}`);
    } catch (e) {
      toast(e.message, 'bad');
    }
    load();
  }

  function table(ss) {
    if (!ss.length) {
      return h('p', { class: 'muted' }, 'No schedules. Create one with POST /v1/schedules, `wasmq schedules add` or [[schedules]] in wasmq.toml.');
    }
    return h('div', { class: 'table-wrap' }, h('table', { class: 'schedules-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Schedule'), h('th', {}, 'When'), h('th', {}, 'Function'),
        h('th', {}, 'Next runs'), h('th', {}, 'Last job'), h('th', {}, 'Actions'))),
      h('tbody', {}, ss.map((s) => {
        const next = s.next_runs || [];
        const last = s.last_job;
        return h('tr', { dataset: { schedule: s.name, paused: String(!!s.paused) } },
          h('td', {}, h('strong', { class: 'mono' }, s.name), ' ',
            s.paused ? h('span', { class: 'flag warn' }, 'paused') : null,
            s.source === 'config' ? h('span', { class: 'flag muted', title: 'defined in wasmq.toml' }, 'config') : null,
            s.tenant ? h('div', { class: 'muted small' }, s.tenant) : null),
          h('td', {}, h('code', {}, s.cron), h('div', { class: 'muted small' }, s.timezone,
            s.missed_runs === 'catch_up' ? ` · catch up ≤ ${s.catch_up_max}` : '')),
          h('td', {}, h('code', {}, s.func), s.channel ? h('div', { class: 'muted small mono' }, s.channel) : null),
          h('td', { class: 'next-runs' }, next.length
            ? next.slice(0, 3).map((t, i) => h('div', { class: i ? 'muted small' : '' }, i ? fmtTime(t) : timeEl(t)))
            : h('span', { class: 'muted' }, s.paused ? 'paused' : '—')),
          h('td', { class: 'last-job' }, last
            ? [last.state ? badge(last.state) : h('span', { class: 'muted small' }, 'removed'), ' ',
              h('a', { href: '#/jobs/' + encodeURIComponent(last.uuid), class: 'mono job-link', title: last.uuid }, shortId(last.uuid)),
              h('div', { class: 'muted small' }, timeEl(s.last_fired))]
            : h('span', { class: 'muted' }, 'none yet')),
          h('td', { class: 'row-actions' },
            s.paused
              ? h('button', { type: 'button', class: 'btn small primary', 'data-action': 'resume', onclick: (e) => act(s, 'resume', e.currentTarget) }, 'Resume')
              : h('button', { type: 'button', class: 'btn small', 'data-action': 'pause', onclick: (e) => act(s, 'pause', e.currentTarget) }, 'Pause'),
            ' ',
            h('button', { type: 'button', class: 'btn small', 'data-action': 'run', title: 'Create its job now, outside its due times',
              onclick: (e) => act(s, 'run', e.currentTarget) }, 'Run now')));
      }))));
  }

  load();
  return { destroy() { gone = true; clearTimeout(timer); } };
}
