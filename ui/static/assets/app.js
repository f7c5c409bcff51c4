// Router and shell: hash routes (#/jobs, #/jobs/<uuid>, #/channels,
// #/schedules, #/plugins); a server path such as /jobs/<uuid> is turned into its hash.
import { getToken, setToken, clearCaches } from './api.js';
import { jobsView } from './jobs.js';
import { jobView } from './job.js';
import { channelsView, pluginsView } from './channels.js';
import { schedulesView } from './schedules.js';

const main = document.getElementById('main');
let current = null;

function parse() {
  let hash = location.hash.replace(/^#/, '');
  if (!hash) hash = location.pathname === '/' ? '/jobs' : location.pathname + location.search;
  const [path, query] = hash.split('?');
  return { parts: path.split('/').filter(Boolean), params: new URLSearchParams(query || '') };
}

// navJobs rewrites the jobs filters into the URL, so views are linkable
// and the back button works.
function navJobs(filters) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
  const s = q.toString();
  location.hash = '#/jobs' + (s ? '?' + s : '');
}

function route() {
  if (current && current.destroy) current.destroy();
  const { parts, params } = parse();
  const section = parts[0] || 'jobs';
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (section === 'jobs' && parts[1]) {
    document.title = 'Job ' + parts[1].slice(0, 8) + ' · wasmq';
    current = jobView(main, decodeURIComponent(parts[1]));
  } else if (section === 'channels') {
    document.title = 'Channels · wasmq';
    current = channelsView(main);
  } else if (section === 'schedules') {
    document.title = 'Schedules · wasmq';
    current = schedulesView(main);
  } else if (section === 'plugins') {
    document.title = 'Plugins · wasmq';
    current = pluginsView(main);
  } else {
    document.title = 'Jobs · wasmq';
    current = jobsView(main, params, navJobs);
  }
}

const tokenInput = document.getElementById('token');
tokenInput.value = getToken();
document.getElementById('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  setToken(tokenInput.value.trim());
  clearCaches();
  route();
});

// A deep link like /jobs/<uuid> becomes #/jobs/<uuid> once, so later
// navigation stays on the single page.
if (!location.hash && location.pathname !== '/') {
  history.replaceState(null, '', '/#' + location.pathname + location.search);
}
window.addEventListener('hashchange', route);
route();
