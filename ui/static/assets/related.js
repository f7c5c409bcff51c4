// Related-action URL templates (function config `related_action`).
//
// Syntax: `{path}` is replaced by the value at `path` in the job, a dotted
// path whose numeric segments index lists: `{uuid}`, `{model_name}`,
// `{context.records.0}`, `{kwargs.lang}`. Values are URL-encoded; a list of
// scalars becomes its encoded items joined by commas; an object becomes
// its encoded JSON. `{{` and `}}` stand for literal braces. A placeholder
// that resolves to nothing (missing, null, empty string) means the link
// cannot be built and is not shown. Only http(s) URLs and same-origin
// paths are produced, never `javascript:`.

export function lookup(obj, path) {
  let cur = obj;
  for (const seg of path.split('.')) {
    if (cur === null || cur === undefined) return undefined;
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(seg)) return undefined;
      cur = cur[Number(seg)];
    } else if (typeof cur === 'object') {
      cur = Object.prototype.hasOwnProperty.call(cur, seg) ? cur[seg] : undefined;
    } else {
      return undefined;
    }
  }
  return cur;
}

function encodeValue(v) {
  if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object')) {
    return v.map((x) => encodeURIComponent(String(x))).join(',');
  }
  if (typeof v === 'object') return encodeURIComponent(JSON.stringify(v));
  return encodeURIComponent(String(v));
}

// expand returns {url} or {error} naming the first unresolved placeholder.
export function expand(template, job) {
  let out = '';
  let i = 0;
  while (i < template.length) {
    const c = template[i];
    if (c === '{' && template[i + 1] === '{') { out += '{'; i += 2; continue; }
    if (c === '}' && template[i + 1] === '}') { out += '}'; i += 2; continue; }
    if (c === '{') {
      const end = template.indexOf('}', i);
      if (end < 0) return { error: 'unclosed { in template' };
      const path = template.slice(i + 1, end).trim();
      const v = lookup(job, path);
      if (v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0)) {
        return { error: `{${path}} has no value for this job` };
      }
      out += encodeValue(v);
      i = end + 1;
      continue;
    }
    out += c;
    i++;
  }
  if (!/^https?:\/\//i.test(out) && !/^\/(?!\/)/.test(out)) {
    return { error: 'template must produce an http(s) URL or a /path' };
  }
  return { url: out };
}
