// Thin client for the wasmq HTTP API (/v1). Every call carries the bearer
// token the operator saved; errors become ApiError with the server's code.

const TOKEN_KEY = 'wasmq.token';

export function getToken() {
  return localStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(t) {
  if (t) localStorage.setItem(TOKEN_KEY, t);
  else localStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const tok = getToken();
  if (tok) headers.Authorization = 'Bearer ' + tok;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'unreachable', 'server unreachable: ' + e.message);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!res.ok) {
    const err = data && data.error;
    const msg = (err && err.message) || (typeof data === 'string' && data.trim()) || res.statusText;
    throw new ApiError(res.status, (err && err.code) || String(res.status), msg);
  }
  return data;
}

export const get = (p) => api('GET', p);
export const post = (p, b) => api('POST', p, b);

// qs builds a query string from the non-empty values of o.
export function qs(o) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined && v !== null && v !== '') p.set(k, v);
  }
  const s = p.toString();
  return s ? '?' + s : '';
}

// listOf accepts either a bare array or {key: [...]} since extensions of
// the contract wrap lists differently.
export function listOf(data, key) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data[key])) return data[key];
  return [];
}

// Plugins are cached briefly: the job page needs function configs for the
// related action, and they change only when a plugin is uploaded.
let pluginCache = null;
let pluginAt = 0;
export async function plugins(force) {
  if (!force && pluginCache && Date.now() - pluginAt < 30000) return pluginCache;
  pluginCache = await get('/v1/plugins');
  pluginAt = Date.now();
  return pluginCache;
}

export function clearCaches() {
  pluginCache = null;
}
