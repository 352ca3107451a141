// hallq charts: the period views' pictures, drawn as SVG by the page itself (no chart
// library, nothing fetched). Three charts: tickets taken per hour of the day (bars) with
// the average wait (a line on a second axis), ratings per level per day (stacked bars,
// the five levels in fixed colours), and served per member of staff (horizontal bars).
// Each is an <svg role="img"> with a <title> and an aria-label; the legend is HTML
// beside it (so the plot holds nothing but data), and the period's tables are the
// charts' text alternative. Colours are fixed: the browser test finds them in pixels.
'use strict';

const HQC = (() => {
  const NS = 'http://www.w3.org/2000/svg';
  /** The five levels of 好差评, best first, each in its fixed colour. */
  const LEVELS = [
    ['very_satisfied', '#1a7f37'],
    ['satisfied', '#74b816'],
    ['basically_satisfied', '#f2b705'],
    ['dissatisfied', '#f76707'],
    ['very_dissatisfied', '#c92a2a'],
  ];
  const COLOURS = { issued: '#3b6fb6', wait: '#e8590c', served: '#2f8f83' };
  const INK = '#5b6675';
  const GRID = '#e3e7ed';
  const W = 720;

  function s(tag, attrs, ...children) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  /** An empty chart of `h` units high, titled for screen readers. */
  function box(kind, title, h) {
    return s('svg', {
      class: 'chart', 'data-chart': kind, viewBox: `0 0 ${W} ${h}`, role: 'img', 'aria-label': title,
      preserveAspectRatio: 'xMidYMid meet', 'shape-rendering': 'crispEdges',
    }, s('title', {}, title));
  }

  /** A round upper bound for an axis: 1, 2, 2.5 or 5 times a power of ten, ≥ v. */
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function text(x, y, str, attrs) {
    return s('text', { x, y, fill: INK, 'font-size': 12, ...attrs }, str);
  }

  /** Horizontal grid lines with their labels on the left (and on the right with `right`). */
  function grid(g, p, max, right, fmtR) {
    for (let i = 0; i <= 4; i++) {
      const y = p.t + p.h - (p.h * i) / 4;
      g.append(s('line', { x1: p.l, x2: p.l + p.w, y1: y, y2: y, stroke: i ? GRID : INK, 'stroke-width': 1 }));
      const v = (max * i) / 4;
      g.append(text(p.l - 6, y + 4, Number.isInteger(v) ? v : v.toFixed(1), { 'text-anchor': 'end' }));
      if (right) {
        const r = (right * i) / 4;
        g.append(text(p.l + p.w + 6, y + 4, fmtR(r), { 'text-anchor': 'start' }));
      }
    }
  }

  function none(kind, title, h, message) {
    const svg = box(kind, title, h);
    svg.append(text(W / 2, h / 2, message, { 'text-anchor': 'middle', 'font-size': 16 }));
    return svg;
  }

  /**
   * (a) Per hour of the day: tickets taken (bars, left axis) and the average wait in
   * minutes (line, right axis). `rows` are the period's `hours`; hours without data
   * between the first and the last are empty slots.
   */
  function hours(rows, L) {
    const H = 280;
    const hs = rows.map((r) => Number(r.key)).filter((h) => Number.isInteger(h));
    if (!hs.length) return none('hours', L.title, H, L.none);
    const lo = Math.min(...hs);
    const n = Math.max(...hs) - lo + 1;
    const by = new Map(rows.map((r) => [Number(r.key), r]));
    const p = { l: 52, t: 14, w: W - 52 - 60, h: H - 14 - 40 };
    const maxN = niceMax(Math.max(...rows.map((r) => r.issued || 0)));
    const maxW = niceMax(Math.max(...rows.map((r) => (r.avg_wait_secs || 0) / 60)));
    const svg = box('hours', L.title, H);
    const g = s('g');
    grid(g, p, maxN, maxW, (m) => (Number.isInteger(m) ? m : m.toFixed(1)));
    const slot = p.w / n;
    const bars = s('g', { class: 'bars' });
    const pts = [];
    for (let i = 0; i < n; i++) {
      const hour = lo + i;
      const r = by.get(hour);
      const cx = p.l + slot * (i + 0.5);
      g.append(text(cx, p.t + p.h + 16, String(hour).padStart(2, '0'), { 'text-anchor': 'middle' }));
      if (!r) continue;
      const bh = (p.h * (r.issued || 0)) / maxN;
      if (bh > 0) {
        bars.append(s('rect', {
          x: (cx - slot * 0.32).toFixed(1), y: (p.t + p.h - bh).toFixed(1), width: (slot * 0.64).toFixed(1), height: bh.toFixed(1),
          fill: COLOURS.issued, 'data-hour': String(hour).padStart(2, '0'), 'data-value': r.issued,
        }, s('title', {}, `${String(hour).padStart(2, '0')}: ${r.issued}`)));
      }
      if (r.issued > 0) pts.push([cx, p.t + p.h - (p.h * (r.avg_wait_secs || 0)) / 60 / maxW]);
    }
    g.append(bars);
    if (pts.length) {
      const line = s('g', { class: 'line', 'shape-rendering': 'auto' });
      line.append(s('polyline', {
        points: pts.map(([x, y]) => x.toFixed(1) + ',' + y.toFixed(1)).join(' '),
        fill: 'none', stroke: COLOURS.wait, 'stroke-width': 2.5, 'stroke-linejoin': 'round',
      }));
      pts.forEach(([x, y]) => line.append(s('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 3, fill: COLOURS.wait })));
      g.append(line);
    }
    g.append(text(14, p.t + p.h / 2, L.left, { transform: `rotate(-90 14 ${p.t + p.h / 2})`, 'text-anchor': 'middle' }));
    g.append(text(W - 10, p.t + p.h / 2, L.right, { transform: `rotate(90 ${W - 10} ${p.t + p.h / 2})`, 'text-anchor': 'middle' }));
    svg.append(g);
    return svg;
  }

  /** Days grouped by month when a period has more days than a chart can show. */
  function columns(days) {
    if (days.length <= 62) return days.map((d) => ({ key: d.key, label: d.key.slice(8), ratings: d.ratings || {} }));
    const months = new Map();
    for (const d of days) {
      const k = d.key.slice(0, 7);
      if (!months.has(k)) months.set(k, { key: k, label: k.slice(2), ratings: {} });
      const m = months.get(k);
      for (const [l] of LEVELS) m.ratings[l] = (m.ratings[l] || 0) + ((d.ratings || {})[l] || 0);
    }
    return [...months.values()];
  }

  /** (b) Ratings by level per day (per month for long ranges): stacked bars, best at the bottom. */
  function ratings(days, L) {
    const H = 260;
    const cols = columns(days).filter((c) => LEVELS.some(([l]) => c.ratings[l] > 0));
    if (!cols.length) return none('ratings', L.title, H, L.none);
    const p = { l: 52, t: 14, w: W - 52 - 16, h: H - 14 - 40 };
    const max = niceMax(Math.max(...cols.map((c) => LEVELS.reduce((a, [l]) => a + (c.ratings[l] || 0), 0))));
    const svg = box('ratings', L.title, H);
    const g = s('g');
    grid(g, p, max);
    const slot = p.w / cols.length;
    const every = Math.ceil(cols.length / 31);
    cols.forEach((c, i) => {
      const cx = p.l + slot * (i + 0.5);
      if (i % every === 0) g.append(text(cx, p.t + p.h + 16, c.label, { 'text-anchor': 'middle', 'font-size': cols.length > 20 ? 10 : 12 }));
      let y = p.t + p.h;
      const col = s('g', { 'data-day': c.key });
      for (const [l, colour] of LEVELS) {
        const v = c.ratings[l] || 0;
        if (!v) continue;
        const h = (p.h * v) / max;
        y -= h;
        col.append(s('rect', {
          x: (cx - slot * 0.35).toFixed(1), y: y.toFixed(1), width: Math.max(1, slot * 0.7).toFixed(1), height: h.toFixed(1),
          fill: colour, 'data-level': l, 'data-value': v,
        }, s('title', {}, `${c.key} ${L.levels[l]}: ${v}`)));
      }
      g.append(col);
    });
    g.append(text(14, p.t + p.h / 2, L.left, { transform: `rotate(-90 14 ${p.t + p.h / 2})`, 'text-anchor': 'middle' }));
    svg.append(g);
    return svg;
  }

  /** (c) Served per member of staff, most first: one horizontal bar each, named. */
  function staff(rows, L) {
    const list = rows.filter((r) => (r.served || 0) > 0).sort((a, b) => b.served - a.served || String(a.key).localeCompare(String(b.key)));
    const row = 24;
    const H = Math.max(80, 14 + row * list.length + 30);
    if (!list.length) return none('staff', L.title, 80, L.none);
    const p = { l: 150, t: 14, w: W - 150 - 60, h: row * list.length };
    const max = niceMax(list[0].served);
    const svg = box('staff', L.title, H);
    const g = s('g');
    for (let i = 0; i <= 4; i++) {
      const x = p.l + (p.w * i) / 4;
      g.append(s('line', { x1: x, x2: x, y1: p.t, y2: p.t + p.h, stroke: i ? GRID : INK, 'stroke-width': 1 }));
      g.append(text(x, p.t + p.h + 16, (max * i) / 4, { 'text-anchor': 'middle' }));
    }
    list.forEach((r, i) => {
      const y = p.t + row * i;
      const w = (p.w * r.served) / max;
      g.append(text(p.l - 8, y + row / 2 + 4, r.name ? `${r.name} ${r.key}` : r.key, { 'text-anchor': 'end' }));
      g.append(s('rect', {
        x: p.l, y: (y + 4).toFixed(1), width: w.toFixed(1), height: row - 8,
        fill: COLOURS.served, 'data-staff': r.key, 'data-value': r.served,
      }, s('title', {}, `${r.name || r.key}: ${r.served}`)));
      g.append(text(p.l + w + 6, y + row / 2 + 4, r.served, { 'text-anchor': 'start' }));
    });
    svg.append(g);
    return svg;
  }

  /** An HTML legend: [colour, label] pairs, each swatch a small SVG square (it prints). */
  function legend(items) {
    const ul = document.createElement('ul');
    ul.className = 'legend';
    for (const [colour, label, line] of items) {
      const sw = s('svg', { width: 14, height: 14, viewBox: '0 0 14 14', 'aria-hidden': 'true' },
        line ? s('rect', { x: 0, y: 5, width: 14, height: 4, fill: colour }) : s('rect', { x: 0, y: 0, width: 14, height: 14, fill: colour }));
      const li = document.createElement('li');
      li.append(sw, ' ', label);
      ul.append(li);
    }
    return ul;
  }

  return { LEVELS, COLOURS, hours, ratings, staff, legend, niceMax };
})();
