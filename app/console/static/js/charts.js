// Two small SVG charts (no library): horizontal stacked bars and lines over days. Every label
// is set as text; each chart carries a text summary for screen readers.
const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

// rows: [{label, segments: [{value, kind, caption}]}]
export function barChart(rows, { title, width = 640, unit = '' } = {}) {
  const rowHeight = 26;
  const left = 180;
  const height = rows.length * rowHeight + 30;
  const max = Math.max(1, ...rows.map((r) => r.segments.reduce((s, x) => s + x.value, 0)));
  const scale = (width - left - 60) / max;
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': title || 'chart' });
  rows.forEach((row, i) => {
    const y = 10 + i * rowHeight;
    chart.append(svg('text', { x: left - 8, y: y + 15, 'text-anchor': 'end', class: 'axis' }, row.label));
    let x = left;
    for (const segment of row.segments) {
      if (segment.value <= 0) continue;
      const w = segment.value * scale;
      chart.append(svg('rect', { x, y, width: Math.max(w, 1), height: rowHeight - 8, class: `seg seg-${segment.kind}` },
        svg('title', {}, `${segment.caption}: ${segment.value}${unit}`)));
      x += w;
    }
    const total = row.segments.reduce((s, x) => s + x.value, 0);
    chart.append(svg('text', { x: x + 6, y: y + 15, class: 'value' }, `${total}${unit}`));
  });
  return chart;
}

// series: [{name, kind, points: [{x: 'YYYY-MM-DD', y: 0..1}]}]
export function lineChart(series, { title, width = 640, height = 220 } = {}) {
  const days = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort();
  const left = 44;
  const bottom = height - 28;
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': title || 'chart' });
  for (const tick of [0, 0.5, 1]) {
    const y = bottom - tick * (bottom - 10);
    chart.append(svg('line', { x1: left, x2: width - 10, y1: y, y2: y, class: 'grid' }),
      svg('text', { x: left - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' }, `${tick * 100}%`));
  }
  if (!days.length) {
    chart.append(svg('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'axis' }, 'no rolled-up days yet'));
    return chart;
  }
  const step = days.length > 1 ? (width - left - 50) / (days.length - 1) : 0;
  const xOf = (day) => left + 10 + days.indexOf(day) * step;
  days.forEach((day) => chart.append(svg('text', { x: xOf(day), y: height - 8, 'text-anchor': 'middle', class: 'axis' }, day.slice(5))));
  for (const s of series) {
    const points = s.points.filter((p) => p.y !== null && p.y !== undefined);
    if (!points.length) continue;
    chart.append(svg('polyline', { points: points.map((p) => `${xOf(p.x)},${bottom - p.y * (bottom - 10)}`).join(' '), class: `line line-${s.kind}` }));
    for (const p of points) {
      chart.append(svg('circle', { cx: xOf(p.x), cy: bottom - p.y * (bottom - 10), r: 3, class: `dot line-${s.kind}` },
        svg('title', {}, `${s.name} ${p.x}: ${Math.round(p.y * 1000) / 10}%`)));
    }
  }
  return chart;
}
