// Dependency graph of one graph_uuid drawn as inline SVG: a layered layout
// (layer = longest path from a root), left to right, ordered within a
// layer by the mean position of the parents to limit crossings.
import { STATE_LABEL } from './util.js';

const NS = 'http://www.w3.org/2000/svg';
const NODE_W = 168;
const NODE_H = 40;
const GAP_X = 56;
const GAP_Y = 14;
const PAD = 12;

function s(tag, attrs, ...kids) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, v);
  for (const c of kids) if (c) el.append(c);
  return el;
}

// layout returns {pos: Map uuid->{x,y,layer}, width, height, edges}.
export function layout(jobs) {
  const byId = new Map(jobs.map((j) => [j.uuid, j]));
  const parents = (j) => (j.depends_on || []).filter((p) => byId.has(p));
  const layer = new Map();
  const visiting = new Set();
  function depth(j) {
    if (layer.has(j.uuid)) return layer.get(j.uuid);
    if (visiting.has(j.uuid)) return 0; // a cycle cannot be stored; stay safe anyway
    visiting.add(j.uuid);
    let d = 0;
    for (const p of parents(j)) d = Math.max(d, depth(byId.get(p)) + 1);
    visiting.delete(j.uuid);
    layer.set(j.uuid, d);
    return d;
  }
  jobs.forEach(depth);
  const layers = [];
  // Oldest first within a layer, so a chain created in order reads naturally.
  const ordered = [...jobs].sort((a, b) => (a.seq || 0) - (b.seq || 0) || String(a.date_created).localeCompare(String(b.date_created)));
  for (const j of ordered) {
    const l = layer.get(j.uuid);
    (layers[l] = layers[l] || []).push(j);
  }
  const pos = new Map();
  layers.forEach((col, li) => {
    if (li > 0) {
      const key = (j) => {
        const ps = parents(j).map((p) => pos.get(p).idx);
        return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : 0;
      };
      col.sort((a, b) => key(a) - key(b));
    }
    col.forEach((j, i) => pos.set(j.uuid, { layer: li, idx: i }));
  });
  const tallest = Math.max(1, ...layers.map((c) => c.length));
  const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
  layers.forEach((col) => {
    const colH = col.length * NODE_H + (col.length - 1) * GAP_Y;
    const top = (height - colH) / 2;
    col.forEach((j, i) => {
      const p = pos.get(j.uuid);
      p.x = PAD + p.layer * (NODE_W + GAP_X);
      p.y = top + i * (NODE_H + GAP_Y);
    });
  });
  const width = PAD * 2 + layers.length * NODE_W + Math.max(0, layers.length - 1) * GAP_X;
  const edges = [];
  for (const j of jobs) for (const p of parents(j)) edges.push([p, j.uuid]);
  return { pos, width, height, edges };
}

function label(j) {
  // A description set by the caller tells nodes of one function apart.
  const f = j.description && j.description !== j.func ? j.description : j.func || '';
  return f.length > 22 ? '…' + f.slice(-21) : f;
}

export function drawGraph(jobs, currentUUID) {
  const { pos, width, height, edges } = layout(jobs);
  const svg = s('svg', { class: 'graph', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': `Dependency graph: ${jobs.length} jobs, ${edges.length} dependencies` });
  svg.append(s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 8 8', refX: 7, refY: 4, markerWidth: 7, markerHeight: 7, orient: 'auto' },
    s('path', { d: 'M0,0 L8,4 L0,8 z', class: 'arrow' }))));
  const eg = s('g', { class: 'edges' });
  for (const [from, to] of edges) {
    const a = pos.get(from), b = pos.get(to);
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x - 2, y2 = b.y + NODE_H / 2;
    const mx = (x1 + x2) / 2;
    eg.append(s('path', { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: 'edge', 'marker-end': 'url(#arrow)' }));
  }
  svg.append(eg);
  const ng = s('g', { class: 'nodes' });
  for (const j of jobs) {
    const p = pos.get(j.uuid);
    const title = s('title');
    title.textContent = `${j.func} — ${STATE_LABEL[j.state] || j.state}\n${j.uuid}`;
    const t1 = s('text', { x: 12, y: 17, class: 'n-func' });
    t1.textContent = label(j);
    const t2 = s('text', { x: 12, y: 31, class: 'n-state' });
    t2.textContent = (STATE_LABEL[j.state] || j.state) + ' · ' + j.uuid.slice(0, 8);
    const a = s('a', { href: '#/jobs/' + j.uuid, class: 'node s-' + j.state + (j.uuid === currentUUID ? ' current' : ''),
      transform: `translate(${p.x},${p.y})`, 'data-uuid': j.uuid, 'data-state': j.state },
      title,
      s('rect', { width: NODE_W, height: NODE_H, rx: 7, class: 'n-box' }),
      s('rect', { width: 5, height: NODE_H - 10, x: 4, y: 5, rx: 2, class: 'n-bar' }),
      t1, t2);
    ng.append(a);
  }
  svg.append(ng);
  return svg;
}
