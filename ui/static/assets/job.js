// One job: every field, attempts with plugin logs, related action, the
// actions allowed in its state and its dependency graph.
import { get, post, qs, listOf, plugins, ApiError } from './api.js';
import { h, badge, timeEl, fmtTime, fmtSecs, pretty, shortId, ACTIONS, STATE_LABEL, toast, errorBox, armed, progressBar } from './util.js';
import { expand } from './related.js';
import { drawGraph } from './graph.js';

const REFRESH_MS = 3000;
const MAX_GRAPH = 500;

export function jobView(root, uuid) {
  let timer = null;
  let gone = false;
  let lastSig = '';

  root.replaceChildren(h('p', { class: 'muted' }, 'Loading job…'));

  async function load() {
    let job;
    try {
      job = await get('/v1/jobs/' + encodeURIComponent(uuid));
    } catch (e) {
      if (gone) return;
      if (e instanceof ApiError && e.status === 404) {
        root.replaceChildren(h('div', { class: 'page-head' }, h('h1', {}, 'Job not found')),
          h('div', { class: 'notfound', role: 'alert' }, h('p', {}, 'No job ', h('code', {}, uuid), ' is visible with this token.'),
            h('p', {}, h('a', { href: '#/jobs' }, '← Back to jobs'))));
        return;
      }
      root.replaceChildren(errorBox(e));
      schedule();
      return;
    }
    const [attempts, graph, fnConf] = await Promise.all([
      get(`/v1/jobs/${encodeURIComponent(uuid)}/attempts`).then((d) => listOf(d, 'attempts')).catch(() => null),
      job.graph_uuid ? loadGraph(job.graph_uuid).catch(() => null) : null,
      functionConfig(job).catch(() => null),
    ]);
    if (gone) return;
    // Re-render only when something changed, so a reader's scroll position
    // and text selection survive the refresh.
    const sig = JSON.stringify([job, attempts, graph && graph.map((j) => [j.uuid, j.state])]);
    if (sig !== lastSig) {
      lastSig = sig;
      const y = window.scrollY;
      root.replaceChildren(render(job, attempts, graph, fnConf));
      window.scrollTo(0, y);
    }
    schedule(job);
  }

  function schedule(job) {
    clearTimeout(timer);
    // Finished jobs rarely change; keep polling slowly so a requeue from
    // elsewhere still shows.
    const ms = job && ['done', 'cancelled', 'failed'].includes(job.state) ? REFRESH_MS * 3 : REFRESH_MS;
    if (!gone) timer = setTimeout(() => { if (document.hidden) schedule(job); else load(); }, ms);
  }

  async function act(name, job) {
    try {
      await post(`/v1/jobs/${encodeURIComponent(job.uuid)}/${name}`);
      toast(`${ACTIONS[name].label}: done`, 'ok');
    } catch (e) {
      toast(`${ACTIONS[name].label} refused: ${e.message}`, 'bad');
    }
    lastSig = '';
    load();
  }

  function render(job, attempts, graph, fnConf) {
    const actions = Object.entries(ACTIONS).filter(([, d]) => d.from.includes(job.state));
    const related = fnConf && fnConf.related_action ? expand(fnConf.related_action, job) : null;
    const head = h('div', { class: 'page-head job-head' },
      h('div', {},
        h('p', { class: 'crumbs' }, h('a', { href: '#/jobs' }, 'Jobs'), ' / ', h('span', { class: 'mono' }, shortId(job.uuid))),
        h('h1', {}, job.description || job.func, ' ', badge(job.state)),
        h('p', { class: 'sub' }, h('code', {}, job.func_string || job.func))),
      h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' },
        related && related.url ? h('a', { class: 'btn', href: related.url, target: '_blank', rel: 'noopener noreferrer', id: 'related-action' }, 'Related ↗') : null,
        actions.map(([name, d]) => h('button', { type: 'button', class: 'btn' + (name === 'cancel' ? ' danger' : name === 'requeue' ? ' primary' : ''),
          'data-action': name, title: name === 'cancel' ? 'Cancel this job and, transitively, its dependents' : undefined,
          onclick: (e) => (name === 'cancel' ? armed(e.currentTarget, 'Confirm cancel', () => act(name, job)) : act(name, job)) }, d.label)),
        !actions.length ? h('span', { class: 'muted small' }, `No manual action applies to a ${STATE_LABEL[job.state]} job.`) : null));

    const failure = job.exc_name || job.exc_message || job.exc_info
      ? h('section', { class: 'card failure' }, h('h2', {}, 'Failure'),
        h('p', {}, h('strong', {}, job.exc_name || 'error'), job.exc_message ? ': ' + job.exc_message : ''),
        job.exc_info ? h('pre', { class: 'code' }, job.exc_info) : null)
      : null;

    const dl = (rows) => h('dl', { class: 'kv' }, rows.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    const maybe = (v) => (v === undefined || v === null || v === '' ? h('span', { class: 'muted' }, '—') : v);
    const when = (iso) => iso ? h('span', {}, fmtTime(iso), ' ', h('span', { class: 'muted small' }, '(', timeEl(iso), ')')) : h('span', { class: 'muted' }, '—');

    const fields = h('section', { class: 'card' }, h('h2', {}, 'Job'), dl([
      ['UUID', h('code', { class: 'sel' }, job.uuid)],
      ['Tenant', maybe(job.tenant)],
      ['Function', h('code', {}, job.func)],
      ['Channel', h('code', {}, job.channel)],
      ['Priority', String(job.priority)],
      ['Retries', `${job.retry} of ${job.max_retries || '∞ (retry forever)'} · ${job.attempt} start(s) in all`],
      ['Identity key', maybe(job.identity_key)],
      ['User / model', maybe([job.user_id, job.model_name].filter(Boolean).join(' · '))],
      ['Worker', maybe(job.worker_id)],
      ['Plugin sha256', job.plugin_sha256 ? h('code', { class: 'small', title: job.plugin_sha256 }, job.plugin_sha256.slice(0, 16) + '…') : maybe('')],
      ['Graph', job.graph_uuid ? h('code', {}, job.graph_uuid) : maybe('')],
      ['Depends on', job.depends_on && job.depends_on.length
        ? h('span', {}, job.depends_on.map((d) => h('a', { href: '#/jobs/' + d, class: 'mono dep' }, shortId(d)))) : maybe('')],
      related && related.error ? ['Related action', h('span', { class: 'muted' }, related.error)] : null,
    ]));

    const times = h('section', { class: 'card' }, h('h2', {}, 'Timings'), dl([
      ['Created', when(job.date_created)],
      ['ETA', when(job.eta)],
      ['Expected at', job.expected_at ? h('span', {}, when(job.expected_at), job.late ? h('span', { class: 'late' }, 'late') : null) : maybe('')],
      ['Enqueued', when(job.date_enqueued)],
      ['Started', when(job.date_started)],
      ['Done', when(job.date_done)],
      ['Cancelled', when(job.date_cancelled)],
      ['Exec time', maybe(fmtSecs(job.exec_time))],
      job.lease_until ? ['Lease until', when(job.lease_until)] : null,
    ]));

    const block = (title, v) => {
      const p = pretty(v);
      const empty = p === null || p === '[]' || p === '{}';
      return h('section', { class: 'card data' }, h('h2', {}, title),
        empty ? h('p', { class: 'muted' }, p === null ? 'none' : p) : h('pre', { class: 'code' }, p));
    };

    // The graph comes right after the failure: which jobs wait on this one
    // is what an operator decides a requeue or a cancel on.
    // The plugin's own account of its advance, refreshed with the page.
    const progress = job.progress ? h('section', { class: 'card job-progress' }, h('h2', {}, 'Progress'),
      progressBar(job.progress, true), h('p', { class: 'muted small' }, 'reported ', timeEl(job.progress.updated))) : null;
    const parts = [head, progress, failure, graph ? renderGraph(graph, job) : null,
      h('div', { class: 'grid2' }, fields, times),
      h('div', { class: 'grid2' }, block('Arguments', job.args), block('Keyword arguments', job.kwargs)),
      h('div', { class: 'grid2' }, block('Context', job.context), block('Result', job.result)),
      renderAttempts(attempts)];
    return h('div', { class: 'job-page', dataset: { uuid: job.uuid, state: job.state } }, parts);
  }

  function renderAttempts(attempts) {
    const sec = h('section', { class: 'card' }, h('h2', {}, 'Attempts'));
    if (attempts === null) { sec.append(h('p', { class: 'muted' }, 'Attempts are not available from this server.')); return sec; }
    if (!attempts.length) { sec.append(h('p', { class: 'muted' }, 'Not started yet.')); return sec; }
    const list = h('ol', { class: 'attempts' });
    for (const a of attempts) {
      const dur = a.ended ? (new Date(a.ended) - new Date(a.started)) / 1000 : null;
      const logs = a.logs || [];
      list.append(h('li', { class: 'attempt o-' + (a.outcome || 'running') },
        h('div', { class: 'a-head' },
          h('strong', {}, '#' + a.attempt), ' ',
          h('span', { class: 'outcome' }, a.outcome || 'running'), ' ',
          h('span', { class: 'muted' }, fmtTime(a.started)), dur !== null ? h('span', { class: 'muted' }, ' · ' + fmtSecs(dur)) : null,
          a.worker_id ? h('span', { class: 'muted small' }, ' · ' + a.worker_id) : null),
        a.exc_name || a.exc_message ? h('div', { class: 'exc' }, [a.exc_name, a.exc_message].filter(Boolean).join(': ')) : null,
        a.usage ? renderUsage(a.usage) : null,
        logs.length ? h('pre', { class: 'logs' }, logs.map((l) => h('div', { class: 'log l-' + (l.level || 'info') },
          h('span', { class: 'muted' }, fmtTime(l.time).slice(11)), ' ', h('span', { class: 'lvl' }, (l.level || 'info').toUpperCase().padEnd(5)), ' ', l.message)))
          : h('p', { class: 'muted small' }, 'No log lines.')));
    }
    sec.append(list);
    return sec;
  }

  // What the attempt used (docs/abi.md, "Usage and fuel"), on one line.
  function renderUsage(u) {
    const parts = [['fuel', u.fuel.toLocaleString()], ['wall', fmtSecs(u.wall_ms / 1000)],
      ['peak memory', fmtBytes(u.peak_memory)], ['host calls', u.host_calls.toLocaleString()]];
    if (u.http_requests) parts.push(['http', `${u.http_requests} (out ${fmtBytes(u.http_bytes_out)}, in ${fmtBytes(u.http_bytes_in)})`]);
    return h('div', { class: 'usage muted small' }, parts.map(([k, v], i) =>
      h('span', { dataset: { k } }, (i ? ' · ' : '') + k + ' ', h('strong', {}, v))));
  }

  function fmtBytes(n) {
    for (const [unit, size] of [['GiB', 1 << 30], ['MiB', 1 << 20], ['KiB', 1 << 10]]) {
      if (n >= size) return (n / size).toFixed(1) + ' ' + unit;
    }
    return n + ' B';
  }

  function renderGraph(graph, job) {
    const counts = {};
    for (const j of graph) counts[j.state] = (counts[j.state] || 0) + 1;
    return h('section', { class: 'card graph-card' },
      h('h2', {}, 'Dependency graph ', h('span', { class: 'muted small normal' }, `${graph.length} job(s): `,
        Object.entries(counts).map(([s, n]) => `${n} ${STATE_LABEL[s] || s}`).join(', '))),
      h('div', { class: 'graph-wrap' }, drawGraph(graph, job.uuid)));
  }

  load();
  return { destroy() { gone = true; clearTimeout(timer); } };
}

async function loadGraph(graphUUID) {
  const out = [];
  let cursor = '';
  do {
    const d = await get('/v1/jobs' + qs({ graph_uuid: graphUUID, limit: 200, cursor }));
    out.push(...listOf(d, 'jobs'));
    cursor = d && d.next_cursor;
  } while (cursor && out.length < MAX_GRAPH);
  return out;
}

// functionConfig finds the config of module.function in GET /v1/plugins.
// A tenant's own module shadows a shared one of the same name.
async function functionConfig(job) {
  const func = job.func || '';
  const i = func.lastIndexOf('.');
  if (i <= 0) return null;
  const mod = func.slice(0, i), fn = func.slice(i + 1);
  const list = listOf(await plugins(), 'plugins').filter((x) => x.name === mod);
  const p = list.find((x) => x.tenant && x.tenant === job.tenant) || list.find((x) => !x.tenant) || list[0];
  return (p && p.functions && p.functions[fn]) || null;
}
